//! The in-process bus of the embedded mode. A publish is confirmed only once every interested
//! consumer group has acknowledged (or dead-lettered) the event, so the relay marks an event
//! published only after it took effect: a crash in between leaves it in the outbox, to be
//! published again and deduplicated by the inbox. Dead letters are kept in the store when one is
//! given (`with_dead_letters`, as `serve` does), in memory otherwise.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use portside_events::{
    BusError, DeadLetter, DeadLetterStore, DeadLetters, Delivery, Envelope, EventBus, EventSource,
};
use portside_kernel::StoreError;
use time::OffsetDateTime;
use tokio::sync::{Notify, oneshot};

/// How often a group looks in the store for replays an operator asked for.
const REPLAY_POLL: Duration = Duration::from_secs(2);

struct Item {
    envelope: Envelope,
    attempts: u32,
    done: Option<oneshot::Sender<()>>,
    /// The stored dead letter this delivery replays.
    replay_of: Option<String>,
}

#[derive(Default)]
struct Group {
    types: Vec<String>,
    queue: VecDeque<Item>,
    in_flight: HashMap<String, Item>,
    dead: Vec<DeadLetter>,
    /// Stored dead letters this process took up for replay and has not finished.
    replaying: HashSet<String>,
    polled: Option<tokio::time::Instant>,
}

impl Group {
    fn wants(&self, event_type: &str) -> bool {
        self.types.iter().any(|t| t == "#" || t == event_type)
    }
}

#[derive(Default)]
struct State {
    groups: HashMap<String, Group>,
    next_tag: u64,
}

/// The in-process bus.
#[derive(Clone)]
pub struct InProcessBus {
    state: Arc<Mutex<State>>,
    arrived: Arc<Notify>,
    confirm_timeout: Duration,
    store: Option<Arc<dyn DeadLetterStore>>,
}

impl Default for InProcessBus {
    fn default() -> Self {
        Self::new(Duration::from_secs(30))
    }
}

impl InProcessBus {
    /// A bus whose publishes fail when consumers have not finished within `confirm_timeout`.
    pub fn new(confirm_timeout: Duration) -> Self {
        InProcessBus {
            state: Arc::new(Mutex::new(State::default())),
            arrived: Arc::new(Notify::new()),
            confirm_timeout,
            store: None,
        }
    }

    /// Keeps dead letters in `store`, so that they outlive the process and `portside events
    /// dlq`, a process of its own, can list, replay and purge them.
    pub fn with_dead_letters(mut self, store: Arc<dyn DeadLetterStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Takes up the replays asked for `group` in the store, at most every `REPLAY_POLL`.
    async fn take_replays(&self, group: &str, max: usize) -> Result<(), BusError> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        {
            let mut s = self.lock()?;
            let Some(g) = s.groups.get_mut(group) else {
                return Ok(());
            };
            if g.polled.is_some_and(|at| at.elapsed() < REPLAY_POLL) {
                return Ok(());
            }
            g.polled = Some(tokio::time::Instant::now());
        }
        let asked = store.asked(group, max).await.map_err(unavailable)?;
        let mut s = self.lock()?;
        if let Some(g) = s.groups.get_mut(group) {
            for letter in asked {
                if g.replaying.insert(letter.id.clone()) {
                    g.queue.push_back(Item {
                        envelope: letter.envelope,
                        attempts: 1,
                        done: None,
                        replay_of: Some(letter.id),
                    });
                }
            }
        }
        Ok(())
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>, BusError> {
        self.state
            .lock()
            .map_err(|_| BusError::Other("poisoned".into()))
    }

    fn finish(&self, group: &str, tag: &str) -> Result<Option<Item>, BusError> {
        let mut s = self.lock()?;
        Ok(s.groups
            .get_mut(group)
            .and_then(|g| g.in_flight.remove(tag)))
    }
}

#[async_trait]
impl EventBus for InProcessBus {
    async fn publish(&self, events: &[Envelope]) -> Result<(), BusError> {
        let mut confirmations = Vec::new();
        {
            let mut s = self.lock()?;
            for e in events {
                for g in s.groups.values_mut().filter(|g| g.wants(&e.event_type)) {
                    let (done, confirmed) = oneshot::channel();
                    g.queue.push_back(Item {
                        envelope: e.clone(),
                        attempts: 1,
                        done: Some(done),
                        replay_of: None,
                    });
                    confirmations.push(confirmed);
                }
            }
        }
        self.arrived.notify_waiters();
        let all = async {
            for c in confirmations {
                c.await
                    .map_err(|_| BusError::Unavailable("the consumer stopped".into()))?;
            }
            Ok(())
        };
        tokio::time::timeout(self.confirm_timeout, all)
            .await
            .map_err(|_| BusError::Unavailable("consumers did not finish in time".into()))?
    }
}

#[async_trait]
impl EventSource for InProcessBus {
    async fn subscribe(&self, group: &str, event_types: &[&str]) -> Result<(), BusError> {
        let mut s = self.lock()?;
        let g = s.groups.entry(group.to_owned()).or_default();
        for t in event_types {
            if !g.types.iter().any(|have| have == t) {
                g.types.push((*t).to_owned());
            }
        }
        Ok(())
    }

