//! Stripe and PayPal as the provider-outage scenario needs them: fakes in this process that
//! charge and refund by idempotency key (a repeated key replays the first result, as both
//! providers document), keep every charge and refund they made, and can be taken down in the
//! two ways that matter to failover: refusing connections (certainly nothing charged), or
//! charging and then answering 500 (the outcome is unknown to Portside). Afterwards
//! [`audit`] holds their books against the store's.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::rig::Store;

/// A charge a fake made (or declined) under one idempotency key.
#[derive(Clone)]
pub struct Charge {
    /// Portside's charge transaction, as the request named it.
    pub transaction: String,
    pub reference: String,
    pub minor: i64,
    pub declined: bool,
}

/// A refund a fake made under one idempotency key.
#[derive(Clone)]
pub struct Refund {
    pub id: String,
    pub charge: String,
    pub minor: i64,
}

/// What a fake did, by idempotency key.
#[derive(Clone, Default)]
pub struct Books {
    pub charges: HashMap<String, Charge>,
    pub refunds: HashMap<String, Refund>,
}

impl Books {
    /// Charges that took money (declines left out).
    pub fn charged(&self) -> usize {
        self.charges.values().filter(|c| !c.declined).count()
    }
}

#[derive(Default)]
struct Shared {
    books: Mutex<Books>,
    /// Charge or refund, then answer 500.
    failing: AtomicBool,
    next_id: AtomicU64,
}

impl Shared {
    /// The charge under `key`, made now if the key is new.
    fn charge(&self, key: &str, make: impl FnOnce(String) -> Charge) -> Charge {
        let mut books = self.books.lock().unwrap_or_else(|e| e.into_inner());
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        books
            .charges
            .entry(key.to_owned())
            .or_insert_with(|| make(format!("{id:08}")))
            .clone()
    }

    /// The refund under `key`, made now if the key is new; the id it has.
    fn refund(&self, key: &str, charge: &str, minor: i64) -> String {
        let mut books = self.books.lock().unwrap_or_else(|e| e.into_inner());
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        books
            .refunds
            .entry(key.to_owned())
            .or_insert_with(|| Refund {
                id: format!("{id:08}"),
                charge: charge.to_owned(),
                minor,
            })
            .id
            .clone()
    }

    fn failing(&self) -> Option<Response> {
        self.failing.load(Ordering::SeqCst).then(|| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(json!({"error": {"type": "api_error", "message": "internal error"}})),
            )
                .into_response()
        })
    }
}

/// A provider fake listening on a port of its own, which it keeps across [`Fake::down`] and
/// [`Fake::up`].
pub struct Fake {
    pub name: &'static str,
    addr: SocketAddr,
    shared: Arc<Shared>,
    running: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn stripe(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/v1/payment_intents",
            post(
                |State(s): State<Arc<Shared>>,
                 headers: HeaderMap,
                 Form(form): Form<HashMap<String, String>>| async move {
                    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
                    let charge = s.charge(&header(&headers, "idempotency-key"), |id| Charge {
                        transaction: field("metadata[portside_transaction_id]"),
                        reference: format!("pi_{id}"),
                        minor: field("amount").parse().unwrap_or(0),
                        declined: field("payment_method").contains("chargeDeclined"),
                    });
                    if let Some(failed) = s.failing() {
                        return failed;
                    }
                    if charge.declined {
                        return (
                            StatusCode::PAYMENT_REQUIRED,
                            axum::Json(json!({"error": {
                                "type": "card_error", "code": "card_declined",
                                "decline_code": "generic_decline",
                                "message": "Your card was declined.",
                                "payment_intent": {"id": charge.reference, "status": "requires_payment_method"},
                            }})),
                        )
                            .into_response();
                    }
                    axum::Json(json!({
                        "id": charge.reference, "object": "payment_intent",
                        "amount": charge.minor, "status": "succeeded",
                    }))
                    .into_response()
                },
            ),
        )
        .route(
            "/v1/refunds",
            post(
                |State(s): State<Arc<Shared>>,
                 headers: HeaderMap,
                 Form(form): Form<HashMap<String, String>>| async move {
                    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
                    let id = s.refund(
                        &header(&headers, "idempotency-key"),
                        &field("payment_intent"),
                        field("amount").parse().unwrap_or(0),
                    );
                    if let Some(failed) = s.failing() {
                        return failed;
                    }
                    axum::Json(json!({"id": format!("re_{id}"), "object": "refund", "status": "succeeded"}))
                        .into_response()
                },
            ),
        )
        .with_state(shared)
}

