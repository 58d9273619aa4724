//! Use-case tests of wallets over the in-memory store: a top-up fills the wallet, the balance
//! pays and is refused when short, refunds put money back (or are refused when a top-up was
//! spent), transfers move money once per key, and the books stay clean throughout.

use std::sync::Arc;

use portside_domain::{
    Actor, Currency, Metadata, Money, PaymentMethod, PaymentStatus, Role, UserId, WALLET_PROVIDER,
};
use time::{Duration, OffsetDateTime};

use crate::AppError;
use crate::ledger::Ledger;
use crate::payments::idempotency::{IdempotencyKey, IdempotentRequest};
use crate::payments::{
    PayCommand, PaymentSettings, Payments, ProviderChange, ProviderError, ProviderOutcome,
    Providers, RefundCommand,
};
use crate::testing::fakes::{InMemoryStore, ManualClock, ScriptedProvider, SequentialIds};
use crate::testing::users::new_user;
use crate::users::UserRepository;
use crate::wallets::{TopUp, TransferCommand, Wallets};

fn usd(text: &str) -> Money {
    Money::parse(text, Currency::from_code("USD").unwrap()).unwrap()
}

fn key(actor: &Actor, key: &str, fingerprint: &str) -> IdempotentRequest {
    IdempotentRequest {
        scope: actor.user_id.to_string(),
        key: IdempotencyKey::parse(key).unwrap(),
        fingerprint: fingerprint.into(),
    }
}

struct World {
    payments: Arc<Payments>,
    wallets: Wallets,
    ledger: Ledger,
    alice: Actor,
    bob: Actor,
}

async fn world() -> World {
    world_answering([]).await.0
}

/// A world whose card provider answers `script` first, with its clock.
async fn world_answering(
    script: impl IntoIterator<Item = crate::testing::fakes::Scripted>,
) -> (World, Arc<ManualClock>) {
    let store = Arc::new(InMemoryStore::new());
    let clock = Arc::new(ManualClock::at(
        OffsetDateTime::UNIX_EPOCH + Duration::days(20_000),
    ));
    let ids = Arc::new(SequentialIds::default());
    let payments = Arc::new(Payments::new(
        store.clone(),
        store.clone(),
        Providers::new("mock", Arc::new(ScriptedProvider::answering(script))),
        clock.clone(),
        ids.clone(),
        PaymentSettings::default(),
    ));
    let mut actors = Vec::new();
    for tag in ["alice", "bob"] {
        let mut user = new_user(tag);
        store.insert_user(&mut user).await.unwrap();
        actors.push(Actor {
            user_id: user.id(),
            role: Role::Customer,
        });
    }
    let world = World {
        wallets: Wallets::new(
            store.clone(),
            store.clone(),
            store.clone(),
            payments.clone(),
            clock.clone(),
            ids,
            PaymentSettings::default().amount_limit,
        ),
        payments,
        ledger: Ledger::new(store),
        bob: actors.pop().unwrap(),
        alice: actors.pop().unwrap(),
    };
    (world, clock)
}

fn by_wallet(amount: &str, provider: Option<&str>) -> PayCommand {
    PayCommand {
        payment_id: None,
        customer_id: None,
        amount: usd(amount),
        method: PaymentMethod::Wallet,
        method_token: String::new(),
        provider: provider.map(str::to_owned),
        description: None,
        metadata: Metadata::default(),
        idempotency: None,
    }
}

fn top_up(w: &World, amount: &str, k: &str) -> TopUp {
    TopUp {
        amount: usd(amount),
        method: PaymentMethod::Card,
        method_token: "tok_visa".into(),
        provider: None,
        idempotency: key(&w.alice, k, k),
    }
}

async fn available(w: &World, actor: &Actor) -> String {
    let balances = w.wallets.balances(actor).await.unwrap();
    balances
        .first()
        .map_or("0.00".into(), |b| b.available.to_decimal_string())
}

