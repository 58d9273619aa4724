//! Use-case tests of accounts, messages and memberships against in-memory fakes.

use portside_kernel::PageRequest;

use std::sync::Arc;

use portside_domain::{
    Actor, Currency, Email, Membership, MessageBody, Money, PaymentMethod, PaymentStatus, Role,
    UserName,
};
use time::{Duration, OffsetDateTime};

use crate::AppError;
use crate::memberships::{Checkout, Memberships};
use crate::messages::MessageFilter;
use crate::messages::Messages;
use crate::payments::idempotency::{IdempotencyKey, IdempotentRequest};
use crate::payments::{PaymentSettings, Payments, Providers};
use crate::testing::fakes::{
    FakeTokens, FlakyCache, InMemoryStore, ManualClock, PlainHasher, ScriptedProvider,
    SequentialIds,
};
use crate::users::cache::UserCache;
use crate::users::{Registration, UserChanges, Users};

struct World {
    store: Arc<InMemoryStore>,
    price: Money,
    accounts: Arc<Users>,
    messages: Messages,
    memberships: Memberships,
    cache: Arc<FlakyCache>,
    clock: Arc<ManualClock>,
}

fn world() -> World {
    let store = Arc::new(InMemoryStore::new());
    let clock = Arc::new(ManualClock::at(
        OffsetDateTime::UNIX_EPOCH + Duration::days(20_000),
    ));
    let ids = Arc::new(SequentialIds::default());
    let cache = Arc::new(FlakyCache::default());
    let accounts = Arc::new(Users::new(
        store.clone(),
        store.clone(),
        Arc::new(PlainHasher),
        Arc::new(FakeTokens::new(clock.clone(), Duration::minutes(15))),
        UserCache::new(cache.clone(), std::time::Duration::from_secs(60)),
        clock.clone(),
        ids.clone(),
        Duration::days(30),
    ));
    let payments = Arc::new(Payments::new(
        store.clone(),
        store.clone(),
        Providers::new("mock", Arc::new(ScriptedProvider::answering([]))),
        clock.clone(),
        ids.clone(),
        PaymentSettings::default(),
    ));
    let price = Money::parse("9.99", Currency::from_code("USD").unwrap()).unwrap();
    World {
        memberships: Memberships::new(payments, price),
        store: store.clone(),
        price,
        messages: Messages::new(store.clone(), clock.clone(), ids),
        accounts,
        cache,
        clock,
    }
}

fn registration(email: &str) -> Registration {
    Registration {
        email: Email::parse(email).unwrap(),
        password: "correct horse battery".into(),
        name: UserName::parse("Ada").unwrap(),
    }
}

async fn signed_up(w: &World, email: &str) -> Actor {
    let profile = w.accounts.register(registration(email)).await.unwrap();
    Actor {
        user_id: profile.id,
        role: profile.role,
    }
}

#[tokio::test]
async fn register_then_login_then_refresh_rotates() {
    let w = world();
    let profile = w
        .accounts
        .register(registration("Ada@Example.com"))
        .await
        .unwrap();
    assert_eq!(profile.email, "ada@example.com");
    assert_eq!(
        (profile.role, profile.membership),
        (Role::Customer, Membership::Free)
    );
    assert_eq!(
        w.accounts
            .register(registration("ada@example.com"))
            .await
            .unwrap_err(),
        AppError::Taken("email")
    );

    let tokens = w
        .accounts
        .login("ada@example.com", "correct horse battery")
        .await
        .unwrap();
    assert_eq!(tokens.expires_in, 900);
    let actor = w.accounts.authenticate(&tokens.access_token).unwrap();
    assert_eq!(actor.user_id, profile.id);

    let next = w.accounts.refresh(&tokens.refresh_token).await.unwrap();
    assert_ne!(next.refresh_token, tokens.refresh_token, "rotated");
    // Replaying the spent token revokes the whole family, including the newest token.
    assert_eq!(
        w.accounts.refresh(&tokens.refresh_token).await.unwrap_err(),
        AppError::Unauthorized("refresh_token_reused")
    );
    assert_eq!(
        w.accounts.refresh(&next.refresh_token).await.unwrap_err(),
        AppError::Unauthorized("refresh_token_reused")
    );
    assert_eq!(
        w.accounts.refresh("made-up").await.unwrap_err(),
        AppError::Unauthorized("refresh_token_invalid")
    );
}

#[tokio::test]
async fn bad_credentials_fail_alike() {
    let w = world();
    signed_up(&w, "grace@example.com").await;
    let wrong = w
        .accounts
        .login("grace@example.com", "wrong password!")
        .await
        .unwrap_err();
    let unknown = w
        .accounts
        .login("nobody@example.com", "wrong password!")
        .await
        .unwrap_err();
    let garbage = w.accounts.login("not an email", "x").await.unwrap_err();
    assert_eq!(wrong, AppError::Unauthorized("invalid_credentials"));
    assert_eq!(unknown, wrong);
    assert_eq!(garbage, wrong);
}