/// `12.34` in minor units.
fn minor_of(value: &Value) -> i64 {
    let text = value.as_str().unwrap_or_default();
    let (units, cents) = text.split_once('.').unwrap_or((text, "0"));
    units.parse::<i64>().unwrap_or(0) * 100
        + format!("{cents:0<2}")[..2].parse::<i64>().unwrap_or(0)
}

fn paypal(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/v1/oauth2/token",
            post(|| async {
                axum::Json(json!({"access_token": "chaos-paypal-access", "token_type": "Bearer", "expires_in": 32400}))
            }),
        )
        .route(
            "/v2/checkout/orders",
            post(
                |State(s): State<Arc<Shared>>,
                 headers: HeaderMap,
                 axum::Json(order): axum::Json<Value>| async move {
                    let unit = &order["purchase_units"][0];
                    let charge = s.charge(&header(&headers, "paypal-request-id"), |id| Charge {
                        transaction: unit["custom_id"].as_str().unwrap_or_default().to_owned(),
                        reference: format!("CAP-{id}"),
                        minor: minor_of(&unit["amount"]["value"]),
                        declined: order["payment_source"]["paypal"]["vault_id"]
                            .as_str()
                            .is_some_and(|t| t.contains("chargeDeclined")),
                    });
                    if let Some(failed) = s.failing() {
                        return failed;
                    }
                    if charge.declined {
                        return (
                            StatusCode::UNPROCESSABLE_ENTITY,
                            axum::Json(json!({"name": "UNPROCESSABLE_ENTITY", "details": [
                                {"issue": "INSTRUMENT_DECLINED", "description": "The instrument presented was declined."}
                            ]})),
                        )
                            .into_response();
                    }
                    (
                        StatusCode::CREATED,
                        axum::Json(json!({
                            "id": format!("ORDER-{}", charge.reference), "status": "COMPLETED",
                            "purchase_units": [{"payments": {"captures": [
                                {"id": charge.reference, "status": "COMPLETED"}
                            ]}}],
                        })),
                    )
                        .into_response()
                },
            ),
        )
        .route(
            "/v2/payments/captures/{capture}/refund",
            post(
                |State(s): State<Arc<Shared>>,
                 Path(capture): Path<String>,
                 headers: HeaderMap,
                 axum::Json(body): axum::Json<Value>| async move {
                    let id = s.refund(
                        &header(&headers, "paypal-request-id"),
                        &capture,
                        minor_of(&body["amount"]["value"]),
                    );
                    if let Some(failed) = s.failing() {
                        return failed;
                    }
                    (
                        StatusCode::CREATED,
                        axum::Json(json!({"id": format!("REF-{id}"), "status": "COMPLETED"})),
                    )
                        .into_response()
                },
            ),
        )
        .with_state(shared)
}

