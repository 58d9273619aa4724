//! Use-case tests of the ledger over the in-memory store: payments made through `Payments`
//! appear in the books, customers see only their own wallet, and the reconciliation is clean.

use std::sync::Arc;

use portside_domain::{
    AccountName, Actor, Currency, CustomerId, Metadata, Money, PaymentMethod, Role, UserId,
};
use portside_kernel::PageRequest;
use time::{Duration, OffsetDateTime};

use crate::AppError;
use crate::ledger::{AccountFilter, Ledger};
use crate::payments::{PayCommand, PaymentSettings, Payments, Providers, RefundCommand};
use crate::testing::fakes::{InMemoryStore, ManualClock, ScriptedProvider, SequentialIds};

fn usd(text: &str) -> Money {
    Money::parse(text, Currency::from_code("USD").unwrap()).unwrap()
}

fn customer() -> Actor {
    Actor {
        user_id: UserId(uuid::Uuid::from_u128(42)),
        role: Role::Customer,
    }
}

fn admin() -> Actor {
    Actor {
        user_id: UserId(uuid::Uuid::from_u128(1)),
        role: Role::Admin,
    }
}

fn first_page<K>() -> PageRequest<K> {
    PageRequest {
        limit: 100,
        after: None,
    }
}

#[tokio::test]
async fn payments_and_refunds_are_in_the_books_and_the_check_is_clean() {
    let store = Arc::new(InMemoryStore::new());
    let clock = Arc::new(ManualClock::at(
        OffsetDateTime::UNIX_EPOCH + Duration::days(20_000),
    ));
    let payments = Payments::new(
        store.clone(),
        store.clone(),
        Providers::new("mock", Arc::new(ScriptedProvider::answering([]))),
        clock,
        Arc::new(SequentialIds::default()),
        PaymentSettings::default(),
    );
    let ledger = Ledger::new(store);
    let paid = payments
        .pay(
            &customer(),
            PayCommand {
                payment_id: None,
                customer_id: None,
                amount: usd("40.00"),
                method: PaymentMethod::Card,
                method_token: "tok_visa".into(),
                provider: None,
                description: None,
                metadata: Metadata::default(),
                idempotency: None,
            },
        )
        .await
        .unwrap();
    payments
        .refund(
            &customer(),
            RefundCommand {
                payment_id: paid.outcome.payment.id,
                amount: Some("15.00".into()),
                currency: None,
                reason: None,
                metadata: Metadata::default(),
                idempotency: None,
            },
        )
        .await
        .unwrap();

    let accounts = ledger
        .accounts(&admin(), &AccountFilter::default(), first_page())
        .await
        .unwrap();
    let balances: Vec<_> = accounts
        .items
        .iter()
        .map(|a| {
            (
                a.account.to_string(),
                a.balance.posted(a.account.normal_side()),
            )
        })
        .collect();
    assert_eq!(
        balances,
        [
            ("platform:revenue".to_owned(), 2500),
            ("provider:mock:clearing".to_owned(), 2500)
        ]
    );
    let report = ledger.check(&admin()).await.unwrap();
    assert!(report.is_clean(), "{:?}", report.differences);
    let (_, total) = report.trial_balance[0];
    assert_eq!(total.debits_posted, total.credits_posted);
    assert_eq!(total.debits_posted, 4000 + 1500);
}

#[tokio::test]
async fn customers_read_only_their_own_wallet() {
    let ledger = Ledger::new(Arc::new(InMemoryStore::new()));
    let me = customer();
    for refused in [
        ledger
            .accounts(&me, &AccountFilter::default(), first_page())
            .await
            .err(),
        ledger.check(&me).await.err(),
        ledger.trial_balance(&me).await.err(),
    ] {
        assert!(
            matches!(refused, Some(AppError::Forbidden(_))),
            "{refused:?}"
        );
    }
    let mine = AccountName::wallet(&CustomerId::from(me.user_id));
    let page = ledger
        .entries(&me, &mine, None, first_page())
        .await
        .unwrap();
    assert!(page.items.is_empty());
    let theirs = AccountName::wallet(&CustomerId::parse("someone_else").unwrap());
    assert!(matches!(
        ledger.entries(&me, &theirs, None, first_page()).await,
        Err(AppError::NotFound("account"))
    ));
    assert!(matches!(
        ledger
            .entries(&me, &AccountName::Revenue, None, first_page())
            .await,
        Err(AppError::NotFound("account"))
    ));
    assert!(
        ledger
            .entries(&admin(), &theirs, None, first_page())
            .await
            .is_ok()
    );
}
