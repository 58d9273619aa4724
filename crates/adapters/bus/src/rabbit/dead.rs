//! RabbitMQ's dead letters: a dead-letter exchange (`<ns>.dead`) and a queue per group that
//! keeps each message with its error; listing peeks on a throwaway channel, replay republishes
//! one message to its group, purge empties the queue.

use super::*;

impl RabbitBus {
    /// Pulls up to `limit` dead letters on a throwaway channel; closing it requeues them all.
    async fn peek_dead(
        &self,
        group: &str,
        limit: usize,
    ) -> Result<(Channel, Vec<(u64, DeadLetter)>), BusError> {
        let ch = self.throwaway_channel().await?;
        let mut found = Vec::new();
        while found.len() < limit {
            let Some(msg) = ch
                .basic_get(self.dead_queue(group).into(), BasicGetOptions::default())
                .await
                .map_err(unavailable)?
            else {
                break;
            };
            let d = msg.delivery;
            let Ok(envelope) = Envelope::from_bytes(&d.data) else {
                continue;
            };
            let failed_at = Self::header(&d.properties, FAILED_AT_HEADER)
                .parse::<i64>()
                .ok()
                .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
                .unwrap_or(OffsetDateTime::UNIX_EPOCH);
            found.push((
                d.delivery_tag,
                DeadLetter {
                    id: envelope.id.to_string(),
                    group: group.to_owned(),
                    error: Self::header(&d.properties, ERROR_HEADER),
                    envelope,
                    failed_at,
                },
            ));
        }
        Ok((ch, found))
    }
}

pub(super) fn dead_headers(error: &str) -> FieldTable {
    let mut headers = FieldTable::default();
    headers.insert(
        ERROR_HEADER.into(),
        AMQPValue::LongString(LongString::from(error)),
    );
    headers.insert(
        FAILED_AT_HEADER.into(),
        AMQPValue::LongString(LongString::from(
            OffsetDateTime::now_utc().unix_timestamp().to_string(),
        )),
    );
    headers
}

#[async_trait]
impl DeadLetters for RabbitBus {
    async fn dead_letters(&self, group: &str, limit: usize) -> Result<Vec<DeadLetter>, BusError> {
        let (ch, found) = self.peek_dead(group, limit).await?;
        let _ = ch.close(200, "OK".into()).await; // requeues what was peeked
        Ok(found.into_iter().map(|(_, d)| d).collect())
    }

    async fn replay(&self, group: &str, id: &str) -> Result<bool, BusError> {
        let (ch, found) = self.peek_dead(group, usize::MAX).await?;
        let Some((tag, dead)) = found.into_iter().find(|(_, d)| d.id == id) else {
            let _ = ch.close(200, "OK".into()).await;
            return Ok(false);
        };
        self.publish(std::slice::from_ref(&dead.envelope)).await?;
        ch.basic_ack(tag, BasicAckOptions::default())
            .await
            .map_err(unavailable)?;
        let _ = ch.close(200, "OK".into()).await;
        Ok(true)
    }

    async fn purge(&self, group: &str) -> Result<u64, BusError> {
        let mut live = self.live.lock().await;
        self.ensure(&mut live).await?;
        let ch = &connected(&live)?.publisher;
        let n = ch
            .queue_purge(self.dead_queue(group).into(), QueuePurgeOptions::default())
            .await
            .map_err(unavailable)?;
        Ok(u64::from(n))
    }
}
