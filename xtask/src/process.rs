//! Running cargo sub-commands from the workspace root, with their output shown as it comes.

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use anyhow::{Context, Result};

/// A `cargo` command in `root`, using the cargo that runs xtask when there is one.
pub fn cargo(root: &Path, args: &[&str]) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut command = Command::new(cargo);
    command.args(args).current_dir(root);
    command
}

/// Runs the command with inherited stdout and stderr; true when it exits successfully.
pub fn status(mut command: Command) -> Result<bool> {
    println!("$ {}", describe(&command));
    let status = command
        .status()
        .with_context(|| format!("starting {}", describe(&command)))?;
    Ok(status.success())
}

/// Runs the command capturing stdout (stderr is shown as it comes).
pub fn stdout(mut command: Command) -> Result<Output> {
    println!("$ {}", describe(&command));
    command
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("starting {}", describe(&command)))
}

/// The command line, for logs.
pub fn describe(command: &Command) -> String {
    let program = Path::new(command.get_program());
    let program = match program.file_stem().and_then(|s| s.to_str()) {
        Some("cargo") => "cargo".to_owned(),
        _ => program.display().to_string(),
    };
    let mut words = vec![program];
    words.extend(command.get_args().map(|a| a.to_string_lossy().into_owned()));
    let envs: Vec<String> = command
        .get_envs()
        .filter_map(|(k, v)| Some(format!("{}={}", k.to_string_lossy(), v?.to_string_lossy())))
        .collect();
    if envs.is_empty() {
        words.join(" ")
    } else {
        format!("{} {}", envs.join(" "), words.join(" "))
    }
}
