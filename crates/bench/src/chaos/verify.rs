//! What the store holds against what the clients were told:
//!
//! - lost: a request that got a final answer whose effect is missing or different;
//! - half-written: a payment left pending or processing although its client got an answer;
//! - duplicated: an idempotency key with two payments, a payment with two charges, a refund
//!   total other than the acknowledged refunds (and lost: a succeeded payment without a
//!   charge, so every succeeded payment has exactly one);
//! - events lost: committed outbox rows that never reached the consumers (the `audit` group
//!   consumes every event and records it in the event history);
//! - effects applied twice: an order confirmed more than once by the `orders` consumer;
//! - wallets: an acknowledged top-up not stored as succeeded, or a payment or transfer refused
//!   for insufficient funds that was stored anyway (lost); an acknowledged transfer missing
//!   (lost) or stored twice (duplicated); a wallet whose available balance is below zero
//!   (money invented: counted as lost).

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::load::Ledger;
use super::rig::Store;

#[derive(Default)]
pub struct Report {
    pub payments: usize,
    /// Payments left pending or processing: written by half.
    pub half_written: usize,
    pub events: i64,
    pub lost: usize,
    pub duplicated: usize,
    pub events_lost: i64,
    pub effects_twice: usize,
    /// Events the crash run's webhook endpoint never got, and requests that failed verification.
    pub webhooks_missing: usize,
    pub webhooks_unverified: u64,
    pub details: Vec<String>,
}

