//! Bookkeeping every aggregate shares: the version the store holds (for optimistic
//! concurrency) and the events recorded since it was loaded (for the outbox).

use time::OffsetDateTime;

use crate::events::{DomainEvent, RecordedEvent};

/// Version and new events of one aggregate instance.
#[derive(Clone, Debug, PartialEq)]
pub struct Changes<E> {
    loaded_version: Option<i64>,
    events: Vec<RecordedEvent<E>>,
}

impl<E> Changes<E> {
    /// For an aggregate that was never stored.
    pub fn new() -> Self {
        Changes {
            loaded_version: None,
            events: Vec::new(),
        }
    }

    /// For an aggregate read from the store at `version`.
    pub fn loaded(version: i64) -> Self {
        Changes {
            loaded_version: Some(version),
            events: Vec::new(),
        }
    }

    /// The version a save must find in the store (`None`: insert).
    pub fn loaded_version(&self) -> Option<i64> {
        self.loaded_version
    }

    /// Events since load, in order.
    pub fn events(&self) -> &[RecordedEvent<E>] {
        &self.events
    }

    /// Moves `version` forward once per save, however many changes happen before it.
    pub fn bump(&self, version: &mut i64) {
        if self.loaded_version == Some(*version) {
            *version += 1;
        }
    }

    /// Records an event with the next sequence number.
    pub fn record(&mut self, sequence: &mut i64, at: OffsetDateTime, event: E) {
        *sequence += 1;
        self.events.push(RecordedEvent {
            sequence: *sequence,
            occurred_at: at,
            event,
        });
    }

    /// After a store wrote the aggregate and its events in one transaction.
    pub fn saved(&mut self, version: i64) {
        self.loaded_version = Some(version);
        self.events.clear();
    }
}

impl<E> Default for Changes<E> {
    fn default() -> Self {
        Self::new()
    }
}

/// What a store needs of any aggregate to save it in one transaction with its events: which
/// row it is, the version a save must find, the events recorded since it was loaded, and being
/// told it was saved. Payments, users and orders all take this one path in the stores.
pub trait Aggregate {
    /// The events it records.
    type Event: DomainEvent;
    /// The aggregate's id as the outbox records it.
    fn aggregate_id(&self) -> String;
    /// The version the store holds (`None` for one never saved): an update must find it.
    fn loaded_version(&self) -> Option<i64>;
    /// Events recorded since load, in order.
    fn pending_events(&self) -> &[RecordedEvent<Self::Event>];
    /// Called by a store after it wrote the aggregate and its events in one transaction.
    fn mark_saved(&mut self);
}

/// Implements [`Aggregate`] for an aggregate made, like all of Portside's, of a `state` (with its
/// `id` and `version`) and the `changes` since it was loaded.
/// The state's identity is its `id` field unless another is named (`sku` for the catalog).
macro_rules! aggregate {
    ($aggregate:ty, $event:ty) => {
        $crate::aggregate::aggregate!($aggregate, $event, id);
    };
    ($aggregate:ty, $event:ty, $id:ident) => {
        impl $crate::aggregate::Aggregate for $aggregate {
            type Event = $event;

            fn aggregate_id(&self) -> String {
                self.state.$id.to_string()
            }

            fn loaded_version(&self) -> Option<i64> {
                self.changes.loaded_version()
            }

            fn pending_events(&self) -> &[$crate::events::RecordedEvent<$event>] {
                self.changes.events()
            }

            fn mark_saved(&mut self) {
                self.changes.saved(self.state.version);
            }
        }
    };
}

pub(crate) use aggregate;
