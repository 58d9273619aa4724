//! Redis Streams: one stream of all events (`XADD` with an approximate `MAXLEN`), a consumer
//! group per handler (`XREADGROUP`, `XACK`), deliveries left pending by a crashed consumer taken
//! over with `XAUTOCLAIM` once idle long enough, and a dead-letter stream per group.
//!
//! Durability is Redis's: a confirmed `XADD` survives a Redis restart only with AOF persistence
//! (`appendonly yes`, `appendfsync everysec` or `always`).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use portside_events::{
    Backlog, BusError, DeadLetter, DeadLetters, Delivery, Envelope, EventBus, EventSource,
};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{
    StreamAutoClaimReply, StreamId, StreamInfoGroupsReply, StreamPendingReply, StreamRangeReply,
    StreamReadOptions, StreamReadReply,
};
use redis::{AsyncCommands, RedisError, Value};
use time::OffsetDateTime;
use tokio::sync::Mutex;

fn unavailable(e: RedisError) -> BusError {
    BusError::Unavailable(e.to_string())
}

/// The Redis Streams bus.
pub struct RedisStreamsBus {
    client: redis::Client,
    writer: ConnectionManager,
    readers: Mutex<HashMap<String, ConnectionManager>>,
    stream: String,
    consumer: String,
    claim_idle: Duration,
    max_len: usize,
}

impl RedisStreamsBus {
    /// A bus on `url`, with stream `<ns>:events`; `consumer` names this process in its groups;
    /// deliveries pending longer than `claim_idle` are taken over from crashed consumers.
    pub fn new(
        url: &str,
        namespace: &str,
        consumer: &str,
        claim_idle: Duration,
    ) -> Result<Self, BusError> {
        let client = redis::Client::open(url).map_err(unavailable)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_number_of_retries(1);
        let writer =
            ConnectionManager::new_lazy_with_config(client.clone(), config).map_err(unavailable)?;
        Ok(RedisStreamsBus {
            client,
            writer,
            readers: Mutex::new(HashMap::new()),
            stream: format!("{namespace}:events"),
            consumer: consumer.to_owned(),
            claim_idle,
            max_len: 1_000_000,
        })
    }

    /// Deletes the event stream and the dead-letter streams of `groups` (decommissioning; also
    /// how tests clean up).
    pub async fn retire(&self, groups: &[&str]) -> Result<(), BusError> {
        let mut conn = self.writer.clone();
        let mut keys = vec![self.stream.clone()];
        keys.extend(groups.iter().map(|g| self.dead_stream(g)));
        let _: i64 = conn.del(keys).await.map_err(unavailable)?;
        Ok(())
    }

    /// A group that vanished (Redis restarted without its data, or the stream was deleted) is
    /// created again, reading from the start of what the stream holds: the inbox drops what
    /// was handled before. Without this the group's consumer would fail forever.
    async fn regroup_if_missing(&self, group: &str, e: RedisError) -> BusError {
        if !e.to_string().contains("NOGROUP") {
            return unavailable(e);
        }
        tracing::warn!(group, stream = %self.stream, "the consumer group is missing (did Redis lose its data?); creating it again");
        match self.subscribe(group, &[]).await {
            Ok(()) => BusError::Unavailable(
                "the consumer group was missing and has been created again".into(),
            ),
            Err(e) => e,
        }
    }

    fn dead_stream(&self, group: &str) -> String {
        format!("{}:dead:{group}", self.stream)
    }

