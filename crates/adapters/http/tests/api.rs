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
use portside_app::application::{Application, Ports, Settings, StorePorts};
use portside_app::catalog::CatalogRepository;
use portside_app::messages::MessageRepository;
use portside_app::orders::OrderRepository;
use portside_app::payments::{
    ChargeRequest, IdempotencyStore, PaymentProvider, PaymentRepository, PaymentSettings,
    ProviderError, ProviderEvents, ProviderOutcome, Providers, RefundRequest,
};
use portside_app::users::{RefreshTokens, UserRepository};
use portside_auth::{Argon2Hasher, JwtTokens};
use portside_cache::MemoryCache;
use portside_domain::{Currency, Money};
use portside_events::relay::{Relay, RelaySettings};
use portside_events::worker::{EventHandler, Worker, WorkerSettings};
use portside_events::{AuditLog, DeadLetter, DeadLetterStore, EventHistory, Inbox, Outbox};
use portside_http::{ApiState, router};
use portside_kernel::{Probe, SystemClock, UuidV7};
use portside_providers::{MockProvider, StripeWebhooks};
use portside_search::TantivyIndex;
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

/// A provider whose circuit is open: it must not even be called.
struct Closed;

#[async_trait]
impl PaymentProvider for Closed {
    async fn charge(&self, _: &ChargeRequest) -> Result<ProviderOutcome, ProviderError> {
        panic!("a provider with an open circuit was called")
    }
    async fn refund(&self, _: &RefundRequest) -> Result<ProviderOutcome, ProviderError> {
        panic!("a provider with an open circuit was called")
    }
    fn availability(&self) -> Result<(), std::time::Duration> {
        Err(std::time::Duration::from_secs(42))
    }
}

/// Stands in for Stripe in the webhook tests: charges wait for a webhook (3-D Secure); a refund
/// is pending when asked first and done when asked again.
#[derive(Default)]
struct SlowBank {
    asked: std::sync::Mutex<std::collections::HashSet<String>>,
}

#[async_trait]
impl PaymentProvider for SlowBank {
    async fn charge(&self, _: &ChargeRequest) -> Result<ProviderOutcome, ProviderError> {
        Ok(ProviderOutcome::Pending)
    }
    async fn refund(&self, r: &RefundRequest) -> Result<ProviderOutcome, ProviderError> {
        if self.asked.lock().unwrap().insert(r.provider_key.clone()) {
            Ok(ProviderOutcome::Pending)
        } else {
            Ok(ProviderOutcome::Succeeded {
                reference: format!("re_{}", r.provider_key),
            })
        }
    }
}

const WEBHOOK_SECRET: &str = "whsec_test_secret";

/// Credentials of the administrator every test app has.
const ADMIN: (&str, &str) = ("admin@example.com", "correct horse battery staple");

async fn app<S>(store: S) -> Router
where
    S: PaymentRepository
        + IdempotencyStore
        + UserRepository
        + RefreshTokens
        + MessageRepository
        + OrderRepository
        + CatalogRepository
        + ProviderEvents
        + DeadLetterStore
        + Outbox
        + Inbox
        + EventHistory
        + portside_app::ledger::LedgerStore
        + portside_app::wallets::TransferStore
        + portside_app::webhooks::WebhookEndpointStore
        + portside_app::webhooks::WebhookDeliveryStore
        + portside_app::routing::RoutingStore
        + Probe
        + Clone
        + 'static,
{
    audit_trail(&store).await;
    let search_dir = std::env::temp_dir().join(unique("portside-http-search"));
    let app = Application::new(
        Ports {
            store: StorePorts::of(Arc::new(store.clone())),
            index: Arc::new(TantivyIndex::open(&search_dir).unwrap()),
            cache: Arc::new(MemoryCache::new(1000)),
            providers: Providers::new("mock", Arc::new(MockProvider::new()))
                .with("boom", Arc::new(Boom))
                .with("closed", Arc::new(Closed))
                .with("stripe", Arc::new(SlowBank::default())),
            verifiers: vec![(
                "stripe".into(),
                Arc::new(StripeWebhooks::new(WEBHOOK_SECRET)),
            )],
            hasher: Arc::new(Argon2Hasher::default()),
            tokens: Arc::new(JwtTokens::new(SECRET, time::Duration::minutes(15))),
            clock: Arc::new(SystemClock),
            ids: Arc::new(UuidV7),
            order_stream: None,
            dead_letters: Arc::new(
                portside_bus::InProcessBus::default().with_dead_letters(Arc::new(store.clone())),
            ),
            webhook_sender: Arc::new(portside_webhooks::HttpWebhookSender::new(true).unwrap()),
        },
        Settings {
            payments: PaymentSettings::default(),
            membership_price: Money::parse("9.99", Currency::from_code("USD").unwrap()).unwrap(),
            membership_period: time::Duration::days(30),
            webhooks: portside_app::webhooks::WebhookSettings {
                max_endpoints: 3,
                ..Default::default()
            },
            order_currency: Currency::from_code("USD").unwrap(),
            user_cache_ttl: std::time::Duration::from_secs(60),
            refresh_token_ttl: time::Duration::days(30),
            webhook_dispatch: Default::default(),
            routing_rules: Vec::new(),
        },
    );
    app.users
        .create_admin(
            portside_domain::Email::parse(ADMIN.0).unwrap(),
            ADMIN.1,
            portside_domain::UserName::parse("Admin").unwrap(),
        )
        .await
        .unwrap();
    // One dead letter of the `audit` group, for `dead_letters_api`.
    store
        .keep(&DeadLetter {
            id: "seeded-1".into(),
            group: "audit".into(),
            envelope: portside_events::Envelope {
                id: uuid::Uuid::now_v7(),
                event_type: "payment.succeeded".into(),
                version: 1,
                aggregate_type: "payment".into(),
                aggregate_id: "p-1".into(),
                sequence: 1,
                occurred_at: time::OffsetDateTime::now_utc(),
                traceparent: None,
                data: json!({"amount": "1.00"}),
            },
            error: "handler exploded".into(),
            failed_at: time::OffsetDateTime::now_utc(),
        })
        .await
        .unwrap();
    router(ApiState {
        app: Arc::new(app),
        probes: Arc::new(vec![Arc::new(store)]),
        metrics: None,
        limits: None,
    })
}

/// The relay and the `audit` group on an in-process bus, as `serve` runs them, so that the
/// event history behind `GET …/events` fills up (the other groups do not run here).
async fn audit_trail<S>(store: &S)
where
    S: Outbox + Inbox + EventHistory + Clone + 'static,
{
    let bus = portside_bus::InProcessBus::default();
    let audit: Arc<dyn EventHandler> = Arc::new(AuditLog::new(Arc::new(store.clone())));
    let worker = Arc::new(Worker::new(
        Arc::new(bus.clone()),
        Arc::new(store.clone()),
        Arc::new(SystemClock),
        vec![audit],
        WorkerSettings::default(),
    ));
    let stop = tokio_util::sync::CancellationToken::new();
    assert!(worker.subscribe(&stop).await);
    let relay = Relay::new(
        Arc::new(store.clone()),
        Arc::new(bus),
        Arc::new(SystemClock),
        "http-suite".into(),
        RelaySettings::default(),
    );
    tokio::spawn(worker.run(stop.clone()));
    tokio::spawn(async move { relay.run(stop).await });
}

const SECRET: &[u8] = b"test secret of at least thirty-two bytes";

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
    app(store).await
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
    Some((app(store).await, schema, admin))
}

/// The router and, once signed up, the caller's access token.
#[derive(Clone)]
struct Api {
    router: Router,
    token: Option<String>,
    user_id: String,
}

impl Api {
    fn anonymous(router: Router) -> Self {
        Api {
            router,
            token: None,
            user_id: String::new(),
        }
    }

    /// The administrator, logged in.
    async fn admin(&self) -> Api {
        let anon = Api::anonymous(self.router.clone());
        let login = post(
            &anon,
            "/api/v1/auth/login",
            json!({"email": ADMIN.0, "password": ADMIN.1}),
            None,
        )
        .await;
        assert_eq!(login.status, StatusCode::OK, "{}", login.body);
        Api {
            router: self.router.clone(),
            token: Some(login.body["access_token"].as_str().unwrap().to_owned()),
            user_id: String::new(),
        }
    }

