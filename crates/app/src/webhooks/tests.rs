//! Use-case tests of webhook endpoints over the in-memory store.

use std::sync::Arc;

use portside_domain::webhook::{UrlPolicy, WebhookMessage, WebhookSecret};
use portside_domain::{Actor, Role, UserId};
use portside_kernel::PageRequest;
use time::OffsetDateTime;

use crate::AppError;
use crate::testing::fakes::{InMemoryStore, ManualClock, SequentialIds};
use crate::webhooks::{NewEndpoint, WebhookEndpoints, WebhookSettings};

fn admin() -> Actor {
    Actor {
        user_id: UserId(uuid::Uuid::from_u128(1)),
        role: Role::Admin,
    }
}

fn endpoints(max: u32) -> WebhookEndpoints {
    WebhookEndpoints::new(
        Arc::new(InMemoryStore::new()),
        Arc::new(ManualClock::at(OffsetDateTime::UNIX_EPOCH)),
        Arc::new(SequentialIds::default()),
        WebhookSettings {
            urls: UrlPolicy::default(),
            max_endpoints: max,
            ..WebhookSettings::default()
        },
    )
}

fn new(url: &str, types: Option<Vec<&str>>) -> NewEndpoint {
    NewEndpoint {
        url: url.into(),
        description: Some("shop front".into()),
        event_types: types.map(|t| t.into_iter().map(str::to_owned).collect()),
    }
}

fn refused_field(r: Result<impl std::fmt::Debug, AppError>) -> (String, String) {
    match r {
        Err(AppError::Invalid { field, error }) => (field.to_owned(), error.code().to_owned()),
        Err(AppError::Refused { refusals, .. }) => {
            (refusals[0].field.clone(), refusals[0].code.clone())
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn administrators_register_endpoints_with_a_secret_of_their_own() {
    let e = endpoints(2);
    let first = e
        .create(
            &admin(),
            new(
                "https://hooks.example.com/a",
                Some(vec!["payment.succeeded"]),
            ),
        )
        .await
        .unwrap();
    let secret = e.reveal_secret(&admin(), first.id).await.unwrap();
    assert!(secret.starts_with("whsec_"));
    let second = e
        .create(&admin(), new("https://hooks.example.com/b", None))
        .await
        .unwrap();
    assert_ne!(
        e.reveal_secret(&admin(), second.id).await.unwrap(),
        secret,
        "each endpoint has its own secret"
    );
    // The secret signs as the endpoint's receiver will verify.
    let key = WebhookSecret::parse(&secret).unwrap();
    let message = WebhookMessage {
        id: "msg_1",
        timestamp: 1,
        body: b"{}",
    };
    assert!(message.signature(&[key]).starts_with("v1,"));

    assert_eq!(
        refused_field(
            e.create(&admin(), new("https://hooks.example.com/c", None))
                .await
        ),
        ("url".into(), "webhook_endpoints_limit".into())
    );
    let page = e
        .list(
            &admin(),
            PageRequest {
                limit: 1,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert!(page.next.is_some());
    e.delete(&admin(), first.id).await.unwrap();
    assert!(matches!(
        e.get(&admin(), first.id).await,
        Err(AppError::NotFound("webhook_endpoint"))
    ));
    assert!(matches!(
        e.delete(&admin(), first.id).await,
        Err(AppError::NotFound("webhook_endpoint"))
    ));
}

#[tokio::test]
async fn bad_endpoints_are_refused_by_field_and_customers_are_turned_away() {
    let e = endpoints(10);
    for (endpoint, field, code) in [
        (new("not a url", None), "url", "webhook_url_invalid"),
        (
            new("http://hooks.example.com/x", None),
            "url",
            "webhook_url_invalid",
        ),
        (
            new("https://10.0.0.1/x", None),
            "url",
            "webhook_url_invalid",
        ),
        (
            new(
                "https://hooks.example.com/x",
                Some(vec!["payment.exploded"]),
            ),
            "event_types",
            "event_types_invalid",
        ),
        (
            new("https://hooks.example.com/x", Some(vec![])),
            "event_types",
            "event_types_invalid",
        ),
    ] {
        assert_eq!(
            refused_field(e.create(&admin(), endpoint).await),
            (field.to_owned(), code.to_owned())
        );
    }
    let mut long = new("https://hooks.example.com/x", None);
    long.description = Some("d".repeat(501));
    assert_eq!(
        refused_field(e.create(&admin(), long).await),
        ("description".into(), "text_too_long".into())
    );
    let customer = Actor {
        user_id: UserId(uuid::Uuid::from_u128(2)),
        role: Role::Customer,
    };
    assert!(matches!(
        e.create(&customer, new("https://hooks.example.com/x", None))
            .await,
        Err(AppError::Forbidden(_))
    ));
}