#[tokio::test]
async fn registration_rules() {
    let w = world();
    let cases = [
        (
            Registration {
                password: "short".into(),
                ..registration("x@y.co")
            },
            "password",
            "password_weak",
        ),
        (
            Registration {
                password: "p".repeat(129),
                ..registration("x@y.co")
            },
            "password",
            "password_weak",
        ),
    ];
    for (r, field, code) in cases {
        match w.accounts.register(r).await.unwrap_err() {
            AppError::Invalid { field: f, error } => assert_eq!((f, error.code()), (field, code)),
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn access_tokens_expire_and_logout_ends_sessions() {
    let w = world();
    signed_up(&w, "lin@example.com").await;
    let tokens = w
        .accounts
        .login("lin@example.com", "correct horse battery")
        .await
        .unwrap();
    w.clock.advance(Duration::minutes(16));
    assert_eq!(
        w.accounts.authenticate(&tokens.access_token).unwrap_err(),
        AppError::Unauthorized("token_expired")
    );
    let fresh = w.accounts.refresh(&tokens.refresh_token).await.unwrap();
    let actor = w.accounts.authenticate(&fresh.access_token).unwrap();
    w.accounts
        .logout(&actor, Some(&fresh.refresh_token))
        .await
        .unwrap();
    assert!(w.accounts.refresh(&fresh.refresh_token).await.is_err());
}

#[tokio::test]
async fn users_are_read_through_the_cache_and_invalidated_on_change() {
    let w = world();
    let me = signed_up(&w, "cache@example.com").await;
    let key = format!("user:v1:{}", me.user_id);
    assert!(!w.cache.holds(&key));
    let first = w.accounts.get(&me, me.user_id).await.unwrap();
    assert!(w.cache.holds(&key), "a read fills the cache");
    assert_eq!(w.accounts.get(&me, me.user_id).await.unwrap(), first);
    let changed = w
        .accounts
        .update(
            &me,
            me.user_id,
            UserChanges {
                name: Some(UserName::parse("Renamed").unwrap()),
                ..UserChanges::default()
            },
        )
        .await
        .unwrap();
    assert!(!w.cache.holds(&key), "an update invalidates");
    assert_eq!(
        w.accounts.get(&me, me.user_id).await.unwrap().name,
        "Renamed"
    );
    assert_eq!(changed.name, "Renamed");
    // A broken cache degrades to the store, never to an error.
    w.cache.fail(true);
    assert_eq!(
        w.accounts.get(&me, me.user_id).await.unwrap().name,
        "Renamed"
    );
    w.cache.fail(false);
    w.accounts.delete(&me, me.user_id).await.unwrap();
    assert!(!w.cache.holds(&key), "a delete invalidates");
    assert_eq!(
        w.accounts.get(&me, me.user_id).await.unwrap_err(),
        AppError::NotFound("user")
    );
}

#[tokio::test]
async fn users_are_private_to_themselves_and_admins() {
    let w = world();
    let a = signed_up(&w, "a@example.com").await;
    let b = signed_up(&w, "b@example.com").await;
    assert_eq!(
        w.accounts.get(&a, b.user_id).await.unwrap_err(),
        AppError::NotFound("user")
    );
    let rename = UserChanges {
        name: Some(UserName::parse("Hacked").unwrap()),
        ..UserChanges::default()
    };
    assert_eq!(
        w.accounts
            .update(&a, b.user_id, rename.clone())
            .await
            .unwrap_err(),
        AppError::NotFound("user")
    );
    assert_eq!(
        w.accounts.delete(&a, b.user_id).await.unwrap_err(),
        AppError::NotFound("user")
    );
    let promote = UserChanges {
        role: Some(Role::Admin),
        ..UserChanges::default()
    };
    assert!(matches!(
        w.accounts
            .update(&a, a.user_id, promote.clone())
            .await
            .unwrap_err(),
        AppError::Forbidden(_)
    ));
    assert!(matches!(
        w.accounts
            .list(
                &a,
                PageRequest {
                    limit: 10,
                    after: None
                }
            )
            .await
            .unwrap_err(),
        AppError::Forbidden(_)
    ));
    let admin_profile = w
        .accounts
        .create_admin(
            Email::parse("root@example.com").unwrap(),
            "correct horse battery",
            UserName::parse("Root").unwrap(),
        )
        .await
        .unwrap();
    let admin = Actor {
        user_id: admin_profile.id,
        role: Role::Admin,
    };
    assert_eq!(w.accounts.get(&admin, b.user_id).await.unwrap().name, "Ada");
    assert_eq!(
        w.accounts
            .list(
                &admin,
                PageRequest {
                    limit: 10,
                    after: None
                }
            )
            .await
            .unwrap()
            .items
            .len(),
        3
    );
    assert_eq!(
        w.accounts
            .update(&admin, b.user_id, promote)
            .await
            .unwrap()
            .role,
        Role::Admin
    );
    let b_now = w.accounts.get(&b, b.user_id).await.unwrap();
    assert_eq!(b_now.name, "Ada", "nothing of B changed through A");
    let again = w
        .accounts
        .create_admin(
            Email::parse("root@example.com").unwrap(),
            "another good password",
            UserName::parse("Root").unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        again.id, admin_profile.id,
        "create-admin promotes an existing account"
    );
}

#[tokio::test]
async fn messages_belong_to_their_owner() {
    let w = world();
    let a = signed_up(&w, "ma@example.com").await;
    let b = signed_up(&w, "mb@example.com").await;
    let m = w
        .messages
        .post(&a, MessageBody::parse("hello from A").unwrap())
        .await
        .unwrap();
    assert_eq!(
        w.messages.get(&b, m.id).await.unwrap_err(),
        AppError::NotFound("message")
    );
    assert_eq!(
        w.messages
            .edit(&b, m.id, MessageBody::parse("defaced").unwrap())
            .await
            .unwrap_err(),
        AppError::NotFound("message")
    );
    assert_eq!(
        w.messages.delete(&b, m.id).await.unwrap_err(),
        AppError::NotFound("message")
    );
    let page = PageRequest {
        limit: 10,
        after: None,
    };
    assert!(
        w.messages
            .list(&b, MessageFilter::default(), page)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let theirs = MessageFilter {
        owner_id: Some(a.user_id),
        ..MessageFilter::default()
    };
    assert!(matches!(
        w.messages.list(&b, theirs, page).await.unwrap_err(),
        AppError::Forbidden(_)
    ));
    assert_eq!(
        w.messages
            .edit(&a, m.id, MessageBody::parse("edited").unwrap())
            .await
            .unwrap()
            .body
            .as_str(),
        "edited"
    );
    assert_eq!(w.messages.get(&a, m.id).await.unwrap().version, 2);
    w.messages.delete(&a, m.id).await.unwrap();
    assert_eq!(
        w.messages.get(&a, m.id).await.unwrap_err(),
        AppError::NotFound("message")
    );
}

#[tokio::test]
async fn a_membership_checkout_charges_once_and_the_event_upgrades_once() {
    use crate::memberships::MembershipUpgrade;
    use portside_events::worker::EventHandler;
    use portside_events::{InboxMark, Outbox};

    let w = world();
    let me = signed_up(&w, "vip@example.com").await;
    let checkout = || Checkout {
        method: PaymentMethod::Card,
        method_token: "tok_visa".into(),
        provider: None,
        idempotency: IdempotentRequest {
            scope: me.user_id.to_string(),
            key: IdempotencyKey::parse("vip-1").unwrap(),
            fingerprint: "fp".into(),
        },
    };
    let first = w.memberships.checkout(&me, checkout()).await.unwrap();
    assert_eq!(first.outcome.payment.status, PaymentStatus::Succeeded);
    assert_eq!(first.outcome.payment.amount.to_decimal_string(), "9.99");
    assert_eq!(
        w.accounts.get(&me, me.user_id).await.unwrap().membership,
        Membership::Free,
        "not before the event"
    );
    let again = w.memberships.checkout(&me, checkout()).await.unwrap();
    assert!(again.replayed);
    assert_eq!(
        again.outcome.payment.id, first.outcome.payment.id,
        "no second charge"
    );

    let succeeded = w
        .store
        .unpublished(1000)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.event_type == "payment.succeeded")
        .unwrap();
    let handler = MembershipUpgrade::new(w.accounts.clone(), w.price, time::Duration::days(30));
    let mark = InboxMark {
        group: "membership".into(),
        event_id: succeeded.id,
        at: OffsetDateTime::UNIX_EPOCH,
    };
    handler.handle(&succeeded, &mark).await.unwrap();
    let premium = w.accounts.get(&me, me.user_id).await.unwrap();
    assert_eq!(premium.membership, Membership::Premium);
    assert!(premium.membership_until.is_some());
    handler.handle(&succeeded, &mark).await.unwrap();
    assert_eq!(
        w.accounts
            .get(&me, me.user_id)
            .await
            .unwrap()
            .membership_until,
        premium.membership_until,
        "a redelivered event adds no second period"
    );
    let upgrades = w
        .store
        .unpublished(1000)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.event_type == "user.membership_upgraded")
        .count();
    assert_eq!(upgrades, 1, "a redelivered event upgrades once");

    // A payment that only claims to be a membership purchase upgrades nobody.
    let mut forged = succeeded.clone();
    forged.data["payment"]["amount_minor"] = serde_json::json!(1);
    let other = InboxMark {
        group: "membership".into(),
        event_id: uuid::Uuid::now_v7(),
        at: OffsetDateTime::UNIX_EPOCH,
    };
    assert!(handler.handle(&forged, &other).await.is_err());
}
