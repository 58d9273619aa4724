//! The Stripe adapter against a local fake that follows Stripe's documented request and
//! response shapes (form-encoded bodies, bearer key, `Idempotency-Key` replays, error objects).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use portside_app::payments::{
    ChargeRequest, PaymentProvider, ProviderError, ProviderOutcome, RefundRequest,
};
use portside_domain::{Currency, CustomerId, Metadata, Money, PaymentMethod, TransactionId};
use portside_providers::{Resilience, StripeProvider, StripeSettings};
use serde_json::{Value, json};
use support::Logs;

const KEY: &str = "sk_test_51SuperSecretKeyThatMustNeverBeLogged";

/// What the fake received.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    authorization: String,
    idempotency_key: Option<String>,
    content_type: String,
    form: HashMap<String, String>,
}

#[derive(Default)]
struct Fake {
    seen: Mutex<Vec<Seen>>,
    /// Answers stored per idempotency key, replayed like Stripe does.
    replies: Mutex<HashMap<String, (u16, Value)>>,
    /// Keys whose first attempt already failed.
    failed_once: Mutex<Vec<String>>,
}

type Shared = Arc<Fake>;

fn record(fake: &Fake, path: &str, headers: &HeaderMap, form: &HashMap<String, String>) {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    fake.seen.lock().unwrap().push(Seen {
        path: path.to_owned(),
        authorization: h("authorization").unwrap_or_default(),
        idempotency_key: h("idempotency-key"),
        content_type: h("content-type").unwrap_or_default(),
        form: form.clone(),
    });
}

fn reply(status: u16, body: Value) -> Response {
    (StatusCode::from_u16(status).unwrap(), Json(body)).into_response()
}

fn card_error(decline: &str, message: &str) -> (u16, Value) {
    (
        402,
        json!({"error": {"type": "card_error", "code": "card_declined", "decline_code": decline, "message": message}}),
    )
}

