//! The contract of wallets: a wallet's balance is never spent twice, whatever races for it
//! (payments from the balance, transfers both ways), and an idempotency key makes one transfer.
//! The in-memory fake, SQLite and PostgreSQL run it. Each check uses customers of its own.

use std::sync::Arc;

use portside_domain::{
    AccountName, AmountLimit, Currency, CustomerId, Metadata, Money, NewPayment, Payment,
    PaymentId, PaymentMethod, Purpose, Transaction, TransactionId, TransactionStatus, Transfer,
    TransferId, UserId, WALLET_PROVIDER,
};
use portside_kernel::{PageRequest, StoreError};
use uuid::Uuid;

use crate::ledger::{AccountFilter, LedgerStore};
use crate::payments::idempotency::{IdempotencyKey, IdempotentRequest};
use crate::payments::{Outcome, PaymentRepository};
use crate::testing::payments::t0;
use crate::wallets::{Recorded, TransferStore};

/// Everything wallets must do.
pub async fn wallet_store<S>(store: Arc<S>)
where
    S: PaymentRepository + LedgerStore + TransferStore + 'static,
{
    the_balance_pays_only_what_it_holds(store.clone()).await;
    transfers_both_ways_at_once_all_go_through(store.clone()).await;
    a_key_makes_one_transfer(store).await;
}

fn usd(minor: i64) -> Money {
    Money::from_minor(minor, Currency::from_code("USD").unwrap())
}

/// A customer of this check alone.
fn someone() -> UserId {
    UserId(Uuid::now_v7())
}

fn payment(user: UserId, minor: i64, provider: &str, metadata: Metadata) -> (Payment, Transaction) {
    let p = Payment::create(
        NewPayment {
            id: PaymentId(Uuid::now_v7()),
            customer_id: CustomerId::from(user),
            amount: usd(minor),
            method: if provider == WALLET_PROVIDER {
                PaymentMethod::Wallet
            } else {
                PaymentMethod::Card
            },
            method_token: "tok_visa".into(),
            provider: provider.into(),
            description: None,
            metadata,
            routing: None,
        },
        AmountLimit::default(),
        t0(),
    )
    .unwrap();
    let charge = Transaction::charge(TransactionId(Uuid::now_v7()), p.id(), usd(minor), t0());
    (p, charge)
}

async fn succeed<S: PaymentRepository>(store: &S, p: &mut Payment, charge: &mut Transaction) {
    let reference = format!("ref_{}", charge.id);
    p.succeed(reference.clone(), t0()).unwrap();
    charge.succeed(reference, t0()).unwrap();
    let outcome = Outcome {
        payment: p.state().clone(),
        transaction: charge.clone(),
        accepted: false,
    };
    store.settle(p, charge, &outcome).await.unwrap();
}

/// Tops a wallet up by a card charge that succeeds.
async fn top_up<S: PaymentRepository>(store: &S, user: UserId, minor: i64) {
    let metadata = Purpose::TopUp(user).metadata().unwrap();
    let (mut p, mut charge) = payment(user, minor, "mock", metadata);
    store.begin_charge(None, &mut p, &charge).await.unwrap();
    succeed(store, &mut p, &mut charge).await;
}

/// (available, held) of a user's wallet in USD, in minor units.
async fn wallet<S: LedgerStore>(store: &S, user: UserId) -> (i64, i64) {
    let account = AccountName::wallet(&CustomerId::from(user));
    let found = store
        .accounts(
            &AccountFilter {
                prefix: Some(account.to_string()),
                currency: None,
            },
            PageRequest {
                limit: 10,
                after: None,
            },
        )
        .await
        .unwrap();
    let side = account.normal_side();
    found
        .iter()
        .find(|a| a.account == account)
        .map_or((0, 0), |a| {
            (a.balance.available(side), a.balance.held(side))
        })
}

