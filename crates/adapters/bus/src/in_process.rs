//! The in-process bus of the embedded mode. A publish is confirmed only once every interested
//! consumer group has acknowledged (or dead-lettered) the event, so the relay marks an event
//! published only after it took effect: a crash in between leaves it in the outbox, to be
//! published again and deduplicated by the inbox. Dead letters live in memory.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use portside_events::{
    BusError, DeadLetter, DeadLetters, Delivery, Envelope, EventBus, EventSource,
};
use time::OffsetDateTime;
use tokio::sync::{Notify, oneshot};

struct Item {
    envelope: Envelope,
    attempts: u32,
    done: Option<oneshot::Sender<()>>,
}

#[derive(Default)]
struct Group {
    types: Vec<String>,
    queue: VecDeque<Item>,
    in_flight: HashMap<String, Item>,
    dead: Vec<DeadLetter>,
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
        }
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
        loop {
            let arrived = self.arrived.notified();
            {
                let mut s = self.lock()?;
                let mut tags = Vec::new();
                let State { groups, next_tag } = &mut *s;
                let g = groups
                    .get_mut(group)
                    .ok_or_else(|| BusError::Other(format!("group {group} is not subscribed")))?;
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
        if let Some(item) = self.finish(group, &delivery.tag)?
            && let Some(done) = item.done
        {
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
        {
            let mut s = self.lock()?;
            if let Some(g) = s.groups.get_mut(group) {
                g.dead.push(DeadLetter {
                    id: uuid::Uuid::now_v7().to_string(),
                    group: group.to_owned(),
                    envelope: delivery.envelope.clone(),
                    error: error.to_owned(),
                    failed_at: OffsetDateTime::now_utc(),
                });
            }
        }
        if let Some(done) = item.and_then(|i| i.done) {
            let _ = done.send(());
        }
        Ok(())
    }
}

#[async_trait]
impl DeadLetters for InProcessBus {
    async fn dead_letters(&self, group: &str, limit: usize) -> Result<Vec<DeadLetter>, BusError> {
        let s = self.lock()?;
        Ok(s.groups
            .get(group)
            .map(|g| g.dead.iter().take(limit).cloned().collect())
            .unwrap_or_default())
    }

    async fn replay(&self, group: &str, id: &str) -> Result<bool, BusError> {
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
        let mut s = self.lock()?;
        Ok(s.groups
            .get_mut(group)
            .map(|g| g.dead.drain(..).count() as u64)
            .unwrap_or(0))
    }
}
