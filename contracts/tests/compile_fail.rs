//! Layer 1 of the privileged rule, proven by compile-fail tests: the public contracts can neither
//! build nor register a privileged manifest, and a crate without a dependency on
//! `plystra-privileged` cannot name its macro. Each case's expected compiler error is committed
//! beside it in `tests/ui/*.stderr` (regenerate with `TRYBUILD=overwrite` and review the diff).
//!
//! trybuild checks its project twice with different compiler flags: the dependencies first, then
//! the cases with `--diagnostic-width=140` added. A change of flags makes cargo check every
//! dependency again (sqlx, poem and the rest of what `plystra-contracts` links), which was most
//! of this test's three minutes. The test therefore runs trybuild in a child process of itself
//! with `CARGO_ENCODED_RUSTFLAGS` set to the flags of the second pass: cargo takes that variable
//! before any `--config` rustflags, so both passes use the same flags and the dependencies are
//! checked once. The child is this same test, told by `PLYSTRA_COMPILE_FAIL_CHILD` to run the
//! cases.

#![allow(
    clippy::unwrap_used,
    reason = "a test's helpers unwrap as its test functions do: a panic is a failed test"
)]

use std::process::Command;

/// trybuild's own flags for the cases (`--cfg trybuild --verbose -A dead_code`, then
/// `--diagnostic-width=140`), as cargo reads `CARGO_ENCODED_RUSTFLAGS`: separated by 0x1f.
const CASE_FLAGS: &str =
    "--cfg\x1ftrybuild\x1f--verbose\x1f-A\x1fdead_code\x1f--diagnostic-width=140";

const FLAGS_VARIABLE: &str = "CARGO_ENCODED_RUSTFLAGS";

/// Set in the child that runs the cases.
const CHILD_VARIABLE: &str = "PLYSTRA_COMPILE_FAIL_CHILD";

#[test]
fn the_privileged_path_is_closed_to_business_plugins() {
    if std::env::var_os(CHILD_VARIABLE).is_some() {
        assert_eq!(
            std::env::var(FLAGS_VARIABLE).as_deref(),
            Ok(CASE_FLAGS),
            "the child runs the cases with the flags its parent set"
        );
        let cases = trybuild::TestCases::new();
        cases.compile_fail("tests/ui/*.rs");
        return;
    }
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "the_privileged_path_is_closed_to_business_plugins",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(FLAGS_VARIABLE, CASE_FLAGS)
        .env(CHILD_VARIABLE, "1")
        .status()
        .unwrap();
    assert!(
        status.success(),
        "the compile-fail cases failed (their output is above)"
    );
}
