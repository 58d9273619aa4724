//! The PayPal adapter against a local fake that follows PayPal's documented request and
//! response shapes (OAuth2 client credentials, Orders v2 create and capture, capture refunds,
//! `PayPal-Request-Id` replays, error objects, the webhook verification postback).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use portside_app::payments::{
    ChargeRequest, PaymentProvider, ProviderChange, ProviderError, ProviderOutcome, RefundRequest,
    WebhookError, WebhookVerifier,
};
use portside_domain::{Currency, CustomerId, Metadata, Money, PaymentMethod, TransactionId};
use portside_providers::{PayPalProvider, PayPalSettings, PayPalWebhooks, Resilience};
use serde_json::{Value, json};
use support::Logs;

const CLIENT_ID: &str = "AZclientid";
const CLIENT_SECRET: &str = "EPsecretThatMustNeverBeLogged";

#[derive(Default)]
struct Fake {
    /// (path, PayPal-Request-Id, JSON body) of each API call.
    calls: Mutex<Vec<(String, Option<String>, Value)>>,
    tokens_issued: Mutex<u32>,
    valid_token: Mutex<String>,
    replies: Mutex<HashMap<String, (u16, Value)>>,
    failed_once: Mutex<Vec<String>>,
    verifications: Mutex<Vec<String>>,
}

type Shared = Arc<Fake>;

fn reply(status: u16, body: Value) -> Response {
    (StatusCode::from_u16(status).unwrap(), Json(body)).into_response()
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Checks the bearer token and records the call.
fn authorized(fake: &Fake, path: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    let expected = format!("Bearer {}", fake.valid_token.lock().unwrap());
    if header(headers, "authorization") != Some(expected) {
        return false;
    }
    fake.calls.lock().unwrap().push((
        path.to_owned(),
        header(headers, "paypal-request-id"),
        serde_json::from_slice(body).unwrap_or(Value::Null),
    ));
    true
}

fn unauthorized() -> Response {
    reply(
        401,
        json!({"error": "invalid_token", "error_description": "Token signature verification failed"}),
    )
}

async fn token(State(fake): State<Shared>, headers: HeaderMap, body: String) -> Response {
    use base64::Engine;
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
    if header(&headers, "authorization") != Some(format!("Basic {basic}"))
        || body != "grant_type=client_credentials"
    {
        return reply(401, json!({"error": "invalid_client"}));
    }
    let mut issued = fake.tokens_issued.lock().unwrap();
    *issued += 1;
    let value = format!("A21AAtoken{issued}");
    *fake.valid_token.lock().unwrap() = value.clone();
    reply(
        200,
        json!({"scope": "https://uri.paypal.com/services/payments/payment", "access_token": value, "token_type": "Bearer", "app_id": "APP-1", "expires_in": 32400}),
    )
}

async fn create_order(State(fake): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&fake, "/v2/checkout/orders", &headers, &body) {
        return unauthorized();
    }
    let key = header(&headers, "paypal-request-id").unwrap_or_default();
    if let Some((s, b)) = fake.replies.lock().unwrap().get(&key).cloned() {
        return reply(s, b);
    }
    let order: Value = serde_json::from_slice(&body).unwrap();
    let vault = order["payment_source"]["paypal"]["vault_id"]
        .as_str()
        .unwrap_or_default();
    if vault == "vault_429" {
        // Rate limited: refused before anything is done, nothing stored for the request id.
        return reply(429, json!({"name": "RATE_LIMIT_REACHED"}));
    }
    if vault == "vault_500_once" {
        let mut failed = fake.failed_once.lock().unwrap();
        if !failed.contains(&key) {
            failed.push(key.clone());
            return reply(500, json!({"name": "INTERNAL_SERVER_ERROR"}));
        }
    }
    let created = json!({"id": format!("ORDER-{vault}-{key}"), "status": "CREATED", "purchase_units": order["purchase_units"]});
    fake.replies
        .lock()
        .unwrap()
        .insert(key, (201, created.clone()));
    reply(201, created)
}