    /// A connection per group: a blocking `XREADGROUP` holds its connection while it waits.
    async fn reader(&self, group: &str, wait: Duration) -> Result<ConnectionManager, BusError> {
        let mut readers = self.readers.lock().await;
        if let Some(c) = readers.get(group) {
            return Ok(c.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(wait + Duration::from_secs(5)))
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_lazy_with_config(self.client.clone(), config)
            .map_err(unavailable)?;
        readers.insert(group.to_owned(), conn.clone());
        Ok(conn)
    }

    fn envelope_of(entry: &StreamId) -> Result<Envelope, String> {
        match entry.map.get("envelope") {
            Some(Value::BulkString(bytes)) => Envelope::from_bytes(bytes),
            _ => Err("entry has no envelope field".into()),
        }
    }

    /// How often each entry was delivered to the group (XPENDING), for the worker's attempt cap.
    async fn delivery_counts(&self, group: &str, ids: &[String]) -> HashMap<String, u32> {
        let mut counts = HashMap::new();
        let mut conn = self.writer.clone();
        for id in ids {
            let reply: Result<redis::streams::StreamPendingCountReply, _> = redis::cmd("XPENDING")
                .arg(&self.stream)
                .arg(group)
                .arg(id)
                .arg(id)
                .arg(1)
                .query_async(&mut conn)
                .await;
            if let Ok(r) = reply
                && let Some(p) = r.ids.first()
            {
                counts.insert(
                    id.clone(),
                    u32::try_from(p.times_delivered).unwrap_or(u32::MAX),
                );
            }
        }
        counts
    }

    async fn deliveries(
        &self,
        group: &str,
        entries: Vec<StreamId>,
        claimed: bool,
    ) -> Result<Vec<Delivery>, BusError> {
        let ids: Vec<String> = entries.iter().map(|e| e.id.clone()).collect();
        let counts = if claimed {
            self.delivery_counts(group, &ids).await
        } else {
            HashMap::new()
        };
        let mut out = Vec::new();
        for entry in entries {
            match Self::envelope_of(&entry) {
                Ok(envelope) => out.push(Delivery {
                    attempts: counts.get(&entry.id).copied().unwrap_or(1).max(1),
                    envelope,
                    tag: entry.id,
                }),
                Err(e) => {
                    tracing::error!(group, id = %entry.id, error = %e, "undecodable stream entry dead-lettered");
                    let mut conn = self.writer.clone();
                    let raw = format!("{:?}", entry.map);
                    let _: String = conn
                        .xadd(
                            self.dead_stream(group),
                            "*",
                            &[
                                ("raw", raw.as_str()),
                                ("error", e.as_str()),
                                ("group", group),
                            ],
                        )
                        .await
                        .map_err(unavailable)?;
                    let _: i64 = conn
                        .xack(&self.stream, group, &[&entry.id])
                        .await
                        .map_err(unavailable)?;
                }
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl EventBus for RedisStreamsBus {
    async fn publish(&self, events: &[Envelope]) -> Result<(), BusError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for e in events {
            pipe.cmd("XADD")
                .arg(&self.stream)
                .arg("MAXLEN")
                .arg("~")
                .arg(self.max_len)
                .arg("*")
                .arg("envelope")
                .arg(e.to_bytes())
                .arg("type")
                .arg(&e.event_type);
        }
        let mut conn = self.writer.clone();
        let ids: Vec<String> = pipe.query_async(&mut conn).await.map_err(unavailable)?;
        if ids.len() == events.len() {
            Ok(())
        } else {
            Err(BusError::Other("Redis did not store every event".into()))
        }
    }
}

#[async_trait]
impl EventSource for RedisStreamsBus {
    async fn subscribe(&self, group: &str, _event_types: &[&str]) -> Result<(), BusError> {
        // One stream carries every type; the worker skips what a group does not want.
        let mut conn = self.writer.clone();
        let created: Result<(), RedisError> =
            conn.xgroup_create_mkstream(&self.stream, group, "0").await;
        match created {
            Ok(()) => Ok(()),
            Err(e) if e.to_string().contains("BUSYGROUP") => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn receive(
        &self,
        group: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, BusError> {
        let mut conn = self.reader(group, wait).await?;
        let idle_ms = u64::try_from(self.claim_idle.as_millis()).unwrap_or(u64::MAX);
        let claimed: Result<StreamAutoClaimReply, RedisError> = redis::cmd("XAUTOCLAIM")
            .arg(&self.stream)
            .arg(group)
            .arg(&self.consumer)
            .arg(idle_ms)
            .arg("0-0")
            .arg("COUNT")
            .arg(max)
            .query_async(&mut conn)
            .await;
        let claimed: StreamAutoClaimReply = match claimed {
            Ok(c) => c,
            Err(e) => return Err(self.regroup_if_missing(group, e).await),
        };
        if !claimed.claimed.is_empty() {
            return self.deliveries(group, claimed.claimed, true).await;
        }
        let block = usize::try_from(wait.as_millis())
            .unwrap_or(usize::MAX)
            .max(1);
        let options = StreamReadOptions::default()
            .group(group, &self.consumer)
            .count(max)
            .block(block);
        let reply: Option<StreamReadReply> =
            match conn.xread_options(&[&self.stream], &[">"], &options).await {
                Ok(r) => r,
                Err(e) => return Err(self.regroup_if_missing(group, e).await),
            };
        let entries = reply
            .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
            .unwrap_or_default();
        self.deliveries(group, entries, false).await
    }

    async fn ack(&self, group: &str, delivery: &Delivery) -> Result<(), BusError> {
        let mut conn = self.writer.clone();
        let _: i64 = conn
            .xack(&self.stream, group, &[&delivery.tag])
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn dead_letter(
        &self,
        group: &str,
        delivery: &Delivery,
        error: &str,
    ) -> Result<(), BusError> {
        let mut conn = self.writer.clone();
        let failed_at = OffsetDateTime::now_utc().unix_timestamp().to_string();
        let envelope = delivery.envelope.to_bytes();
        let _: String = redis::cmd("XADD")
            .arg(self.dead_stream(group))
            .arg("*")
            .arg("envelope")
            .arg(envelope)
            .arg("error")
            .arg(error)
            .arg("group")
            .arg(group)
            .arg("failed_at")
            .arg(failed_at)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        self.ack(group, delivery).await
    }

    /// Entries not yet delivered to the group (`lag` of `XINFO GROUPS`) and delivered but not
    /// acknowledged (`pending`); the oldest is the first pending entry, or else the first after
    /// the last delivered, and its time the event's commit time.
    async fn backlog(&self, group: &str) -> Result<Option<Backlog>, BusError> {
        let mut conn = self.writer.clone();
        let groups: StreamInfoGroupsReply =
            conn.xinfo_groups(&self.stream).await.map_err(unavailable)?;
        let Some(g) = groups.groups.into_iter().find(|g| g.name == group) else {
            return Ok(Some(Backlog {
                waiting: 0,
                oldest: None,
            }));
        };
        let after = format!("({}", g.last_delivered_id);
        let undelivered = match g.lag {
            Some(lag) => lag,
            // Unknown after trimming: counted, up to 10 000.
            None => {
                let r: StreamRangeReply = conn
                    .xrange_count(&self.stream, &after, "+", 10_000)
                    .await
                    .map_err(unavailable)?;
                r.ids.len()
            }
        };
        let from = if g.pending > 0 {
            match conn
                .xpending(&self.stream, group)
                .await
                .map_err(unavailable)?
            {
                StreamPendingReply::Data(d) => Some(d.start_id),
                _ => None,
            }
        } else if undelivered > 0 {
            Some(after)
        } else {
            None
        };
        let mut oldest = None;
        if let Some(from) = from {
            let r: StreamRangeReply = conn
                .xrange_count(&self.stream, &from, "+", 1)
                .await
                .map_err(unavailable)?;
            oldest = r.ids.first().map(|e| match Self::envelope_of(e) {
                Ok(envelope) => envelope.occurred_at,
                Err(_) => published_at(&e.id).unwrap_or_else(OffsetDateTime::now_utc),
            });
        }
        Ok(Some(Backlog {
            waiting: (g.pending + undelivered) as u64,
            oldest,
        }))
    }
}

/// When an entry was added, from its id (`<milliseconds>-<sequence>`).
fn published_at(id: &str) -> Option<OffsetDateTime> {
    let ms: i128 = id.split('-').next()?.parse().ok()?;
    OffsetDateTime::from_unix_timestamp_nanos(ms * 1_000_000).ok()
}

fn text(entry: &StreamId, field: &str) -> String {
    match entry.map.get(field) {
        Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    }
}

#[async_trait]
impl DeadLetters for RedisStreamsBus {
    async fn dead_letters(&self, group: &str, limit: usize) -> Result<Vec<DeadLetter>, BusError> {
        let mut conn = self.writer.clone();
        let reply: StreamRangeReply = conn
            .xrange_count(self.dead_stream(group), "-", "+", limit)
            .await
            .map_err(unavailable)?;
        Ok(reply
            .ids
            .iter()
            .filter_map(|entry| {
                let envelope = Self::envelope_of(entry).ok()?;
                Some(DeadLetter {
                    id: entry.id.clone(),
                    group: group.to_owned(),
                    envelope,
                    error: text(entry, "error"),
                    failed_at: text(entry, "failed_at")
                        .parse::<i64>()
                        .ok()
                        .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
                        .unwrap_or(OffsetDateTime::UNIX_EPOCH),
                })
            })
            .collect())
    }

    async fn replay(&self, group: &str, id: &str) -> Result<bool, BusError> {
        let mut conn = self.writer.clone();
        let reply: Result<StreamRangeReply, RedisError> =
            conn.xrange(self.dead_stream(group), id, id).await;
        let Ok(reply) = reply else { return Ok(false) }; // not a stream id at all
        let Some(envelope) = reply.ids.first().and_then(|e| Self::envelope_of(e).ok()) else {
            return Ok(false);
        };
        self.publish(std::slice::from_ref(&envelope)).await?;
        let _: i64 = conn
            .xdel(self.dead_stream(group), &[id])
            .await
            .map_err(unavailable)?;
        Ok(true)
    }

    async fn purge(&self, group: &str) -> Result<u64, BusError> {
        let mut conn = self.writer.clone();
        let n: u64 = conn
            .xlen(self.dead_stream(group))
            .await
            .map_err(unavailable)?;
        let _: i64 = conn
            .del(self.dead_stream(group))
            .await
            .map_err(unavailable)?;
        Ok(n)
    }
}

#[async_trait]
impl portside_kernel::Probe for RedisStreamsBus {
    fn name(&self) -> &'static str {
        "bus"
    }

    fn essential(&self) -> bool {
        false
    }

    async fn check(&self) -> Result<(), String> {
        let mut conn = self.writer.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(|_| ())
            .map_err(|e| format!("Redis unreachable: {e}"))
    }
}
