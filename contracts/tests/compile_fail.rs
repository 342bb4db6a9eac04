//! Layer 1 of the privileged rule, proven by compile-fail tests: the public contracts can neither
//! build nor register a privileged manifest, and a crate without a dependency on
//! `plystra-privileged` cannot name its macro. Each case's expected compiler error is committed
//! beside it in `tests/ui/*.stderr` (regenerate with `TRYBUILD=overwrite` and review the diff).

#![allow(
    clippy::unwrap_used,
    reason = "a test's helpers unwrap as its test functions do: a panic is a failed test"
)]

#[test]
fn the_privileged_path_is_closed_to_business_plugins() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
