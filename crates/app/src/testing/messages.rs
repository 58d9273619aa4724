//! The contract of the message store, run by every adapter.

use std::sync::Arc;

use portside_domain::{Message, MessageBody, MessageId};
use portside_kernel::{PageRequest, StoreError};
use time::Duration;
use uuid::Uuid;

use crate::messages::{MessageFilter, MessageOrder, MessageRepository};
use crate::testing::users::{new_user, t0};
use crate::users::UserRepository;

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

    let page = |after, limit| PageRequest { limit, after };
    let ordered = |filter: &MessageFilter, order| MessageFilter {
        order,
        ..filter.clone()
    };
    let owned = MessageFilter {
        owner_id: Some(owner.id()),
        ..MessageFilter::default()
    };
    let newest = s
        .messages(&ordered(&owned, MessageOrder::Newest), page(None, 10))
        .await
        .unwrap();
    assert_eq!(
        newest.iter().map(|m| m.id).collect::<Vec<_>>(),
        mine.iter().rev().map(|m| m.id).collect::<Vec<_>>()
    );
    let oldest = s
        .messages(&ordered(&owned, MessageOrder::Oldest), page(None, 2))
        .await
        .unwrap();
    let rest = s
        .messages(
            &ordered(&owned, MessageOrder::Oldest),
            page(Some((oldest[1].created_at, oldest[1].id)), 10),
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
        .messages(&ordered(&search, MessageOrder::Oldest), page(None, 10))
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
        s.messages(&ordered(&literal, MessageOrder::Oldest), page(None, 10))
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
        .messages(&ordered(&window, MessageOrder::Oldest), page(None, 10))
        .await
        .unwrap();
    assert_eq!(inside.len(), 3, "both bounds are exclusive");
    let everyone = s
        .messages(
            &MessageFilter {
                text: Some("their".into()),
                ..MessageFilter::default()
            },
            page(None, 100),
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
    async fn the_in_memory_store_keeps_the_messages_contract() {
        message_store(Arc::new(InMemoryStore::new())).await;
    }
}