async fn capture(
    State(fake): State<Shared>,
    headers: HeaderMap,
    Path(order): Path<String>,
    body: Bytes,
) -> Response {
    let path = format!("/v2/checkout/orders/{order}/capture");
    if !authorized(&fake, &path, &headers, &body) {
        return unauthorized();
    }
    if order.contains("vault_declined") {
        return reply(
            422,
            json!({"name": "UNPROCESSABLE_ENTITY", "message": "The requested action could not be performed.",
                   "details": [{"issue": "INSTRUMENT_DECLINED", "description": "The instrument presented was either declined by the processor or bank."}]}),
        );
    }
    let status = if order.contains("vault_pending") {
        "PENDING"
    } else {
        "COMPLETED"
    };
    reply(
        201,
        json!({"id": order, "status": "COMPLETED", "purchase_units": [{"payments": {"captures": [
            {"id": format!("CAP-{order}"), "status": status}]}}]}),
    )
}

async fn read_capture(
    State(fake): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if !authorized(&fake, &format!("/v2/payments/captures/{id}"), &headers, b"") {
        return unauthorized();
    }
    reply(200, json!({"id": id, "status": "PENDING"}))
}

async fn refund(
    State(fake): State<Shared>,
    headers: HeaderMap,
    Path(capture): Path<String>,
    body: Bytes,
) -> Response {
    let path = format!("/v2/payments/captures/{capture}/refund");
    if !authorized(&fake, &path, &headers, &body) {
        return unauthorized();
    }
    reply(
        201,
        json!({"id": format!("REF-{capture}"), "status": "COMPLETED"}),
    )
}

async fn verify(State(fake): State<Shared>, headers: HeaderMap, body: String) -> Response {
    if !authorized(
        &fake,
        "/v1/notifications/verify-webhook-signature",
        &headers,
        body.as_bytes(),
    ) {
        return unauthorized();
    }
    fake.verifications.lock().unwrap().push(body.clone());
    let request: Value = serde_json::from_str(&body).unwrap();
    let ok = request["transmission_sig"] == "good-signature" && request["webhook_id"] == "WH-ID-1";
    reply(
        200,
        json!({"verification_status": if ok { "SUCCESS" } else { "FAILURE" }}),
    )
}

async fn fake_paypal() -> (String, Shared) {
    let fake = Shared::default();
    let app = Router::new()
        .route("/v1/oauth2/token", post(token))
        .route("/v2/checkout/orders", post(create_order))
        .route("/v2/checkout/orders/{id}/capture", post(capture))
        .route("/v2/payments/captures/{id}", get(read_capture))
        .route("/v2/payments/captures/{id}/refund", post(refund))
        .route("/v1/notifications/verify-webhook-signature", post(verify))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, fake)
}

fn charge(vault: &str, key: &str, amount: i64, currency: &str) -> ChargeRequest {
    ChargeRequest {
        transaction_id: TransactionId(uuid::Uuid::now_v7()),
        provider_key: key.into(),
        amount: Money::from_minor(amount, Currency::from_code(currency).unwrap()),
        method: PaymentMethod::Paypal,
        method_token: vault.into(),
        customer_id: CustomerId::parse("cus-1").unwrap(),
        description: Some("Order 1001".into()),
        metadata: Metadata::default(),
    }
}

