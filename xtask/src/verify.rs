//! `cargo xtask verify`: every gate, in order, without stopping at the first failure.
//!
//! Each step prints its own output; the last line is `verify: N checks passed, M failed`.

use std::path::Path;
use std::time::{Duration, Instant};

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
    let mut took = Vec::new();
    for (name, step) in &steps {
        println!("\n==> {name}");
        let started = Instant::now();
        let outcome = step();
        let elapsed = started.elapsed();
        took.push((name.as_str(), elapsed));
        let time = seconds(elapsed);
        match outcome {
            Ok(true) => println!("==> {name}: passed ({time})"),
            Ok(false) => {
                println!("==> {name}: FAILED ({time})");
                failed.push(name.as_str());
            }
            Err(error) => {
                println!("==> {name}: FAILED ({time}): {error:#}");
                failed.push(name.as_str());
            }
        }
    }
    // Where the wall time went, so that a slower verify points at its step.
    println!();
    let total: Duration = took.iter().map(|(_, elapsed)| *elapsed).sum();
    let spent: Vec<String> = took
        .iter()
        .map(|(name, elapsed)| format!("{name} {}", seconds(*elapsed)))
        .collect();
    println!("time: {} in all: {}", seconds(total), spent.join(", "));
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

/// A step's wall time as people read it in a log: whole seconds.
fn seconds(elapsed: Duration) -> String {
    format!("{} s", elapsed.as_secs())
}