/// 50 payments of 10.00 from a wallet holding 100.00, all at once: exactly 10 are held, the
/// rest refused, and settling the held ones spends the wallet to zero, never below.
async fn the_balance_pays_only_what_it_holds<S>(store: Arc<S>)
where
    S: PaymentRepository + LedgerStore + 'static,
{
    let user = someone();
    top_up(&*store, user, 10_000).await;
    assert_eq!(wallet(&*store, user).await, (10_000, 0));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let (mut p, charge) = payment(user, 1000, WALLET_PROVIDER, Metadata::default());
                store
                    .begin_charge(None, &mut p, &charge)
                    .await
                    .map(|_| (p, charge))
            })
        })
        .collect();
    let (mut held, mut short) = (Vec::new(), 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(started) => held.push(started),
            Err(StoreError::Refused { code, .. }) if code == "insufficient_funds" => short += 1,
            Err(other) => panic!("neither held nor short of funds: {other:?}"),
        }
    }
    assert_eq!(
        (held.len(), short),
        (10, 40),
        "never overspent, never refused wrongly"
    );
    assert_eq!(wallet(&*store, user).await, (0, 10_000), "all of it held");
    for (mut p, mut charge) in held {
        succeed(&*store, &mut p, &mut charge).await;
        assert_eq!(charge.status, TransactionStatus::Succeeded);
    }
    assert_eq!(wallet(&*store, user).await, (0, 0), "spent, nothing held");
}

fn transfer(from: UserId, to: UserId, minor: i64) -> Transfer {
    Transfer::create(
        TransferId(Uuid::now_v7()),
        CustomerId::from(from),
        CustomerId::from(to),
        usd(minor),
        None,
        AmountLimit::default(),
        t0(),
    )
    .unwrap()
}

/// Two wallets of 20.00 send each other 1.00 twenty times each, all at once: every transfer
/// goes through (no deadlock, no lost update) and both end where they started.
async fn transfers_both_ways_at_once_all_go_through<S>(store: Arc<S>)
where
    S: PaymentRepository + LedgerStore + TransferStore + 'static,
{
    let (a, b) = (someone(), someone());
    top_up(&*store, a, 2000).await;
    top_up(&*store, b, 2000).await;
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let store = store.clone();
            let (from, to) = if i % 2 == 0 { (a, b) } else { (b, a) };
            tokio::spawn(async move {
                store
                    .record_transfer(&mut transfer(from, to, 100), None)
                    .await
            })
        })
        .collect();
    for t in tasks {
        assert!(matches!(t.await.unwrap(), Ok(Recorded::New)));
    }
    assert_eq!(wallet(&*store, a).await, (2000, 0));
    assert_eq!(wallet(&*store, b).await, (2000, 0));
    let short = store.record_transfer(&mut transfer(a, b, 2001), None).await;
    assert!(
        matches!(&short, Err(StoreError::Refused { code, .. }) if code == "insufficient_funds"),
        "{short:?}"
    );
    assert_eq!(
        wallet(&*store, a).await,
        (2000, 0),
        "a refused transfer moves nothing"
    );
}

/// Ten requests with one key at once: one transfer, the others find it.
async fn a_key_makes_one_transfer<S>(store: Arc<S>)
where
    S: LedgerStore + PaymentRepository + TransferStore + 'static,
{
    let (a, b) = (someone(), someone());
    top_up(&*store, a, 500).await;
    let key = IdempotentRequest {
        scope: a.to_string(),
        key: IdempotencyKey::parse("rent-december").unwrap(),
        fingerprint: "fp-1".into(),
    };
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let store = store.clone();
            let key = key.clone();
            tokio::spawn(async move {
                store
                    .record_transfer(&mut transfer(a, b, 300), Some(&key))
                    .await
            })
        })
        .collect();
    let (mut new, mut found) = (0, Vec::new());
    for t in tasks {
        match t.await.unwrap().unwrap() {
            Recorded::New => new += 1,
            Recorded::Existing {
                transfer,
                fingerprint,
            } => {
                assert_eq!(fingerprint, "fp-1");
                found.push(transfer.state().id);
            }
        }
    }
    assert_eq!(new, 1, "one transfer per key");
    found.sort();
    found.dedup();
    assert_eq!(found.len(), 1, "the others all found the same transfer");
    let stored = store.transfer(found[0]).await.unwrap().expect("stored");
    assert_eq!(stored.state().amount, usd(300));
    assert_eq!(wallet(&*store, a).await, (200, 0), "moved once");
    assert_eq!(wallet(&*store, b).await, (300, 0));
    assert!(
        store
            .transfer(TransferId(Uuid::now_v7()))
            .await
            .unwrap()
            .is_none()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::fakes::InMemoryStore;

    #[tokio::test]
    async fn the_in_memory_store_keeps_wallets() {
        wallet_store(Arc::new(InMemoryStore::new())).await;
    }
}