async fn create_intent(
    State(fake): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    record(&fake, "/v1/payment_intents", &headers, &form);
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {KEY}"))
    {
        return reply(
            401,
            json!({"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}}),
        );
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if let Some((status, body)) = fake.replies.lock().unwrap().get(&key).cloned() {
        return reply(status, body);
    }
    let method = form.get("payment_method").cloned().unwrap_or_default();
    let first_failure = || {
        let mut failed = fake.failed_once.lock().unwrap();
        let first = !failed.contains(&key);
        failed.push(key.clone());
        first
    };
    let intent = |status: &str| {
        json!({"id": format!("pi_{key}"), "object": "payment_intent", "status": status,
               "amount": form["amount"].parse::<i64>().unwrap(), "currency": form["currency"], "metadata": {}})
    };
    let (status, body) = match method.as_str() {
        "pm_card_visa" => (200, intent("succeeded")),
        "pm_card_chargeDeclinedInsufficientFunds" => {
            card_error("insufficient_funds", "Your card has insufficient funds.")
        }
        "pm_missing" => (
            400,
            json!({"error": {"type": "invalid_request_error", "code": "resource_missing", "message": "No such PaymentMethod: 'pm_missing'"}}),
        ),
        "pm_500_once" if first_failure() => {
            // Not stored: Stripe says the request may be retried.
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                [("stripe-should-retry", "true")],
                Json(json!({"error": {"type": "api_error", "message": "Something went wrong"}})),
            )
                .into_response();
        }
        "pm_slow_once" if first_failure() => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            (200, intent("succeeded"))
        }
        "pm_500_once" | "pm_slow_once" => (200, intent("succeeded")),
        "pm_always_500" => return reply(500, json!({"error": {"type": "api_error"}})),
        // Stripe's rate limiter answers before anything is done (and before its idempotency
        // layer), so nothing is stored for the key.
        "pm_always_429" => {
            return reply(
                429,
                json!({"error": {"type": "invalid_request_error", "code": "rate_limit"}}),
            );
        }
        "pm_3ds" => (200, intent("requires_action")),
        "pm_processing" => (200, intent("processing")),
        _ => (400, json!({"error": {"type": "invalid_request_error"}})),
    };
    fake.replies
        .lock()
        .unwrap()
        .insert(key, (status, body.clone()));
    reply(status, body)
}

/// The current state: a processing intent has succeeded since; 3-D Secure still waits.
async fn read_intent(
    State(fake): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    record(
        &fake,
        &format!("/v1/payment_intents/{id}"),
        &headers,
        &HashMap::new(),
    );
    let replies = fake.replies.lock().unwrap();
    let Some((_, intent)) = replies.values().find(|(_, b)| b["id"] == id.as_str()) else {
        return reply(
            404,
            json!({"error": {"type": "invalid_request_error", "code": "resource_missing"}}),
        );
    };
    let mut intent = intent.clone();
    if intent["status"] == "processing" {
        intent["status"] = "succeeded".into();
    }
    reply(200, intent)
}

async fn create_refund(
    State(fake): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    record(&fake, "/v1/refunds", &headers, &form);
    let status = if form["payment_intent"] == "pi_slow_bank" {
        "pending"
    } else {
        "succeeded"
    };
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    reply(
        200,
        json!({"id": format!("re_{key}"), "object": "refund", "status": status,
               "amount": form["amount"].parse::<i64>().unwrap(), "payment_intent": form["payment_intent"]}),
    )
}

async fn read_refund(
    State(fake): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    record(
        &fake,
        &format!("/v1/refunds/{id}"),
        &headers,
        &HashMap::new(),
    );
    reply(
        200,
        json!({"id": id, "object": "refund", "status": "succeeded"}),
    )
}

async fn fake_stripe() -> (String, Shared) {
    let fake = Shared::default();
    let app = Router::new()
        .route("/v1/payment_intents", post(create_intent))
        .route("/v1/payment_intents/{id}", get(read_intent))
        .route("/v1/refunds", post(create_refund))
        .route("/v1/refunds/{id}", get(read_refund))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, fake)
}

fn stripe_at(base: &str, key: &str) -> StripeProvider {
    StripeProvider::new(StripeSettings {
        secret_key: key.into(),
        api_base: base.into(),
        resilience: Resilience {
            timeout: Duration::from_millis(500),
            retries: 1,
            backoff: Duration::from_millis(10),
            breaker_threshold: 2,
            breaker_cool_down: Duration::from_secs(60),
        },
    })
    .unwrap()
}

fn charge(token: &str, key: &str, amount: i64, currency: &str) -> ChargeRequest {
    ChargeRequest {
        transaction_id: TransactionId(uuid::Uuid::now_v7()),
        provider_key: key.into(),
        amount: Money::from_minor(amount, Currency::from_code(currency).unwrap()),
        method: PaymentMethod::Card,
        method_token: token.into(),
        customer_id: CustomerId::parse("cus-1").unwrap(),
        description: Some("Order 1001".into()),
        metadata: Metadata::from_client([("order_id".to_owned(), "1001".to_owned())].into())
            .unwrap(),
    }
}