pub async fn verify(store: &Store, ledger: &Ledger) -> anyhow::Result<Report> {
    let mut r = Report::default();
    // Every payment's status, and the clients' own by their key (in their metadata).
    let mut by_key: BTreeMap<String, Vec<(String, String, i64)>> = BTreeMap::new();
    let mut statuses: HashMap<String, String> = HashMap::new();
    for row in store
        .rows("SELECT CAST(id AS TEXT), status, CAST(metadata AS TEXT), CAST(refunded_minor AS TEXT) FROM payments")
        .await?
    {
        statuses.insert(row[0].clone(), row[1].clone());
        let key = serde_json::from_str::<Value>(&row[2])
            .ok()
            .and_then(|m| m["chaos_key"].as_str().map(str::to_owned));
        if let Some(key) = key {
            let refunded = row[3].parse().unwrap_or(0);
            by_key
                .entry(key)
                .or_default()
                .push((row[0].clone(), row[1].clone(), refunded));
        }
    }
    r.payments = by_key.values().map(Vec::len).sum();
    for (key, told) in &ledger.payments {
        match by_key.get(key).map(Vec::as_slice) {
            None | Some([]) => {
                r.lost += 1;
                r.details
                    .push(format!("lost: payment {key} ({told}) is not stored"));
            }
            Some([(id, status, _)]) => {
                let settled_as_told = status == told
                    || (told == "succeeded"
                        && matches!(status.as_str(), "partially_refunded" | "refunded"));
                // A payment still under way is counted as half-written below.
                if !settled_as_told && !matches!(status.as_str(), "pending" | "processing") {
                    r.lost += 1;
                    r.details
                        .push(format!("lost: payment {id} was told {told}, is {status}"));
                }
            }
            Some(more) => {
                r.duplicated += 1;
                r.details
                    .push(format!("duplicated: key {key} has {} payments", more.len()));
            }
        }
    }
    for row in store
        .rows("SELECT CAST(id AS TEXT), status FROM payments WHERE status IN ('pending', 'processing')")
        .await?
    {
        r.half_written += 1;
        r.details
            .push(format!("half-written: payment {} is still {}", row[0], row[1]));
    }
    for (key, rows) in &by_key {
        if rows.len() > 1 && !ledger.payments.contains_key(key) {
            r.duplicated += 1;
            r.details
                .push(format!("duplicated: key {key} has {} payments", rows.len()));
        }
    }
    // One charge per payment, refunds exactly as acknowledged.
    for row in store
        .rows("SELECT CAST(payment_id AS TEXT), CAST(count(*) AS TEXT) FROM payment_transactions WHERE kind = 'charge' GROUP BY payment_id HAVING count(*) > 1")
        .await?
    {
        r.duplicated += 1;
        r.details.push(format!("duplicated: payment {} has {} charges", row[0], row[1]));
    }
    for row in store
        .rows("SELECT CAST(p.id AS TEXT), p.status FROM payments p WHERE p.status IN ('succeeded', 'partially_refunded', 'refunded') AND NOT EXISTS (SELECT 1 FROM payment_transactions t WHERE t.payment_id = p.id AND t.kind = 'charge')")
        .await?
    {
        r.lost += 1;
        r.details.push(format!("lost: payment {} is {} without a charge", row[0], row[1]));
    }
    let refunded: HashMap<String, i64> = by_key
        .values()
        .flatten()
        .map(|(id, _, refunded)| (id.clone(), *refunded))
        .collect();
    for (payment, acked) in &ledger.refunds {
        let told: i64 = acked.iter().sum();
        let stored = refunded.get(payment).copied().unwrap_or(0);
        if stored < told {
            r.lost += 1;
            r.details.push(format!(
                "lost: payment {payment} refunded {stored}, told {told}"
            ));
        } else if stored > told {
            r.duplicated += 1;
            r.details.push(format!(
                "duplicated: payment {payment} refunded {stored}, told {told}"
            ));
        }
    }
    for key in &ledger.refused_payments {
        if by_key.contains_key(key) {
            r.lost += 1;
            r.details.push(format!(
                "lost: payment {key} was refused for funds but is stored"
            ));
        }
    }
    for id in &ledger.top_ups {
        if statuses.get(id).map(String::as_str) != Some("succeeded") {
            r.lost += 1;
            r.details.push(format!(
                "lost: top-up {id} was acknowledged, is {:?}",
                statuses.get(id)
            ));
        }
    }
    let transfers: HashMap<String, usize> = store
        .rows("SELECT idempotency_key, CAST(count(*) AS TEXT) FROM transfers GROUP BY idempotency_key")
        .await?
        .into_iter()
        .map(|row| (row[0].clone(), row[1].parse().unwrap_or(0)))
        .collect();
    for (key, acknowledged) in &ledger.transfers {
        match (acknowledged, transfers.get(key).copied().unwrap_or(0)) {
            (true, 1) | (false, 0) => {}
            (true, 0) | (false, _) => {
                r.lost += 1;
                r.details.push(format!(
                    "lost: transfer {key} was told {}, stored {} times",
                    if *acknowledged { "done" } else { "refused" },
                    transfers.get(key).copied().unwrap_or(0)
                ));
            }
            (true, n) => {
                r.duplicated += 1;
                r.details
                    .push(format!("duplicated: transfer {key} stored {n} times"));
            }
        }
    }
    for row in store
        .rows("SELECT account, currency FROM ledger_balances WHERE account LIKE 'customer:%' GROUP BY account, currency HAVING SUM(credits_posted) - SUM(debits_posted) - SUM(debits_pending) < 0")
        .await?
    {
        r.lost += 1;
        r.details
            .push(format!("money invented: {} is overdrawn in {}", row[0], row[1]));
    }
    // Orders paid are confirmed once.
    let confirmations: HashMap<String, i64> = store
        .rows("SELECT aggregate_id, CAST(count(*) AS TEXT) FROM outbox WHERE event_type = 'order.confirmed' GROUP BY aggregate_id")
        .await?
        .into_iter()
        .map(|row| (row[0].clone(), row[1].parse().unwrap_or(0)))
        .collect();
    for order in &ledger.paid_orders {
        match confirmations.get(order).copied().unwrap_or(0) {
            0 => {
                r.lost += 1;
                r.details
                    .push(format!("lost: order {order} was paid and never confirmed"));
            }
            1 => {}
            n => {
                r.effects_twice += 1;
                r.details
                    .push(format!("effect twice: order {order} confirmed {n} times"));
            }
        }
    }
    r.events = store
        .count("SELECT CAST(count(*) AS TEXT) FROM outbox")
        .await?;
    r.events_lost = store
        .count("SELECT CAST(count(*) AS TEXT) FROM outbox o WHERE NOT EXISTS (SELECT 1 FROM event_history h WHERE h.id = o.id)")
        .await?;
    if r.events_lost > 0 {
        r.details.push(format!(
            "events lost: {} outbox rows are not in the event history the audit consumer keeps",
            r.events_lost
        ));
    }
    Ok(r)
}
