//! A manifest's fields are private: a struct literal cannot set `privileged: true`.

use plystra_contracts::{
    BusinessPluginSpec, CapabilityManifest, Events, Migrations, Provides, Requires, Stability,
};

const PLUGIN: CapabilityManifest = CapabilityManifest::business_plugin(BusinessPluginSpec {
    id: "example.notes",
    name: "Notes",
    version: "0.0.1",
    requires: Requires { kernel: "^0.0.1", capabilities: &[] },
    provides: Provides {
        services: &[],
        routes: &[],
        events: Events::NONE,
        migrations: Migrations { namespace: None },
        settings: &[],
    },
    stability: Stability::Experimental,
});

const ESCALATED: CapabilityManifest = CapabilityManifest { privileged: true, ..PLUGIN };

fn main() {
    assert!(ESCALATED.privileged());
}