impl Fake {
    /// `stripe` or `paypal`, listening on a free local port.
    pub async fn start(name: &'static str) -> anyhow::Result<Fake> {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let mut fake = Fake {
            name,
            addr,
            shared: Arc::default(),
            running: None,
        };
        fake.up().await?;
        Ok(fake)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Listens again on the same port (and stops failing).
    pub async fn up(&mut self) -> anyhow::Result<()> {
        self.shared.failing.store(false, Ordering::SeqCst);
        if self.running.is_some() {
            return Ok(());
        }
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket.bind(self.addr)?;
        let listener = socket.listen(1024)?;
        let app = match self.name {
            "stripe" => stripe(self.shared.clone()),
            _ => paypal(self.shared.clone()),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        self.running = Some((stop, task));
        Ok(())
    }

    /// Stops listening and closes its connections: every call is refused until [`Fake::up`].
    pub async fn down(&mut self) {
        if let Some((stop, mut task)) = self.running.take() {
            let _ = stop.send(());
            if tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }

    /// From now on, charges and refunds are made and then answered with a 500.
    pub fn fail_after_acting(&self) {
        self.shared.failing.store(true, Ordering::SeqCst);
    }

    pub fn books(&self) -> Books {
        self.shared
            .books
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The providers' books against the store's.
#[derive(Default)]
pub struct Audit {
    /// A charge transaction that took money more than once (under two keys or at two providers).
    pub charged_twice: usize,
    /// Money taken by a provider that the store does not record as charged there, or recorded
    /// as charged (or refunded) without the provider having done it.
    pub disagreements: usize,
    pub details: Vec<String>,
}

/// Every charge and refund the fakes made must be the store's, at that provider, with that
/// amount, and every charge and refund the store records as done at a fake must be there.
pub async fn audit(store: &Store, fakes: &[(&str, Books)]) -> anyhow::Result<Audit> {
    let mut a = Audit::default();
    // provider_key → (kind, status, amount, provider of the payment)
    let stored: HashMap<String, (String, String, i64, String)> = store
        .rows(
            "SELECT t.provider_key, t.kind, t.status, CAST(t.amount_minor AS TEXT), p.provider \
             FROM payment_transactions t JOIN payments p ON p.id = t.payment_id",
        )
        .await?
        .into_iter()
        .map(|r| {
            let minor = r[3].parse().unwrap_or(0);
            (
                r[0].clone(),
                (r[1].clone(), r[2].clone(), minor, r[4].clone()),
            )
        })
        .collect();
    // What the provider did under `key` must be the store's: that kind, succeeded, that amount,
    // at that provider.
    let mut agree = |provider: &str, key: &str, kind: &str, minor: i64, what: String| {
        let recorded = matches!(stored.get(key), Some((k, status, m, at))
            if k == kind && status == "succeeded" && *m == minor && at == provider);
        if !recorded {
            a.disagreements += 1;
            a.details.push(format!(
                "{provider} {what} under key {key}; the store has {:?}",
                stored.get(key)
            ));
        }
    };
    let mut takers: HashMap<&str, Vec<&str>> = HashMap::new();
    for (provider, books) in fakes {
        for (key, charge) in books.charges.iter().filter(|(_, c)| !c.declined) {
            takers
                .entry(charge.transaction.as_str())
                .or_default()
                .push(provider);
            let what = format!("charged {}", charge.minor);
            agree(provider, key, "charge", charge.minor, what);
        }
        for (key, refund) in &books.refunds {
            let what = format!("refunded {} of {}", refund.minor, refund.charge);
            agree(provider, key, "refund", refund.minor, what);
        }
    }
    for (transaction, providers) in takers.iter().filter(|(_, p)| p.len() > 1) {
        a.charged_twice += 1;
        a.details.push(format!(
            "charged twice: transaction {transaction} took money at {}",
            providers.join(" and ")
        ));
    }
    for (key, (kind, status, _, at)) in &stored {
        let Some((_, books)) = fakes.iter().find(|(p, _)| p == at) else {
            continue;
        };
        let done_there = match kind.as_str() {
            "charge" => books.charges.get(key).is_some_and(|c| !c.declined),
            _ => books.refunds.contains_key(key),
        };
        if status == "succeeded" && !done_there {
            a.disagreements += 1;
            a.details.push(format!(
                "the store has the {kind} under key {key} succeeded at {at}, which never made it"
            ));
        }
    }
    Ok(a)
}
