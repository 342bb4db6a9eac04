//! `cargo xtask quickstart`: runs the README's quickstart exactly as written, so it cannot rot.
//!
//! The commands are the first ```sh block after the `<!-- quickstart -->` marker in README.md.
//! They run in one `bash -euo pipefail` from the repository root with a throwaway database
//! (`PLYSTRA_DATABASE_URL`, which the README leaves at its default); background jobs are stopped
//! at the end. The run passes when every command succeeds and the output shows what the README
//! promises: an allow, a SCOPE_OUT_OF_BOUNDS deny, a trace, and the deny in the audit log.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Where the README marks its quickstart.
pub const MARKER: &str = "<!-- quickstart -->";

/// What the quickstart's output must show, with why.
const PROMISES: &[(&str, &str)] = &[
    ("\"decision\":\"allow\"", "the first check allows"),
    (
        "\"deny_code\":\"SCOPE_OUT_OF_BOUNDS\"",
        "the second check denies with SCOPE_OUT_OF_BOUNDS",
    ),
    ("\"matched_candidates\":[", "explain returns the trace"),
    ("seeded the Finance Reviewer fixture", "the demo seed ran"),
];

/// The commands of the README's quickstart block.
pub fn commands(readme: &str) -> Result<String> {
    let after = readme
        .split_once(MARKER)
        .map(|(_, rest)| rest)
        .with_context(|| format!("README.md has no {MARKER} marker"))?;
    let start = after
        .find("```sh\n")
        .context("no ```sh block after the quickstart marker")?;
    let body = &after[start + "```sh\n".len()..];
    let end = body
        .find("\n```")
        .context("the quickstart block is not closed")?;
    Ok(body[..end].to_owned())
}

/// Runs the quickstart; true when it kept every promise. A taken port 8080 is the script's own
/// first check (the README's, which a person running it meets too).
pub fn run(root: &Path) -> Result<bool> {
    let readme = std::fs::read_to_string(root.join("README.md")).context("reading README.md")?;
    let script = commands(&readme)?;
    let data = tempfile::tempdir().context("creating a temporary directory")?;
    let database = format!("sqlite://{}/quickstart.db", data.path().display());
    // The README's commands, then a check of the Swagger UI it points to; background jobs (the
    // server) are stopped whatever happens.
    let wrapped = format!(
        "trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT\n{script}\ncurl -sf localhost:8080/docs | grep -c swagger-ui >/dev/null && echo 'swagger ui: served'\n"
    );
    println!("quickstart: running README.md's commands against {database}");
    let mut child = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &wrapped])
        .current_dir(root)
        .env("PLYSTRA_DATABASE_URL", &database)
        .env_remove("PLYSTRA_API_KEY")
        .env_remove("PLYSTRA_API_KEY_PERMISSIONS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running bash")?;
    let reader = collect(child.stdout.take().context("no stdout")?);
    let errors = collect(child.stderr.take().context("no stderr")?);
    // Building plystrad and plystractl may be part of the run; ten minutes is plenty.
    let deadline = Instant::now() + Duration::from_secs(600);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("the quickstart did not finish in ten minutes");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let output = reader.join().unwrap_or_default();
    let errors = errors.join().unwrap_or_default();
    print!("{output}");
    eprint!("{errors}");
    if !status.success() {
        println!("quickstart: a command failed ({status})");
        if let Some(line) = errors.lines().find(|l| l.starts_with("port 8080 is taken")) {
            println!("quickstart: {line}");
        }
        return Ok(false);
    }
    let compact: String = output.chars().filter(|c| !c.is_whitespace()).collect();
    let mut kept = true;
    for (needle, promise) in PROMISES {
        let needle: String = needle.chars().filter(|c| !c.is_whitespace()).collect();
        if !compact.contains(&needle) {
            println!("quickstart: broken promise: {promise} (no {needle} in the output)");
            kept = false;
        }
    }
    if !output.contains("swagger ui: served") {
        println!("quickstart: broken promise: Swagger UI is served at /docs");
        kept = false;
    }
    if kept {
        println!("quickstart: ok");
    }
    Ok(kept)
}

/// Reads a child's pipe to its end on a thread of its own.
fn collect(mut pipe: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_block_after_the_marker_is_taken() {
        let readme = "# x\n```sh\nnot this\n```\n<!-- quickstart -->\ntext\n```sh\necho one\necho two\n```\n```sh\nnot this either\n```\n";
        assert_eq!(commands(readme).unwrap(), "echo one\necho two");
        assert!(commands("no marker").is_err());
    }

    /// The quickstart's first step stops the run, at once and naming the port, when something
    /// already listens on 8080 (as a server left running from "Run it" would).
    #[test]
    fn a_taken_port_stops_the_quickstart_at_its_first_step_naming_the_port() {
        let readme =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
                .unwrap();
        let script = commands(&readme).unwrap();
        let first = script
            .split("\n# 2.")
            .next()
            .expect("the quickstart has a first step");
        let run_first = || {
            Command::new("bash")
                .args(["-euo", "pipefail", "-c", &format!("{first}\necho passed")])
                .output()
                .unwrap()
        };
        // Held by this test (or by whatever already holds it: taken either way).
        let holder = std::net::TcpListener::bind("127.0.0.1:8080");
        let started = Instant::now();
        let out = run_first();
        let errors = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{errors}");
        assert!(errors.contains("port 8080 is taken by: "), "{errors}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains("passed"));
        assert!(started.elapsed() < Duration::from_secs(5));
        // Free again (when this test held it), the step passes.
        if let Ok(holder) = holder {
            drop(holder);
            let out = run_first();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    #[test]
    fn the_real_readme_has_a_quickstart() {
        let readme =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
                .unwrap();
        let script = commands(&readme).unwrap();
        for step in [
            "/dev/tcp/127.0.0.1/8080",
            "cargo build -p plystrad -p plystractl",
            "plystrad.log",
            "demo seed",
            "authz/check",
            "authz/explain",
            "audit/logs",
        ] {
            assert!(script.contains(step), "the quickstart lacks {step}");
        }
    }
}
