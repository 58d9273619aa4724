//! The contract of the ledger: every store that saves payments posts their charges and refunds
//! in the same write, and reads the books back. The in-memory fake, SQLite and PostgreSQL run it.
//! Each check uses a provider of its own, so its clearing account holds only its movements.

use std::sync::Arc;

use portside_domain::{
    AccountName, AmountLimit, Currency, CustomerId, Failure, LedgerTransactionId, Metadata, Money,
    NewPayment, Payment, PaymentId, PaymentMethod, Phase, Side, Transaction, TransactionId,
};
use portside_kernel::PageRequest;
use uuid::Uuid;

use crate::ledger::{AccountBalance, AccountFilter, LedgerStore};
use crate::payments::{Outcome, PaymentRepository};
use crate::testing::payments::t0;

/// Everything the books must do.
pub async fn ledger_store<S>(shared: Arc<S>)
where
    S: PaymentRepository + LedgerStore + 'static,
{
    let store = &*shared;
    a_charge_is_held_then_posted_and_refunds_give_back(store).await;
    a_declined_charge_is_voided(store).await;
    a_movement_settles_once_in_the_books(store).await;
    entries_page_newest_first(store).await;
}

fn usd(minor: i64) -> Money {
    Money::from_minor(minor, Currency::from_code("USD").unwrap())
}

/// A provider name of its own (`p` and 20 hex digits), so its clearing account is the test's.
fn provider() -> String {
    format!("p{}", &Uuid::now_v7().simple().to_string()[12..])
}

fn charge_of(provider: &str, amount: Money) -> (Payment, Transaction) {
    let p = Payment::create(
        NewPayment {
            id: PaymentId(Uuid::now_v7()),
            customer_id: CustomerId::parse("ledger_contract").unwrap(),
            amount,
            method: PaymentMethod::Card,
            method_token: "tok_visa".into(),
            provider: provider.into(),
            description: None,
            metadata: Metadata::default(),
            routing: None,
        },
        AmountLimit::default(),
        t0(),
    )
    .unwrap();
    let charge = Transaction::charge(TransactionId(Uuid::now_v7()), p.id(), amount, t0());
    (p, charge)
}

/// Phase 3 as the payments use case runs it: the outcome stored on the key is the settled state.
async fn settle<S: PaymentRepository>(
    store: &S,
    p: &mut Payment,
    t: &Transaction,
) -> Result<(), portside_kernel::StoreError> {
    let outcome = Outcome {
        payment: p.state().clone(),
        transaction: t.clone(),
        accepted: false,
    };
    store.settle(p, t, &outcome).await
}