fn refund(payment: &crate::payments::Reply, amount: &str) -> RefundCommand {
    RefundCommand {
        payment_id: payment.outcome.payment.id,
        amount: Some(amount.into()),
        currency: None,
        reason: None,
        metadata: Metadata::default(),
        idempotency: None,
    }
}

#[tokio::test]
async fn a_top_up_fills_the_wallet_and_the_balance_pays_until_it_is_short() {
    let w = world().await;
    assert!(w.wallets.balances(&w.alice).await.unwrap().is_empty());
    let topped = w
        .wallets
        .top_up(&w.alice, top_up(&w, "50.00", "t1"))
        .await
        .unwrap();
    assert_eq!(topped.outcome.payment.status, PaymentStatus::Succeeded);
    assert_eq!(available(&w, &w.alice).await, "50.00");

    let paid = w
        .payments
        .pay(&w.alice, by_wallet("30.00", None))
        .await
        .unwrap();
    assert_eq!(paid.outcome.payment.provider, WALLET_PROVIDER);
    assert_eq!(paid.outcome.payment.status, PaymentStatus::Succeeded);
    assert_eq!(available(&w, &w.alice).await, "20.00");

    let short = w
        .payments
        .pay(&w.alice, by_wallet("20.01", Some(WALLET_PROVIDER)))
        .await;
    assert!(
        matches!(short, Err(AppError::InsufficientFunds(_))),
        "{short:?}"
    );
    assert_eq!(
        available(&w, &w.alice).await,
        "20.00",
        "a refused payment holds nothing"
    );

    w.payments
        .refund(&w.alice, refund(&paid, "10.00"))
        .await
        .unwrap();
    assert_eq!(
        available(&w, &w.alice).await,
        "30.00",
        "a wallet payment refunds to the wallet"
    );

    let spent = w.payments.refund(&w.alice, refund(&topped, "50.00")).await;
    assert!(
        matches!(&spent, Err(AppError::State(e)) if e.code() == "top_up_spent"),
        "{spent:?}"
    );
    w.payments
        .refund(&w.alice, refund(&topped, "30.00"))
        .await
        .unwrap();
    assert_eq!(available(&w, &w.alice).await, "0.00");
    let books = w.ledger.reconcile().await.unwrap();
    assert!(books.is_clean(), "{:?}", books.differences);
}

