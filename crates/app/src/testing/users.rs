//! The contract of the user and refresh-token stores, run by every adapter.

use std::sync::Arc;

use portside_domain::{Aggregate, Email, Role, User, UserId, UserName};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use portside_events::Outbox;

use portside_kernel::{PageRequest, StoreError};

use crate::users::{Redeemed, RefreshToken, RefreshTokens, UserRepository};

pub(crate) fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(1_800_000_000_654_321_000).unwrap()
}

/// A new, unsaved user with a unique email.
pub fn new_user(tag: &str) -> User {
    let unique = Uuid::now_v7().simple().to_string();
    User::register(
        UserId(Uuid::now_v7()),
        Email::parse(&format!("{tag}.{unique}@example.com")).unwrap(),
        UserName::parse(&format!("User {tag}")).unwrap(),
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        Role::Customer,
        t0(),
    )
}

/// Users, their refresh tokens and their outbox events.
pub async fn user_store<S>(store: Arc<S>)
where
    S: UserRepository + RefreshTokens + Outbox + 'static,
{
    let s = &*store;
    users_round_trip_and_stay_unique(s).await;
    updates_are_version_checked(s).await;
    refresh_tokens_rotate_once(s).await;
    deleting_a_user_removes_their_tokens(s).await;
    users_page_in_id_order(s).await;
}

async fn users_round_trip_and_stay_unique<S: UserRepository + Outbox>(s: &S) {
    let mut u = new_user("rt");
    s.insert_user(&mut u).await.unwrap();
    assert!(u.pending_events().is_empty());
    let loaded = s.user(u.id()).await.unwrap().expect("stored");
    assert_eq!(loaded.state(), u.state());
    let by_email = s
        .user_by_email(&u.state().email)
        .await
        .unwrap()
        .expect("found by email");
    assert_eq!(by_email.id(), u.id());
    assert!(
        s.user_by_email(&Email::parse("nobody@example.com").unwrap())
            .await
            .unwrap()
            .is_none()
    );

    let mut twin = new_user("twin");
    twin.update(None, Some(u.state().email.clone()), None, None, t0());
    let mut twin = User::register(
        UserId(Uuid::now_v7()),
        u.state().email.clone(),
        twin.state().name.clone(),
        "h".into(),
        Role::Customer,
        t0(),
    );
    assert_eq!(
        s.insert_user(&mut twin).await,
        Err(StoreError::Duplicate),
        "emails are unique"
    );
    assert!(s.user(twin.id()).await.unwrap().is_none());

    let events = s.unpublished(100_000).await.unwrap();
    let mine: Vec<_> = events
        .iter()
        .filter(|e| e.aggregate_id == u.id().to_string())
        .collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(
        (mine[0].aggregate_type.as_str(), mine[0].event_type.as_str()),
        ("user", "user.registered")
    );
    assert!(
        mine[0].data.to_string().find("argon2").is_none(),
        "no password hash in events"
    );
}

async fn updates_are_version_checked<S: UserRepository>(s: &S) {
    let mut u = new_user("upd");
    s.insert_user(&mut u).await.unwrap();
    let mut a = s.user(u.id()).await.unwrap().unwrap();
    let mut b = a.clone();
    a.update(
        Some(UserName::parse("First").unwrap()),
        None,
        None,
        None,
        t0(),
    );
    s.update_user(&mut a, None).await.unwrap();
    b.update(
        Some(UserName::parse("Second").unwrap()),
        None,
        None,
        None,
        t0(),
    );
    assert_eq!(s.update_user(&mut b, None).await, Err(StoreError::Conflict));
    let loaded = s.user(u.id()).await.unwrap().unwrap();
    assert_eq!(loaded.state().name.as_str(), "First");

    let mut other = new_user("other");
    s.insert_user(&mut other).await.unwrap();
    let mut c = s.user(u.id()).await.unwrap().unwrap();
    c.update(None, Some(other.state().email.clone()), None, None, t0());
    assert_eq!(
        s.update_user(&mut c, None).await,
        Err(StoreError::Duplicate)
    );
    let mut up = s.user(u.id()).await.unwrap().unwrap();
    up.add_membership_period(Duration::days(30), t0());
    let mark = portside_events::InboxMark {
        group: "contract".into(),
        event_id: Uuid::now_v7(),
        at: t0(),
    };
    let mut twice = up.clone();
    s.update_user(&mut up, Some(&mark)).await.unwrap();
    twice.update(
        Some(UserName::parse("Replayed").unwrap()),
        None,
        None,
        None,
        t0(),
    );
    assert_eq!(
        s.update_user(&mut twice, Some(&mark)).await,
        Err(StoreError::AlreadyProcessed),
        "one event, one effect"
    );
    assert_ne!(
        s.user(u.id()).await.unwrap().unwrap().state().name.as_str(),
        "Replayed"
    );
    let premium = s.user(u.id()).await.unwrap().unwrap();
    assert_eq!(
        premium.state(),
        up.state(),
        "the membership's end survives the store"
    );
    assert_eq!(
        premium.state().membership,
        portside_domain::Membership::Premium
    );
    // Memberships ended by a given time, for the expiry task.
    let end = t0() + Duration::days(30);
    assert!(
        !s.memberships_ended_by(end - Duration::seconds(1), 1000)
            .await
            .unwrap()
            .contains(&u.id())
    );
    assert!(
        s.memberships_ended_by(end, 100_000)
            .await
            .unwrap()
            .contains(&u.id())
    );
}

