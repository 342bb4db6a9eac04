//! The in-process event substrate: a broadcast bus offered to capabilities as `kernel.events`.

use async_trait::async_trait;
use plystra_contracts::declare_event;
use std::sync::RwLock;

use plystra_contracts::events::{Event, EventObserver, EventPublisher};
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

/// A bounded broadcast bus. Slow subscribers lose the oldest events, never block publishers;
/// observers see every event inline, before subscribers.
pub struct EventBus {
    sender: broadcast::Sender<Event>,
    observers: RwLock<Vec<EventObserver>>,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus")
            .field("subscribers", &self.sender.receiver_count())
            .field(
                "observers",
                &self.observers.read().map(|o| o.len()).unwrap_or(0),
            )
            .finish()
    }
}

impl EventBus {
    /// A bus that keeps up to `capacity` events per lagging subscriber.
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity);
        Self {
            sender,
            observers: RwLock::new(Vec::new()),
        }
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
        let observers = self
            .observers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        for observer in &observers {
            observer(&event);
        }
        // No subscriber is not an error: events are notifications.
        let _ = self.sender.send(event);
    }

    fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }

    fn observe(&self, observer: EventObserver) {
        self.observers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(observer);
    }

    /// The bus does not route by name: anyone subscribed or observing receives every event.
    fn has_listeners(&self, _name: &str) -> bool {
        self.sender.receiver_count() > 0
            || !self
                .observers
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn observers_see_every_event_before_publish_returns() {
        let bus = EventBus::new(1);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        bus.observe(Arc::new(move |e: &Event| {
            sink.lock().unwrap().push(e.name.clone())
        }));
        // A capacity of one would make a broadcast receiver lag; the observer never does.
        let _lagging = bus.subscribe();
        for i in 0..3 {
            bus.kernel(&format!("test.{i}"), serde_json::Value::Null);
            assert_eq!(seen.lock().unwrap().len(), i + 1);
        }
        assert_eq!(*seen.lock().unwrap(), ["test.0", "test.1", "test.2"]);
    }

    #[test]
    fn the_bus_has_listeners_only_while_someone_subscribes_or_observes() {
        let bus = EventBus::new(4);
        assert!(!bus.has_listeners("audit.event_recorded"));
        let receiver = bus.subscribe();
        assert!(bus.has_listeners("audit.event_recorded"));
        drop(receiver);
        assert!(!bus.has_listeners("audit.event_recorded"));
        bus.observe(Arc::new(|_: &Event| {}));
        assert!(bus.has_listeners("audit.event_recorded"));
    }
}