#[tokio::test]
async fn the_wallet_method_goes_only_with_the_wallet_provider() {
    let w = world().await;
    let code = |r: Result<crate::payments::Reply, AppError>| match r {
        Err(AppError::Invalid { field, error }) => (field, error.code()),
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert_eq!(
        code(
            w.payments
                .pay(&w.alice, by_wallet("1.00", Some("mock")))
                .await
        ),
        ("provider", "payment_method_invalid")
    );
    let mut card = by_wallet("1.00", Some(WALLET_PROVIDER));
    card.method = PaymentMethod::Card;
    assert_eq!(
        code(w.payments.pay(&w.alice, card.clone()).await),
        ("payment_method", "payment_method_invalid")
    );
    card.provider = None;
    assert_eq!(
        code(w.payments.pay(&w.alice, card).await),
        ("payment_method_token", "payment_method_token_required")
    );
    let mut from_itself = top_up(&w, "5.00", "t2");
    from_itself.method = PaymentMethod::Wallet;
    assert_eq!(
        code(w.wallets.top_up(&w.alice, from_itself).await),
        ("payment_method", "payment_method_invalid")
    );
}

#[tokio::test]
async fn a_transfer_moves_money_once_per_key_and_never_more_than_the_wallet_holds() {
    let w = world().await;
    w.wallets
        .top_up(&w.alice, top_up(&w, "10.00", "t1"))
        .await
        .unwrap();
    let send = |amount: &str, k: &str, fingerprint: &str| TransferCommand {
        recipient: w.bob.user_id,
        amount: usd(amount),
        description: Some("lunch".into()),
        idempotency: key(&w.alice, k, fingerprint),
    };
    let first = w
        .wallets
        .transfer(&w.alice, send("4.00", "x1", "f1"))
        .await
        .unwrap();
    assert!(!first.replayed);
    let again = w
        .wallets
        .transfer(&w.alice, send("4.00", "x1", "f1"))
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.transfer.id, first.transfer.id);
    assert_eq!(
        available(&w, &w.alice).await,
        "6.00",
        "a replay moves nothing"
    );
    assert_eq!(available(&w, &w.bob).await, "4.00");
    let reused = w.wallets.transfer(&w.alice, send("5.00", "x1", "f2")).await;
    assert!(
        matches!(reused, Err(AppError::IdempotencyKeyReused)),
        "{reused:?}"
    );
    let short = w.wallets.transfer(&w.alice, send("6.01", "x2", "f3")).await;
    assert!(
        matches!(short, Err(AppError::InsufficientFunds(_))),
        "{short:?}"
    );

    let mut to_self = send("1.00", "x3", "f4");
    to_self.recipient = w.alice.user_id;
    let refused = w.wallets.transfer(&w.alice, to_self).await;
    assert!(
        matches!(&refused, Err(AppError::Invalid { field: "recipient_id", error }) if error.code() == "transfer_to_self"),
        "{refused:?}"
    );
    let mut nobody = send("1.00", "x4", "f5");
    nobody.recipient = UserId(uuid::Uuid::now_v7());
    let refused = w.wallets.transfer(&w.alice, nobody).await;
    assert!(
        matches!(&refused, Err(AppError::Invalid { field: "recipient_id", error }) if error.code() == "recipient_unknown"),
        "{refused:?}"
    );

    assert_eq!(
        w.wallets
            .get_transfer(&w.bob, first.transfer.id)
            .await
            .unwrap(),
        first.transfer
    );
    let stranger = Actor {
        user_id: UserId(uuid::Uuid::now_v7()),
        role: Role::Customer,
    };
    assert!(matches!(
        w.wallets.get_transfer(&stranger, first.transfer.id).await,
        Err(AppError::NotFound("transfer"))
    ));
    let books = w.ledger.reconcile().await.unwrap();
    assert!(books.is_clean(), "{:?}", books.differences);
}

#[tokio::test]
async fn a_top_up_settled_later_credits_the_wallet_then() {
    let unknown = || Err(ProviderError::Unavailable("503".into()));
    let (w, clock) = world_answering([unknown(), unknown()]).await;
    let by_recovery = w
        .wallets
        .top_up(&w.alice, top_up(&w, "8.00", "t1"))
        .await
        .unwrap();
    assert_eq!(
        by_recovery.outcome.payment.status,
        PaymentStatus::Processing
    );
    assert_eq!(
        available(&w, &w.alice).await,
        "0.00",
        "nothing to spend while processing"
    );
    let by_notice = w
        .wallets
        .top_up(&w.alice, top_up(&w, "2.00", "t2"))
        .await
        .unwrap();
    assert_eq!(by_notice.outcome.payment.status, PaymentStatus::Processing);

    clock.advance(Duration::seconds(61));
    let settled = w.payments.recover_stale().await.unwrap();
    assert_eq!(settled, 2, "the recovery task asks again");
    assert_eq!(available(&w, &w.alice).await, "10.00");

    // A provider's notice about an already settled charge changes nothing in the books.
    let charge = w
        .payments
        .transactions(&w.alice, by_notice.outcome.payment.id)
        .await
        .unwrap()
        .remove(0);
    let change = ProviderChange::ChargeSucceeded {
        transaction_id: Some(charge.id),
        reference: charge.provider_reference.clone().unwrap_or_default(),
    };
    w.payments
        .apply_provider_change("mock", &change)
        .await
        .unwrap();
    assert_eq!(available(&w, &w.alice).await, "10.00", "credited once");
}

