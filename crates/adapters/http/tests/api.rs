//! The real router in-process (tower `oneshot`), on a real SQLite file and, when reachable, a
//! real PostgreSQL schema: the README walk-through, every bad input of the payments API, the
//! idempotency race, and the middleware (request ids, panics, health, OpenAPI).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use portside_app::payments::{PaymentSettings, Payments, Providers};
use portside_app::ports::{
    ChargeRequest, IdempotencyStore, PaymentProvider, PaymentRepository, Probe, ProviderError,
    ProviderOutcome, RefundRequest, SystemClock, UuidV7,
};
use portside_http::{ApiState, router};
use portside_providers::MockProvider;
use portside_sql::{PoolSettings, SqlStore};
use serde_json::{Value, json};
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, Executor};
use tower::ServiceExt;

/// A provider that panics, to prove a panic becomes a 500 problem.
struct Boom;

#[async_trait]
impl PaymentProvider for Boom {
    async fn charge(&self, _: &ChargeRequest) -> Result<ProviderOutcome, ProviderError> {
        panic!("provider exploded")
    }
    async fn refund(&self, _: &RefundRequest) -> Result<ProviderOutcome, ProviderError> {
        panic!("provider exploded")
    }
}

fn app<S>(store: S) -> Router
where
    S: PaymentRepository + IdempotencyStore + Probe + Clone + 'static,
{
    let payments = Payments::new(
        Arc::new(store.clone()),
        Arc::new(store.clone()),
        Providers::new("mock", Arc::new(MockProvider::new())).with("boom", Arc::new(Boom)),
        Arc::new(SystemClock),
        Arc::new(UuidV7),
        PaymentSettings::default(),
    );
    router(ApiState {
        payments: Arc::new(payments),
        probes: Arc::new(vec![Arc::new(store)]),
    })
}

async fn sqlite_app() -> Router {
    let path = std::env::temp_dir().join(format!(
        "portside-http-{}.db",
        uuid::Uuid::now_v7().simple()
    ));
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display())).unwrap();
    let store = SqlStore::sqlite(options, PoolSettings::default())
        .await
        .unwrap();
    portside_sql::AnyStore::Sqlite(store.clone())
        .migrate()
        .await
        .unwrap();
    app(store)
}