fn refund(intent: &str, key: &str, amount: i64) -> RefundRequest {
    RefundRequest {
        transaction_id: TransactionId(uuid::Uuid::now_v7()),
        provider_key: key.into(),
        charge_reference: intent.into(),
        method_token: "pm_card_visa".into(),
        amount: Money::from_minor(amount, Currency::from_code("USD").unwrap()),
        reason: Some("damaged item".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripe_charges_refunds_retries_and_breaks_the_circuit_without_logging_the_key() {
    let logs = Logs::capture();
    let (base, fake) = fake_stripe().await;
    let stripe = stripe_at(&base, KEY);

    // Success: the documented request shape.
    let request = charge("pm_card_visa", "portside-charge-a", 1999, "USD");
    let outcome = stripe.charge(&request).await.unwrap();
    assert_eq!(
        outcome,
        ProviderOutcome::Succeeded {
            reference: "pi_portside-charge-a".into()
        }
    );
    let seen = fake.seen.lock().unwrap()[0].clone();
    assert_eq!(seen.path, "/v1/payment_intents");
    assert_eq!(seen.authorization, format!("Bearer {KEY}"));
    assert_eq!(seen.idempotency_key.as_deref(), Some("portside-charge-a"));
    assert_eq!(seen.content_type, "application/x-www-form-urlencoded");
    for (k, v) in [
        ("amount", "1999"),
        ("currency", "usd"),
        ("payment_method", "pm_card_visa"),
        ("confirm", "true"),
        ("automatic_payment_methods[allow_redirects]", "never"),
        ("description", "Order 1001"),
        ("metadata[order_id]", "1001"),
        ("metadata[portside_customer_id]", "cus-1"),
    ] {
        assert_eq!(seen.form.get(k).map(String::as_str), Some(v), "{k}");
    }
    assert_eq!(
        seen.form["metadata[portside_transaction_id]"],
        request.transaction_id.0.to_string()
    );
    // A zero-decimal currency is sent in its own minor unit.
    stripe
        .charge(&charge("pm_card_visa", "portside-charge-jpy", 500, "JPY"))
        .await
        .unwrap();
    let jpy = fake.seen.lock().unwrap().last().unwrap().form.clone();
    assert_eq!(
        (jpy["amount"].as_str(), jpy["currency"].as_str()),
        ("500", "jpy")
    );

    // A decline is a definite failure with Stripe's decline code; a bad token too.
    match stripe
        .charge(&charge(
            "pm_card_chargeDeclinedInsufficientFunds",
            "portside-charge-b",
            100,
            "USD",
        ))
        .await
        .unwrap()
    {
        ProviderOutcome::Failed(f) => {
            assert_eq!(f.code, "card_declined");
            assert_eq!(f.decline_code.as_deref(), Some("insufficient_funds"));
            assert_eq!(f.message, "Your card has insufficient funds.");
        }
        other => panic!("expected a decline, got {other:?}"),
    }
    assert!(matches!(
        stripe.charge(&charge("pm_missing", "portside-charge-m", 100, "USD")).await.unwrap(),
        ProviderOutcome::Failed(ref f) if f.code == "resource_missing"
    ));

    // A 500 that Stripe says may be retried, then success: same key on both attempts.
    let before = fake.seen.lock().unwrap().len();
    assert!(matches!(
        stripe
            .charge(&charge("pm_500_once", "portside-charge-c", 100, "USD"))
            .await
            .unwrap(),
        ProviderOutcome::Succeeded { .. }
    ));
    let keys: Vec<_> = fake.seen.lock().unwrap()[before..]
        .iter()
        .map(|s| s.idempotency_key.clone().unwrap())
        .collect();
    assert_eq!(keys, vec!["portside-charge-c", "portside-charge-c"]);

    // A timeout, then the retry with the same key succeeds.
    let before = fake.seen.lock().unwrap().len();
    assert!(matches!(
        stripe
            .charge(&charge("pm_slow_once", "portside-charge-d", 100, "USD"))
            .await
            .unwrap(),
        ProviderOutcome::Succeeded { .. }
    ));
    assert_eq!(fake.seen.lock().unwrap().len() - before, 2);

    // Not final: 3-D Secure stays pending (the webhook finishes it); "processing" is read again.
    assert_eq!(
        stripe
            .charge(&charge("pm_3ds", "portside-charge-e", 100, "USD"))
            .await
            .unwrap(),
        ProviderOutcome::Pending
    );
    assert_eq!(
        stripe
            .charge(&charge("pm_processing", "portside-charge-f", 100, "USD"))
            .await
            .unwrap(),
        ProviderOutcome::Succeeded {
            reference: "pi_portside-charge-f".into()
        }
    );

    // Refunds: partial, and a pending one read again.
    let r = stripe
        .refund(&refund("pi_portside-charge-a", "portside-refund-1", 500))
        .await
        .unwrap();
    assert_eq!(
        r,
        ProviderOutcome::Succeeded {
            reference: "re_portside-refund-1".into()
        }
    );
    let seen = fake.seen.lock().unwrap().last().unwrap().clone();
    assert_eq!(seen.path, "/v1/refunds");
    assert_eq!(seen.form["payment_intent"], "pi_portside-charge-a");
    assert_eq!(seen.form["amount"], "500");
    assert_eq!(seen.form["metadata[reason]"], "damaged item");
    assert_eq!(seen.idempotency_key.as_deref(), Some("portside-refund-1"));
    assert!(matches!(
        stripe
            .refund(&refund("pi_slow_bank", "portside-refund-2", 100))
            .await
            .unwrap(),
        ProviderOutcome::Succeeded { .. }
    ));
    assert_eq!(
        fake.seen.lock().unwrap().last().unwrap().path,
        "/v1/refunds/re_portside-refund-2"
    );

    // A wrong key leaves the outcome unknown (our misconfiguration is not the card's fault).
    let wrong = stripe_at(&base, "sk_test_wrong");
    assert!(matches!(
        wrong
            .charge(&charge("pm_card_visa", "portside-charge-g", 100, "USD"))
            .await,
        Err(ProviderError::Unavailable(m)) if m.contains("401")
    ));

    // Only an answer that cannot have charged is "not sent", which lets a payment fail over:
    // rate limited on every attempt, or no connection at all. A 5xx may have charged.
    let limited = stripe_at(&base, KEY);
    assert!(matches!(
        limited.charge(&charge("pm_always_429", "portside-charge-limited", 100, "USD")).await,
        Err(ProviderError::NotSent(m)) if m.contains("429")
    ));
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let nowhere = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    assert!(matches!(
        stripe_at(&nowhere, KEY)
            .charge(&charge("pm_card_visa", "portside-charge-nowhere", 100, "USD"))
            .await,
        Err(ProviderError::NotSent(m)) if m.contains("cannot connect")
    ));
    let server_error = stripe_at(&base, KEY)
        .charge(&charge(
            "pm_always_500",
            "portside-charge-server-error",
            100,
            "USD",
        ))
        .await;
    assert!(
        matches!(&server_error, Err(ProviderError::Unavailable(m)) if m.contains("500")),
        "{server_error:?}"
    );

    // Failing calls open the circuit: then no request leaves and callers learn when to retry.
    assert!(stripe.availability().is_ok());
    for key in ["portside-charge-h", "portside-charge-i"] {
        assert!(matches!(
            stripe
                .charge(&charge("pm_always_500", key, 100, "USD"))
                .await,
            Err(ProviderError::Unavailable(_))
        ));
    }
    let wait = stripe.availability().unwrap_err();
    assert!(wait > Duration::from_secs(50), "{wait:?}");
    let before = fake.seen.lock().unwrap().len();
    assert!(matches!(
        stripe.charge(&charge("pm_card_visa", "portside-charge-j", 100, "USD")).await,
        Err(ProviderError::NotSent(m)) if m.contains("calls resume")
    ));
    assert_eq!(fake.seen.lock().unwrap().len(), before, "nothing was sent");

    // No log line of the whole run holds the secret key.
    let printed = logs.text();
    assert!(printed.contains("retrying"), "the logs were captured");
    assert!(!printed.contains(KEY), "the secret key was logged");
    assert!(!printed.contains("SuperSecret"));
    assert!(
        !format!(
            "{:?}",
            StripeSettings {
                secret_key: KEY.into(),
                api_base: base.clone(),
                resilience: Resilience::default()
            }
        )
        .contains("SuperSecret")
    );
}
