//! RabbitMQ: a durable topic exchange (`<ns>.events`, routing key = event type), persistent
//! messages and publisher confirms; per consumer group a durable queue bound by routing key,
//! and a dead-letter exchange (`<ns>.dead`) with a dead-letter queue per group that keeps the
//! error. The connection is re-established after the broker comes back.
//!
//! Each consumer group has its own channel and waits for deliveries on it alone: the
//! connection's lock is taken only to open a channel or to publish, never while a group waits
//! or acknowledges, so an idle group cannot hold up the others.

mod dead;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer, ExchangeKind};
use portside_events::{
    Backlog, BusError, DeadLetter, DeadLetters, Delivery, Envelope, EventBus, EventSource,
};
use time::OffsetDateTime;
use tokio::sync::Mutex;

use dead::dead_headers;

const ERROR_HEADER: &str = "x-portside-error";
const FAILED_AT_HEADER: &str = "x-portside-failed-at";

fn unavailable(e: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(e.to_string())
}

/// The live connection that [`RabbitBus::ensure`] just made sure of.
fn connected(live: &Option<Live>) -> Result<&Live, BusError> {
    live.as_ref().ok_or_else(|| unavailable("not connected"))
}

struct Live {
    conn: Connection,
    publisher: Channel,
}

/// A group's channel and its consumer. `serial` tells channels apart: a delivery tag means
/// something only on the channel that delivered it.
struct GroupChannel {
    serial: u64,
    channel: Channel,
    deliveries: Mutex<Consumer>,
    /// Deliveries handed out and not yet acknowledged (by delivery tag), with their events'
    /// commit times: part of the group's backlog, and the only ages AMQP lets us know.
    held: std::sync::Mutex<HashMap<u64, OffsetDateTime>>,
}

impl GroupChannel {
    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<u64, OffsetDateTime>> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The RabbitMQ bus; names are prefixed with a namespace so deployments (and tests) can share
/// a broker.
pub struct RabbitBus {
    url: String,
    ns: String,
    live: Mutex<Option<Live>>,
    groups: std::sync::Mutex<HashMap<String, Arc<GroupChannel>>>,
    serials: AtomicU64,
    subscriptions: Mutex<HashMap<String, Vec<String>>>,
}

impl RabbitBus {
    /// A bus on `url` (`amqp://user:pass@host:5672/%2f`); connects on first use.
    pub fn new(url: &str, namespace: &str) -> Self {
        RabbitBus {
            url: url.to_owned(),
            ns: namespace.to_owned(),
            live: Mutex::new(None),
            groups: std::sync::Mutex::new(HashMap::new()),
            serials: AtomicU64::new(0),
            subscriptions: Mutex::new(HashMap::new()),
        }
    }

