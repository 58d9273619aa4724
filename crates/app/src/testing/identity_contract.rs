//! The contract of the user, refresh-token and message stores, run by every adapter.

use std::sync::Arc;

use portside_domain::{Email, Message, MessageBody, MessageId, Role, User, UserId, UserName};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::ports::{
    MessageFilter, MessageOrder, MessagePage, MessageRepository, Outbox, Redeemed, RefreshToken,
    RefreshTokens, StoreError, UserPage, UserRepository,
};

fn t0() -> OffsetDateTime {
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
    assert!(up.upgrade_membership(t0()));
    let mark = crate::ports::InboxMark {
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
    assert_eq!(
        s.user(u.id()).await.unwrap().unwrap().state().membership,
        portside_domain::Membership::Premium
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
        .users(UserPage {
            limit: 2,
            after: None,
        })
        .await
        .unwrap();
    assert_eq!(first.len(), 2);
    assert!(first[0].id() < first[1].id());
    let next = s
        .users(UserPage {
            limit: 2,
            after: Some(first[1].id()),
        })
        .await
        .unwrap();
    assert!(next.iter().all(|u| u.id() > first[1].id()));
}

/// Messages: CRUD, version checks, search and keyset pages.
pub async fn message_store<S>(store: Arc<S>)
where
    S: MessageRepository + UserRepository + 'static,
{
    let s = &*store;
    let mut owner = new_user("msg");
    s.insert_user(&mut owner).await.unwrap();
    let mut other = new_user("msg-other");
    s.insert_user(&mut other).await.unwrap();

    let at = |secs: i64| t0() + Duration::seconds(secs);
    let texts = [
        "Hello World",
        "second NOTE",
        "a note about ünïcode",
        "nothing",
        "Last note",
    ];
    let mut mine = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        let m = Message::post(
            MessageId(Uuid::now_v7()),
            owner.id(),
            MessageBody::parse(text).unwrap(),
            at(i as i64),
        );
        s.insert_message(&m).await.unwrap();
        mine.push(m);
    }
    let theirs = Message::post(
        MessageId(Uuid::now_v7()),
        other.id(),
        MessageBody::parse("their note").unwrap(),
        at(2),
    );
    s.insert_message(&theirs).await.unwrap();
    assert_eq!(
        s.message(mine[0].id).await.unwrap().as_ref(),
        Some(&mine[0])
    );

    let page = |order, after, limit| MessagePage {
        limit,
        order,
        after,
    };
    let owned = MessageFilter {
        owner_id: Some(owner.id()),
        ..MessageFilter::default()
    };
    let newest = s
        .messages(&owned, page(MessageOrder::Newest, None, 10))
        .await
        .unwrap();
    assert_eq!(
        newest.iter().map(|m| m.id).collect::<Vec<_>>(),
        mine.iter().rev().map(|m| m.id).collect::<Vec<_>>()
    );
    let oldest = s
        .messages(&owned, page(MessageOrder::Oldest, None, 2))
        .await
        .unwrap();
    let rest = s
        .messages(
            &owned,
            page(
                MessageOrder::Oldest,
                Some((oldest[1].created_at, oldest[1].id)),
                10,
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        oldest
            .iter()
            .chain(rest.iter())
            .map(|m| m.id)
            .collect::<Vec<_>>(),
        mine.iter().map(|m| m.id).collect::<Vec<_>>()
    );

    let search = MessageFilter {
        text: Some("NoTe".into()),
        ..owned.clone()
    };
    let found = s
        .messages(&search, page(MessageOrder::Oldest, None, 10))
        .await
        .unwrap();
    assert_eq!(
        found.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
        vec!["second NOTE", "a note about ünïcode", "Last note"]
    );
    let literal = MessageFilter {
        text: Some("%".into()),
        ..owned.clone()
    };
    assert!(
        s.messages(&literal, page(MessageOrder::Oldest, None, 10))
            .await
            .unwrap()
            .is_empty(),
        "wildcards are literal"
    );
    let window = MessageFilter {
        created_after: Some(at(0)),
        created_before: Some(at(4)),
        ..owned.clone()
    };
    let inside = s
        .messages(&window, page(MessageOrder::Oldest, None, 10))
        .await
        .unwrap();
    assert_eq!(inside.len(), 3, "both bounds are exclusive");
    let everyone = s
        .messages(
            &MessageFilter {
                text: Some("their".into()),
                ..MessageFilter::default()
            },
            page(MessageOrder::Newest, None, 100),
        )
        .await
        .unwrap();
    assert!(everyone.iter().any(|m| m.id == theirs.id));

    let mut edited = mine[3].clone();
    edited.edit(MessageBody::parse("changed").unwrap(), at(10));
    s.update_message(&edited).await.unwrap();
    let mut stale = mine[3].clone();
    stale.edit(MessageBody::parse("lost").unwrap(), at(11));
    assert_eq!(s.update_message(&stale).await, Err(StoreError::Conflict));
    assert_eq!(
        s.message(mine[3].id).await.unwrap().unwrap().body.as_str(),
        "changed"
    );

    assert!(s.delete_message(mine[4].id).await.unwrap());
    assert!(!s.delete_message(mine[4].id).await.unwrap());
    assert!(s.message(mine[4].id).await.unwrap().is_none());

    let mut gone = s.user(other.id()).await.unwrap().unwrap();
    gone.delete(t0());
    s.delete_user(&mut gone).await.unwrap();
    assert!(
        s.message(theirs.id).await.unwrap().is_none(),
        "a deleted user's messages go with them"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::fakes::InMemoryStore;

    #[tokio::test]
    async fn the_in_memory_store_keeps_the_identity_contract() {
        let store = Arc::new(InMemoryStore::new());
        user_store(store.clone()).await;
        message_store(store).await;
    }
}