fn require_services() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var("PORTSIDE_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

async fn postgres_app() -> Option<(Router, String, sqlx::PgConnection)> {
    let url = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let mut admin = match sqlx::PgConnection::connect(&url).await {
        Ok(c) => c,
        Err(e) if !require_services() => {
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED: PostgreSQL at {url} is unreachable ({e}); CI=true makes this a failure ***\n"
            );
            return None;
        }
        Err(e) => panic!("PostgreSQL at {url} is required (CI=true): {e}"),
    };
    let schema = format!("h_{}", uuid::Uuid::now_v7().simple());
    admin
        .execute(format!("CREATE SCHEMA {schema}").as_str())
        .await
        .unwrap();
    let options = PgConnectOptions::from_str(&url)
        .unwrap()
        .options([("search_path", schema.as_str())]);
    let store = SqlStore::postgres(options, PoolSettings::default())
        .await
        .unwrap();
    portside_sql::AnyStore::Postgres(store.clone())
        .migrate()
        .await
        .unwrap();
    Some((app(store), schema, admin))
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Reply {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(
            body.map(|b| Body::from(b.to_owned()))
                .unwrap_or_else(Body::empty),
        )
        .unwrap();
    let response = app.clone().oneshot(req).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Reply {
        status,
        headers,
        body,
    }
}

const JSON: (&str, &str) = ("content-type", "application/json");

async fn post(app: &Router, uri: &str, body: Value, key: Option<&str>) -> Reply {
    let mut headers = vec![JSON];
    if let Some(k) = key {
        headers.push(("idempotency-key", k));
    }
    call(app, "POST", uri, &headers, Some(&body.to_string())).await
}

fn payment(customer: &str, amount: Value, currency: &str, token: &str) -> Value {
    json!({"customer_id": customer, "amount": amount, "currency": currency, "payment_method": "credit_card", "payment_method_token": token})
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

async fn count_payments(app: &Router, customer: &str) -> usize {
    let r = call(
        app,
        "GET",
        &format!("/api/v1/payments?customer_id={customer}&limit=100"),
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    r.body["data"].as_array().unwrap().len()
}

async fn walk_through(app: &Router) {
    let customer = unique("walk");
    let key = unique("key");
    let body = json!({"customer_id": customer, "amount": 99.99, "currency": "USD", "payment_method": "credit_card", "payment_method_token": "tok_visa", "metadata": {"order_id": "1001"}});
    let paid = post(app, "/api/v1/payments", body.clone(), Some(&key)).await;
    assert_eq!(paid.status, StatusCode::CREATED, "{}", paid.body);
    assert_eq!(paid.body["status"], "succeeded");
    assert_eq!(paid.body["amount"], "99.99");
    assert_eq!(paid.body["refundable_amount"], "99.99");
    assert_eq!(paid.body["metadata"]["order_id"], "1001");
    let id = paid.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        paid.headers["location"],
        format!("/api/v1/payments/{id}").as_str()
    );
    assert!(paid.headers.get("idempotent-replayed").is_none());

    let got = call(app, "GET", &format!("/api/v1/payments/{id}"), &[], None).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(
        got.body, paid.body,
        "a read returns what the write answered"
    );

    let partial = post(
        app,
        &format!("/api/v1/payments/{id}/refunds"),
        json!({"amount": "30.00", "reason": "damaged"}),
        None,
    )
    .await;
    assert_eq!(partial.status, StatusCode::CREATED, "{}", partial.body);
    assert_eq!(partial.body["object"], "refund");
    assert_eq!(partial.body["amount"], "30.00");
    assert_eq!(partial.body["payment"]["status"], "partially_refunded");
    assert_eq!(partial.body["payment"]["refundable_amount"], "69.99");

    // Seed-compatible spelling, no body at all: refunds what remains.
    let full = call(
        app,
        "POST",
        &format!("/api/v1/payments/{id}/refund"),
        &[],
        None,
    )
    .await;
    assert_eq!(full.status, StatusCode::CREATED, "{}", full.body);
    assert_eq!(full.body["amount"], "69.99");
    assert_eq!(full.body["payment"]["status"], "refunded");

    // The same key re-serialized differently (key order, spacing) is the same request.
    let again = call(
        app,
        "POST",
        "/api/v1/payments",
        &[JSON, ("idempotency-key", &key)],
        Some(&serde_json::to_string_pretty(&body).unwrap()),
    )
    .await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(
        again.body, paid.body,
        "the original response, byte for byte in content"
    );

    let txns = call(
        app,
        "GET",
        &format!("/api/v1/payments/{id}/transactions"),
        &[],
        None,
    )
    .await;
    let kinds: Vec<_> = txns.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["object"].as_str().unwrap().to_owned(),
                t["amount"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("charge".into(), "99.99".into()),
            ("refund".into(), "30.00".into()),
            ("refund".into(), "69.99".into())
        ]
    );
    assert_eq!(count_payments(app, &customer).await, 1);
}

async fn bad_inputs(app: &Router) {
    let customer = unique("bad");
    let ok = post(
        app,
        "/api/v1/payments",
        payment(&customer, json!("10.00"), "USD", "tok_visa"),
        None,
    )
    .await;
    assert_eq!(ok.status, StatusCode::CREATED);
    let id = ok.body["id"].as_str().unwrap().to_owned();
    let declined = post(
        app,
        "/api/v1/payments",
        payment(&customer, json!("5.00"), "USD", "tok_chargeDeclined"),
        None,
    )
    .await;
    let failed_id = declined.body["payment"]["id"].as_str().unwrap().to_owned();
    let before = count_payments(app, &customer).await;

    let cases: Vec<(&str, Value, StatusCode, &str, &str)> = vec![
        (
            "zero",
            payment(&customer, json!(0), "USD", "tok_visa"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "amount_too_small",
            "amount",
        ),
        (
            "negative",
            payment(&customer, json!(-5), "USD", "tok_visa"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "amount_too_small",
            "amount",
        ),
        (
            "above the limit",
            payment(&customer, json!("1000000.00"), "USD", "tok_visa"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "amount_too_large",
            "amount",
        ),
        (
            "absurd",
            payment(
                &customer,
                json!("99999999999999999999999999"),
                "USD",
                "tok_visa",
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "amount_too_large",
            "amount",
        ),
        (
            "three decimals in USD",
            payment(&customer, json!(10.001), "USD", "tok_visa"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "amount_too_precise",
            "amount",
        ),
        (
            "decimals in JPY",
            payment(&customer, json!("100.5"), "JPY", "tok_visa"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "amount_too_precise",
            "amount",
        ),
        (
            "unknown currency",
            payment(&customer, json!("1.00"), "XYZ", "tok_visa"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "currency_unknown",
            "currency",
        ),
        (
            "amount of the wrong type",
            payment(&customer, json!(true), "USD", "tok_visa"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "amount",
        ),
        (
            "customer of the wrong type",
            json!({"customer_id": 5, "amount": "1", "currency": "USD", "payment_method_token": "tok_visa"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "customer_id",
        ),
        (
            "typo in a field name",
            json!({"customer_id": customer, "amout": "1", "amount": "1", "currency": "USD", "payment_method_token": "tok_visa"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "amout",
        ),
        (
            "missing token",
            json!({"customer_id": customer, "amount": "1", "currency": "USD"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "body",
        ),
        (
            "unknown method",
            json!({"customer_id": customer, "amount": "1", "currency": "USD", "payment_method": "cash", "payment_method_token": "tok_visa"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "payment_method_unknown",
            "payment_method",
        ),
        (
            "unknown provider",
            json!({"customer_id": customer, "amount": "1", "currency": "USD", "provider": "acme", "payment_method_token": "tok_visa"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "provider_unknown",
            "provider",
        ),
        (
            "customer with spaces",
            payment("a b", json!("1"), "USD", "tok_visa"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "customer_id_invalid",
            "customer_id",
        ),
        (
            "metadata value too long",
            json!({"customer_id": customer, "amount": "1", "currency": "USD", "payment_method_token": "tok_visa", "metadata": {"k": "x".repeat(501)}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "metadata_invalid",
            "metadata",
        ),
    ];
    for (name, body, status, code, field) in cases {
        let r = post(app, "/api/v1/payments", body, None).await;
        assert_eq!(r.status, status, "{name}: {}", r.body);
        assert_eq!(
            r.headers["content-type"], "application/problem+json",
            "{name}"
        );
        assert_eq!(r.body["code"], code, "{name}: {}", r.body);
        assert_eq!(r.body["errors"][0]["field"], field, "{name}: {}", r.body);
        assert_eq!(r.body["status"], status.as_u16(), "{name}");
    }

    let exponent = format!(
        r#"{{"customer_id":"{customer}","amount":1e3,"currency":"USD","payment_method_token":"tok_visa"}}"#
    );
    let r = call(app, "POST", "/api/v1/payments", &[JSON], Some(&exponent)).await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("amount_invalid")),
        "{}",
        r.body
    );
    let malformed = call(
        app,
        "POST",
        "/api/v1/payments",
        &[JSON],
        Some("{\"customer_id\": "),
    )
    .await;
    assert_eq!(
        (malformed.status, malformed.body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("malformed_json"))
    );
    let not_json = call(
        app,
        "POST",
        "/api/v1/payments",
        &[("content-type", "text/plain")],
        Some("hello"),
    )
    .await;
    assert_eq!(
        (not_json.status, not_json.body["code"].as_str()),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Some("unsupported_media_type")
        )
    );
    let huge = json!({"customer_id": customer, "amount": "1", "currency": "USD", "payment_method_token": "tok_visa", "description": "x".repeat(70_000)});
    let too_big = post(app, "/api/v1/payments", huge, None).await;
    assert_eq!(
        (too_big.status, too_big.body["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large"))
    );

    let unknown = uuid::Uuid::now_v7();
    for uri in [
        format!("/api/v1/payments/{unknown}"),
        "/api/v1/payments/not-a-uuid".to_owned(),
        format!("/api/v1/payments/{unknown}/transactions"),
    ] {
        let r = call(app, "GET", &uri, &[], None).await;
        assert_eq!(
            (r.status, r.body["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("payment_not_found")),
            "{uri}"
        );
    }
    let r = post(
        app,
        &format!("/api/v1/payments/{unknown}/refunds"),
        json!({}),
        None,
    )
    .await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("payment_not_found"))
    );

    let refund = |body: Value, target: String| async move {
        post(
            app,
            &format!("/api/v1/payments/{target}/refunds"),
            body,
            None,
        )
        .await
    };
    let r = refund(json!({"amount": "10.01"}), id.clone()).await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("refund_exceeds_refundable")
        )
    );
    let r = refund(json!({"amount": "1.00", "currency": "EUR"}), id.clone()).await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("currency_mismatch"))
    );
    let r = refund(json!({"amount": "0"}), id.clone()).await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("amount_too_small"))
    );
    let r = refund(json!({"amount": "1.001"}), id.clone()).await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("amount_too_precise"))
    );
    let r = refund(json!({"amount": "1.00", "amnt": 1}), id.clone()).await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_field"))
    );
    let r = refund(json!({}), failed_id.clone()).await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (StatusCode::CONFLICT, Some("payment_not_refundable"))
    );

    // The same key with another amount.
    let key = unique("k");
    assert_eq!(
        post(
            app,
            "/api/v1/payments",
            payment(&customer, json!("2.00"), "USD", "tok_visa"),
            Some(&key)
        )
        .await
        .status,
        StatusCode::CREATED
    );
    let r = post(
        app,
        "/api/v1/payments",
        payment(&customer, json!("3.00"), "USD", "tok_visa"),
        Some(&key),
    )
    .await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("idempotency_key_reused")
        )
    );
    let mut with_body_key = payment(&customer, json!("2.00"), "USD", "tok_visa");
    with_body_key["idempotency_key"] = json!("other");
    let r = post(app, "/api/v1/payments", with_body_key, Some(&key)).await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("idempotency_key_mismatch"))
    );
    let r = post(
        app,
        "/api/v1/payments",
        payment(&customer, json!("2.00"), "USD", "tok_visa"),
        Some("has space"),
    )
    .await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("idempotency_key_invalid"))
    );

    // Nothing above changed anything: one more payment (the keyed one), the first untouched.
    assert_eq!(count_payments(app, &customer).await, before + 1);
    let first = call(app, "GET", &format!("/api/v1/payments/{id}"), &[], None).await;
    assert_eq!(first.body["refunded_amount"], "0.00");
    assert_eq!(first.body["status"], "succeeded");
    let txns = call(
        app,
        "GET",
        &format!("/api/v1/payments/{id}/transactions"),
        &[],
        None,
    )
    .await;
    assert_eq!(txns.body["data"].as_array().unwrap().len(), 1);

    for (query, param) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("cursor=%%%", "cursor"),
        ("cursor=AAAA", "cursor"),
        ("status=paid", "status"),
        ("stauts=failed", "stauts"),
        ("customer_id=a%20b", "customer_id"),
    ] {
        let r = call(app, "GET", &format!("/api/v1/payments?{query}"), &[], None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.body);
        assert_eq!(r.body["errors"][0]["field"], param, "{query}: {}", r.body);
    }
    let r = call(app, "GET", "/api/v1/nothing-here", &[], None).await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let r = call(app, "DELETE", "/api/v1/payments", &[], None).await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed"))
    );
}

async fn provider_outcomes(app: &Router) {
    let customer = unique("prov");
    let declined = post(
        app,
        "/api/v1/payments",
        payment(
            &customer,
            json!("5.00"),
            "USD",
            "tok_chargeDeclinedInsufficientFunds",
        ),
        None,
    )
    .await;
    assert_eq!(declined.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(declined.body["code"], "card_declined");
    assert_eq!(declined.body["decline_code"], "insufficient_funds");
    assert_eq!(declined.body["payment"]["status"], "failed");
    let id = declined.body["payment"]["id"].as_str().unwrap();
    let stored = call(app, "GET", &format!("/api/v1/payments/{id}"), &[], None).await;
    assert_eq!(stored.body["failure"]["decline_code"], "insufficient_funds");

    let error = post(
        app,
        "/api/v1/payments",
        payment(&customer, json!("5.00"), "USD", "tok_processing_error"),
        None,
    )
    .await;
    assert_eq!(
        (error.status, error.body["code"].as_str()),
        (StatusCode::PAYMENT_REQUIRED, Some("processing_error"))
    );

    let key = unique("timeout");
    let body = payment(&customer, json!(500), "JPY", "tok_timeout");
    let pending = post(app, "/api/v1/payments", body.clone(), Some(&key)).await;
    assert_eq!(pending.status, StatusCode::ACCEPTED, "{}", pending.body);
    assert_eq!(pending.body["status"], "processing");
    assert_eq!(pending.body["amount"], "500");
    let retried = post(app, "/api/v1/payments", body, Some(&key)).await;
    assert_eq!(retried.status, StatusCode::CREATED, "{}", retried.body);
    assert_eq!(
        retried.body["id"], pending.body["id"],
        "the retry finished the same payment"
    );
    assert_eq!(retried.body["status"], "succeeded");

    let refusing = post(
        app,
        "/api/v1/payments",
        payment(&customer, json!("8.00"), "USD", "tok_refundFail"),
        None,
    )
    .await;
    let rid = refusing.body["id"].as_str().unwrap();
    let refused = post(
        app,
        &format!("/api/v1/payments/{rid}/refunds"),
        json!({"amount": "3"}),
        None,
    )
    .await;
    assert_eq!(
        (refused.status, refused.body["code"].as_str()),
        (StatusCode::PAYMENT_REQUIRED, Some("refund_failed"))
    );
    assert_eq!(refused.body["refund"]["status"], "failed");
    assert_eq!(
        refused.body["refund"]["payment"]["refundable_amount"],
        "8.00"
    );

    let boom = json!({"customer_id": customer, "amount": "1", "currency": "USD", "provider": "boom", "payment_method_token": "tok_visa"});
    let r = post(app, "/api/v1/payments", boom, None).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.headers["content-type"], "application/problem+json");
    assert_eq!(r.body["code"], "internal_error");
    assert!(
        !r.body.to_string().contains("exploded"),
        "no panic message leaks"
    );
}

/// 20 requests with one key at once: exactly one payment; every answer is it or a 409.
async fn idempotency_race(app: &Router) {
    let customer = unique("race");
    let key = unique("race");
    let body = payment(&customer, json!("42.00"), "USD", "tok_visa");
    let mut racers = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (app, body, key) = (app.clone(), body.clone(), key.clone());
        racers.spawn(async move { post(&app, "/api/v1/payments", body, Some(&key)).await });
    }
    let mut ids = std::collections::HashSet::new();
    let (mut created, mut conflicts) = (0, 0);
    while let Some(r) = racers.join_next().await {
        let r = r.unwrap();
        match r.status {
            StatusCode::CREATED => {
                created += 1;
                ids.insert(r.body["id"].as_str().unwrap().to_owned());
            }
            StatusCode::CONFLICT => {
                conflicts += 1;
                assert_eq!(r.body["code"], "idempotency_key_in_use");
                assert!(r.headers.contains_key("retry-after"));
            }
            other => panic!("unexpected {other}: {}", r.body),
        }
    }
    assert_eq!(created + conflicts, 20);
    assert!(created >= 1);
    assert_eq!(ids.len(), 1, "every 201 is the same payment");
    assert_eq!(
        count_payments(app, &customer).await,
        1,
        "exactly one payment exists"
    );
    let id = ids.into_iter().next().unwrap();
    let txns = call(
        app,
        "GET",
        &format!("/api/v1/payments/{id}/transactions"),
        &[],
        None,
    )
    .await;
    assert_eq!(txns.body["data"].as_array().unwrap().len(), 1, "one charge");
}