#[tokio::test]
async fn a_top_up_confirmed_by_a_notice_credits_the_wallet() {
    let (w, _) = world_answering([Ok(ProviderOutcome::Pending)]).await;
    let pending = w
        .wallets
        .top_up(&w.alice, top_up(&w, "6.00", "t1"))
        .await
        .unwrap();
    assert_eq!(pending.outcome.payment.status, PaymentStatus::Processing);
    let charge = w
        .payments
        .transactions(&w.alice, pending.outcome.payment.id)
        .await
        .unwrap()
        .remove(0);
    let change = ProviderChange::ChargeSucceeded {
        transaction_id: Some(charge.id),
        reference: "ch_later".into(),
    };
    w.payments
        .apply_provider_change("mock", &change)
        .await
        .unwrap();
    assert_eq!(available(&w, &w.alice).await, "6.00");
    let books = w.ledger.reconcile().await.unwrap();
    assert!(books.is_clean(), "{:?}", books.differences);
}

fn minor(m: i64) -> Money {
    Money::from_minor(m, Currency::from_code("USD").unwrap())
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Any mix of card charges, top-ups, payments from the wallet, transfers and full refunds
    /// of the payments: each wallet holds exactly what a running sum says (so never below
    /// zero), a move the wallet cannot cover is refused (and only then), every ledger
    /// transaction balances and the trial balance is zero (the reconciliation is clean).
    #[test]
    fn any_mix_of_wallet_moves_keeps_the_wallets_whole(
        ops in proptest::collection::vec((0u8..5, 1i64..3000), 1..25)
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let w = world().await;
            let (mut alice, mut bob) = (0i64, 0i64);
            let mut paid = Vec::new();
            for (i, (op, m)) in ops.into_iter().enumerate() {
                let covered = alice >= m;
                match op {
                    0 => {
                        let mut t = top_up(&w, "1", &format!("t{i}"));
                        t.amount = minor(m);
                        w.wallets.top_up(&w.alice, t).await.unwrap();
                        alice += m;
                    }
                    1 => {
                        let mut cmd = by_wallet("1", None);
                        cmd.amount = minor(m);
                        match w.payments.pay(&w.alice, cmd).await {
                            Ok(r) if covered => {
                                alice -= m;
                                paid.push(r);
                            }
                            Err(AppError::InsufficientFunds(_)) if !covered => {}
                            other => panic!("covered {covered}: {other:?}"),
                        }
                    }
                    2 => {
                        let cmd = TransferCommand {
                            recipient: w.bob.user_id,
                            amount: minor(m),
                            description: None,
                            idempotency: key(&w.alice, &format!("x{i}"), "f"),
                        };
                        match w.wallets.transfer(&w.alice, cmd).await {
                            Ok(_) if covered => {
                                alice -= m;
                                bob += m;
                            }
                            Err(AppError::InsufficientFunds(_)) if !covered => {}
                            other => panic!("covered {covered}: {other:?}"),
                        }
                    }
                    3 => {
                        let mut card = by_wallet("1", None);
                        card.amount = minor(m);
                        card.method = PaymentMethod::Card;
                        card.method_token = "tok_visa".into();
                        paid.push(w.payments.pay(&w.alice, card).await.unwrap());
                    }
                    _ => {
                        if let Some(p) = paid.pop() {
                            let mut back = refund(&p, "0");
                            back.amount = None;
                            w.payments.refund(&w.alice, back).await.unwrap();
                            if p.outcome.payment.provider == WALLET_PROVIDER {
                                alice += p.outcome.payment.amount.minor();
                            }
                        }
                    }
                }
                let cents = |m: i64| minor(m).to_decimal_string();
                assert_eq!(available(&w, &w.alice).await, cents(alice));
                assert_eq!(available(&w, &w.bob).await, cents(bob));
            }
            let books = w.ledger.reconcile().await.unwrap();
            assert!(books.is_clean(), "{:?}", books.differences);
        });
    }
}
