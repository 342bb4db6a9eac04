//! `cargo xtask verify`: every gate, in order, without stopping at the first failure.
//!
//! Each step prints its own output; the last line is `verify: N checks passed, M failed`.

use std::path::Path;

use anyhow::Result;

use crate::{
    browser, clients, fuzz, migrations, openapi, privileged, process, quickstart, suite, tidy,
};

/// One gate: a name and how to run it (true when it passed).
type Step<'a> = (String, Box<dyn Fn() -> Result<bool> + 'a>);

/// Runs every step; true when all passed.
pub fn run(root: &Path) -> bool {
    let cargo_step = |args: &'static [&'static str]| {
        Box::new(move || process::status(process::cargo(root, args)))
            as Box<dyn Fn() -> Result<bool>>
    };
    let mut steps: Vec<Step<'_>> = vec![
        ("fmt".into(), cargo_step(&["fmt", "--all", "--", "--check"])),
        (
            "clippy".into(),
            cargo_step(&[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]),
        ),
        ("privileged".into(), Box::new(|| privileged::run(root))),
        ("tidy".into(), Box::new(|| tidy::run(root))),
    ];
    for backend in suite::BACKENDS {
        steps.push((
            format!("test ({backend})"),
            Box::new(move || suite::run(root, backend)),
        ));
    }
    steps.push(("browser".into(), Box::new(|| browser::run(root))));
    steps.push(("openapi".into(), Box::new(|| openapi::run(root, true))));
    steps.push(("clients".into(), Box::new(|| clients::run(root))));
    steps.push((
        "fuzz (smoke)".into(),
        Box::new(|| fuzz::run(root, &fuzz::Options::smoke())),
    ));
    steps.push((
        "migrations".into(),
        Box::new(|| migrations::run(root, true)),
    ));
    steps.push(("quickstart".into(), Box::new(|| quickstart::run(root))));

    let mut failed = Vec::new();
    for (name, step) in &steps {
        println!("\n==> {name}");
        match step() {
            Ok(true) => println!("==> {name}: passed"),
            Ok(false) => {
                println!("==> {name}: FAILED");
                failed.push(name.as_str());
            }
            Err(error) => {
                println!("==> {name}: FAILED: {error:#}");
                failed.push(name.as_str());
            }
        }
    }
    println!();
    if !failed.is_empty() {
        println!("failed steps: {}", failed.join(", "));
    }
    println!(
        "verify: {} checks passed, {} failed",
        steps.len() - failed.len(),
        failed.len()
    );
    failed.is_empty()
}
