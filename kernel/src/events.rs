//! The in-process event substrate: a broadcast bus offered to capabilities as `kernel.events`.

use async_trait::async_trait;
use plystra_contracts::declare_event;
use plystra_contracts::events::{Event, EventPublisher};
use tokio::sync::broadcast;

declare_event!(KERNEL_STARTED, name: "kernel.started", publisher: "kernel",
    description: "The boot sequence finished; the payload says whether the runtime is ready.");
declare_event!(CAPABILITY_LOADED, name: "capability.loaded", publisher: "kernel",
    description: "A capability's services were registered.");
declare_event!(CAPABILITY_READY, name: "capability.ready", publisher: "kernel",
    description: "A capability started and reported healthy.");
declare_event!(CAPABILITY_FAILED, name: "capability.failed", publisher: "kernel",
    description: "A capability's lifecycle hook failed; the payload carries the reason.");
declare_event!(MIGRATION_REGISTERED, name: "migration.registered", publisher: "kernel",
    description: "A capability's migration namespace was registered.");

/// A bounded broadcast bus. Slow subscribers lose the oldest events, never block publishers.
#[derive(Debug)]
pub struct EventBus {
    sender: broadcast::Sender<Event>,
}

impl EventBus {
    /// A bus that keeps up to `capacity` events per lagging subscriber.
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity);
        Self { sender }
    }

    /// Publishes a kernel event.
    pub fn kernel(&self, name: &str, payload: serde_json::Value) {
        self.publish(Event {
            name: name.to_owned(),
            source: "kernel".to_owned(),
            payload,
        });
    }
}

#[async_trait]
impl EventPublisher for EventBus {
    fn publish(&self, event: Event) {
        tracing::debug!(event = %event.name, source = %event.source, "event");
        // No subscriber is not an error: events are notifications.
        let _ = self.sender.send(event);
    }

    fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }
}