    fn groups(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<GroupChannel>>> {
        self.groups
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The group's open channel, or a new one with a consumer on the group's queue.
    async fn group_channel(&self, group: &str, max: usize) -> Result<Arc<GroupChannel>, BusError> {
        if let Some(g) = self.groups().get(group)
            && g.channel.status().connected()
        {
            return Ok(g.clone());
        }
        let mut live = self.live.lock().await;
        self.ensure(&mut live).await?;
        let conn = &connected(&live)?.conn;
        // Bounded: this runs under the connection's lock.
        let (channel, consumer) = tokio::time::timeout(Duration::from_secs(5), async {
            let ch = conn.create_channel().await.map_err(unavailable)?;
            let prefetch = u16::try_from(max.max(1)).unwrap_or(u16::MAX);
            ch.basic_qos(prefetch, BasicQosOptions::default())
                .await
                .map_err(unavailable)?;
            let consumer = ch
                .basic_consume(
                    self.queue(group).into(),
                    ShortString::from(""),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(unavailable)?;
            Ok::<_, BusError>((ch, consumer))
        })
        .await
        .map_err(|_| unavailable("opening a consumer channel timed out"))??;
        let opened = Arc::new(GroupChannel {
            serial: self.serials.fetch_add(1, Ordering::Relaxed),
            channel,
            deliveries: Mutex::new(consumer),
            held: std::sync::Mutex::new(HashMap::new()),
        });
        self.groups().insert(group.to_owned(), opened.clone());
        Ok(opened)
    }

    /// Drops the group's channel if it is still `serial`; closing it returns what it held
    /// unacknowledged to the queue.
    fn forget(&self, group: &str, serial: u64) {
        let mut groups = self.groups();
        if groups.get(group).is_some_and(|g| g.serial == serial) {
            groups.remove(group);
        }
    }

    /// A channel of its own on the connection, for a call that may close it (a passive declare
    /// of a missing queue) or must not disturb the others (peeking at dead letters).
    async fn throwaway_channel(&self) -> Result<Channel, BusError> {
        let mut live = self.live.lock().await;
        self.ensure(&mut live).await?;
        connected(&live)?
            .conn
            .create_channel()
            .await
            .map_err(unavailable)
    }

    fn exchange(&self) -> String {
        format!("{}.events", self.ns)
    }

    fn dead_exchange(&self) -> String {
        format!("{}.dead", self.ns)
    }

    fn queue(&self, group: &str) -> String {
        format!("{}.{group}", self.ns)
    }

    fn dead_queue(&self, group: &str) -> String {
        format!("{}.{group}.dead", self.ns)
    }

    /// Deletes the queues of retired consumer groups and, when `exchanges` is set, this
    /// namespace's exchanges (decommissioning; also how tests clean up).
    pub async fn retire(&self, groups: &[&str], exchanges: bool) -> Result<(), BusError> {
        let mut live = self.live.lock().await;
        self.ensure(&mut live).await?;
        let ch = &connected(&live)?.publisher;
        for g in groups {
            for q in [self.queue(g), self.dead_queue(g)] {
                ch.queue_delete(q.into(), QueueDeleteOptions::default())
                    .await
                    .map_err(unavailable)?;
            }
        }
        if exchanges {
            for x in [self.exchange(), self.dead_exchange()] {
                ch.exchange_delete(x.into(), ExchangeDeleteOptions::default())
                    .await
                    .map_err(unavailable)?;
            }
        }
        self.subscriptions
            .lock()
            .await
            .retain(|g, _| !groups.contains(&g.as_str()));
        Ok(())
    }

    /// Connects (or reconnects) and declares the exchanges.
    async fn ensure(&self, live: &mut Option<Live>) -> Result<(), BusError> {
        if live
            .as_ref()
            .is_some_and(|l| l.conn.status().connected() && l.publisher.status().connected())
        {
            return Ok(());
        }
        let conn = tokio::time::timeout(
            Duration::from_secs(5),
            Connection::connect(&self.url, ConnectionProperties::default()),
        )
        .await
        .map_err(|_| unavailable("connecting to RabbitMQ timed out"))?
        .map_err(unavailable)?;
        let publisher = conn.create_channel().await.map_err(unavailable)?;
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(unavailable)?;
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        publisher
            .exchange_declare(
                self.exchange().into(),
                ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await
            .map_err(unavailable)?;
        publisher
            .exchange_declare(
                self.dead_exchange().into(),
                ExchangeKind::Direct,
                durable,
                FieldTable::default(),
            )
            .await
            .map_err(unavailable)?;
        *live = Some(Live { conn, publisher });
        // Channels of the old connection are gone with it.
        self.groups().clear();
        // Re-declare what was subscribed before a reconnect.
        let subs = self.subscriptions.lock().await.clone();
        for (group, types) in subs {
            self.declare(live, &group, &types).await?;
        }
        Ok(())
    }

    async fn declare(
        &self,
        live: &mut Option<Live>,
        group: &str,
        types: &[String],
    ) -> Result<(), BusError> {
        let ch = &connected(live)?.publisher;
        let durable = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        ch.queue_declare(self.queue(group).into(), durable, FieldTable::default())
            .await
            .map_err(unavailable)?;
        for t in types {
            ch.queue_bind(
                self.queue(group).into(),
                self.exchange().into(),
                t.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(unavailable)?;
        }
        ch.queue_declare(
            self.dead_queue(group).into(),
            durable,
            FieldTable::default(),
        )
        .await
        .map_err(unavailable)?;
        ch.queue_bind(
            self.dead_queue(group).into(),
            self.dead_exchange().into(),
            group.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    /// Publishes with confirms on the publisher channel.
    async fn publish_raw(
        &self,
        exchange: &str,
        messages: &[(String, Vec<u8>, BasicProperties)],
    ) -> Result<(), BusError> {
        let mut live = self.live.lock().await;
        self.ensure(&mut live).await?;
        let ch = &connected(&live)?.publisher;
        let mut confirms = Vec::with_capacity(messages.len());
        let result = async {
            for (key, body, props) in messages {
                let confirm = ch
                    .basic_publish(
                        exchange.into(),
                        key.as_str().into(),
                        BasicPublishOptions::default(),
                        body,
                        props.clone(),
                    )
                    .await
                    .map_err(unavailable)?;
                confirms.push(confirm);
            }
            for c in confirms {
                let confirmation = c.await.map_err(unavailable)?;
                if !confirmation.is_ack() {
                    return Err(unavailable("RabbitMQ refused a message (nack)"));
                }
            }
            Ok(())
        }
        .await;
        if result.is_err() {
            *live = None;
        }
        result
    }

    fn properties(e: &Envelope) -> BasicProperties {
        BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(e.id.to_string().into())
            .with_type(e.event_type.as_str().into())
    }

    fn header(props: &BasicProperties, name: &str) -> String {
        props
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get(name))
            .and_then(|v| match v {
                AMQPValue::LongString(s) => {
                    Some(String::from_utf8_lossy(s.as_bytes()).into_owned())
                }
                _ => None,
            })
            .unwrap_or_default()
    }
}

#[async_trait]
impl EventBus for RabbitBus {
    async fn publish(&self, events: &[Envelope]) -> Result<(), BusError> {
        let messages: Vec<_> = events
            .iter()
            .map(|e| (e.event_type.clone(), e.to_bytes(), Self::properties(e)))
            .collect();
        self.publish_raw(&self.exchange(), &messages).await
    }
}

#[async_trait]
impl EventSource for RabbitBus {
    async fn subscribe(&self, group: &str, event_types: &[&str]) -> Result<(), BusError> {
        let types: Vec<String> = event_types.iter().map(|t| (*t).to_owned()).collect();
        {
            let mut subs = self.subscriptions.lock().await;
            let have = subs.entry(group.to_owned()).or_default();
            for t in &types {
                if !have.contains(t) {
                    have.push(t.clone());
                }
            }
        }
        let mut live = self.live.lock().await;
        self.ensure(&mut live).await?;
        self.declare(&mut live, group, &types).await
    }

    async fn receive(
        &self,
        group: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, BusError> {
        let g = self.group_channel(group, max).await?;
        let mut consumer = g.deliveries.lock().await;
        let mut out = Vec::new();
        let mut patience = wait;
        while out.len() < max {
            let next = match tokio::time::timeout(patience, consumer.next()).await {
                Err(_) => break,
                Ok(None) => {
                    self.forget(group, g.serial);
                    return if out.is_empty() {
                        Err(unavailable("the consumer was cancelled"))
                    } else {
                        Ok(out)
                    };
                }
                Ok(Some(Err(e))) => {
                    self.forget(group, g.serial);
                    return if out.is_empty() {
                        Err(unavailable(e))
                    } else {
                        Ok(out)
                    };
                }
                Ok(Some(Ok(d))) => d,
            };
            patience = Duration::from_millis(5);
            match Envelope::from_bytes(&next.data) {
                Ok(envelope) => {
                    g.held().insert(next.delivery_tag, envelope.occurred_at);
                    out.push(Delivery {
                        envelope,
                        attempts: if next.redelivered { 2 } else { 1 },
                        tag: format!("{}:{}", g.serial, next.delivery_tag),
                    });
                }
                Err(e) => {
                    // Not an envelope: nobody can handle it. Keep it with the error, drop it here.
                    tracing::error!(group, error = %e, "undecodable message dead-lettered");
                    let props = BasicProperties::default()
                        .with_delivery_mode(2)
                        .with_headers(dead_headers(&e));
                    self.publish_raw(
                        &self.dead_exchange(),
                        &[(group.to_owned(), next.data.clone(), props)],
                    )
                    .await?;
                    next.ack(BasicAckOptions::default())
                        .await
                        .map_err(unavailable)?;
                }
            }
        }
        Ok(out)
    }

    /// Acknowledges on the channel that delivered, for at most 5 s: an ack that never completes
    /// (a channel the broker closed) must not stall the group. When that channel is gone or
    /// the ack fails, the channel is dropped, so what it held is redelivered to a new one (the
    /// inbox makes the repeat harmless).
    async fn ack(&self, group: &str, delivery: &Delivery) -> Result<(), BusError> {
        let (serial, tag) = delivery
            .tag
            .split_once(':')
            .and_then(|(s, t)| Some((s.parse::<u64>().ok()?, t.parse::<u64>().ok()?)))
            .ok_or_else(|| BusError::Other("bad delivery tag".into()))?;
        let delivered_on = self
            .groups()
            .get(group)
            .filter(|g| g.serial == serial)
            .cloned();
        let ch = delivered_on
            .as_ref()
            .map(|g| g.channel.clone())
            .ok_or_else(|| {
                unavailable(
                    "the channel that delivered it is gone; the message will be redelivered",
                )
            })?;
        let acked = tokio::time::timeout(
            Duration::from_secs(5),
            ch.basic_ack(tag, BasicAckOptions::default()),
        )
        .await;
        match acked {
            Ok(Ok(())) => {
                if let Some(g) = delivered_on {
                    g.held().remove(&tag);
                }
                Ok(())
            }
            failed => {
                self.forget(group, serial);
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(5),
                        ch.close(200, "ack failed; reopening".into()),
                    )
                    .await;
                });
                Err(match failed {
                    Ok(Err(e)) => unavailable(e),
                    _ => {
                        unavailable("the ack was not confirmed within 5 s; the channel is reopened")
                    }
                })
            }
        }
    }

    async fn dead_letter(
        &self,
        group: &str,
        delivery: &Delivery,
        error: &str,
    ) -> Result<(), BusError> {
        let props = Self::properties(&delivery.envelope).with_headers(dead_headers(error));
        self.publish_raw(
            &self.dead_exchange(),
            &[(group.to_owned(), delivery.envelope.to_bytes(), props)],
        )
        .await?;
        self.ack(group, delivery).await
    }

    /// The messages ready in the group's queue plus those this process holds unacknowledged
    /// (what the broker already pushed to its consumer but the worker has not asked for yet
    /// is not counted: at most `WORKER_BATCH`). AMQP does not tell a message's age, so the
    /// oldest is that of what this process holds (commit time), if anything. A channel of
    /// its own, since a passive declare of a missing queue closes its channel.
    async fn backlog(&self, group: &str) -> Result<Option<Backlog>, BusError> {
        let ch = self.throwaway_channel().await?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let queue = ch
            .queue_declare(self.queue(group).into(), passive, FieldTable::default())
            .await
            .map_err(unavailable);
        let _ = ch.close(200, "done".into()).await;
        let ready = u64::from(queue?.message_count());
        let (held, oldest) = match self.groups().get(group) {
            Some(g) => {
                let held = g.held();
                (held.len() as u64, held.values().min().copied())
            }
            None => (0, None),
        };
        Ok(Some(Backlog {
            waiting: ready + held,
            oldest,
        }))
    }
}

#[async_trait]
impl portside_kernel::Probe for RabbitBus {
    fn name(&self) -> &'static str {
        "bus"
    }

    fn essential(&self) -> bool {
        false
    }

    async fn check(&self) -> Result<(), String> {
        let mut live = self.live.lock().await;
        self.ensure(&mut live).await.map_err(|e| e.to_string())
    }
}