fn token(user: UserId, family: Uuid, digest: &str, expires_at: OffsetDateTime) -> RefreshToken {
    RefreshToken {
        id: Uuid::now_v7(),
        family_id: family,
        user_id: user,
        digest: digest.to_owned(),
        created_at: t0(),
        expires_at,
    }
}

async fn refresh_tokens_rotate_once<S: UserRepository + RefreshTokens>(s: &S) {
    let mut u = new_user("tok");
    s.insert_user(&mut u).await.unwrap();
    let family = Uuid::now_v7();
    let d1 = format!("d1-{}", Uuid::now_v7());
    let t1 = token(u.id(), family, &d1, t0() + Duration::days(30));
    s.issue(&t1).await.unwrap();
    assert_eq!(
        s.redeem(&d1, t0()).await.unwrap(),
        Redeemed::Fresh(t1.clone())
    );
    assert_eq!(
        s.redeem(&d1, t0()).await.unwrap(),
        Redeemed::Reused(t1.clone()),
        "spent tokens are reuse"
    );
    assert_eq!(
        s.redeem("no-such-digest", t0()).await.unwrap(),
        Redeemed::Unknown
    );

    let d2 = format!("d2-{}", Uuid::now_v7());
    let t2 = token(u.id(), family, &d2, t0() + Duration::days(30));
    s.issue(&t2).await.unwrap();
    s.revoke_family(family, t0()).await.unwrap();
    assert_eq!(
        s.redeem(&d2, t0()).await.unwrap(),
        Redeemed::Reused(t2),
        "revoked tokens do not work"
    );

    let d3 = format!("d3-{}", Uuid::now_v7());
    s.issue(&token(
        u.id(),
        Uuid::now_v7(),
        &d3,
        t0() + Duration::seconds(10),
    ))
    .await
    .unwrap();
    assert_eq!(
        s.redeem(&d3, t0() + Duration::seconds(11)).await.unwrap(),
        Redeemed::Unknown,
        "expired tokens do not work"
    );

    let mut v = new_user("tok2");
    s.insert_user(&mut v).await.unwrap();
    let d4 = format!("d4-{}", Uuid::now_v7());
    let t4 = token(u.id(), Uuid::now_v7(), &d4, t0() + Duration::days(1));
    s.issue(&t4).await.unwrap();
    s.revoke_family_of(&d4, v.id(), t0()).await.unwrap();
    assert_eq!(
        s.redeem(&d4, t0()).await.unwrap(),
        Redeemed::Fresh(t4.clone()),
        "another user cannot revoke it"
    );
    let d5 = format!("d5-{}", Uuid::now_v7());
    let t5 = token(u.id(), t4.family_id, &d5, t0() + Duration::days(1));
    s.issue(&t5).await.unwrap();
    s.revoke_family_of(&d5, u.id(), t0()).await.unwrap();
    assert!(matches!(
        s.redeem(&d5, t0()).await.unwrap(),
        Redeemed::Reused(_)
    ));

    let d6 = format!("d6-{}", Uuid::now_v7());
    s.issue(&token(
        u.id(),
        Uuid::now_v7(),
        &d6,
        t0() + Duration::days(1),
    ))
    .await
    .unwrap();
    s.revoke_user(u.id(), t0()).await.unwrap();
    assert!(matches!(
        s.redeem(&d6, t0()).await.unwrap(),
        Redeemed::Reused(_)
    ));
}

async fn deleting_a_user_removes_their_tokens<S: UserRepository + RefreshTokens>(s: &S) {
    let mut u = new_user("del");
    s.insert_user(&mut u).await.unwrap();
    let d = format!("del-{}", Uuid::now_v7());
    s.issue(&token(u.id(), Uuid::now_v7(), &d, t0() + Duration::days(1)))
        .await
        .unwrap();
    let mut loaded = s.user(u.id()).await.unwrap().unwrap();
    loaded.delete(t0());
    s.delete_user(&mut loaded).await.unwrap();
    assert!(s.user(u.id()).await.unwrap().is_none());
    assert_eq!(s.redeem(&d, t0()).await.unwrap(), Redeemed::Unknown);
    let mut again = u.clone();
    again.mark_saved();
    let mut again = User::restore(again.state().clone());
    again.delete(t0());
    assert_eq!(
        s.delete_user(&mut again).await,
        Err(StoreError::Conflict),
        "deleting twice finds nothing"
    );
}

async fn users_page_in_id_order<S: UserRepository>(s: &S) {
    for i in 0..3 {
        let mut u = new_user(&format!("page{i}"));
        s.insert_user(&mut u).await.unwrap();
    }
    let first = s
        .users(PageRequest {
            limit: 2,
            after: None,
        })
        .await
        .unwrap();
    assert_eq!(first.len(), 2);
    assert!(first[0].id() < first[1].id());
    let next = s
        .users(PageRequest {
            limit: 2,
            after: Some(first[1].id()),
        })
        .await
        .unwrap();
    assert!(next.iter().all(|u| u.id() > first[1].id()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::fakes::InMemoryStore;

    #[tokio::test]
    async fn the_in_memory_store_keeps_the_users_contract() {
        let store = Arc::new(InMemoryStore::new());
        user_store(store.clone()).await;
    }
}
