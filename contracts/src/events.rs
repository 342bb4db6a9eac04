//! The in-process event substrate's contract: event descriptors, collected at link time, and the
//! publisher capabilities use.
//!
//! Descriptors live in a `linkme` distributed slice rather than `inventory`: they are plain static
//! data with no constructor, and a slice gives the kernel a zero-cost, ordered view of them.

use async_trait::async_trait;
use serde::Serialize;

/// Describes one event name somebody may publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EventDescriptor {
    /// The event name, for example `audit.event_recorded`.
    pub name: &'static str,
    /// The capability ID (or `kernel`) that publishes it.
    pub publisher: &'static str,
    /// What it means.
    pub description: &'static str,
}

/// Every event descriptor linked into this binary.
#[linkme::distributed_slice]
pub static EVENT_DESCRIPTORS: [EventDescriptor];

/// Declares an event descriptor. Capability crates call this once per event they publish.
#[macro_export]
macro_rules! declare_event {
    ($ident:ident, name: $name:expr, publisher: $publisher:expr, description: $description:expr $(,)?) => {
        #[$crate::__private::linkme::distributed_slice($crate::events::EVENT_DESCRIPTORS)]
        #[linkme(crate = $crate::__private::linkme)]
        static $ident: $crate::events::EventDescriptor = $crate::events::EventDescriptor {
            name: $name,
            publisher: $publisher,
            description: $description,
        };
    };
}

/// One event on the substrate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// The event name.
    pub name: String,
    /// Who published it.
    pub source: String,
    /// Its payload.
    pub payload: serde_json::Value,
}

/// Publishes events; the kernel provides it as `kernel.events`.
#[async_trait]
pub trait EventPublisher: Send + Sync {
    /// Publishes one event to every subscriber.
    fn publish(&self, event: Event);
    /// A receiver of every event published from now on.
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Event>;
    /// Calls `observer` with every event published from now on, inline in `publish`, before any
    /// receiver sees it. For state that must never miss or lag behind an event (a broadcast
    /// receiver may lag and lose events): when the publisher's call returns, the observer has
    /// seen the event. Observers must be quick and must not block or publish.
    fn observe(&self, observer: EventObserver);
    /// Whether an event named `name` published now would reach anyone (a subscriber or an
    /// observer), so that a publisher of frequent events can skip building ones nobody receives.
    /// A publisher that cannot tell says `true` (the default).
    fn has_listeners(&self, name: &str) -> bool {
        let _ = name;
        true
    }
}

/// A synchronous observer of every published event (see [`EventPublisher::observe`]).
pub type EventObserver = std::sync::Arc<dyn Fn(&Event) + Send + Sync>;