fn headers(sig: &str, at: time::OffsetDateTime) -> Vec<(String, String)> {
    let time = at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    [
        (
            "paypal-transmission-id",
            "69cd13f0-d67a-11e5-baa3-778b53f4ae55",
        ),
        ("paypal-transmission-time", time.as_str()),
        ("paypal-transmission-sig", sig),
        (
            "paypal-cert-url",
            "https://api.paypal.com/v1/notifications/certs/CERT-360caa42",
        ),
        ("paypal-auth-algo", "SHA256withRSA"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paypal_orders_capture_refund_tokens_and_webhooks() {
    let logs = Logs::capture();
    let (base, fake) = fake_paypal().await;
    let paypal = Arc::new(
        PayPalProvider::new(PayPalSettings {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            api_base: base.clone(),
            resilience: Resilience {
                timeout: Duration::from_millis(500),
                retries: 1,
                backoff: Duration::from_millis(10),
                ..Resilience::default()
            },
        })
        .unwrap(),
    );

    // Create then capture: the documented bodies and request ids.
    let request = charge("vault_ok", "portside-charge-a", 1999, "USD");
    let outcome = paypal.charge(&request).await.unwrap();
    assert_eq!(
        outcome,
        ProviderOutcome::Succeeded {
            reference: "CAP-ORDER-vault_ok-portside-charge-a".into()
        }
    );
    let calls = fake.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 2);
    let (path, id, order) = &calls[0];
    assert_eq!(
        (path.as_str(), id.as_deref()),
        ("/v2/checkout/orders", Some("portside-charge-a"))
    );
    assert_eq!(order["intent"], "CAPTURE");
    assert_eq!(
        order["purchase_units"][0]["amount"],
        json!({"currency_code": "USD", "value": "19.99"})
    );
    assert_eq!(
        order["purchase_units"][0]["custom_id"],
        request.transaction_id.0.to_string()
    );
    assert_eq!(order["payment_source"]["paypal"]["vault_id"], "vault_ok");
    assert_eq!(
        (calls[1].0.as_str(), calls[1].1.as_deref()),
        (
            "/v2/checkout/orders/ORDER-vault_ok-portside-charge-a/capture",
            Some("portside-charge-a-capture")
        )
    );

    // Amounts in the currency's own decimals.
    paypal
        .charge(&charge("vault_ok", "portside-charge-jpy", 500, "JPY"))
        .await
        .unwrap();
    let jpy = fake.calls.lock().unwrap()[2].2.clone();
    assert_eq!(jpy["purchase_units"][0]["amount"]["value"], "500");

    // A decline, a 500 then success with the same request id, a pending capture.
    match paypal
        .charge(&charge("vault_declined", "portside-charge-b", 100, "USD"))
        .await
        .unwrap()
    {
        ProviderOutcome::Failed(f) => {
            assert_eq!(f.code, "card_declined");
            assert_eq!(f.decline_code.as_deref(), Some("instrument_declined"));
        }
        other => panic!("expected a decline, got {other:?}"),
    }
    let before = fake.calls.lock().unwrap().len();
    assert!(matches!(
        paypal
            .charge(&charge("vault_500_once", "portside-charge-c", 100, "USD"))
            .await
            .unwrap(),
        ProviderOutcome::Succeeded { .. }
    ));
    let ids: Vec<_> = fake.calls.lock().unwrap()[before..]
        .iter()
        .map(|c| c.1.clone().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![
            "portside-charge-c",
            "portside-charge-c",
            "portside-charge-c-capture"
        ]
    );
    assert_eq!(
        paypal
            .charge(&charge("vault_pending", "portside-charge-d", 100, "USD"))
            .await
            .unwrap(),
        ProviderOutcome::Pending
    );

    // A refund of the capture.
    let refunded = paypal
        .refund(&RefundRequest {
            transaction_id: TransactionId(uuid::Uuid::now_v7()),
            provider_key: "portside-refund-1".into(),
            charge_reference: "CAP-1".into(),
            method_token: "vault_ok".into(),
            amount: Money::from_minor(500, Currency::from_code("USD").unwrap()),
            reason: Some("damaged".into()),
        })
        .await
        .unwrap();
    assert_eq!(
        refunded,
        ProviderOutcome::Succeeded {
            reference: "REF-CAP-1".into()
        }
    );
    let (path, id, body) = fake.calls.lock().unwrap().last().unwrap().clone();
    assert_eq!(
        (path.as_str(), id.as_deref()),
        (
            "/v2/payments/captures/CAP-1/refund",
            Some("portside-refund-1")
        )
    );
    assert_eq!(body["amount"]["value"], "5.00");
    assert_eq!(body["note_to_payer"], "damaged");

    // One token served every call so far; a revoked token is replaced once, transparently.
    assert_eq!(*fake.tokens_issued.lock().unwrap(), 1);
    *fake.valid_token.lock().unwrap() = "revoked".into();
    assert!(matches!(
        paypal
            .charge(&charge("vault_ok", "portside-charge-e", 100, "USD"))
            .await
            .unwrap(),
        ProviderOutcome::Succeeded { .. }
    ));
    assert_eq!(*fake.tokens_issued.lock().unwrap(), 2);

    // Webhooks: verified by PayPal's postback with the notice byte for byte.
    let hooks = PayPalWebhooks::new(paypal.clone(), "WH-ID-1");
    let txn = uuid::Uuid::now_v7();
    let raw = format!(
        r#"{{"id":"WH-58D329510W468432D-8HN650336L201105X",  "event_type":"PAYMENT.CAPTURE.COMPLETED","resource":{{"id":"CAP-9","status":"COMPLETED","custom_id":"{txn}"}}}}"#
    );
    let now = time::OffsetDateTime::now_utc();
    let notice = hooks
        .verify(&headers("good-signature", now), raw.as_bytes())
        .await
        .unwrap();
    assert_eq!(notice.event_id, "WH-58D329510W468432D-8HN650336L201105X");
    assert_eq!(
        notice.change,
        Some(ProviderChange::ChargeSucceeded {
            transaction_id: Some(TransactionId(txn)),
            reference: "CAP-9".into()
        })
    );
    assert!(
        fake.verifications.lock().unwrap()[0].contains(&raw),
        "the notice is forwarded exactly as received"
    );
    assert!(matches!(
        hooks.verify(&headers("forged", now), raw.as_bytes()).await,
        Err(WebhookError::BadSignature(_))
    ));
    assert_eq!(
        hooks
            .verify(
                &headers("good-signature", now - time::Duration::minutes(6)),
                raw.as_bytes()
            )
            .await,
        Err(WebhookError::Stale(300))
    );
    let mut missing = headers("good-signature", now);
    missing.retain(|(k, _)| k != "paypal-cert-url");
    assert!(matches!(
        hooks.verify(&missing, raw.as_bytes()).await,
        Err(WebhookError::BadSignature(_))
    ));
    assert!(matches!(
        hooks
            .verify(&headers("good-signature", now), b"not json")
            .await,
        Err(WebhookError::Malformed(_))
    ));
    let refund_event = r#"{"id":"WH-2","event_type":"PAYMENT.CAPTURE.REFUNDED","resource":{"id":"REF-1","status":"COMPLETED","links":[{"href":"https://api.paypal.com/v2/payments/refunds/REF-1","rel":"self"},{"href":"https://api.paypal.com/v2/payments/captures/CAP-9","rel":"up"}]}}"#;
    let notice = hooks
        .verify(&headers("good-signature", now), refund_event.as_bytes())
        .await
        .unwrap();
    assert_eq!(
        notice.change,
        Some(ProviderChange::Refunded {
            reference: "CAP-9".into()
        })
    );

    // Neither the client secret nor an access token is logged.
    // Only what cannot have charged is "not sent" (a payment may then fail over): rate
    // limited on every attempt, or no connection at all.
    assert!(matches!(
        paypal.charge(&charge("vault_429", "portside-charge-limited", 100, "USD")).await,
        Err(ProviderError::NotSent(m)) if m.contains("429")
    ));
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let nowhere = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let down = PayPalProvider::new(PayPalSettings {
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        api_base: nowhere,
        resilience: Resilience {
            retries: 1,
            backoff: Duration::from_millis(10),
            ..Resilience::default()
        },
    })
    .unwrap();
    assert!(matches!(
        down.charge(&charge("vault_ok", "portside-charge-nowhere", 100, "USD")).await,
        Err(ProviderError::NotSent(m)) if m.contains("cannot connect")
    ));

    let printed = logs.text();
    assert!(printed.contains("retrying"), "the logs were captured");
    assert!(!printed.contains(CLIENT_SECRET));
    assert!(!printed.contains("A21AAtoken"));
}
