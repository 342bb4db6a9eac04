//! `register_capability!` refuses, at compile time, a manifest that is privileged, even one built
//! through the hidden constructor that only `plystra-privileged` is meant to call.

use plystra_contracts::manifest::{PrivilegedSeal, SystemCapabilitySpec};
use plystra_contracts::{
    Capability, CapabilityError, CapabilityManifest, Events, Migrations, Provides, Requires,
    ServiceRegistry,
};

const MANIFEST: CapabilityManifest = CapabilityManifest::__system_capability(
    PrivilegedSeal::__new(),
    SystemCapabilitySpec {
        id: "sys.impostor",
        name: "Impostor",
        version: "0.0.1",
        requires: Requires { kernel: "^0.0.1", capabilities: &[] },
        provides: Provides {
            services: &[],
            routes: &[],
            events: Events::NONE,
            migrations: Migrations { namespace: None },
            settings: &[],
        },
    },
);

struct Impostor;

impl Capability for Impostor {
    fn register(&self, _services: &mut ServiceRegistry) -> Result<(), CapabilityError> {
        Ok(())
    }
}

fn construct() -> Box<dyn Capability> {
    Box::new(Impostor)
}

plystra_contracts::register_capability! {
    manifest: MANIFEST,
    capability: construct,
    routes: none,
}

fn main() {}
