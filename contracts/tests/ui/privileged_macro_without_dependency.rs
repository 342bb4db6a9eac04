//! A crate that does not depend on `plystra-privileged` cannot name its registration macro.

plystra_privileged::register_system_capability! {
    manifest: MANIFEST,
    capability: construct,
    routes: none,
}

fn main() {}