    /// A new customer, registered and logged in.
    async fn signed_up(&self) -> Api {
        let email = format!("{}@example.com", unique("u"));
        let anon = Api::anonymous(self.router.clone());
        let r = post(
            &anon,
            "/api/v1/users",
            json!({"email": email, "password": "correct horse battery", "name": "Test User"}),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let user_id = r.body["id"].as_str().unwrap().to_owned();
        let login = post(
            &anon,
            "/api/v1/auth/login",
            json!({"email": email, "password": "correct horse battery"}),
            None,
        )
        .await;
        assert_eq!(login.status, StatusCode::OK, "{}", login.body);
        Api {
            router: self.router.clone(),
            token: Some(login.body["access_token"].as_str().unwrap().to_owned()),
            user_id,
        }
    }
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

async fn call(
    app: &Api,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Reply {
    call_bytes(
        app,
        method,
        uri,
        headers,
        body.map(|b| b.as_bytes().to_vec()),
    )
    .await
}

async fn call_bytes(
    app: &Api,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Reply {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(token) = &app.token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(body.map(Body::from).unwrap_or_else(Body::empty))
        .unwrap();
    let response = app.router.clone().oneshot(req).await.unwrap();
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

async fn get(app: &Api, uri: &str) -> Reply {
    call(app, "GET", uri, &[], None).await
}

async fn post(app: &Api, uri: &str, body: Value, key: Option<&str>) -> Reply {
    let mut headers = vec![JSON];
    if let Some(k) = key {
        headers.push(("idempotency-key", k));
    }
    call(app, "POST", uri, &headers, Some(&body.to_string())).await
}

fn payment(amount: Value, currency: &str, token: &str) -> Value {
    json!({"amount": amount, "currency": currency, "payment_method": "credit_card", "payment_method_token": token})
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// The patterns of the served document, as a client reads them, agree with the domain's own
/// parsers on examples at the edges of each rule.
fn input_rules_agree_with_the_domain(doc: &Value) {
    let schemas = &doc["components"]["schemas"];
    let pattern = |v: &Value| regex::Regex::new(v.as_str().expect("a pattern")).unwrap();
    let name = pattern(&schemas["Register"]["properties"]["name"]["pattern"]);
    for (text, ok) in [
        ("Ada", true),
        ("  Ada Lovelace\t", true),
        ("", false),
        ("   ", false),
        ("Ada\u{7}", false),
        (&"a".repeat(100), true),
        (&format!(" {} ", "a".repeat(100)), true),
        (&"a".repeat(101), false),
    ] {
        assert_eq!(name.is_match(text), ok, "{text:?}");
        assert_eq!(
            portside_domain::UserName::parse(text).is_ok(),
            ok,
            "{text:?}"
        );
    }
    let body = pattern(&schemas["MessageInput"]["properties"]["body"]["pattern"]);
    for (text, ok) in [
        ("x", true),
        (" \u{3000}x ", true),
        (" \t\n", false),
        ("a\0", false),
    ] {
        assert_eq!(body.is_match(text), ok, "{text:?}");
    }
    let email = pattern(&schemas["Register"]["properties"]["email"]["pattern"]);
    for text in ["ada@example.com", "first.last@mail.example.org", "a+b@x.io"] {
        assert!(email.is_match(text), "{text}");
        assert!(portside_domain::Email::parse(text).is_ok(), "{text}");
    }
    for text in [
        "ada@", "@x.io", ".a@x.io", "a.@x.io", "a@x", "a@-x.io", "a@x.i0",
    ] {
        assert!(!email.is_match(text), "{text}");
        assert!(portside_domain::Email::parse(text).is_err(), "{text}");
    }
    let positive =
        pattern(&schemas["CreatePayment"]["properties"]["amount"]["oneOf"][0]["pattern"]);
    for (text, ok) in [
        ("1", true),
        ("0.01", true),
        ("10", true),
        ("0", false),
        ("0.00", false),
        ("00", false),
        ("-1", false),
        (".5", false),
        ("1e3", false),
    ] {
        assert_eq!(positive.is_match(text), ok, "{text}");
    }
    let sku = pattern(&schemas["CreateProduct"]["properties"]["sku"]["pattern"]);
    for (text, ok) in [
        (" Mug-1 ", true),
        ("a.b_c", true),
        ("", false),
        ("a b", false),
        (&"a".repeat(65), false),
    ] {
        assert_eq!(sku.is_match(text), ok, "{text:?}");
        assert_eq!(portside_domain::Sku::parse(text).is_ok(), ok, "{text:?}");
    }
    // If-Match: what the server reads (a precondition, met or not) matches; what it refuses
    // as malformed (400) does not. `orders_api` checks the server's answers to these values.
    let if_match = doc["paths"]["/api/v1/orders/{id}"]["put"]["parameters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "If-Match"))
        .map(|p| pattern(&p["schema"]["pattern"]))
        .expect("If-Match documented");
    for text in [
        "*",
        " * ",
        "\"3\"",
        "W/\"3\"",
        "\"1\", \"2\"",
        "\"1\" ,, W/\"x\" ,",
        "",
        ",",
        "\"\"",
    ] {
        assert!(if_match.is_match(text), "{text:?}");
    }
    for text in [
        "0",
        "yesterday",
        "\"2",
        "W/2",
        "\"2\" \"3\"",
        "*, \"1\"",
        "\"a b\"",
    ] {
        assert!(!if_match.is_match(text), "{text:?}");
    }
}

async fn count_payments(app: &Api) -> usize {
    let r = get(app, "/api/v1/payments?limit=100").await;
    assert_eq!(r.status, StatusCode::OK);
    r.body["data"].as_array().unwrap().len()
}

async fn walk_through(app: &Api) {
    let app = &app.signed_up().await;
    let key = unique("key");
    let body = json!({"amount": 99.99, "currency": "USD", "payment_method": "credit_card", "payment_method_token": "tok_visa", "metadata": {"order_id": "1001"}});
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

    let got = get(app, &format!("/api/v1/payments/{id}")).await;
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

    let txns = get(app, &format!("/api/v1/payments/{id}/transactions")).await;
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
    assert_eq!(count_payments(app).await, 1);
}

async fn bad_inputs(app: &Api) {
    let app = &app.signed_up().await;
    let ok = post(
        app,
        "/api/v1/payments",
        payment(json!("10.00"), "USD", "tok_visa"),
        None,
    )
    .await;
    assert_eq!(ok.status, StatusCode::CREATED);
    let id = ok.body["id"].as_str().unwrap().to_owned();
    let declined = post(
        app,
        "/api/v1/payments",
        payment(json!("5.00"), "USD", "tok_chargeDeclined"),
        None,
    )
    .await;
    let failed_id = declined.body["payment"]["id"].as_str().unwrap().to_owned();
    let before = count_payments(app).await;

    let cases: Vec<(&str, Value, StatusCode, &str, &str)> = vec![
        (
            "zero",
            payment(json!(0), "USD", "tok_visa"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "amount_too_small",
            "amount",
        ),
        (
            "negative",
            payment(json!(-5), "USD", "tok_visa"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "amount_too_small",
            "amount",
        ),
        (
            "above the limit",
            payment(json!("1000000.00"), "USD", "tok_visa"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "amount_too_large",
            "amount",
        ),
        (
            "absurd",
            payment(json!("99999999999999999999999999"), "USD", "tok_visa"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "amount_too_large",
            "amount",
        ),
        (
            "three decimals in USD",
            payment(json!(10.001), "USD", "tok_visa"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "amount_too_precise",
            "amount",
        ),
        (
            "decimals in JPY",
            payment(json!("100.5"), "JPY", "tok_visa"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "amount_too_precise",
            "amount",
        ),
        (
            "unknown currency",
            payment(json!("1.00"), "XYZ", "tok_visa"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "currency_unknown",
            "currency",
        ),
        (
            "amount of the wrong type",
            payment(json!(true), "USD", "tok_visa"),
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
            json!({"amout": "1", "amount": "1", "currency": "USD", "payment_method_token": "tok_visa"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "amout",
        ),
        (
            "missing token",
            json!({"amount": "1", "currency": "USD"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "payment_method_token_required",
            "payment_method_token",
        ),
        (
            "unknown method",
            json!({"amount": "1", "currency": "USD", "payment_method": "cash", "payment_method_token": "tok_visa"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "payment_method_unknown",
            "payment_method",
        ),
        (
            "unknown provider",
            json!({"amount": "1", "currency": "USD", "provider": "acme", "payment_method_token": "tok_visa"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "provider_unknown",
            "provider",
        ),
        (
            "reserved metadata key",
            json!({"amount": "1", "currency": "USD", "payment_method_token": "tok_visa", "metadata": {"portside_purpose": "membership"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "metadata_invalid",
            "metadata",
        ),
        (
            "customer with spaces",
            json!({"customer_id": "a b", "amount": "1", "currency": "USD", "payment_method_token": "tok_visa"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "customer_id_invalid",
            "customer_id",
        ),
        (
            "metadata value too long",
            json!({"amount": "1", "currency": "USD", "payment_method_token": "tok_visa", "metadata": {"k": "x".repeat(501)}}),
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

    // A JSON number is read as the exact value it denotes, exponent or not (the document says
    // `number`): 1e3 is 1000, and 1.5e-3 has more decimals than USD.
    let exponent =
        r#"{"amount":1e3,"currency":"USD","payment_method_token":"tok_visa"}"#.to_owned();
    let r = call(app, "POST", "/api/v1/payments", &[JSON], Some(&exponent)).await;
    assert_eq!(
        (r.status, r.body["amount"].as_str()),
        (StatusCode::CREATED, Some("1000.00")),
        "{}",
        r.body
    );
    let precise =
        r#"{"amount":1.5e-3,"currency":"USD","payment_method_token":"tok_visa"}"#.to_owned();
    let r = call(app, "POST", "/api/v1/payments", &[JSON], Some(&precise)).await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("amount_too_precise")),
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
    let huge = json!({"amount": "1", "currency": "USD", "payment_method_token": "tok_visa", "description": "x".repeat(300_000)});
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
            payment(json!("2.00"), "USD", "tok_visa"),
            Some(&key)
        )
        .await
        .status,
        StatusCode::CREATED
    );
    let r = post(
        app,
        "/api/v1/payments",
        payment(json!("3.00"), "USD", "tok_visa"),
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
    let mut with_body_key = payment(json!("2.00"), "USD", "tok_visa");
    with_body_key["idempotency_key"] = json!("other");
    let r = post(app, "/api/v1/payments", with_body_key, Some(&key)).await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("idempotency_key_mismatch"))
    );
    let r = post(
        app,
        "/api/v1/payments",
        payment(json!("2.00"), "USD", "tok_visa"),
        Some("has space"),
    )
    .await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("idempotency_key_invalid"))
    );

    // Nothing above changed anything: two more payments (the one of 1e3 and the keyed one),
    // the first untouched.
    assert_eq!(count_payments(app).await, before + 2);
    let first = get(app, &format!("/api/v1/payments/{id}")).await;
    assert_eq!(first.body["refunded_amount"], "0.00");
    assert_eq!(first.body["status"], "succeeded");
    let txns = get(app, &format!("/api/v1/payments/{id}/transactions")).await;
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
        let r = get(app, &format!("/api/v1/payments?{query}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.body);
        assert_eq!(r.body["errors"][0]["field"], param, "{query}: {}", r.body);
    }
    let r = get(app, "/api/v1/nothing-here").await;
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

async fn provider_outcomes(app: &Api) {
    let app = &app.signed_up().await;
    let declined = post(
        app,
        "/api/v1/payments",
        payment(json!("5.00"), "USD", "tok_chargeDeclinedInsufficientFunds"),
        None,
    )
    .await;
    assert_eq!(declined.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(declined.body["code"], "card_declined");
    assert_eq!(declined.body["decline_code"], "insufficient_funds");
    assert_eq!(declined.body["payment"]["status"], "failed");
    let id = declined.body["payment"]["id"].as_str().unwrap();
    let stored = get(app, &format!("/api/v1/payments/{id}")).await;
    assert_eq!(stored.body["failure"]["decline_code"], "insufficient_funds");

    let error = post(
        app,
        "/api/v1/payments",
        payment(json!("5.00"), "USD", "tok_processing_error"),
        None,
    )
    .await;
    assert_eq!(
        (error.status, error.body["code"].as_str()),
        (StatusCode::PAYMENT_REQUIRED, Some("processing_error"))
    );

    let key = unique("timeout");
    let body = payment(json!(500), "JPY", "tok_timeout");
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
        payment(json!("8.00"), "USD", "tok_refundFail"),
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

    let boom = json!({"amount": "1", "currency": "USD", "provider": "boom", "payment_method_token": "tok_visa"});
    let r = post(app, "/api/v1/payments", boom, None).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.headers["content-type"], "application/problem+json");
    assert_eq!(r.body["code"], "internal_error");
    assert!(
        !r.body.to_string().contains("exploded"),
        "no panic message leaks"
    );

    // A provider whose circuit is open: 503 at once, with Retry-After, and nothing written.
    let before = count_payments(app).await;
    let closed = json!({"amount": "1", "currency": "USD", "provider": "closed", "payment_method_token": "tok_visa"});
    let r = post(app, "/api/v1/payments", closed, Some(&unique("closed"))).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.body["code"], "provider_unavailable");
    assert_eq!(r.headers["retry-after"], "42");
    assert_eq!(count_payments(app).await, before, "no payment was recorded");
}

/// 20 requests with one key at once: exactly one payment; every answer is it or a 409.
async fn idempotency_race(app: &Api) {
    let app = &app.signed_up().await;
    let key = unique("race");
    let body = payment(json!("42.00"), "USD", "tok_visa");
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
    assert_eq!(count_payments(app).await, 1, "exactly one payment exists");
    let id = ids.into_iter().next().unwrap();
    let txns = get(app, &format!("/api/v1/payments/{id}/transactions")).await;
    assert_eq!(txns.body["data"].as_array().unwrap().len(), 1, "one charge");
}

async fn pagination(app: &Api) {
    let app = &app.signed_up().await;
    let mut made = Vec::new();
    for i in 1..=5 {
        let r = post(
            app,
            "/api/v1/payments",
            payment(json!(format!("{i}.00")), "EUR", "tok_visa"),
            None,
        )
        .await;
        made.push(r.body["id"].as_str().unwrap().to_owned());
    }
    made.reverse();
    let mut seen = Vec::new();
    let mut uri = format!("/api/v1/payments?customer_id={}&limit=2", app.user_id);
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
                uri = format!(
                    "/api/v1/payments?customer_id={}&limit=2&cursor={c}",
                    app.user_id
                );
            }
            None => break,
        }
    }
    assert_eq!(seen, made, "newest first, each once");
    let r = get(
        app,
        &format!("/api/v1/payments?customer_id={}&status=failed", app.user_id),
    )
    .await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 0);
}

async fn middleware(app: &Api) {
    let app = &app.signed_up().await;
    let r = get(app, "/health/live").await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let r = get(app, "/health/ready").await;
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
    let r = get(app, "/health/live").await;
    assert_eq!(r.headers["x-request-id"].len(), 36, "a UUID is generated");
    let r = get(app, "/openapi.json").await;
    assert_eq!(r.status, StatusCode::OK);
    for path in [
        "/api/v1/payments",
        "/api/v1/payments/{id}",
        "/api/v1/payments/{id}/refunds",
        "/api/v1/payments/{id}/transactions",
    ] {
        assert!(r.body["paths"].get(path).is_some(), "{path} documented");
    }
    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r);
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&r.body, &mut all);
    assert!(all.len() > 100, "{} references", all.len());
    for reference in all {
        let name = reference.trim_start_matches("#/components/schemas/");
        assert!(
            r.body["components"]["schemas"].get(name).is_some(),
            "{reference} resolves"
        );
    }
    // The input rules are in the served document: an amount above zero, a currency of the
    // domain's table, a key's characters, NUL refused in every body string.
    let schemas = &r.body["components"]["schemas"];
    let amount = &schemas["CreatePayment"]["properties"]["amount"]["oneOf"];
    assert_eq!(amount[1]["exclusiveMinimum"], 0, "{amount}");
    assert_eq!(
        schemas["CreatePayment"]["properties"]["currency"]["$ref"],
        "#/components/schemas/Currency"
    );
    assert!(
        schemas["Currency"]["enum"]
            .as_array()
            .is_some_and(|codes| codes.contains(&json!("JPY"))),
    );
    assert_eq!(
        schemas["MessageInput"]["properties"]["body"]["minLength"],
        1
    );
    assert_eq!(
        schemas["Login"]["properties"]["password"]["pattern"],
        r"^[^\u0000]*$"
    );
    let key = r.body["paths"]["/api/v1/payments"]["post"]["parameters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "Idempotency-Key"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(key["schema"]["pattern"], "^[!-~]{1,255}$", "{key}");
    assert_eq!(portside_http::unapplied_rules(), Vec::<String>::new());
    input_rules_agree_with_the_domain(&r.body);
    let created = &r.body["paths"]["/api/v1/orders/{id}/pay"]["post"]["responses"];
    for status in [
        "400", "401", "404", "412", "413", "415", "422", "429", "503",
    ] {
        assert!(
            created.get(status).is_some(),
            "POST /orders/{{id}}/pay documents {status}"
        );
    }
    let r = get(app, "/docs/").await;
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

    // Security headers on every kind of response: success, problem, not found, anonymous,
    // preflight; the documentation UI keeps its own script policy.
    let anon = Api::anonymous(app.router.clone());
    let replies = [
        get(app, "/health/live").await,
        get(app, "/api/v1/payments").await,
        get(app, "/api/v1/payments/not-a-uuid").await,
        get(app, "/no/such/route").await,
        get(&anon, "/api/v1/payments").await,
        post(app, "/api/v1/payments", json!({"amount": "1"}), None).await,
        r,
    ];
    for reply in &replies {
        for (name, value) in [
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "DENY"),
            ("referrer-policy", "no-referrer"),
            (
                "content-security-policy",
                "default-src 'none'; frame-ancestors 'none'",
            ),
            (
                "strict-transport-security",
                "max-age=63072000; includeSubDomains",
            ),
            ("cache-control", "no-store"),
        ] {
            assert_eq!(
                reply.headers.get(name).and_then(|v| v.to_str().ok()),
                Some(value),
                "{name} on a {} response",
                reply.status
            );
        }
    }
    let docs = get(app, "/docs/").await;
    let csp = docs.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(docs.headers["x-frame-options"], "DENY");
}

fn status_code(r: &Reply) -> (StatusCode, &str) {
    (r.status, r.body["code"].as_str().unwrap_or(""))
}

/// Registration, login, refresh rotation and reuse, logout, and their bad inputs.
async fn identity(anon: &Api) {
    let email = format!("{}@Example.com", unique("Id"));
    let register = |body: Value| async move { post(anon, "/api/v1/users", body, None).await };
    let ok =
        register(json!({"email": email, "password": "correct horse battery", "name": "Ada"})).await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.body);
    assert_eq!(ok.body["email"], email.to_lowercase());
    assert_eq!(ok.body["membership"], "free");
    assert_eq!(ok.body["role"], "customer");
    assert!(ok.body.get("password_hash").is_none() && !ok.body.to_string().contains("argon2"));
    let dup = register(
        json!({"email": email.to_uppercase(), "password": "another good password", "name": "Eve"}),
    )
    .await;
    assert_eq!(status_code(&dup), (StatusCode::CONFLICT, "email_taken"));
    for (body, field, code) in [
        (
            json!({"email": "not-an-email", "password": "correct horse battery", "name": "A"}),
            "email",
            "email_invalid",
        ),
        (
            json!({"email": "weak@example.com", "password": "short", "name": "A"}),
            "password",
            "password_weak",
        ),
        (
            json!({"email": "weak@example.com", "password": "aaaaaaaaaaaaaaaa", "name": "A"}),
            "password",
            "password_weak",
        ),
        (
            json!({"email": "weak@example.com", "password": "correct horse battery", "name": ""}),
            "name",
            "name_invalid",
        ),
        (
            json!({"email": "weak@example.com", "password": "correct horse battery"}),
            "body",
            "invalid_field",
        ),
    ] {
        let r = register(body).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert_eq!(
            (
                r.body["errors"][0]["field"].as_str(),
                r.body["code"].as_str()
            ),
            (Some(field), Some(code)),
            "{}",
            r.body
        );
    }
    let huge = register(
        json!({"email": "big@example.com", "password": "p".repeat(10 * 1024 * 1024), "name": "A"}),
    )
    .await;
    assert_eq!(
        status_code(&huge),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );

    let login = |password: &str, who: &str| {
        let body = json!({"email": who, "password": password});
        async move { post(anon, "/api/v1/auth/login", body, None).await }
    };
    let wrong = login("wrong password!!", &email).await;
    let unknown = login("wrong password!!", "nobody-here@example.com").await;
    assert_eq!(
        status_code(&wrong),
        (StatusCode::UNAUTHORIZED, "invalid_credentials")
    );
    assert_eq!(
        wrong.body["detail"], unknown.body["detail"],
        "an unknown email fails exactly like a wrong password"
    );
    assert_eq!(status_code(&unknown), status_code(&wrong));
    assert_eq!(wrong.headers["www-authenticate"], "Bearer");

    let session = login("correct horse battery", &email).await;
    assert_eq!(session.status, StatusCode::OK, "{}", session.body);
    assert_eq!(session.body["token_type"], "Bearer");
    assert_eq!(session.body["expires_in"], 900);
    let first = session.body["refresh_token"].as_str().unwrap().to_owned();
    let rotated = post(
        anon,
        "/api/v1/auth/refresh",
        json!({"refresh_token": first}),
        None,
    )
    .await;
    assert_eq!(rotated.status, StatusCode::OK);
    let second = rotated.body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(first, second);
    let reuse = post(
        anon,
        "/api/v1/auth/refresh",
        json!({"refresh_token": first}),
        None,
    )
    .await;
    assert_eq!(
        status_code(&reuse),
        (StatusCode::UNAUTHORIZED, "refresh_token_reused")
    );
    let family_gone = post(
        anon,
        "/api/v1/auth/refresh",
        json!({"refresh_token": second}),
        None,
    )
    .await;
    assert_eq!(
        status_code(&family_gone),
        (StatusCode::UNAUTHORIZED, "refresh_token_reused"),
        "reuse revoked the family"
    );

    let again = login("correct horse battery", &email).await;
    let me = Api {
        router: anon.router.clone(),
        token: Some(again.body["access_token"].as_str().unwrap().to_owned()),
        user_id: ok.body["id"].as_str().unwrap().to_owned(),
    };
    let refresh_token = again.body["refresh_token"].as_str().unwrap().to_owned();
    let out = post(
        &me,
        "/api/v1/auth/logout",
        json!({"refresh_token": refresh_token}),
        None,
    )
    .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    let after = post(
        anon,
        "/api/v1/auth/refresh",
        json!({"refresh_token": refresh_token}),
        None,
    )
    .await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED, "logged out");
    let anon_logout = post(anon, "/api/v1/auth/logout", json!({}), None).await;
    assert_eq!(
        status_code(&anon_logout),
        (StatusCode::UNAUTHORIZED, "unauthenticated")
    );
}

/// Every protected endpoint refuses missing, malformed and forged tokens.
async fn authentication(anon: &Api) {
    let me = anon.signed_up().await;
    let good = me.token.clone().unwrap();
    let forged = {
        // The same claims signed with another secret, and with alg none.
        let parts: Vec<&str> = good.split('.').collect();
        let none = format!(
            "{}.{}.",
            base64url(r#"{"alg":"none","typ":"JWT"}"#),
            parts[1]
        );
        let mut tampered_sig = parts[2].to_owned();
        tampered_sig.replace_range(
            0..2,
            if tampered_sig.starts_with("AA") {
                "BB"
            } else {
                "AA"
            },
        );
        let tampered = format!("{}.{}.{}", parts[0], parts[1], tampered_sig);
        let other = portside_auth::JwtTokens::new(
            b"some other secret of thirty-two bytes!",
            time::Duration::minutes(15),
        );
        let actor = portside_domain::Actor {
            user_id: portside_domain::UserId(me.user_id.parse().unwrap()),
            role: portside_domain::Role::Admin,
        };
        use portside_app::users::TokenService;
        let wrong_secret = other
            .issue(&actor, time::OffsetDateTime::now_utc())
            .unwrap()
            .token;
        let expired = portside_auth::JwtTokens::new(SECRET, time::Duration::minutes(15))
            .issue(
                &actor,
                time::OffsetDateTime::now_utc() - time::Duration::hours(1),
            )
            .unwrap()
            .token;
        vec![
            (none, "token_invalid"),
            (tampered, "token_invalid"),
            (wrong_secret, "token_invalid"),
            (expired, "token_expired"),
        ]
    };
    let endpoints = [
        ("GET", "/api/v1/payments".to_owned()),
        ("POST", "/api/v1/payments".to_owned()),
        ("GET", format!("/api/v1/users/{}", me.user_id)),
        ("GET", "/api/v1/messages".to_owned()),
        ("POST", "/api/v1/memberships/checkout".to_owned()),
    ];
    for (method, uri) in &endpoints {
        let r = call(anon, method, uri, &[JSON], Some("{}")).await;
        assert_eq!(
            status_code(&r),
            (StatusCode::UNAUTHORIZED, "unauthenticated"),
            "{method} {uri}"
        );
        for header in [
            "Basic dXNlcjpwYXNz",
            "Bearer",
            "Bearer  two spaces",
            "Token abc",
        ] {
            let r = call(
                anon,
                method,
                uri,
                &[JSON, ("authorization", header)],
                Some("{}"),
            )
            .await;
            assert_eq!(
                status_code(&r),
                (StatusCode::UNAUTHORIZED, "authorization_malformed"),
                "{method} {uri} {header:?}"
            );
        }
        for (token, code) in &forged {
            let bearer = format!("Bearer {token}");
            let r = call(
                anon,
                method,
                uri,
                &[JSON, ("authorization", &bearer)],
                Some("{}"),
            )
            .await;
            assert_eq!(
                status_code(&r),
                (StatusCode::UNAUTHORIZED, *code),
                "{method} {uri} {token}"
            );
        }
    }
}

fn base64url(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

/// User A against every endpoint with B's ids: nothing read, changed or refunded.
async fn authorization_matrix(anon: &Api) {
    let a = anon.signed_up().await;
    let b = anon.signed_up().await;
    let b_payment = post(
        &b,
        "/api/v1/payments",
        payment(json!("20.00"), "USD", "tok_visa"),
        None,
    )
    .await;
    let bp = b_payment.body["id"].as_str().unwrap().to_owned();
    let b_message = post(&b, "/api/v1/messages", json!({"body": "B's secret"}), None).await;
    let bm = b_message.body["id"].as_str().unwrap().to_owned();
    let bu = b.user_id.clone();

    let cases: Vec<(&str, String, Option<Value>, StatusCode)> = vec![
        (
            "GET",
            format!("/api/v1/users/{bu}"),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            "PATCH",
            format!("/api/v1/users/{bu}"),
            Some(json!({"name": "Owned"})),
            StatusCode::NOT_FOUND,
        ),
        (
            "DELETE",
            format!("/api/v1/users/{bu}"),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            "GET",
            "/api/v1/users".to_owned(),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            "GET",
            format!("/api/v1/payments/{bp}"),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            "GET",
            format!("/api/v1/payments/{bp}/transactions"),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            "POST",
            format!("/api/v1/payments/{bp}/refunds"),
            Some(json!({})),
            StatusCode::NOT_FOUND,
        ),
        (
            "POST",
            format!("/api/v1/payments/{bp}/refund"),
            Some(json!({"amount": "1.00"})),
            StatusCode::NOT_FOUND,
        ),
        (
            "GET",
            format!("/api/v1/payments?customer_id={bu}"),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            "POST",
            "/api/v1/payments".to_owned(),
            Some(
                json!({"customer_id": bu, "amount": "1.00", "currency": "USD", "payment_method_token": "tok_visa"}),
            ),
            StatusCode::FORBIDDEN,
        ),
        (
            "GET",
            format!("/api/v1/messages/{bm}"),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            "PATCH",
            format!("/api/v1/messages/{bm}"),
            Some(json!({"body": "defaced"})),
            StatusCode::NOT_FOUND,
        ),
        (
            "DELETE",
            format!("/api/v1/messages/{bm}"),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            "GET",
            format!("/api/v1/messages?owner_id={bu}"),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            "PATCH",
            format!("/api/v1/users/{}", a.user_id),
            Some(json!({"role": "admin"})),
            StatusCode::FORBIDDEN,
        ),
    ];
    for (method, uri, body, expected) in cases {
        let body = body.map(|b| b.to_string());
        let headers: &[(&str, &str)] = if body.is_some() { &[JSON] } else { &[] };
        let r = call(&a, method, &uri, headers, body.as_deref()).await;
        assert_eq!(r.status, expected, "A: {method} {uri}: {}", r.body);
        assert!(
            !r.body.to_string().contains("B's secret"),
            "nothing of B leaks"
        );
    }
    let listed = get(&a, "/api/v1/payments").await;
    assert!(
        listed.body["data"].as_array().unwrap().is_empty(),
        "A's list holds none of B's payments"
    );
    let listed = get(&a, "/api/v1/messages").await;
    assert!(listed.body["data"].as_array().unwrap().is_empty());

    // B's data is untouched.
    let p = get(&b, &format!("/api/v1/payments/{bp}")).await;
    assert_eq!(
        (
            p.body["status"].as_str(),
            p.body["refunded_amount"].as_str()
        ),
        (Some("succeeded"), Some("0.00"))
    );
    let t = get(&b, &format!("/api/v1/payments/{bp}/transactions")).await;
    assert_eq!(
        t.body["data"].as_array().unwrap().len(),
        1,
        "no refund was recorded"
    );
    let m = get(&b, &format!("/api/v1/messages/{bm}")).await;
    assert_eq!(
        (m.body["body"].as_str(), m.body["version"].as_i64()),
        (Some("B's secret"), Some(1))
    );
    let u = get(&b, &format!("/api/v1/users/{bu}")).await;
    assert_eq!(
        (u.status, u.body["name"].as_str()),
        (StatusCode::OK, Some("Test User"))
    );
    assert_eq!(
        get(&b, &format!("/api/v1/payments?customer_id={bu}"))
            .await
            .body["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// Users read through the cache; a change is visible at once; deletion ends everything.
async fn users_api(anon: &Api) {
    let me = anon.signed_up().await;
    let uri = format!("/api/v1/users/{}", me.user_id);
    let first = call(&me, "GET", &uri, &[], None).await;
    assert_eq!(first.status, StatusCode::OK);
    let again = call(&me, "GET", &uri, &[], None).await;
    assert_eq!(
        again.body, first.body,
        "a cached read equals the stored one"
    );
    let renamed = call(&me, "PATCH", &uri, &[JSON], Some(r#"{"name":"Renamed"}"#)).await;
    assert_eq!(
        (renamed.status, renamed.body["name"].as_str()),
        (StatusCode::OK, Some("Renamed"))
    );
    let after = call(&me, "GET", &uri, &[], None).await;
    assert_eq!(
        after.body["name"], "Renamed",
        "the update invalidated the cached profile"
    );
    let bad = call(&me, "PATCH", &uri, &[JSON], Some(r#"{"email":"nope"}"#)).await;
    assert_eq!(
        status_code(&bad),
        (StatusCode::UNPROCESSABLE_ENTITY, "email_invalid")
    );
    let bad = call(&me, "PATCH", &uri, &[JSON], Some(r#"{"role":"root"}"#)).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let unknown = get(&me, "/api/v1/users/00000000-0000-0000-0000-000000000000").await;
    assert_eq!(
        status_code(&unknown),
        (StatusCode::NOT_FOUND, "user_not_found")
    );
    let malformed = get(&me, "/api/v1/users/nope").await;
    assert_eq!(
        status_code(&malformed),
        (StatusCode::NOT_FOUND, "user_not_found")
    );
    let post_msg = post(&me, "/api/v1/messages", json!({"body": "bye"}), None).await;
    assert_eq!(post_msg.status, StatusCode::CREATED);
    let gone = call(&me, "DELETE", &uri, &[], None).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    let after = call(&me, "GET", &uri, &[], None).await;
    assert_eq!(
        after.status,
        StatusCode::NOT_FOUND,
        "the delete invalidated the cached profile"
    );
    let orphan = post(
        &me,
        "/api/v1/messages",
        json!({"body": "still here?"}),
        None,
    )
    .await;
    assert_eq!(
        status_code(&orphan),
        (StatusCode::UNAUTHORIZED, "account_gone"),
        "an access token that outlived its account writes nothing"
    );
}

/// Hostile bodies: deep nesting, invalid UTF-8 and NUL characters are refused with
/// problem+json and write nothing; injection strings are stored and returned as plain data.
async fn hostile_inputs(anon: &Api) {
    let app = &anon.signed_up().await;
    let before = count_payments(app).await;
    // Nesting far beyond serde_json's recursion limit (128), within the body limit: refused,
    // and the stack survives.
    for depth in [1_000, 120_000] {
        let deep = format!(
            r#"{{"amount":"1.00","currency":"USD","payment_method_token":"tok_visa","metadata":{}{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let r = call(app, "POST", "/api/v1/payments", &[JSON], Some(&deep)).await;
        assert!(
            r.status == StatusCode::BAD_REQUEST || r.status == StatusCode::UNPROCESSABLE_ENTITY,
            "{depth}: {} {}",
            r.status,
            r.body
        );
        assert!(r.body["code"].is_string(), "{depth}: {}", r.body);
    }
    // A struct's fields as an array (serde would read them in order), or another JSON value.
    for (uri, body) in [
        ("/api/v1/auth/logout", r#"[""]"#),
        ("/api/v1/payments", r#"["1.00", "USD", "tok_visa"]"#),
        ("/api/v1/messages", r#""hello""#),
        ("/api/v1/messages", "null"),
    ] {
        let r = call(app, "POST", uri, &[JSON], Some(body)).await;
        assert_eq!(
            status_code(&r),
            (StatusCode::UNPROCESSABLE_ENTITY, "body_not_an_object"),
            "{uri} {body}"
        );
    }
    let mut latin1 = br#"{"body": "caf"#.to_vec();
    latin1.extend_from_slice(&[0xE9, b'"', b'}']);
    let r = call_bytes(app, "POST", "/api/v1/messages", &[JSON], Some(latin1)).await;
    assert_eq!(status_code(&r), (StatusCode::BAD_REQUEST, "malformed_json"));
    let raw_nul = b"{\"body\": \"a\x00b\"}".to_vec();
    let r = call_bytes(app, "POST", "/api/v1/messages", &[JSON], Some(raw_nul)).await;
    assert_eq!(status_code(&r), (StatusCode::BAD_REQUEST, "malformed_json"));
    for (uri, body) in [
        ("/api/v1/messages", r#"{"body": "a\u0000b"}"#.to_owned()),
        (
            "/api/v1/payments",
            r#"{"amount":"1.00","currency":"USD","payment_method_token":"tok_visa","description":"x\u0000"}"#
                .to_owned(),
        ),
        (
            "/api/v1/orders",
            r#"{"currency":"USD","items":[{"product_id":"p\u0000","name":"n","quantity":1,"unit_price":"1.00"}]}"#
                .to_owned(),
        ),
    ] {
        let r = call(app, "POST", uri, &[JSON], Some(&body)).await;
        assert_eq!(
            status_code(&r),
            (StatusCode::UNPROCESSABLE_ENTITY, "nul_character"),
            "{uri}: {}",
            r.body
        );
    }
    // An escaped backslash followed by "u0000" is text, not a NUL.
    let r = call(
        app,
        "POST",
        "/api/v1/messages",
        &[JSON],
        Some(r#"{"body": "C:\\u0000"}"#),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["body"], "C:\\u0000");
    assert_eq!(count_payments(app).await, before, "nothing was charged");

    for text in [
        "'; DROP TABLE payments; --",
        "\" OR 1=1 --",
        "{\"$gt\": \"\"}",
        "</script><script>alert(1)</script>",
        "%00%27",
        "\u{202e}gnp.exe",
    ] {
        let posted = post(app, "/api/v1/messages", json!({ "body": text }), None).await;
        assert_eq!(
            posted.status,
            StatusCode::CREATED,
            "{text}: {}",
            posted.body
        );
        let id = posted.body["id"].as_str().unwrap();
        let read = get(app, &format!("/api/v1/messages/{id}")).await;
        assert_eq!(read.body["body"], text, "stored and returned as sent");
        let paid = post(
            app,
            "/api/v1/payments",
            json!({"amount": "1.00", "currency": "USD", "payment_method_token": "tok_visa",
                   "description": text, "metadata": {"note": text}}),
            None,
        )
        .await;
        assert_eq!(paid.status, StatusCode::CREATED, "{text}: {}", paid.body);
        assert_eq!(paid.body["description"], text);
        assert_eq!(paid.body["metadata"]["note"], text);
    }
    assert_eq!(
        count_payments(app).await,
        before + 6,
        "the payments table is intact"
    );
}

/// Messages: CRUD, bounds and every query parameter.
async fn messages_api(anon: &Api) {
    let me = anon.signed_up().await;
    for bad in [String::new(), "x".repeat(100_001)] {
        let r = post(&me, "/api/v1/messages", json!({"body": bad}), None).await;
        assert_eq!(
            status_code(&r),
            (StatusCode::UNPROCESSABLE_ENTITY, "message_invalid"),
            "{} chars",
            bad.len()
        );
        assert_eq!(r.body["errors"][0]["field"], "body");
    }
    let mut ids = Vec::new();
    for text in ["Alpha note", "beta", "Gamma NOTE", "delta note"] {
        let r = post(&me, "/api/v1/messages", json!({"body": text}), None).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        ids.push(r.body["id"].as_str().unwrap().to_owned());
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let page1 = get(&me, "/api/v1/messages?q=NOTE&sort=created_at&limit=2").await;
    let bodies: Vec<_> = page1.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(bodies, ["Alpha note", "Gamma NOTE"]);
    let cursor = page1.body["next_cursor"].as_str().unwrap();
    let page2 = get(
        &me,
        &format!("/api/v1/messages?q=NOTE&sort=created_at&limit=2&cursor={cursor}"),
    )
    .await;
    assert_eq!(page2.body["data"][0]["body"], "delta note");
    assert_eq!(page2.body["has_more"], false);
    let mixed = get(
        &me,
        &format!("/api/v1/messages?q=NOTE&sort=-created_at&cursor={cursor}"),
    )
    .await;
    assert_eq!(
        mixed.status,
        StatusCode::BAD_REQUEST,
        "a cursor belongs to its sort order"
    );
    let newest = get(&me, "/api/v1/messages").await;
    assert_eq!(
        newest.body["data"][0]["id"],
        ids[3].as_str(),
        "newest first by default"
    );
    let first = get(&me, &format!("/api/v1/messages/{}", ids[0])).await;
    let after = first.body["created_at"].as_str().unwrap().to_owned();
    let windowed = get(
        &me,
        &format!("/api/v1/messages?created_after={after}&sort=created_at"),
    )
    .await;
    assert_eq!(
        windowed.body["data"].as_array().unwrap().len(),
        3,
        "created_after is exclusive"
    );
    let own = get(&me, &format!("/api/v1/messages?owner_id={}", me.user_id)).await;
    assert_eq!(own.body["data"].as_array().unwrap().len(), 4);
    for (query, param) in [
        ("limit=0", "limit"),
        ("limit=500", "limit"),
        ("cursor=@@", "cursor"),
        ("sort=name", "sort"),
        ("created_after=yesterday", "created_after"),
        ("created_before=2026-13-01", "created_before"),
        ("owner_id=abc", "owner_id"),
        ("q=", "q"),
        ("colour=red", "colour"),
    ] {
        let r = get(&me, &format!("/api/v1/messages?{query}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.body);
        assert_eq!(r.body["errors"][0]["field"], param, "{query}: {}", r.body);
    }
    let edited = call(
        &me,
        "PATCH",
        &format!("/api/v1/messages/{}", ids[1]),
        &[JSON],
        Some(r#"{"body":"beta, edited"}"#),
    )
    .await;
    assert_eq!(
        (
            edited.body["body"].as_str(),
            edited.body["version"].as_i64()
        ),
        (Some("beta, edited"), Some(2))
    );
    let deleted = call(
        &me,
        "DELETE",
        &format!("/api/v1/messages/{}", ids[1]),
        &[],
        None,
    )
    .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = get(&me, &format!("/api/v1/messages/{}", ids[1])).await;
    assert_eq!(
        status_code(&gone),
        (StatusCode::NOT_FOUND, "message_not_found")
    );
}

/// The membership checkout: key required, one charge, replay safe (the upgrade itself follows
/// the payment.succeeded event: see the end-to-end test).
async fn membership(anon: &Api) {
    let me = anon.signed_up().await;
    let body = json!({"payment_method_token": "tok_visa"});
    let no_key = post(&me, "/api/v1/memberships/checkout", body.clone(), None).await;
    assert_eq!(
        status_code(&no_key),
        (StatusCode::BAD_REQUEST, "idempotency_key_required")
    );
    let key = unique("vip");
    let paid = post(
        &me,
        "/api/v1/memberships/checkout",
        body.clone(),
        Some(&key),
    )
    .await;
    assert_eq!(paid.status, StatusCode::CREATED, "{}", paid.body);
    assert_eq!(
        (
            paid.body["amount"].as_str(),
            paid.body["metadata"]["portside_purpose"].as_str()
        ),
        (Some("9.99"), Some("membership"))
    );
    let replay = post(&me, "/api/v1/memberships/checkout", body, Some(&key)).await;
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    assert_eq!(replay.body["id"], paid.body["id"]);
    assert_eq!(count_payments(&me).await, 1, "charged once");
    let declined = post(
        &me,
        "/api/v1/memberships/checkout",
        json!({"payment_method_token": "tok_chargeDeclined"}),
        Some(&unique("vip")),
    )
    .await;
    assert_eq!(declined.status, StatusCode::PAYMENT_REQUIRED);
}

fn order_body(items: Value) -> Value {
    json!({"currency": "USD", "items": items})
}

/// A line of the product `p-<price>` (see [`stock_shelf`]), expecting that price.
fn line(qty: Value, price: &str) -> Value {
    json!({"product_id": format!("p-{price}"), "name": "ignored", "quantity": qty, "unit_price": price})
}

/// A product created by the administrator; answers its SKU.
async fn product(admin: &Api, sku: &str, name: &str, price: &str, on_hand: Option<i64>) -> String {
    let mut body = json!({"sku": sku, "name": name, "prices": {"USD": price, "EUR": price}});
    if let Some(units) = on_hand {
        body["stock"] = json!({"on_hand": units});
    }
    let r = post(admin, "/api/v1/products", body, None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["sku"].as_str().unwrap().to_owned()
}

/// The products [`line`] names, once per app.
async fn stock_shelf(admin: &Api) {
    for price in ["19.99", "0.02", "1.00", "3.00", "5.00"] {
        let sku = format!("p-{price}");
        if get(admin, &format!("/api/v1/products/{sku}")).await.status == StatusCode::NOT_FOUND {
            product(admin, &sku, &format!("Mug {price} — ünïcode"), price, None).await;
        }
    }
}

/// Orders: totals, ETag and If-Match, the status machine over HTTP, paying, authorization.
async fn orders_api(anon: &Api) {
    let me = anon.signed_up().await;
    let other = anon.signed_up().await;
    let admin = anon.admin().await;
    stock_shelf(&admin).await;
    let placed = post(
        &me,
        "/api/v1/orders",
        order_body(json!([line(json!(2), "19.99"), line(json!(1), "0.02")])),
        None,
    )
    .await;
    assert_eq!(placed.status, StatusCode::CREATED, "{}", placed.body);
    assert_eq!(
        (
            placed.body["total"].as_str(),
            placed.body["status"].as_str(),
            placed.body["version"].as_i64()
        ),
        (Some("40.00"), Some("pending"), Some(1))
    );
    assert_eq!(placed.headers["etag"], "\"1\"");
    assert_eq!(placed.body["items"][0]["line_total"], "39.98");
    assert_eq!(placed.body["customer_id"], me.user_id.as_str());
    let id = placed.body["id"].as_str().unwrap().to_owned();
    let uri = format!("/api/v1/orders/{id}");

    // Bad input changes nothing.
    let thousand: Vec<Value> = (0..1000).map(|_| line(json!(1), "1.00")).collect();
    let cases: Vec<(&str, Value, StatusCode, &str, &str)> = vec![
        (
            "no items",
            order_body(json!([])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "items_invalid",
            "items",
        ),
        (
            "quantity 0",
            order_body(json!([line(json!(0), "1.00")])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "items_invalid",
            "items[0].quantity",
        ),
        (
            "quantity above 10 000",
            order_body(json!([line(json!(10_001), "1.00")])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "items_invalid",
            "items[0].quantity",
        ),
        (
            "negative quantity",
            order_body(json!([line(json!(-1), "1.00")])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "items[0].quantity",
        ),
        (
            "a price the customer set",
            order_body(json!([{"sku": "p-1.00", "quantity": 1, "price": "0.01"}])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "price_mismatch",
            "items[0].price",
        ),
        (
            "an unknown product",
            order_body(json!([{"sku": "no-such-thing", "quantity": 1}])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "product_unknown",
            "items[0].sku",
        ),
        (
            "one SKU on two lines",
            order_body(json!([line(json!(1), "1.00"), {"sku": " P-1.00 ", "quantity": 2}])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "sku_duplicate",
            "items[1].sku",
        ),
        (
            "no SKU",
            order_body(json!([{"quantity": 1}])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "sku_invalid",
            "items[0].sku",
        ),
        (
            "a customer's price override",
            order_body(json!([{"sku": "p-1.00", "quantity": 1, "price_override": "0.01"}])),
            StatusCode::FORBIDDEN,
            "forbidden",
            "",
        ),
        (
            "mixed currencies",
            json!({"currency": "USD", "items": [{"product_id": "a", "name": "A", "quantity": 1, "unit_price": "1.00", "currency": "EUR"}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "currency_mismatch",
            "items[0].currency",
        ),
        (
            "a client total",
            json!({"currency": "USD", "items": [line(json!(1), "1.00")], "total": "0.01"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "total_not_accepted",
            "total",
        ),
        (
            "1000 items",
            order_body(json!(thousand)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "items_invalid",
            "items",
        ),
        (
            "three decimals",
            order_body(json!([line(json!(1), "1.001")])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "amount_too_precise",
            "items[0].unit_price",
        ),
        (
            "someone else's order",
            json!({"customer_id": other.user_id, "currency": "USD", "items": [line(json!(1), "1.00")]}),
            StatusCode::FORBIDDEN,
            "forbidden",
            "",
        ),
    ];
    for (name, body, status, code, field) in cases {
        let r = post(&me, "/api/v1/orders", body, None).await;
        assert_eq!(
            (r.status, r.body["code"].as_str()),
            (status, Some(code)),
            "{name}: {}",
            r.body
        );
        if !field.is_empty() {
            assert_eq!(r.body["errors"][0]["field"], field, "{name}: {}", r.body);
        }
    }
    let big = order_body(
        json!([{"product_id": "a", "name": "n".repeat(1024 * 1024), "quantity": 1, "unit_price": "1.00"}]),
    );
    assert_eq!(
        post(&me, "/api/v1/orders", big, None).await.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "a 1 MB name"
    );
    let listed = get(&me, "/api/v1/orders").await;
    assert_eq!(
        listed.body["data"].as_array().unwrap().len(),
        1,
        "nothing else was created"
    );
    for (query, param) in [
        ("status=lost", "status"),
        ("limit=0", "limit"),
        ("cursor=zz", "cursor"),
        ("created_after=soon", "created_after"),
        ("sort=x", "sort"),
    ] {
        let r = get(&me, &format!("/api/v1/orders?{query}")).await;
        assert_eq!(
            (r.status, r.body["errors"][0]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(param)),
            "{query}"
        );
    }

    // If-Match: two writers with the same ETag, one wins, one 412.
    let change = |qty: i64| json!({"items": [line(json!(qty), "5.00")]}).to_string();
    let first = call(
        &me,
        "PUT",
        &uri,
        &[JSON, ("if-match", "\"1\"")],
        Some(&change(2)),
    )
    .await;
    assert_eq!(
        (first.status, first.body["total"].as_str()),
        (StatusCode::OK, Some("10.00"))
    );
    assert_eq!(first.headers["etag"], "\"2\"");
    let second = call(
        &me,
        "PUT",
        &uri,
        &[JSON, ("if-match", "\"1\"")],
        Some(&change(3)),
    )
    .await;
    assert_eq!(
        (second.status, second.body["code"].as_str()),
        (StatusCode::PRECONDITION_FAILED, Some("precondition_failed"))
    );
    let bad_tag = call(
        &me,
        "PUT",
        &uri,
        &[JSON, ("if-match", "yesterday")],
        Some(&change(3)),
    )
    .await;
    assert_eq!(
        (bad_tag.status, bad_tag.body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("if_match_invalid"))
    );
    // RFC 9110: a malformed If-Match is a bad request; a well-formed tag that is not the
    // current one (another server's, a weak one under strong comparison, an empty list
    // item beside an old version) fails the precondition, and so does a list that names no
    // tag at all (`#entity-tag` admits zero elements; none of them matches).
    for malformed in ["yesterday", "\"2", "W/2", "\"2\" \"3\""] {
        let r = call(
            &me,
            "PUT",
            &uri,
            &[JSON, ("if-match", malformed)],
            Some(&change(3)),
        )
        .await;
        assert_eq!(
            (r.status, r.body["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("if_match_invalid")),
            "If-Match: {malformed}"
        );
    }
    for stale in ["\"stale-0\"", "W/\"2\"", "\"1\", \"x\"", "\"\"", ",", ""] {
        let r = call(
            &me,
            "PUT",
            &uri,
            &[JSON, ("if-match", stale)],
            Some(&change(3)),
        )
        .await;
        assert_eq!(
            (r.status, r.body["code"].as_str()),
            (StatusCode::PRECONDITION_FAILED, Some("precondition_failed")),
            "If-Match: {stale}"
        );
    }
    let listed = call(
        &me,
        "PUT",
        &uri,
        &[JSON, ("if-match", "\"1\", \"2\"")],
        Some(&change(2)),
    )
    .await;
    assert_eq!(
        listed.status,
        StatusCode::OK,
        "a list matches when one of its tags does"
    );
    assert_eq!(listed.headers["etag"], "\"3\"");
    let got = call(&me, "GET", &uri, &[], None).await;
    assert_eq!(
        (
            got.body["total"].as_str(),
            got.headers["etag"].to_str().unwrap()
        ),
        (Some("10.00"), "\"3\"")
    );

    // Another customer sees nothing of it.
    for (method, path, body) in [
        ("GET", uri.clone(), None),
        ("PUT", uri.clone(), Some(change(9))),
        ("DELETE", uri.clone(), None),
        (
            "POST",
            format!("{uri}/pay"),
            Some(json!({"payment_method_token": "tok_visa"}).to_string()),
        ),
    ] {
        let r = call(
            &other,
            method,
            &path,
            &[JSON, ("idempotency-key", "x-1")],
            body.as_deref(),
        )
        .await;
        assert_eq!(
            (r.status, r.body["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("order_not_found")),
            "{method} {path}"
        );
    }
    let spying = get(
        &other,
        &format!("/api/v1/orders?customer_id={}", me.user_id),
    )
    .await;
    assert_eq!(spying.status, StatusCode::FORBIDDEN);
    assert_eq!(
        call(&admin, "GET", &uri, &[], None).await.status,
        StatusCode::OK,
        "administrators see every order"
    );

    // The machine over HTTP.
    let ship = call(&me, "POST", &format!("{uri}/ship"), &[], None).await;
    assert_eq!(ship.status, StatusCode::FORBIDDEN, "customers do not ship");
    let ship = call(&admin, "POST", &format!("{uri}/ship"), &[], None).await;
    assert_eq!(
        (ship.status, ship.body["code"].as_str()),
        (StatusCode::CONFLICT, Some("invalid_state_transition")),
        "not before payment"
    );

    // Paying: key required; declined leaves it pending; success freezes it.
    let pay = |token: &str| json!({"payment_method_token": token});
    let no_key = post(&me, &format!("{uri}/pay"), pay("tok_visa"), None).await;
    assert_eq!(no_key.body["code"], "idempotency_key_required");
    let declined = post(
        &me,
        &format!("{uri}/pay"),
        pay("tok_chargeDeclined"),
        Some("order-pay-1"),
    )
    .await;
    assert_eq!(declined.status, StatusCode::PAYMENT_REQUIRED);
    let still = call(&me, "GET", &uri, &[], None).await;
    assert_eq!(
        (
            still.body["status"].as_str(),
            still.body["payment_id"].as_str()
        ),
        (Some("pending"), None)
    );
    let paid = post(
        &me,
        &format!("{uri}/pay"),
        pay("tok_visa"),
        Some("order-pay-2"),
    )
    .await;
    assert_eq!(paid.status, StatusCode::CREATED, "{}", paid.body);
    assert_eq!(paid.body["amount"], "10.00");
    let paying = call(&me, "GET", &uri, &[], None).await;
    assert_eq!(paying.body["payment_id"], paid.body["id"]);
    let replay = post(
        &me,
        &format!("{uri}/pay"),
        pay("tok_visa"),
        Some("order-pay-2"),
    )
    .await;
    assert_eq!(
        (
            replay.status,
            replay.headers["idempotent-replayed"].to_str().unwrap()
        ),
        (StatusCode::CREATED, "true")
    );
    let again = post(
        &me,
        &format!("{uri}/pay"),
        pay("tok_visa"),
        Some("order-pay-3"),
    )
    .await;
    assert_eq!(
        (again.status, again.body["code"].as_str()),
        (StatusCode::CONFLICT, Some("order_not_modifiable")),
        "no second payment"
    );
    let frozen = call(&me, "PUT", &uri, &[JSON], Some(&change(1))).await;
    assert_eq!(frozen.status, StatusCode::CONFLICT);

    // Cancel, then nothing more.
    let other_order = post(
        &me,
        "/api/v1/orders",
        order_body(json!([line(json!(1), "3.00")])),
        None,
    )
    .await;
    let other_uri = format!(
        "/api/v1/orders/{}",
        other_order.body["id"].as_str().unwrap()
    );
    let cancelled = call(&me, "DELETE", &other_uri, &[("if-match", "\"1\"")], None).await;
    assert_eq!(
        (cancelled.status, cancelled.body["status"].as_str()),
        (StatusCode::OK, Some("cancelled"))
    );
    let pay_cancelled = post(
        &me,
        &format!("{other_uri}/pay"),
        pay("tok_visa"),
        Some("order-pay-4"),
    )
    .await;
    assert_eq!(
        (pay_cancelled.status, pay_cancelled.body["code"].as_str()),
        (StatusCode::CONFLICT, Some("order_not_modifiable"))
    );
    let twice = call(&me, "DELETE", &other_uri, &[], None).await;
    assert_eq!(twice.status, StatusCode::CONFLICT);
    let filtered = get(&me, "/api/v1/orders?status=cancelled").await;
    assert_eq!(filtered.body["data"].as_array().unwrap().len(), 1);
}

/// The catalog: administrators keep products and stock; a customer orders by SKU at the
/// catalog's price and can neither set a price nor take more than is in stock.
async fn catalog_api(anon: &Api) {
    let me = anon.signed_up().await;
    let admin = anon.admin().await;
    let laptop = json!({"sku": " Laptop-Pro-16 ", "name": "Laptop Pro 16", "description": "16-inch", "prices": {"USD": "1999.00", "JPY": 299000}, "stock": {"on_hand": 3, "low_stock_threshold": 1}});
    assert_eq!(
        status_code(&post(&me, "/api/v1/products", laptop.clone(), None).await),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    let made = post(&admin, "/api/v1/products", laptop.clone(), None).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    assert_eq!(
        (
            made.body["sku"].as_str(),
            made.body["prices"]["JPY"].as_str()
        ),
        (Some("laptop-pro-16"), Some("299000")),
        "the SKU is normalised"
    );
    assert_eq!(made.headers["location"], "/api/v1/products/laptop-pro-16");
    assert_eq!(made.body["stock"]["available"], 3);
    for (name, body, status, code, field) in [
        (
            "the same SKU in capitals",
            json!({"sku": "LAPTOP-PRO-16", "name": "x", "prices": {"USD": "1"}}),
            StatusCode::CONFLICT,
            "sku_taken",
            "",
        ),
        (
            "cents of yen",
            json!({"sku": "a1", "name": "x", "prices": {"JPY": "1.5"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "amount_too_precise",
            "prices.JPY",
        ),
        (
            "three decimals of USD",
            json!({"sku": "a1", "name": "x", "prices": {"USD": "1.001"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "amount_too_precise",
            "prices.USD",
        ),
        (
            "no price",
            json!({"sku": "a1", "name": "x", "prices": {}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "product_invalid",
            "prices",
        ),
        (
            "a bad SKU",
            json!({"sku": "a/b", "name": "x", "prices": {"USD": "1"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "sku_invalid",
            "sku",
        ),
        (
            "negative stock",
            json!({"sku": "a1", "name": "x", "prices": {"USD": "1"}, "stock": {"on_hand": -1}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "stock_below_reserved",
            "stock",
        ),
    ] {
        let r = post(&admin, "/api/v1/products", body, None).await;
        assert_eq!(status_code(&r), (status, code), "{name}: {}", r.body);
        if !field.is_empty() {
            assert_eq!(r.body["errors"][0]["field"], field, "{name}: {}", r.body);
        }
    }
    let seen = get(&me, "/api/v1/products/LAPTOP-PRO-16").await;
    assert_eq!(
        (seen.status, seen.body["stock"].clone()),
        (StatusCode::OK, Value::Null),
        "customers do not see stock figures"
    );

    // The customer-set price of the issue: refused, nothing reserved.
    let cheap = json!({"currency":"USD","items":[{"product_id":"laptop-pro-16","name":"Laptop Pro 16","quantity":1,"unit_price":"0.01"}]});
    let refused = post(&me, "/api/v1/orders", cheap, None).await;
    assert_eq!(
        status_code(&refused),
        (StatusCode::UNPROCESSABLE_ENTITY, "price_mismatch"),
        "{}",
        refused.body
    );
    assert!(
        refused.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("1999.00"),
        "{}",
        refused.body
    );
    let stock = |admin: Api| async move {
        get(&admin, "/api/v1/products/laptop-pro-16").await.body["stock"].clone()
    };
    assert_eq!(
        stock(admin.clone()).await["reserved"],
        0,
        "nothing reserved"
    );

    // By SKU at the catalog's price; stock is reserved, then runs out.
    let order = post(&me, "/api/v1/orders", json!({"currency": "USD", "items": [{"sku": "laptop-pro-16", "quantity": 2, "price": 1999}]}), None).await;
    assert_eq!(order.status, StatusCode::CREATED, "{}", order.body);
    assert_eq!(
        (
            order.body["items"][0]["name"].as_str(),
            order.body["items"][0]["unit_price"].as_str(),
            order.body["total"].as_str()
        ),
        (Some("Laptop Pro 16"), Some("1999.00"), Some("3998.00"))
    );
    let more = post(
        &me,
        "/api/v1/orders",
        json!({"currency": "USD", "items": [{"sku": "laptop-pro-16", "quantity": 2}]}),
        None,
    )
    .await;
    assert_eq!(
        status_code(&more),
        (StatusCode::CONFLICT, "insufficient_stock"),
        "{}",
        more.body
    );
    assert_eq!(more.body["errors"][0]["field"], "items[0].quantity");
    assert_eq!(stock(admin.clone()).await["available"], 1);

    // Adjustments with a reason; never below what is reserved.
    let adjust = |body: Value| {
        let admin = admin.clone();
        async move {
            post(
                &admin,
                "/api/v1/products/laptop-pro-16/stock/adjustments",
                body,
                None,
            )
            .await
        }
    };
    let below = adjust(json!({"quantity": -2, "reason": "broken"})).await;
    assert_eq!(
        status_code(&below),
        (StatusCode::CONFLICT, "stock_below_reserved"),
        "{}",
        below.body
    );
    let zero = adjust(json!({"quantity": 0, "reason": "nothing"})).await;
    assert_eq!(
        status_code(&zero),
        (StatusCode::UNPROCESSABLE_ENTITY, "stock_invalid"),
        "{}",
        zero.body
    );
    let delivered = adjust(json!({"quantity": 10, "reason": "delivery"})).await;
    assert_eq!(delivered.status, StatusCode::OK, "{}", delivered.body);
    assert_eq!(
        (
            delivered.body["stock"]["on_hand"].as_i64(),
            delivered.body["stock"]["available"].as_i64()
        ),
        (Some(13), Some(11))
    );
    let moves = get(
        &admin,
        "/api/v1/products/laptop-pro-16/stock/movements?limit=2",
    )
    .await;
    assert_eq!(moves.status, StatusCode::OK, "{}", moves.body);
    let kinds: Vec<_> = moves.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["kind"].as_str().unwrap().to_owned(),
                m["quantity"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [("adjusted".to_owned(), 10), ("reserved".to_owned(), 2)]
    );
    let rest = get(
        &admin,
        &format!(
            "/api/v1/products/laptop-pro-16/stock/movements?cursor={}",
            moves.body["next_cursor"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(rest.body["data"][0]["reason"], "initial stock");
    assert_eq!(
        status_code(&get(&me, "/api/v1/products/laptop-pro-16/stock/movements").await),
        (StatusCode::FORBIDDEN, "forbidden")
    );

    // Cancelling gives the units back.
    let uri = format!("/api/v1/orders/{}", order.body["id"].as_str().unwrap());
    assert_eq!(
        call(&me, "DELETE", &uri, &[], None).await.status,
        StatusCode::OK
    );
    assert_eq!(stock(admin.clone()).await["reserved"], 0);

    // A placement retried with its key answers the first order and reserves nothing again.
    let all = json!({"currency": "USD", "items": [{"sku": "laptop-pro-16", "quantity": 13}]});
    let first = post(&me, "/api/v1/orders", all.clone(), Some("place-all")).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let again = post(&me, "/api/v1/orders", all, Some("place-all")).await;
    assert_eq!(
        (again.status, again.body["id"].clone()),
        (StatusCode::CREATED, first.body["id"].clone()),
        "{}",
        again.body
    );
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(stock(admin.clone()).await["reserved"], 13, "reserved once");
    let other = json!({"currency": "USD", "items": [{"sku": "laptop-pro-16", "quantity": 1}]});
    let reused = post(&me, "/api/v1/orders", other, Some("place-all")).await;
    assert_eq!(
        status_code(&reused),
        (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
    );

    // Changes with If-Match; archived products are neither listed nor orderable.
    let stale = call(
        &admin,
        "PATCH",
        "/api/v1/products/laptop-pro-16",
        &[JSON, ("if-match", "\"7\"")],
        Some(r#"{"name": "Laptop"}"#),
    )
    .await;
    assert_eq!(
        status_code(&stale),
        (StatusCode::PRECONDITION_FAILED, "precondition_failed")
    );
    let renamed = call(
        &admin,
        "PATCH",
        "/api/v1/products/laptop-pro-16",
        &[JSON, ("if-match", "\"1\"")],
        Some(r#"{"name": "Laptop Pro 16 (2026)", "prices": {"USD": "1899.00"}}"#),
    )
    .await;
    assert_eq!(
        (renamed.status, renamed.headers["etag"].to_str().unwrap()),
        (StatusCode::OK, "\"2\""),
        "{}",
        renamed.body
    );
    let archived = call(
        &admin,
        "DELETE",
        "/api/v1/products/laptop-pro-16",
        &[("if-match", "\"2\"")],
        None,
    )
    .await;
    assert_eq!(
        (archived.status, archived.body["active"].as_bool()),
        (StatusCode::OK, Some(false))
    );
    assert_eq!(
        get(&me, "/api/v1/products/laptop-pro-16").await.status,
        StatusCode::NOT_FOUND
    );
    let listed = get(&me, "/api/v1/products?limit=100").await;
    assert!(
        listed.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["sku"] != "laptop-pro-16")
    );
    let gone = post(
        &me,
        "/api/v1/orders",
        json!({"currency": "USD", "items": [{"sku": "laptop-pro-16", "quantity": 1}]}),
        None,
    )
    .await;
    assert_eq!(
        status_code(&gone),
        (StatusCode::UNPROCESSABLE_ENTITY, "product_archived")
    );
    assert_eq!(
        status_code(&get(&me, "/api/v1/products?active=false").await),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    let old = get(&admin, "/api/v1/products?active=false").await;
    assert_eq!(old.body["data"][0]["sku"], "laptop-pro-16");
}

/// Seed 003's `POST /orders` body as written (no currency, no names, `price` a JSON number),
/// with only an Authorization header added and the caller's own id as `customer_id`.
async fn seed_003_orders(anon: &Api) {
    let me = anon.signed_up().await;
    let other = anon.signed_up().await;
    let admin = anon.admin().await;
    if get(&admin, "/api/v1/products/prod-1").await.status == StatusCode::NOT_FOUND {
        product(&admin, "prod-1", "Product 1", "29.99", None).await;
    }
    let seed = |customer: &str, price: f64| json!({"customer_id": customer, "items": [{"product_id": "prod-1", "quantity": 2, "price": price}]});
    let placed = post(&me, "/api/v1/orders", seed(&me.user_id, 29.99), None).await;
    assert_eq!(placed.status, StatusCode::CREATED, "{}", placed.body);
    assert_eq!(
        (
            placed.body["currency"].as_str(),
            placed.body["total"].as_str(),
            placed.body["items"][0]["name"].as_str()
        ),
        (Some("USD"), Some("59.98"), Some("Product 1")),
        "the configured currency, the catalog's name and price"
    );
    let read = get(
        &me,
        &format!("/api/v1/orders/{}", placed.body["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(
        read.body["items"][0]["product_id"], "prod-1",
        "seed 003's GET"
    );
    let cheaper = post(&me, "/api/v1/orders", seed(&me.user_id, 19.99), None).await;
    assert_eq!(
        status_code(&cheaper),
        (StatusCode::UNPROCESSABLE_ENTITY, "price_mismatch")
    );
    let theirs = post(&me, "/api/v1/orders", seed(&other.user_id, 29.99), None).await;
    assert_eq!(status_code(&theirs), (StatusCode::FORBIDDEN, "forbidden"));
    let for_them = post(&admin, "/api/v1/orders", seed(&other.user_id, 29.99), None).await;
    assert_eq!(
        (for_them.status, for_them.body["customer_id"].as_str()),
        (StatusCode::CREATED, Some(other.user_id.as_str())),
        "an administrator names any customer"
    );
}

/// Search over HTTP: the rebuild from the store, owner scoping, filters, facets, bad queries.
async fn search_api(anon: &Api) {
    let me = anon.signed_up().await;
    let other = anon.signed_up().await;
    let admin = anon.admin().await;
    let word = format!("kite{}", uuid::Uuid::now_v7().simple());
    let kite = product(
        &admin,
        &format!("sku-{word}"),
        &format!("Red {word}"),
        "5.00",
        None,
    )
    .await;
    let item = json!({"product_id": kite, "quantity": 2, "unit_price": "5.00"});
    for who in [&me, &other] {
        let r = post(who, "/api/v1/orders", order_body(json!([item])), None).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    let mut paid = payment(json!("12.50"), "EUR", "tok_visa");
    paid["metadata"] = json!({"note": word});
    let r = post(&me, "/api/v1/payments", paid, Some(&unique("k"))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

    let search = |who: &Api, query: String| {
        let who = who.clone();
        async move { get(&who, &format!("/api/v1/search?{query}")).await }
    };
    let before = search(&admin, format!("q={word}")).await;
    assert_eq!(before.status, StatusCode::OK, "{}", before.body);
    assert_eq!(
        before.body["total"], 0,
        "nothing indexed before the rebuild"
    );

    assert_eq!(
        status_code(&call(anon, "POST", "/api/v1/search/reindex", &[], None).await),
        (StatusCode::UNAUTHORIZED, "unauthenticated")
    );
    assert_eq!(
        status_code(&call(&me, "POST", "/api/v1/search/reindex", &[], None).await),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    let rebuilt = call(&admin, "POST", "/api/v1/search/reindex", &[], None).await;
    assert_eq!(rebuilt.status, StatusCode::OK, "{}", rebuilt.body);
    assert!(rebuilt.body["documents"].as_u64().unwrap() >= 3);

    let all = search(&admin, format!("q={word}")).await;
    assert_eq!(
        all.body["total"], 4,
        "two orders, a payment, the product: {}",
        all.body
    );
    assert_eq!(all.body["facets"]["type"]["product"], 1);
    assert_eq!(all.body["facets"]["type"]["order"], 2);
    assert_eq!(all.body["facets"]["type"]["payment"], 1);
    assert_eq!(all.body["facets"]["currency"]["EUR"], 1);
    assert_eq!(all.body["facets"]["currency"]["USD"], 2);

    let mine = search(&me, format!("q={word}")).await;
    assert_eq!(mine.body["total"], 2, "{}", mine.body);
    for hit in mine.body["data"].as_array().unwrap() {
        assert_eq!(hit["fields"]["customer_id"], me.user_id.as_str());
    }
    let theirs = search(&other, format!("q={word}")).await;
    assert_eq!(theirs.body["total"], 1, "{}", theirs.body);
    assert_eq!(theirs.body["data"][0]["type"], "order");
    assert_eq!(theirs.body["data"][0]["fields"]["status"], "pending");
    assert_eq!(theirs.body["data"][0]["fields"]["total"], "10.00");

    let payments_only = search(&me, format!("q={word}&type=payment")).await;
    assert_eq!(payments_only.body["total"], 1);
    assert_eq!(payments_only.body["data"][0]["fields"]["amount"], "12.50");
    let eur = search(&admin, format!("q={word}&currency=EUR&status=succeeded")).await;
    assert_eq!(eur.body["total"], 1, "{}", eur.body);
    let paged = search(&admin, format!("q={word}&limit=1&offset=1")).await;
    assert_eq!(
        (
            paged.body["total"].as_u64(),
            paged.body["data"].as_array().unwrap().len()
        ),
        (Some(4), 1)
    );
    let phrase = search(&admin, format!("q=%22red+{word}%22&type=order")).await;
    assert_eq!(phrase.body["total"], 2, "{}", phrase.body);
    let product = search(&other, format!("q={word}&type=product")).await;
    assert_eq!(
        (
            product.body["total"].as_u64(),
            product.body["data"][0]["id"].as_str()
        ),
        (Some(1), Some(format!("product:{kite}").as_str())),
        "any customer finds the catalog's products: {}",
        product.body
    );

    let long = "a".repeat(1001);
    let cases = [
        ("", StatusCode::BAD_REQUEST, "invalid_parameter", "q"),
        ("q=", StatusCode::BAD_REQUEST, "query_invalid", "q"),
        ("q=%20%20", StatusCode::BAD_REQUEST, "query_invalid", "q"),
        (
            "q=%22unclosed",
            StatusCode::BAD_REQUEST,
            "query_invalid",
            "q",
        ),
        ("q=status:(", StatusCode::BAD_REQUEST, "query_invalid", "q"),
        (
            "limit=0&q=a",
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            "limit",
        ),
        (
            "limit=101&q=a",
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            "limit",
        ),
        (
            "offset=-1&q=a",
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            "offset",
        ),
        (
            "offset=10001&q=a",
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            "offset",
        ),
        (
            "offset=x&q=a",
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            "offset",
        ),
        (
            "q=a&sort=score",
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            "sort",
        ),
    ];
    for (query, status, code, field) in cases {
        let r = search(&me, query.to_owned()).await;
        assert_eq!(
            (
                r.status,
                r.body["code"].as_str(),
                r.body["errors"][0]["field"].as_str()
            ),
            (status, Some(code), Some(field)),
            "{query}: {}",
            r.body
        );
    }
    let r = search(&me, format!("q={long}")).await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("query_invalid"))
    );
    assert_eq!(
        status_code(&search(anon, format!("q={word}")).await),
        (StatusCode::UNAUTHORIZED, "unauthenticated")
    );
}

/// Administrators list a group's dead letters and replay one; customers are refused; unknown
/// groups and letters are 404.
/// A payment's and an order's events from the history, in order, for the owner and
/// administrators only.
async fn event_history_api(anon: &Api) {
    let me = anon.signed_up().await;
    let other = anon.signed_up().await;
    let admin = anon.admin().await;
    let paid = post(
        &me,
        "/api/v1/payments",
        payment(json!("12.34"), "USD", "tok_visa"),
        None,
    )
    .await;
    assert_eq!(paid.status, StatusCode::CREATED, "{}", paid.body);
    let uri = format!(
        "/api/v1/payments/{}/events",
        paid.body["id"].as_str().unwrap()
    );
    // The audit group records them within moments of the commit.
    let mut events = Value::Null;
    for _ in 0..100 {
        let r = get(&me, &uri).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        if r.body["data"].as_array().map(Vec::len) == Some(2) {
            events = r.body;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let seen: Vec<_> = events["data"]
        .as_array()
        .expect("the payment's two events within 10 s")
        .iter()
        .map(|e| {
            (
                e["type"].as_str(),
                e["sequence"].as_i64(),
                e["object"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (Some("payment.created"), Some(1), Some("event")),
            (Some("payment.succeeded"), Some(2), Some("event"))
        ]
    );
    assert_eq!(events["data"][1]["data"]["payment"]["amount_minor"], 1234);
    assert_eq!(
        get(&admin, &uri).await.body,
        events,
        "administrators read it too"
    );
    assert_eq!(
        status_code(&get(&other, &uri).await),
        (StatusCode::NOT_FOUND, "payment_not_found"),
        "another customer learns nothing"
    );
    assert_eq!(get(anon, &uri).await.status, StatusCode::UNAUTHORIZED);
    for missing in [
        "/api/v1/payments/not-a-uuid/events",
        "/api/v1/orders/not-a-uuid/events",
    ] {
        assert_eq!(
            get(&me, missing).await.status,
            StatusCode::NOT_FOUND,
            "{missing}"
        );
    }
    let unknown = format!("/api/v1/orders/{}/events", uuid::Uuid::now_v7());
    assert_eq!(
        status_code(&get(&admin, &unknown).await),
        (StatusCode::NOT_FOUND, "order_not_found")
    );

    stock_shelf(&admin).await;
    let placed = post(
        &me,
        "/api/v1/orders",
        order_body(json!([line(json!(1), "1.00")])),
        None,
    )
    .await;
    assert_eq!(placed.status, StatusCode::CREATED, "{}", placed.body);
    let uri = format!(
        "/api/v1/orders/{}/events",
        placed.body["id"].as_str().unwrap()
    );
    let mut first = None;
    for _ in 0..100 {
        let r = get(&me, &uri).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        if let Some(e) = r.body["data"].as_array().and_then(|d| d.first()) {
            first = Some(e.clone());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let first = first.expect("the order's first event within 10 s");
    assert_eq!(first["type"], "order.created");
    assert_eq!(first["aggregate_type"], "order");
    assert_eq!(first["sequence"], 1);
    assert_eq!(
        status_code(&get(&other, &uri).await).0,
        StatusCode::NOT_FOUND
    );
}

async fn dead_letters_api(anon: &Api) {
    let me = anon.signed_up().await;
    let admin = anon.admin().await;
    assert_eq!(
        status_code(&get(&me, "/api/v1/dead-letters/audit").await),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    assert_eq!(
        status_code(&get(&admin, "/api/v1/dead-letters/nobody").await),
        (StatusCode::NOT_FOUND, "consumer_group_not_found")
    );
    assert_eq!(
        status_code(&get(&admin, "/api/v1/dead-letters/audit?limit=0").await),
        (StatusCode::BAD_REQUEST, "invalid_parameter")
    );
    let listed = get(&admin, "/api/v1/dead-letters/audit").await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert_eq!(listed.body["has_more"], false);
    let letter = &listed.body["data"][0];
    assert_eq!(
        (
            letter["id"].as_str(),
            letter["group"].as_str(),
            letter["event"]["type"].as_str(),
            letter["error"].as_str()
        ),
        (
            Some("seeded-1"),
            Some("audit"),
            Some("payment.succeeded"),
            Some("handler exploded")
        )
    );
    let replay = "/api/v1/dead-letters/audit/seeded-1/replay";
    assert_eq!(
        call(&me, "POST", replay, &[], None).await.status,
        StatusCode::FORBIDDEN
    );
    let r = call(&admin, "POST", replay, &[], None).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(r.body["id"], "seeded-1");
    let after = get(&admin, "/api/v1/dead-letters/audit").await;
    assert_eq!(
        after.body["data"].as_array().map(Vec::len),
        Some(0),
        "a replay under way leaves the list"
    );
    assert_eq!(
        status_code(
            &call(
                &admin,
                "POST",
                "/api/v1/dead-letters/audit/no-such/replay",
                &[],
                None
            )
            .await
        ),
        (StatusCode::NOT_FOUND, "dead_letter_not_found")
    );
}

/// The books behind the payments: administrators read accounts, entries, one ledger
/// transaction, the trial balance and the reconciliation; a customer reads their own wallet's
/// entries and nothing else.
async fn ledger_api(anon: &Api) {
    let me = anon.signed_up().await;
    let admin = anon.admin().await;
    let paid = post(
        &me,
        "/api/v1/payments",
        payment(json!("12.34"), "USD", "tok_visa"),
        None,
    )
    .await;
    assert_eq!(paid.status, StatusCode::CREATED, "{}", paid.body);
    let id = paid.body["id"].as_str().unwrap();
    let provider = paid.body["provider"].as_str().unwrap();
    let txns = get(&me, &format!("/api/v1/payments/{id}/transactions")).await;
    let charge = txns.body["data"][0]["id"].as_str().unwrap();

    for uri in [
        "/api/v1/ledger/accounts",
        "/api/v1/ledger/trial-balance",
        "/api/v1/ledger/check",
    ] {
        assert_eq!(
            status_code(&get(&me, uri).await),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{uri}"
        );
    }
    let accounts = get(&admin, "/api/v1/ledger/accounts?prefix=platform:").await;
    assert_eq!(accounts.status, StatusCode::OK, "{}", accounts.body);
    let revenue = &accounts.body["data"][0];
    assert_eq!(revenue["name"], "platform:revenue");
    assert_eq!(revenue["normal_side"], "credit");
    assert_eq!(revenue["guarded"], false);
    assert_eq!(
        status_code(&get(&admin, "/api/v1/ledger/accounts?currency=XYZ1").await),
        (StatusCode::BAD_REQUEST, "currency_unknown")
    );

    let pending = get(&admin, &format!("/api/v1/ledger/transactions/{charge}")).await;
    assert_eq!(pending.status, StatusCode::OK, "{}", pending.body);
    assert_eq!(pending.body["phase"], "pending");
    let clearing = format!("provider:{provider}:clearing");
    assert_eq!(
        pending.body["entries"],
        json!([
            {"account": clearing, "currency": "USD", "side": "debit", "amount": "12.34"},
            {"account": "platform:revenue", "currency": "USD", "side": "credit", "amount": "12.34"}
        ])
    );
    assert_eq!(
        status_code(&get(&admin, "/api/v1/ledger/transactions/nope").await),
        (StatusCode::NOT_FOUND, "ledger_transaction_not_found")
    );

    let statement = format!("/api/v1/ledger/accounts/{clearing}/entries?limit=1");
    let first = get(&admin, &statement).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.body["has_more"], true);
    assert_eq!(first.body["data"][0]["phase"], "post", "newest first");
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let second = get(&admin, &format!("{statement}&cursor={cursor}")).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert_ne!(second.body["data"][0], first.body["data"][0]);
    assert_eq!(
        status_code(&get(&admin, &format!("{statement}&cursor=garbage")).await),
        (StatusCode::BAD_REQUEST, "invalid_parameter")
    );

    let wallet = format!(
        "/api/v1/ledger/accounts/customer:{}:wallet/entries",
        me.user_id
    );
    let mine = get(&me, &wallet).await;
    assert_eq!(mine.status, StatusCode::OK, "{}", mine.body);
    assert_eq!(mine.body["data"], json!([]));
    for uri in [
        "/api/v1/ledger/accounts/platform:revenue/entries".to_owned(),
        "/api/v1/ledger/accounts/customer:someone_else:wallet/entries".to_owned(),
        "/api/v1/ledger/accounts/nothing/entries".to_owned(),
    ] {
        assert_eq!(
            status_code(&get(&me, &uri).await),
            (StatusCode::NOT_FOUND, "account_not_found"),
            "{uri}"
        );
    }

    let trial = get(&admin, "/api/v1/ledger/trial-balance").await;
    assert_eq!(trial.status, StatusCode::OK, "{}", trial.body);
    for line in trial.body["data"].as_array().unwrap() {
        assert_eq!(line["balanced"], true, "{line}");
    }
    let check = get(&admin, "/api/v1/ledger/check").await;
    assert_eq!(check.status, StatusCode::OK, "{}", check.body);
    assert_eq!(check.body["clean"], true, "{}", check.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_on_sqlite() {
    let app = Api::anonymous(sqlite_app().await);
    identity(&app).await;
    authentication(&app).await;
    authorization_matrix(&app).await;
    users_api(&app).await;
    messages_api(&app).await;
    membership(&app).await;
    orders_api(&app).await;
    catalog_api(&app).await;
    seed_003_orders(&app).await;
    walk_through(&app).await;
    bad_inputs(&app).await;
    hostile_inputs(&app).await;
    provider_outcomes(&app).await;
    idempotency_race(&app).await;
    pagination(&app).await;
    middleware(&app).await;
    search_api(&app).await;
    stripe_webhooks(&app).await;
    dead_letters_api(&app).await;
    event_history_api(&app).await;
    ledger_api(&app).await;
    wallets_api(&app).await;
    webhook_endpoints_api(&app).await;
    routing_api(&app).await;
    asynchronous_payments(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_on_postgres() {
    let Some((router, schema, mut admin)) = postgres_app().await else {
        return;
    };
    let app = Api::anonymous(router);
    identity(&app).await;
    authorization_matrix(&app).await;
    users_api(&app).await;
    messages_api(&app).await;
    membership(&app).await;
    orders_api(&app).await;
    catalog_api(&app).await;
    seed_003_orders(&app).await;
    walk_through(&app).await;
    bad_inputs(&app).await;
    hostile_inputs(&app).await;
    provider_outcomes(&app).await;
    idempotency_race(&app).await;
    pagination(&app).await;
    search_api(&app).await;
    stripe_webhooks(&app).await;
    dead_letters_api(&app).await;
    event_history_api(&app).await;
    ledger_api(&app).await;
    wallets_api(&app).await;
    webhook_endpoints_api(&app).await;
    routing_api(&app).await;
    asynchronous_payments(&app).await;
    drop(app);
    admin
        .execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
        .await
        .unwrap();
}

/// Wallets end to end: a top-up fills the wallet, the balance pays (payments and the
/// membership) and is refused when short (402), refunds put money back or are refused when a
/// top-up was spent (409), transfers move money once per key, bad inputs name their field, and
/// the books stay clean.
async fn wallets_api(anon: &Api) {
    let me = anon.signed_up().await;
    let friend = anon.signed_up().await;
    let stranger = anon.signed_up().await;
    let wallet = get(&me, "/api/v1/wallets/me").await;
    assert_eq!(wallet.status, StatusCode::OK, "{}", wallet.body);
    assert_eq!(wallet.body["balances"], json!([]));
    assert_eq!(
        wallet.body["account"],
        format!("customer:{}:wallet", me.user_id)
    );
    let balance = |r: &Reply| {
        let b = &r.body["balances"][0];
        (
            b["balance"].as_str().unwrap_or("").to_owned(),
            b["held"].as_str().unwrap_or("").to_owned(),
            b["available"].as_str().unwrap_or("").to_owned(),
        )
    };
    let strings = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());

    let top_up = json!({"amount": "50.00", "currency": "USD", "payment_method_token": "tok_visa"});
    assert_eq!(
        status_code(&post(&me, "/api/v1/wallets/me/top-ups", top_up.clone(), None).await),
        (StatusCode::BAD_REQUEST, "idempotency_key_required")
    );
    let topped = post(
        &me,
        "/api/v1/wallets/me/top-ups",
        top_up.clone(),
        Some("top-1"),
    )
    .await;
    assert_eq!(topped.status, StatusCode::CREATED, "{}", topped.body);
    assert_eq!(topped.body["metadata"]["portside_purpose"], "top_up");
    let again = post(&me, "/api/v1/wallets/me/top-ups", top_up, Some("top-1")).await;
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.body["id"], topped.body["id"]);
    assert_eq!(
        balance(&get(&me, "/api/v1/wallets/me").await),
        strings("50.00", "0.00", "50.00"),
        "credited once"
    );
    let from_itself = json!({"amount": "5", "currency": "USD", "payment_method": "wallet", "payment_method_token": "tok_visa"});
    assert_eq!(
        status_code(
            &post(
                &me,
                "/api/v1/wallets/me/top-ups",
                from_itself,
                Some("top-2")
            )
            .await
        ),
        (StatusCode::UNPROCESSABLE_ENTITY, "payment_method_invalid")
    );

    let by_wallet =
        |amount: &str| json!({"amount": amount, "currency": "USD", "payment_method": "wallet"});
    let paid = post(&me, "/api/v1/payments", by_wallet("30.00"), None).await;
    assert_eq!(paid.status, StatusCode::CREATED, "{}", paid.body);
    assert_eq!(paid.body["provider"], "wallet");
    assert_eq!(paid.body["status"], "succeeded");
    let short = post(&me, "/api/v1/payments", by_wallet("20.01"), None).await;
    assert_eq!(
        status_code(&short),
        (StatusCode::PAYMENT_REQUIRED, "insufficient_funds"),
        "{}",
        short.body
    );
    let mut elsewhere = by_wallet("1.00");
    elsewhere["provider"] = json!("mock");
    let refused = post(&me, "/api/v1/payments", elsewhere, None).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.body["errors"][0]["field"], "provider");
    assert_eq!(refused.body["errors"][0]["code"], "payment_method_invalid");
    let tokenless = post(
        &me,
        "/api/v1/payments",
        json!({"amount": "1.00", "currency": "USD"}),
        None,
    )
    .await;
    assert_eq!(
        tokenless.body["errors"][0]["code"], "payment_method_token_required",
        "{}",
        tokenless.body
    );

    let checkout = post(
        &me,
        "/api/v1/memberships/checkout",
        json!({"payment_method": "wallet"}),
        Some(&unique("checkout")),
    )
    .await;
    assert_eq!(checkout.status, StatusCode::CREATED, "{}", checkout.body);
    assert_eq!(checkout.body["provider"], "wallet");
    assert_eq!(
        balance(&get(&me, "/api/v1/wallets/me").await),
        strings("10.01", "0.00", "10.01"),
        "50.00 less 30.00 and the membership's 9.99"
    );

    let refund_uri = |r: &Reply| {
        format!(
            "/api/v1/payments/{}/refunds",
            r.body["id"].as_str().unwrap()
        )
    };
    let back = post(&me, &refund_uri(&paid), json!({"amount": "10.00"}), None).await;
    assert_eq!(back.status, StatusCode::CREATED, "{}", back.body);
    assert_eq!(
        balance(&get(&me, "/api/v1/wallets/me").await),
        strings("20.01", "0.00", "20.01"),
        "a wallet payment refunds to the wallet"
    );
    assert_eq!(
        status_code(&post(&me, &refund_uri(&topped), json!({}), None).await),
        (StatusCode::CONFLICT, "top_up_spent"),
        "the top-up's 50.00 is no longer in the wallet"
    );

    let send = |amount: &str| json!({"recipient_id": friend.user_id, "amount": amount, "currency": "USD", "description": "lunch"});
    assert_eq!(
        status_code(&post(&me, "/api/v1/transfers", send("5.00"), None).await),
        (StatusCode::BAD_REQUEST, "idempotency_key_required")
    );
    let sent = post(&me, "/api/v1/transfers", send("5.00"), Some("send-1")).await;
    assert_eq!(sent.status, StatusCode::CREATED, "{}", sent.body);
    assert_eq!(sent.body["object"], "transfer");
    assert_eq!(sent.body["status"], "succeeded");
    assert_eq!(sent.body["recipient_id"], friend.user_id.as_str());
    let id = sent.body["id"].as_str().unwrap();
    assert_eq!(sent.headers["location"], format!("/api/v1/transfers/{id}"));
    let replay = post(&me, "/api/v1/transfers", send("5.00"), Some("send-1")).await;
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    assert_eq!(replay.body["id"], sent.body["id"]);
    assert_eq!(
        status_code(&post(&me, "/api/v1/transfers", send("6.00"), Some("send-1")).await),
        (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
    );
    assert_eq!(
        status_code(&post(&me, "/api/v1/transfers", send("15.02"), Some("send-2")).await),
        (StatusCode::PAYMENT_REQUIRED, "insufficient_funds")
    );
    assert_eq!(
        balance(&get(&friend, "/api/v1/wallets/me").await),
        strings("5.00", "0.00", "5.00")
    );
    assert_eq!(
        balance(&get(&me, "/api/v1/wallets/me").await),
        strings("15.01", "0.00", "15.01"),
        "moved once"
    );
    for (body, field, code) in [
        (
            json!({"recipient_id": me.user_id, "amount": "1", "currency": "USD"}),
            "recipient_id",
            "transfer_to_self",
        ),
        (
            json!({"recipient_id": uuid::Uuid::now_v7(), "amount": "1", "currency": "USD"}),
            "recipient_id",
            "recipient_unknown",
        ),
        (
            json!({"recipient_id": "nobody", "amount": "1", "currency": "USD"}),
            "recipient_id",
            "recipient_unknown",
        ),
        (
            json!({"recipient_id": friend.user_id, "amount": "0", "currency": "USD"}),
            "amount",
            "amount_too_small",
        ),
        (
            json!({"recipient_id": friend.user_id, "amount": "1.001", "currency": "USD"}),
            "amount",
            "amount_too_precise",
        ),
        (
            json!({"recipient_id": friend.user_id, "amount": "1", "currency": "XXX1"}),
            "currency",
            "currency_unknown",
        ),
        (
            json!({"recipient_id": friend.user_id, "amount": "-1", "currency": "USD"}),
            "amount",
            "amount_too_small",
        ),
    ] {
        let r = post(&me, "/api/v1/transfers", body.clone(), Some(&unique("bad"))).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            r.body
        );
        assert_eq!(r.body["errors"][0]["field"], field, "{body}: {}", r.body);
        assert_eq!(r.body["errors"][0]["code"], code, "{body}: {}", r.body);
    }
    // Money the wallet does not hold in that currency, a top-up above the payment maximum.
    let euros = json!({"recipient_id": friend.user_id, "amount": "1.00", "currency": "EUR"});
    assert_eq!(
        status_code(&post(&me, "/api/v1/transfers", euros, Some("send-eur")).await),
        (StatusCode::PAYMENT_REQUIRED, "insufficient_funds")
    );
    let eur_payment = json!({"amount": "1.00", "currency": "EUR", "payment_method": "wallet"});
    assert_eq!(
        status_code(&post(&me, "/api/v1/payments", eur_payment, None).await),
        (StatusCode::PAYMENT_REQUIRED, "insufficient_funds")
    );
    let too_much =
        json!({"amount": "1000000.00", "currency": "USD", "payment_method_token": "tok_visa"});
    assert_eq!(
        status_code(&post(&me, "/api/v1/wallets/me/top-ups", too_much, Some("top-max")).await),
        (StatusCode::UNPROCESSABLE_ENTITY, "amount_too_large")
    );
    assert_eq!(
        balance(&get(&me, "/api/v1/wallets/me").await),
        strings("15.01", "0.00", "15.01"),
        "nothing posted"
    );
    let uri = format!("/api/v1/transfers/{id}");
    assert_eq!(get(&friend, &uri).await.status, StatusCode::OK);
    assert_eq!(
        status_code(&get(&stranger, &uri).await),
        (StatusCode::NOT_FOUND, "transfer_not_found")
    );
    let admin = anon.admin().await;
    let check = get(&admin, "/api/v1/ledger/check").await;
    assert_eq!(check.body["clean"], true, "{}", check.body);
}

/// Webhook endpoints: administrators register them (each with its own `whsec_` secret, shown at
/// creation and by the secret call, never in lists), read, list and delete them; bad URLs,
/// event types and descriptions name their field; the configured limit (3 here) is a 409.
async fn webhook_endpoints_api(anon: &Api) {
    let admin = anon.admin().await;
    let me = anon.signed_up().await;
    let uri = "/api/v1/webhook-endpoints";
    let body = json!({"url": "https://hooks.example.com/a", "description": "shop front", "event_types": ["payment.succeeded", "order.cancelled"]});
    assert_eq!(
        status_code(&post(&me, uri, body.clone(), None).await),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    let created = post(&admin, uri, body, None).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert_eq!(created.headers["location"], format!("{uri}/{id}"));
    assert_eq!(created.body["object"], "webhook_endpoint");
    assert_eq!(created.body["enabled"], true);
    assert_eq!(
        created.body["event_types"],
        json!(["payment.succeeded", "order.cancelled"])
    );

    let one = get(&admin, &format!("{uri}/{id}")).await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.body);
    assert!(
        one.body.get("secret").is_none(),
        "no secret outside its own call"
    );
    let revealed = get(&admin, &format!("{uri}/{id}/secret")).await;
    assert_eq!(revealed.body["secret"], secret.as_str());
    assert_eq!(
        status_code(&get(&me, &format!("{uri}/{id}/secret")).await),
        (StatusCode::FORBIDDEN, "forbidden")
    );

    let all = post(
        &admin,
        uri,
        json!({"url": "https://hooks.example.com/all"}),
        None,
    )
    .await;
    assert_eq!(all.status, StatusCode::CREATED, "{}", all.body);
    assert_eq!(all.body["event_types"], Value::Null, "every type");
    assert_ne!(all.body["secret"], secret.as_str(), "a secret of its own");
    let list = get(&admin, &format!("{uri}?limit=1")).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    assert_eq!(list.body["has_more"], true);
    assert!(list.body["data"][0].get("secret").is_none());

    for (body, field, code) in [
        (json!({"url": "not a url"}), "url", "webhook_url_invalid"),
        (
            json!({"url": "http://hooks.example.com/x"}),
            "url",
            "webhook_url_invalid",
        ),
        (
            json!({"url": "https://127.0.0.1/x"}),
            "url",
            "webhook_url_invalid",
        ),
        (
            json!({"url": "https://169.254.169.254/latest"}),
            "url",
            "webhook_url_invalid",
        ),
        (
            json!({"url": "https://hooks.example.com/x", "event_types": ["payment.exploded"]}),
            "event_types",
            "event_types_invalid",
        ),
        (
            json!({"url": "https://hooks.example.com/x", "event_types": []}),
            "event_types",
            "event_types_invalid",
        ),
        (
            json!({"url": "https://hooks.example.com/x", "description": "d".repeat(501)}),
            "description",
            "text_too_long",
        ),
    ] {
        let r = post(&admin, uri, body.clone(), None).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            r.body
        );
        assert_eq!(r.body["errors"][0]["field"], field, "{body}: {}", r.body);
        assert_eq!(r.body["errors"][0]["code"], code, "{body}: {}", r.body);
    }
    let third = post(
        &admin,
        uri,
        json!({"url": "https://hooks.example.com/c"}),
        None,
    )
    .await;
    assert_eq!(third.status, StatusCode::CREATED, "{}", third.body);
    assert_eq!(
        status_code(
            &post(
                &admin,
                uri,
                json!({"url": "https://hooks.example.com/d"}),
                None
            )
            .await
        ),
        (StatusCode::CONFLICT, "webhook_endpoints_limit")
    );

    let patch = |body: Value| {
        let path = format!("{uri}/{id}");
        let admin = &admin;
        async move { call(admin, "PATCH", &path, &[JSON], Some(&body.to_string())).await }
    };
    let changed = patch(json!({"enabled": false, "event_types": null, "description": null})).await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert_eq!(changed.body["enabled"], false);
    assert_eq!(changed.body["event_types"], Value::Null, "every type again");
    assert_eq!(changed.body["description"], Value::Null);
    assert_eq!(
        changed.body["url"], "https://hooks.example.com/a",
        "left out, left alone"
    );
    let refused = patch(json!({"url": "http://hooks.example.com/a", "enabled": true})).await;
    assert_eq!(
        status_code(&refused),
        (StatusCode::UNPROCESSABLE_ENTITY, "webhook_url_invalid")
    );
    assert_eq!(
        get(&admin, &format!("{uri}/{id}")).await.body["enabled"],
        false,
        "nothing changed"
    );
    let rotated = post(
        &admin,
        &format!("{uri}/{id}/secret/rotate"),
        json!({}),
        None,
    )
    .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    let next = rotated.body["secret"].as_str().unwrap();
    assert!(next.starts_with("whsec_") && next != secret);
    assert_eq!(
        get(&admin, &format!("{uri}/{id}/secret")).await.body["secret"],
        next
    );

    // Deliveries: a test event (the dispatcher does not run in this suite, so it stays pending).
    let test = post(&admin, &format!("{uri}/{id}/test"), json!({}), None).await;
    assert_eq!(test.status, StatusCode::ACCEPTED, "{}", test.body);
    assert_eq!(test.body["object"], "webhook_delivery");
    assert_eq!(test.body["event_type"], "webhook_endpoint.test");
    assert_eq!(test.body["status"], "pending");
    assert_eq!(test.body["attempts"], json!([]));
    let delivery = test.body["id"].as_str().unwrap().to_owned();
    let deliveries = "/api/v1/webhook-deliveries";
    let listed = get(
        &admin,
        &format!("{deliveries}?endpoint_id={id}&status=pending"),
    )
    .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert_eq!(listed.body["data"][0]["id"], delivery.as_str());
    let by_event = test.body["event_id"].as_str().unwrap();
    let listed = get(&admin, &format!("{deliveries}?event_id={by_event}")).await;
    assert_eq!(listed.body["data"].as_array().map(Vec::len), Some(1));
    let none = get(
        &admin,
        &format!("{deliveries}?endpoint_id={id}&status=failed"),
    )
    .await;
    assert_eq!(none.body["data"], json!([]));
    let one = get(&admin, &format!("{deliveries}/{delivery}")).await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.body);
    assert_eq!(one.body["endpoint_id"], id.as_str());
    let retried = post(
        &admin,
        &format!("{deliveries}/{delivery}/retry"),
        json!({}),
        None,
    )
    .await;
    assert_eq!(retried.status, StatusCode::ACCEPTED, "{}", retried.body);
    let recovered = post(
        &admin,
        &format!("{uri}/{id}/recover"),
        json!({"since": "2026-01-01T00:00:00Z"}),
        None,
    )
    .await;
    assert_eq!(recovered.status, StatusCode::ACCEPTED, "{}", recovered.body);
    assert_eq!(recovered.body["requeued"], 0, "nothing failed");
    for (query, field) in [
        ("status=lost", "status"),
        ("endpoint_id=nope", "endpoint_id"),
        ("event_id=42", "event_id"),
    ] {
        let bad = get(&admin, &format!("{deliveries}?{query}")).await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{query}: {}", bad.body);
        assert_eq!(
            bad.body["errors"][0]["field"], field,
            "{query}: {}",
            bad.body
        );
    }
    let bad_since = post(
        &admin,
        &format!("{uri}/{id}/recover"),
        json!({"since": "yesterday"}),
        None,
    )
    .await;
    assert_eq!(
        bad_since.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        bad_since.body
    );
    assert_eq!(
        status_code(&get(&me, &format!("{deliveries}?endpoint_id={id}")).await),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    assert_eq!(
        status_code(&post(&me, &format!("{uri}/{id}/test"), json!({}), None).await),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    assert_eq!(
        status_code(
            &post(
                &admin,
                &format!("{uri}/{}/test", uuid::Uuid::now_v7()),
                json!({}),
                None
            )
            .await
        ),
        (StatusCode::NOT_FOUND, "webhook_endpoint_not_found")
    );

    let delete = call(&admin, "DELETE", &format!("{uri}/{id}"), &[], None).await;
    assert_eq!(delete.status, StatusCode::NO_CONTENT);
    assert_eq!(
        status_code(&get(&admin, &format!("{deliveries}/{delivery}")).await),
        (StatusCode::NOT_FOUND, "webhook_delivery_not_found"),
        "deliveries go with their endpoint"
    );
    for path in [format!("{uri}/{id}"), format!("{uri}/nope")] {
        assert_eq!(
            status_code(&get(&admin, &path).await),
            (StatusCode::NOT_FOUND, "webhook_endpoint_not_found"),
            "{path}"
        );
    }
}

/// Signs a Stripe event as Stripe does, `seconds_ago` in the past.
fn stripe_signed(event: &Value, seconds_ago: i64) -> (String, String) {
    use hmac::Mac;
    let body = event.to_string();
    let t = time::OffsetDateTime::now_utc().unix_timestamp() - seconds_ago;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (format!("t={t},v1={hex}"), body)
}

async fn stripe_event(anon: &Api, event: &Value) -> Reply {
    let (signature, body) = stripe_signed(event, 0);
    call(
        anon,
        "POST",
        "/api/v1/webhooks/stripe",
        &[JSON, ("stripe-signature", &signature)],
        Some(&body),
    )
    .await
}

fn intent_event(id: &str, kind: &str, intent: &str, txn: &str) -> Value {
    json!({"id": id, "object": "event", "type": kind, "data": {"object": {
        "id": intent, "object": "payment_intent", "metadata": {"portside_transaction_id": txn},
        "last_payment_error": {"code": "card_declined", "decline_code": "stolen_card", "message": "Your card was declined."}}}})
}

/// Stripe webhooks: signature checks, a charge finished by its webhook, out-of-order and
/// replayed events, unknown payments, and a refund completed by `charge.refunded`.
async fn stripe_webhooks(anon: &Api) {
    let app = &anon.signed_up().await;
    let nobody = &Api::anonymous(anon.router.clone());
    let key = unique("wh");
    let body = json!({"amount": "20.00", "currency": "USD", "provider": "stripe", "payment_method_token": "pm_3ds"});
    let created = post(app, "/api/v1/payments", body.clone(), Some(&key)).await;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.body);
    assert_eq!(created.body["status"], "processing");
    let id = created.body["id"].as_str().unwrap().to_owned();
    let txns = get(app, &format!("/api/v1/payments/{id}/transactions")).await;
    let txn = txns.body["data"][0]["id"].as_str().unwrap().to_owned();
    let intent = format!("pi_{}", unique("x"));
    let succeeded = intent_event(&unique("evt"), "payment_intent.succeeded", &intent, &txn);

    // Refused before anything is read: bad, missing, stale signatures; a tampered body.
    let (signature, raw) = stripe_signed(&succeeded, 0);
    let (stale, _) = stripe_signed(&succeeded, 301);
    let forged = format!(
        "t={},v1={}",
        time::OffsetDateTime::now_utc().unix_timestamp(),
        "ab".repeat(32)
    );
    for (headers, body, code) in [
        (
            vec![JSON, ("stripe-signature", forged.as_str())],
            raw.clone(),
            "webhook_signature_invalid",
        ),
        (vec![JSON], raw.clone(), "webhook_signature_invalid"),
        (
            vec![JSON, ("stripe-signature", stale.as_str())],
            raw.clone(),
            "webhook_timestamp_out_of_tolerance",
        ),
        (
            vec![JSON, ("stripe-signature", signature.as_str())],
            raw.replace("succeeded", "payment_failed"),
            "webhook_signature_invalid",
        ),
    ] {
        let r = call(
            nobody,
            "POST",
            "/api/v1/webhooks/stripe",
            &headers,
            Some(&body),
        )
        .await;
        assert_eq!(
            (r.status, r.body["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some(code)),
            "{}",
            r.body
        );
    }
    let r = call(
        nobody,
        "POST",
        "/api/v1/webhooks/paypal",
        &[JSON],
        Some("{}"),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let still = get(app, &format!("/api/v1/payments/{id}")).await;
    assert_eq!(
        still.body["status"], "processing",
        "refused notices change nothing"
    );

    // The webhook finishes the charge; the client's retry with its key now replays it.
    let r = stripe_event(nobody, &succeeded).await;
    assert_eq!(
        (r.status, r.body["outcome"].as_str()),
        (StatusCode::OK, Some("applied")),
        "{}",
        r.body
    );
    let done = get(app, &format!("/api/v1/payments/{id}")).await;
    assert_eq!(done.body["status"], "succeeded");
    let retry = post(app, "/api/v1/payments", body, Some(&key)).await;
    assert_eq!(
        (retry.status, retry.body["status"].as_str()),
        (StatusCode::CREATED, Some("succeeded"))
    );

    // Replayed, and out of order (a failure notice after the success): 200, nothing changes.
    let r = stripe_event(nobody, &succeeded).await;
    assert_eq!(r.body["outcome"], "duplicate");
    let late = intent_event(
        &unique("evt"),
        "payment_intent.payment_failed",
        &intent,
        &txn,
    );
    let r = stripe_event(nobody, &late).await;
    assert_eq!(
        (r.status, r.body["outcome"].as_str()),
        (StatusCode::OK, Some("no_change"))
    );
    let after = get(app, &format!("/api/v1/payments/{id}")).await;
    assert_eq!(after.body["status"], "succeeded");

    // A payment that is not ours: stored, answered 200, no effect. Types we ignore: 200.
    let stranger = intent_event(
        &unique("evt"),
        "payment_intent.succeeded",
        "pi_unknown",
        &uuid::Uuid::now_v7().to_string(),
    );
    assert_eq!(
        stripe_event(nobody, &stranger).await.body["outcome"],
        "unknown_payment"
    );
    let other = json!({"id": unique("evt"), "type": "customer.created", "data": {"object": {}}});
    assert_eq!(
        stripe_event(nobody, &other).await.body["outcome"],
        "ignored"
    );

    // A refund the bank has not finished: pending until charge.refunded arrives.
    let refund = post(
        app,
        &format!("/api/v1/payments/{id}/refunds"),
        json!({"amount": "5.00"}),
        None,
    )
    .await;
    assert_eq!(refund.status, StatusCode::ACCEPTED, "{}", refund.body);
    let refunded = json!({"id": unique("evt"), "type": "charge.refunded", "data": {"object": {"id": "ch_1", "object": "charge", "payment_intent": intent}}});
    let r = stripe_event(nobody, &refunded).await;
    assert_eq!(r.body["outcome"], "applied", "{}", r.body);
    let paid_back = get(app, &format!("/api/v1/payments/{id}")).await;
    assert_eq!(
        paid_back.body["status"], "partially_refunded",
        "{}",
        paid_back.body
    );
    assert_eq!(paid_back.body["refundable_amount"], "15.00");
    let again = json!({"id": unique("evt"), "type": "charge.refunded", "data": {"object": {"id": "ch_1", "payment_intent": intent}}});
    assert_eq!(
        stripe_event(nobody, &again).await.body["outcome"],
        "no_change"
    );

    // A failure notice for a payment still waiting fails it with the decline code.
    let pending = post(app, "/api/v1/payments", json!({"amount": "3.00", "currency": "USD", "provider": "stripe", "payment_method_token": "pm_3ds"}), Some(&unique("wh"))).await;
    let pid = pending.body["id"].as_str().unwrap().to_owned();
    let txns = get(app, &format!("/api/v1/payments/{pid}/transactions")).await;
    let failed = intent_event(
        &unique("evt"),
        "payment_intent.payment_failed",
        "pi_failed",
        txns.body["data"][0]["id"].as_str().unwrap(),
    );
    assert_eq!(
        stripe_event(nobody, &failed).await.body["outcome"],
        "applied"
    );
    let f = get(app, &format!("/api/v1/payments/{pid}")).await;
    assert_eq!(f.body["status"], "failed");
    assert_eq!(
        f.body["failure"]["decline_code"], "stolen_card",
        "{}",
        f.body
    );
}

/// Routing: administrators read and replace the rules at the version they read, bad rules are
/// refused field by field, a payment shows its route, fails over only where nothing can have
/// been charged, and a reset goes back to the file's rules (none here).
async fn routing_api(anon: &Api) {
    let admin = anon.admin().await;
    let customer = anon.signed_up().await;
    async fn write(who: &Api, method: &str, body: Option<Value>, tag: Option<&str>) -> Reply {
        let mut headers = vec![JSON];
        if let Some(tag) = tag {
            headers.push(("if-match", tag));
        }
        let body = body.map(|b| b.to_string());
        call(who, method, "/api/v1/routing", &headers, body.as_deref()).await
    }

    assert_eq!(
        get(&customer, "/api/v1/routing").await.status,
        StatusCode::FORBIDDEN
    );
    let read = get(&admin, "/api/v1/routing").await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(
        (
            read.body["version"].as_i64(),
            read.body["source"].as_str(),
            read.body["default_provider"].as_str()
        ),
        (Some(0), Some("file"), Some("mock"))
    );
    assert_eq!(read.body["rules"], json!([]));
    assert_eq!(read.headers["etag"], "\"0\"");

    let bad = write(
        &admin,
        "PUT",
        Some(json!({"rules": [
            {"name": "split", "providers": [{"name": "mock", "weight": 60}, {"name": "stripe", "weight": 30}]},
            {"name": "odd", "currencies": ["XXX"], "methods": ["cash"], "purposes": ["gift"], "providers": [{"name": "adyen"}]},
        ]})),
        Some("\"0\""),
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    let fields: Vec<(String, String)> = bad.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap().to_owned(),
                e["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        fields,
        [
            (
                "rules[1].currencies[0]".to_owned(),
                "currency_unknown".to_owned()
            ),
            (
                "rules[1].methods[0]".to_owned(),
                "payment_method_invalid".to_owned()
            ),
            (
                "rules[1].purposes[0]".to_owned(),
                "purpose_invalid".to_owned()
            ),
        ],
        "values the domain cannot read come first"
    );
    let bad = write(
        &admin,
        "PUT",
        Some(json!({"rules": [
            {"name": "split", "providers": [{"name": "mock", "weight": 60}, {"name": "stripe", "weight": 30}]},
            {"name": "never", "currencies": ["USD"], "providers": [{"name": "adyen"}]},
        ]})),
        Some("\"0\""),
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    assert_eq!(bad.body["code"], "route_weights_invalid");
    let refused_fields: Vec<&str> = bad.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        refused_fields,
        [
            "rules[0].providers",
            "rules[1].providers[0].name",
            "rules[1]"
        ]
    );
    let unknown_field = write(
        &admin,
        "PUT",
        Some(json!({"rules": [{"name": "x", "providers": [], "currency": ["USD"]}]})),
        None,
    )
    .await;
    assert_eq!(
        unknown_field.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        unknown_field.body
    );
    assert_eq!(
        unknown_field.body["errors"][0]["field"],
        "rules[0].currency"
    );
    assert_eq!(
        get(&admin, "/api/v1/routing").await.body["version"],
        0,
        "nothing changed"
    );
    let as_customer = write(&customer, "PUT", Some(json!({"rules": []})), None).await;
    assert_eq!(as_customer.status, StatusCode::FORBIDDEN);

    let rules = json!({"rules": [
        {"name": "usd", "currencies": ["USD"], "providers": [{"name": "closed"}, {"name": "mock"}, {"name": "stripe"}]},
    ]});
    let put = write(&admin, "PUT", Some(rules.clone()), Some("\"0\"")).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    assert_eq!(
        (put.body["version"].as_i64(), put.body["source"].as_str()),
        (Some(1), Some("api"))
    );
    assert_eq!(put.headers["etag"], "\"1\"");
    assert_eq!(put.body["rules"], rules["rules"], "kept as written");
    let stale = write(&admin, "PUT", Some(json!({"rules": []})), Some("\"0\"")).await;
    assert_eq!(
        (stale.status, stale.body["code"].as_str()),
        (StatusCode::PRECONDITION_FAILED, Some("precondition_failed"))
    );

    // The closed circuit is passed over; the mock charges.
    let paid = post(
        &customer,
        "/api/v1/payments",
        payment(json!("7.00"), "USD", "tok_visa"),
        None,
    )
    .await;
    assert_eq!(paid.status, StatusCode::CREATED, "{}", paid.body);
    assert_eq!(paid.body["provider"], "mock");
    assert_eq!(paid.body["routing"]["rule"], "usd");
    let attempts: Vec<(&str, &str)> = paid.body["routing"]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["provider"].as_str().unwrap(),
                a["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        attempts,
        [("closed", "circuit_open"), ("mock", "succeeded")]
    );
    // The mock is not reached: the charge moves on to the next provider, which has it pending.
    let moved = post(
        &customer,
        "/api/v1/payments",
        payment(json!("8.00"), "USD", "tok_unavailable"),
        None,
    )
    .await;
    assert_eq!(moved.status, StatusCode::ACCEPTED, "{}", moved.body);
    assert_eq!(
        (
            moved.body["provider"].as_str(),
            moved.body["status"].as_str()
        ),
        (Some("stripe"), Some("processing"))
    );
    let attempts = &moved.body["routing"]["attempts"];
    assert_eq!(attempts.as_array().unwrap().len(), 2, "{attempts}");
    assert_eq!(
        (
            attempts[1]["provider"].as_str(),
            attempts[1]["outcome"].as_str()
        ),
        (Some("mock"), Some("unavailable"))
    );
    let id = moved.body["id"].as_str().unwrap();
    let stored = get(&customer, &format!("/api/v1/payments/{id}")).await;
    assert_eq!(
        stored.body["routing"], moved.body["routing"],
        "the route is stored"
    );
    // A payment that names its provider never fails over.
    let mut named = payment(json!("9.00"), "USD", "tok_unavailable");
    named["provider"] = json!("mock");
    let stays = post(&customer, "/api/v1/payments", named, None).await;
    assert_eq!(stays.status, StatusCode::ACCEPTED, "{}", stays.body);
    assert_eq!(
        (
            stays.body["provider"].as_str(),
            stays.body["routing"]["rule"].as_str()
        ),
        (Some("mock"), Some("requested"))
    );
    // Other currencies match no rule.
    let other = post(
        &customer,
        "/api/v1/payments",
        payment(json!("3.00"), "EUR", "tok_visa"),
        None,
    )
    .await;
    assert_eq!(
        (
            other.body["provider"].as_str(),
            other.body["routing"]["rule"].as_str()
        ),
        (Some("mock"), Some("default"))
    );

    let stale = write(&admin, "DELETE", None, Some("\"0\"")).await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    let reset = write(&admin, "DELETE", None, Some("\"1\"")).await;
    assert_eq!(reset.status, StatusCode::OK, "{}", reset.body);
    assert_eq!(
        (
            reset.body["version"].as_i64(),
            reset.body["source"].as_str()
        ),
        (Some(2), Some("file"))
    );
    assert_eq!(reset.body["rules"], json!([]));
    let after = post(
        &customer,
        "/api/v1/payments",
        payment(json!("7.00"), "USD", "tok_visa"),
        None,
    )
    .await;
    assert_eq!(after.body["routing"]["rule"], "default");
}

/// `Prefer: respond-async` (RFC 7240): 202 at once with the payment pending, its `Location` and
/// `Preference-Applied`; the key replays that answer and refuses another body; a malformed
/// header is 400; an endpoint that cannot honour it ignores it.
async fn asynchronous_payments(anon: &Api) {
    let customer = anon.signed_up().await;
    let body = payment(json!("11.00"), "USD", "tok_visa").to_string();
    let prefer = ("prefer", "wait=5, respond-async");
    let key = unique("async");
    let headers = [JSON, prefer, ("idempotency-key", key.as_str())];
    let accepted = call(&customer, "POST", "/api/v1/payments", &headers, Some(&body)).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.body);
    assert_eq!(accepted.body["status"], "pending");
    assert_eq!(accepted.headers["preference-applied"], "respond-async");
    let id = accepted.body["id"].as_str().unwrap();
    assert_eq!(
        accepted.headers["location"],
        format!("/api/v1/payments/{id}").as_str()
    );
    assert!(accepted.headers.get("idempotent-replayed").is_none());
    let polled = get(&customer, &format!("/api/v1/payments/{id}")).await;
    assert_eq!(polled.status, StatusCode::OK);
    assert_eq!(
        polled.body["status"], "pending",
        "no worker runs in this suite"
    );

    let replay = call(&customer, "POST", "/api/v1/payments", &headers, Some(&body)).await;
    assert_eq!(replay.status, StatusCode::ACCEPTED);
    assert_eq!(replay.headers["location"], accepted.headers["location"]);
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    assert_eq!(replay.body["id"], accepted.body["id"]);
    let other = payment(json!("12.00"), "USD", "tok_visa").to_string();
    let conflict = call(
        &customer,
        "POST",
        "/api/v1/payments",
        &headers,
        Some(&other),
    )
    .await;
    assert_eq!(
        conflict.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        conflict.body
    );

    for bad in ["respond async", "", "wait=\"5"] {
        let refused = call(
            &customer,
            "POST",
            "/api/v1/payments",
            &[JSON, ("prefer", bad)],
            Some(&body),
        )
        .await;
        assert_eq!(
            (refused.status, refused.body["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("prefer_invalid")),
            "{bad:?}"
        );
    }
    let synchronous = call(
        &customer,
        "POST",
        "/api/v1/payments",
        &[JSON, ("prefer", "return=minimal")],
        Some(&body),
    )
    .await;
    assert_eq!(
        synchronous.status,
        StatusCode::CREATED,
        "other preferences are ignored"
    );
    assert!(synchronous.headers.get("preference-applied").is_none());
    let message = call(
        &customer,
        "POST",
        "/api/v1/messages",
        &[JSON, prefer],
        Some(r#"{"body": "hello"}"#),
    )
    .await;
    assert_eq!(message.status, StatusCode::CREATED, "{}", message.body);
    assert!(
        message.headers.get("preference-applied").is_none(),
        "ignored where it cannot be honoured"
    );
}
