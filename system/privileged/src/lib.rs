//! The privileged registration path: the only macro that registers a system capability.
//!
//! Only crates under `system/` may depend on this crate. `cargo xtask privileged` enforces that
//! (dependency edges and a source scan), a compile-fail test proves the path cannot be reached
//! from outside, and the kernel refuses a privileged manifest registered by any package outside
//! its system allowlist at boot.

#[doc(hidden)]
pub use plystra_contracts as __contracts;

pub use plystra_contracts::manifest::SystemCapabilitySpec;

/// Builds a system capability's manifest: privileged, required, experimental.
///
/// ```ignore
/// pub const MANIFEST: CapabilityManifest = plystra_privileged::system_manifest(SystemCapabilitySpec { .. });
/// ```
pub const fn system_manifest(spec: SystemCapabilitySpec) -> plystra_contracts::CapabilityManifest {
    plystra_contracts::CapabilityManifest::__system_capability(
        plystra_contracts::manifest::PrivilegedSeal::__new(),
        spec,
    )
}

/// Registers a system capability: its manifest, its lifecycle constructor and its route set.
#[macro_export]
macro_rules! register_system_capability {
    (manifest: $manifest:path, capability: $construct:expr, routes: $api:ty $(,)?) => {
        const _: () = {
            const _: () = ::core::assert!(
                $manifest.privileged(),
                "register_system_capability! needs a manifest from system_manifest()"
            );
            $crate::__contracts::__private::inventory::submit! {
                $crate::__contracts::registration::Registration {
                    manifest: &$manifest,
                    construct: $construct,
                    routes: $crate::__contracts::registration::RouteSet::of::<$api>(),
                    package: ::core::env!("CARGO_PKG_NAME"),
                }
            }
        };
    };
}

/// Declares, from the bundle crate, the capability IDs it links.
#[macro_export]
macro_rules! declare_system_bundle {
    ($($id:expr),+ $(,)?) => {
        $crate::__contracts::__private::inventory::submit! {
            $crate::__contracts::registration::BundleDeclaration {
                package: ::core::env!("CARGO_PKG_NAME"),
                capability_ids: &[$($id),+],
            }
        }
    };
}