    async fn receive(
        &self,
        group: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, BusError> {
        let deadline = tokio::time::Instant::now() + wait;
        self.take_replays(group, max).await?;
        loop {
            let arrived = self.arrived.notified();
            {
                let mut s = self.lock()?;
                let mut tags = Vec::new();
                let State { groups, next_tag } = &mut *s;
                let g = groups
                    .get_mut(group)
                    .ok_or_else(|| BusError::Other(format!("group {group} is not subscribed")))?;
                backlog(group, g);
                while tags.len() < max {
                    let Some(item) = g.queue.pop_front() else {
                        break;
                    };
                    *next_tag += 1;
                    let tag = next_tag.to_string();
                    tags.push(Delivery {
                        envelope: item.envelope.clone(),
                        attempts: item.attempts,
                        tag: tag.clone(),
                    });
                    g.in_flight.insert(tag, item);
                }
                if !tags.is_empty() {
                    return Ok(tags);
                }
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    async fn ack(&self, group: &str, delivery: &Delivery) -> Result<(), BusError> {
        let Some(item) = self.finish(group, &delivery.tag)? else {
            return Ok(());
        };
        if let (Some(id), Some(store)) = (&item.replay_of, &self.store) {
            store.forget(id).await.map_err(unavailable)?;
            self.replayed(group, id)?;
        }
        if let Some(done) = item.done {
            let _ = done.send(());
        }
        Ok(())
    }

    async fn dead_letter(
        &self,
        group: &str,
        delivery: &Delivery,
        error: &str,
    ) -> Result<(), BusError> {
        let item = self.finish(group, &delivery.tag)?;
        let replay_of = item.as_ref().and_then(|i| i.replay_of.clone());
        let letter = DeadLetter {
            id: replay_of
                .clone()
                .unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
            group: group.to_owned(),
            envelope: delivery.envelope.clone(),
            error: error.to_owned(),
            failed_at: OffsetDateTime::now_utc(),
        };
        match &self.store {
            Some(store) => {
                store.keep(&letter).await.map_err(unavailable)?;
                if let Some(id) = &replay_of {
                    self.replayed(group, id)?;
                }
            }
            None => {
                let mut s = self.lock()?;
                if let Some(g) = s.groups.get_mut(group) {
                    g.dead.push(letter);
                }
            }
        }
        if let Some(done) = item.and_then(|i| i.done) {
            let _ = done.send(());
        }
        Ok(())
    }
}

impl InProcessBus {
    /// A stored letter's replay is over (handled, or dead-lettered again).
    fn replayed(&self, group: &str, id: &str) -> Result<(), BusError> {
        if let Some(g) = self.lock()?.groups.get_mut(group) {
            g.replaying.remove(id);
        }
        Ok(())
    }
}

/// What waits for a group, as `/metrics` shows it: `portside_consumer_backlog{group}` (queued
/// and in flight) and `portside_consumer_oldest_age_seconds{group}` (since the oldest queued
/// event's commit; 0 when none waits).
fn backlog(group: &str, g: &Group) {
    let waiting = g.queue.len() + g.in_flight.len();
    metrics::gauge!("portside_consumer_backlog", "group" => group.to_owned()).set(waiting as f64);
    let oldest = g
        .queue
        .front()
        .map(|i| (OffsetDateTime::now_utc() - i.envelope.occurred_at).as_seconds_f64())
        .unwrap_or(0.0);
    metrics::gauge!("portside_consumer_oldest_age_seconds", "group" => group.to_owned())
        .set(oldest.max(0.0));
}

fn unavailable(e: StoreError) -> BusError {
    BusError::Unavailable(format!("dead letters: {e}"))
}

#[async_trait]
impl DeadLetters for InProcessBus {
    async fn dead_letters(&self, group: &str, limit: usize) -> Result<Vec<DeadLetter>, BusError> {
        if let Some(store) = &self.store {
            return store.letters(group, limit).await.map_err(unavailable);
        }
        let s = self.lock()?;
        Ok(s.groups
            .get(group)
            .map(|g| g.dead.iter().take(limit).cloned().collect())
            .unwrap_or_default())
    }

    async fn replay(&self, group: &str, id: &str) -> Result<bool, BusError> {
        if let Some(store) = &self.store {
            let asked = store
                .ask_replay(group, id, OffsetDateTime::now_utc())
                .await
                .map_err(unavailable)?;
            if asked && let Some(g) = self.lock()?.groups.get_mut(group) {
                g.polled = None;
            }
            self.arrived.notify_waiters();
            return Ok(asked);
        }
        let found = {
            let mut s = self.lock()?;
            let Some(g) = s.groups.get_mut(group) else {
                return Ok(false);
            };
            match g.dead.iter().position(|d| d.id == id) {
                Some(i) => {
                    let d = g.dead.remove(i);
                    g.queue.push_back(Item {
                        envelope: d.envelope,
                        attempts: 1,
                        done: None,
                        replay_of: None,
                    });
                    true
                }
                None => false,
            }
        };
        self.arrived.notify_waiters();
        Ok(found)
    }

    async fn purge(&self, group: &str) -> Result<u64, BusError> {
        if let Some(store) = &self.store {
            return store.forget_group(group).await.map_err(unavailable);
        }
        let mut s = self.lock()?;
        Ok(s.groups
            .get_mut(group)
            .map(|g| g.dead.drain(..).count() as u64)
            .unwrap_or(0))
    }
}