async fn pagination(app: &Router) {
    let customer = unique("page");
    let mut made = Vec::new();
    for i in 1..=5 {
        let r = post(
            app,
            "/api/v1/payments",
            payment(&customer, json!(format!("{i}.00")), "EUR", "tok_visa"),
            None,
        )
        .await;
        made.push(r.body["id"].as_str().unwrap().to_owned());
    }
    made.reverse();
    let mut seen = Vec::new();
    let mut uri = format!("/api/v1/payments?customer_id={customer}&limit=2");
    loop {
        let r = call(app, "GET", &uri, &[], None).await;
        assert_eq!(r.status, StatusCode::OK);
        seen.extend(
            r.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["id"].as_str().unwrap().to_owned()),
        );
        match r.body["next_cursor"].as_str() {
            Some(c) => {
                assert_eq!(r.body["has_more"], true);
                uri = format!("/api/v1/payments?customer_id={customer}&limit=2&cursor={c}");
            }
            None => break,
        }
    }
    assert_eq!(seen, made, "newest first, each once");
    let r = call(
        app,
        "GET",
        &format!("/api/v1/payments?customer_id={customer}&status=failed"),
        &[],
        None,
    )
    .await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 0);
}

async fn middleware(app: &Router) {
    let r = call(app, "GET", "/health/live", &[], None).await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let r = call(app, "GET", "/health/ready", &[], None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["checks"]["store"], "ok");
    let r = call(
        app,
        "GET",
        "/health/live",
        &[("x-request-id", "trace-me-42")],
        None,
    )
    .await;
    assert_eq!(r.headers["x-request-id"], "trace-me-42");
    let r = call(app, "GET", "/health/live", &[], None).await;
    assert_eq!(r.headers["x-request-id"].len(), 36, "a UUID is generated");
    let r = call(app, "GET", "/openapi.json", &[], None).await;
    assert_eq!(r.status, StatusCode::OK);
    for path in [
        "/api/v1/payments",
        "/api/v1/payments/{id}",
        "/api/v1/payments/{id}/refunds",
        "/api/v1/payments/{id}/transactions",
    ] {
        assert!(r.body["paths"].get(path).is_some(), "{path} documented");
    }
    let r = call(app, "GET", "/docs/", &[], None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body.as_str().unwrap().contains("swagger"),
        "the UI is served from the binary"
    );
    let r = call(
        app,
        "OPTIONS",
        "/api/v1/payments",
        &[
            ("origin", "https://shop.example"),
            ("access-control-request-method", "POST"),
        ],
        None,
    )
    .await;
    assert_eq!(r.headers["access-control-allow-origin"], "*");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_on_sqlite() {
    let app = sqlite_app().await;
    walk_through(&app).await;
    bad_inputs(&app).await;
    provider_outcomes(&app).await;
    idempotency_race(&app).await;
    pagination(&app).await;
    middleware(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_on_postgres() {
    let Some((app, schema, mut admin)) = postgres_app().await else {
        return;
    };
    walk_through(&app).await;
    bad_inputs(&app).await;
    provider_outcomes(&app).await;
    idempotency_race(&app).await;
    pagination(&app).await;
    drop(app);
    admin
        .execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
        .await
        .unwrap();
}