async fn clearing<S: LedgerStore>(store: &S, provider: &str) -> AccountBalance {
    let found = store
        .accounts(
            &AccountFilter {
                prefix: Some(format!("provider:{provider}:")),
                currency: None,
            },
            PageRequest {
                limit: 10,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "one clearing account for {provider}");
    found.into_iter().next().unwrap()
}

async fn succeeded<S: PaymentRepository>(store: &S, provider: &str, minor: i64) -> Payment {
    let (mut p, mut charge) = charge_of(provider, usd(minor));
    store.begin_charge(None, &mut p, &charge).await.unwrap();
    p.succeed("ch_ledger".into(), t0()).unwrap();
    charge.succeed("ch_ledger".into(), t0()).unwrap();
    settle(store, &mut p, &charge).await.unwrap();
    p
}

async fn a_charge_is_held_then_posted_and_refunds_give_back<S>(store: &S)
where
    S: PaymentRepository + LedgerStore,
{
    let provider = provider();
    let (mut p, mut charge) = charge_of(&provider, usd(500));
    store.begin_charge(None, &mut p, &charge).await.unwrap();
    let held = clearing(store, &provider).await;
    assert_eq!(held.account, AccountName::clearing(&provider));
    assert_eq!(held.balance.debits_pending, 500);
    assert_eq!(held.balance.posted(Side::Debit), 0);
    let pending = store
        .posting(LedgerTransactionId(charge.id.0))
        .await
        .unwrap()
        .expect("the charge's pending posting has its id");
    assert_eq!(pending.phase, Phase::Pending);
    assert_eq!(pending.entries.len(), 2);
    assert_eq!(pending.entries[1].account, AccountName::Revenue);

    p.succeed("ch_1".into(), t0()).unwrap();
    charge.succeed("ch_1".into(), t0()).unwrap();
    settle(store, &mut p, &charge).await.unwrap();
    let posted = clearing(store, &provider).await.balance;
    assert_eq!(
        (
            posted.debits_posted,
            posted.debits_pending,
            posted.credits_posted
        ),
        (500, 0, 0)
    );

    // A refund the provider refuses is voided; one it makes moves the money back.
    let amount = p.begin_refund(Some(usd(200)), t0()).unwrap();
    let mut refund =
        Transaction::refund(TransactionId(Uuid::now_v7()), p.id(), amount, None, t0()).unwrap();
    store.begin_refund(None, &mut p, &refund).await.unwrap();
    assert_eq!(
        clearing(store, &provider).await.balance.credits_pending,
        200
    );
    let failure = Failure::new("refund_failed", "refused");
    p.fail_refund(refund.id, amount, failure.clone(), t0())
        .unwrap();
    refund.fail(failure, t0()).unwrap();
    settle(store, &mut p, &refund).await.unwrap();
    let amount = p.begin_refund(Some(usd(300)), t0()).unwrap();
    let mut refund =
        Transaction::refund(TransactionId(Uuid::now_v7()), p.id(), amount, None, t0()).unwrap();
    store.begin_refund(None, &mut p, &refund).await.unwrap();
    p.complete_refund(refund.id, amount, t0()).unwrap();
    refund.succeed("re_1".into(), t0()).unwrap();
    settle(store, &mut p, &refund).await.unwrap();
    let b = clearing(store, &provider).await.balance;
    assert_eq!(b.posted(Side::Debit), 200, "500 charged, 300 refunded");
    assert_eq!((b.debits_pending, b.credits_pending), (0, 0));
    let differences = store.differences(10_000).await.unwrap();
    let ours: Vec<_> = differences
        .iter()
        .filter(|d| d.subject == charge.id.to_string() || d.subject == refund.id.to_string())
        .collect();
    assert!(ours.is_empty(), "{ours:?}");
}

async fn a_declined_charge_is_voided<S>(store: &S)
where
    S: PaymentRepository + LedgerStore,
{
    let provider = provider();
    let (mut p, mut charge) = charge_of(&provider, usd(700));
    store.begin_charge(None, &mut p, &charge).await.unwrap();
    let failure = Failure::new("card_declined", "declined");
    // Declined a second after the hold, so that "newest first" has one answer.
    let later = t0() + time::Duration::seconds(1);
    p.fail(failure.clone(), later).unwrap();
    charge.fail(failure, later).unwrap();
    settle(store, &mut p, &charge).await.unwrap();
    let b = clearing(store, &provider).await.balance;
    assert_eq!(
        (b.debits_posted, b.debits_pending, b.credits_posted),
        (0, 0, 0),
        "nothing held, nothing posted"
    );
    let page = store
        .entries(
            &AccountName::clearing(&provider),
            None,
            PageRequest {
                limit: 10,
                after: None,
            },
        )
        .await
        .unwrap();
    let phases: Vec<_> = page.iter().map(|e| e.phase.as_str()).collect();
    assert_eq!(phases, ["void", "pending"], "newest first");
}

/// A second settlement of the same movement is refused by the payment store and posts nothing.
async fn a_movement_settles_once_in_the_books<S>(store: &S)
where
    S: PaymentRepository + LedgerStore,
{
    let provider = provider();
    let (mut p, mut charge) = charge_of(&provider, usd(900));
    store.begin_charge(None, &mut p, &charge).await.unwrap();
    let loaded = p.clone();
    p.succeed("ch_once".into(), t0()).unwrap();
    charge.succeed("ch_once".into(), t0()).unwrap();
    settle(store, &mut p, &charge).await.unwrap();
    let mut again = loaded;
    again.succeed("ch_twice".into(), t0()).unwrap();
    assert!(settle(store, &mut again, &charge).await.is_err());
    assert_eq!(clearing(store, &provider).await.balance.debits_posted, 900);
}

async fn entries_page_newest_first<S>(store: &S)
where
    S: PaymentRepository + LedgerStore,
{
    let provider = provider();
    for minor in [100, 200, 300] {
        succeeded(store, &provider, minor).await;
    }
    let account = AccountName::clearing(&provider);
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .entries(
                &account,
                Some(usd(1).currency()),
                PageRequest { limit: 4, after },
            )
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        after = page
            .last()
            .map(|e| (e.created_at, e.transaction_id, e.line));
        seen.extend(page);
    }
    assert_eq!(
        seen.len(),
        6,
        "a pending and a post entry for each of 3 charges"
    );
    let keys: Vec<_> = seen
        .iter()
        .map(|e| (e.created_at, e.transaction_id, e.line))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(keys, sorted, "newest first, no repeats");
    let debits: i64 = seen
        .iter()
        .filter(|e| e.phase.as_str() == "post")
        .map(|e| e.entry.amount_minor)
        .sum();
    assert_eq!(debits, 600);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::fakes::InMemoryStore;

    #[tokio::test]
    async fn the_in_memory_store_keeps_the_books() {
        ledger_store(Arc::new(InMemoryStore::new())).await;
    }
}
