//! The clients: keyed payments (some declined), orders with their payment, refunds, and the
//! wallet's money (top-ups, payments from the balance, transfers to another user), each sent
//! again with the same idempotency key until a final answer, as a client that must not
//! pay twice does (a 202, whose outcome is not known yet, is sent again too). Optionally,
//! half of the card payments are submitted asynchronously (`Prefer: respond-async`) and their
//! `Location` polled until they settle. Every attempt is logged with its time, so that a scenario can tell what
//! happened during an outage.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use rand::Rng;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

const CLIENTS: usize = 8;

/// What the clients were told, by idempotency key or id.
#[derive(Default)]
pub struct Ledger {
    /// Payment key → the final status the client was told (`succeeded` or `failed`).
    pub payments: HashMap<String, String>,
    /// Payment id → minor units of each acknowledged refund.
    pub refunds: HashMap<String, Vec<i64>>,
    /// Orders whose payment was acknowledged as succeeded.
    pub paid_orders: Vec<String>,
    /// Payments from the wallet acknowledged as succeeded (also in `payments`).
    pub wallet_payments: usize,
    /// Payments acknowledged as top-ups of the wallet (their ids).
    pub top_ups: Vec<String>,
    /// Payment keys from the wallet refused for insufficient funds: nothing may be stored.
    pub refused_payments: Vec<String>,
    /// Transfer key → whether it was acknowledged (true) or refused for insufficient funds.
    pub transfers: HashMap<String, bool>,
    /// Answers no correct server gives (an unexpected 4xx): printed, and they fail the run.
    pub unexpected: Vec<String>,
}

/// One request sent: when, how long it took, the status (0: no answer) and whether an error
/// came as problem+json.
#[derive(Clone, Copy)]
pub struct Attempt {
    pub at: Instant,
    pub took: Duration,
    pub status: u16,
    pub problem: bool,
}

impl Attempt {
    /// A final answer: the client stops retrying (success, decline, validation error).
    pub fn is_final(&self) -> bool {
        !(self.status == 0 || self.status >= 500 || self.status == 409 || self.status == 429)
    }
}

/// The clients at work.
pub struct Load {
    ledger: Arc<Mutex<Ledger>>,
    attempts: Arc<Mutex<Vec<Attempt>>>,
    stop: Arc<AtomicBool>,
    clients: Vec<JoinHandle<anyhow::Result<()>>>,
    started: Instant,
}

/// What the clients send besides the mix every scenario has.
#[derive(Clone, Copy, Default)]
pub struct Mix {
    /// Half of the card payments submitted with `Prefer: respond-async`.
    pub asynchronous: bool,
}

/// What the clients did.
pub struct Done {
    pub ledger: Ledger,
    pub attempts: Vec<Attempt>,
    pub took: Duration,
}

impl Load {
    /// Starts the clients; each rests `pace` between operations (zero: as fast as answered).
    /// Transfers go to the user `recipient`.
    pub fn start(
        http: &reqwest::Client,
        base: &str,
        token: &str,
        recipient: &str,
        pace: Duration,
        mix: Mix,
    ) -> Load {
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let clients = (0..CLIENTS)
            .map(|_| {
                let client = Client {
                    http: http.clone(),
                    base: base.to_owned(),
                    token: token.to_owned(),
                    recipient: recipient.to_owned(),
                    mix,
                    ledger: ledger.clone(),
                    attempts: attempts.clone(),
                };
                let stop = stop.clone();
                tokio::spawn(async move { client.run(&stop, pace).await })
            })
            .collect();
        Load {
            ledger,
            attempts,
            stop,
            clients,
            started: Instant::now(),
        }
    }

    /// Lets every client finish what it has under way, then stops them.
    pub async fn stop(self) -> anyhow::Result<Done> {
        self.stop.store(true, Ordering::SeqCst);
        for c in self.clients {
            c.await??;
        }
        Ok(Done {
            ledger: taken(&self.ledger)?,
            attempts: taken(&self.attempts)?,
            took: self.started.elapsed(),
        })
    }
}

fn taken<T: Default>(shared: &Mutex<T>) -> anyhow::Result<T> {
    let mut guard = shared
        .lock()
        .map_err(|_| anyhow::anyhow!("a client panicked"))?;
    Ok(std::mem::take(&mut *guard))
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
    recipient: String,
    mix: Mix,
    ledger: Arc<Mutex<Ledger>>,
    attempts: Arc<Mutex<Vec<Attempt>>>,
}

impl Client {
    async fn run(&self, stop: &AtomicBool, pace: Duration) -> anyhow::Result<()> {
        let mut succeeded: Vec<(String, i64)> = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            tokio::time::sleep(pace).await;
            let pick = rand::rng().random_range(0..12);
            match pick {
                10 => self.wallet_payment().await?,
                11 => self.transfer().await?,
                0..=5 => {
                    let submitted = self.mix.asynchronous && pick > 2;
                    if let Some(p) = self.payment("tok_visa", submitted).await? {
                        succeeded.push(p);
                    }
                }
                6 => {
                    self.payment("tok_chargeDeclined", false).await?;
                }
                7 | 8 => self.order().await?,
                _ => {
                    if let Some((id, left)) = succeeded.pop()
                        && left >= 100
                    {
                        self.refund(&id).await?;
                        succeeded.push((id, left - 100));
                    }
                }
            }
        }
        Ok(())
    }

    /// Sends until a final answer, with the same key, as a client that must not pay twice.
    async fn send(&self, path: &str, key: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        self.send_preferring(path, key, body, None).await
    }

    /// As [`Client::send`], with a `Prefer` header; a 202 is final when `prefer` asked for it.
    async fn send_preferring(
        &self,
        path: &str,
        key: &str,
        body: &Value,
        prefer: Option<&str>,
    ) -> anyhow::Result<(u16, Value)> {
        let t0 = Instant::now();
        loop {
            let at = Instant::now();
            let mut request = self
                .http
                .post(format!("{}{path}", self.base))
                .bearer_auth(&self.token)
                .header("idempotency-key", key)
                .json(body);
            if let Some(p) = prefer {
                request = request.header("prefer", p);
            }
            let answer = request.send().await;
            let mut attempt = Attempt {
                at,
                took: at.elapsed(),
                status: 0,
                problem: false,
            };
            let mut reply = Value::Null;
            if let Ok(r) = answer {
                attempt.status = r.status().as_u16();
                attempt.problem = r
                    .headers()
                    .get("content-type")
                    .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
                reply = r.json().await.unwrap_or(Value::Null);
            }
            if let Ok(mut log) = self.attempts.lock() {
                log.push(attempt);
            }
            if attempt.is_final() && (attempt.status != 202 || prefer.is_some()) {
                return Ok((attempt.status, reply));
            }
            if t0.elapsed() > Duration::from_secs(180) {
                bail!("{path} with key {key} had no final answer in 180 s");
            }
            let pause = rand::rng().random_range(50..300);
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    }

    /// Records something the clients were told.
    fn note(&self, what: impl FnOnce(&mut Ledger)) {
        if let Ok(mut l) = self.ledger.lock() {
            what(&mut l);
        }
    }

    /// 1.00 from the wallet; topped up with 20.00 when the balance is short.
    async fn wallet_payment(&self) -> anyhow::Result<()> {
        let key = uuid::Uuid::now_v7().to_string();
        let body = json!({
            "amount": "1.00",
            "currency": "USD",
            "payment_method": "wallet",
            "metadata": {"chaos_key": key},
        });
        let (status, reply) = self.send("/api/v1/payments", &key, &body).await?;
        match (status, reply["status"].as_str(), reply["code"].as_str()) {
            (201, Some("succeeded"), _) => {
                self.note(|l| {
                    l.payments.insert(key, "succeeded".into());
                    l.wallet_payments += 1;
                });
            }
            (402, _, Some("insufficient_funds")) => {
                self.note(|l| l.refused_payments.push(key));
                self.top_up().await?;
            }
            _ => self.unexpected(format!("wallet payment {key}: {status} {reply}")),
        }
        Ok(())
    }

    async fn top_up(&self) -> anyhow::Result<()> {
        let key = uuid::Uuid::now_v7().to_string();
        let body =
            json!({"amount": "20.00", "currency": "USD", "payment_method_token": "tok_visa"});
        let (status, reply) = self.send("/api/v1/wallets/me/top-ups", &key, &body).await?;
        match (status, reply["id"].as_str()) {
            (201, Some(id)) => {
                let id = id.to_owned();
                self.note(|l| l.top_ups.push(id));
            }
            _ => self.unexpected(format!("top-up {key}: {status} {reply}")),
        }
        Ok(())
    }

    /// 0.50 to the other user; a top-up when the balance is short.
    async fn transfer(&self) -> anyhow::Result<()> {
        let key = uuid::Uuid::now_v7().to_string();
        let body = json!({"recipient_id": self.recipient, "amount": "0.50", "currency": "USD"});
        let (status, reply) = self.send("/api/v1/transfers", &key, &body).await?;
        match (status, reply["code"].as_str()) {
            (201, _) => self.note(|l| {
                l.transfers.insert(key, true);
            }),
            (402, Some("insufficient_funds")) => {
                self.note(|l| {
                    l.transfers.insert(key, false);
                });
                self.top_up().await?;
            }
            _ => self.unexpected(format!("transfer {key}: {status} {reply}")),
        }
        Ok(())
    }

    fn unexpected(&self, what: String) {
        if let Ok(mut l) = self.ledger.lock() {
            l.unexpected.push(what);
        }
    }

    /// A keyed payment, `submitted` asynchronously or not; the id and refundable minor units
    /// when it succeeded.
    async fn payment(&self, token: &str, submitted: bool) -> anyhow::Result<Option<(String, i64)>> {
        let key = uuid::Uuid::now_v7().to_string();
        let minor: i64 = rand::rng().random_range(100..100_000);
        let body = json!({
            "amount": format!("{}.{:02}", minor / 100, minor % 100),
            "currency": "USD",
            "payment_method": "credit_card",
            "payment_method_token": token,
            "metadata": {"chaos_key": key},
        });
        let (status, reply) = if submitted {
            let (status, reply) = self
                .send_preferring("/api/v1/payments", &key, &body, Some("respond-async"))
                .await?;
            match (status, reply["id"].as_str()) {
                (202, Some(id)) => (200, self.settled(id).await?),
                _ => (status, reply),
            }
        } else {
            self.send("/api/v1/payments", &key, &body).await?
        };
        let told = match (status, reply["status"].as_str()) {
            (200 | 201, Some(s)) => s.to_owned(),
            (402, _) => "failed".to_owned(),
            _ => {
                self.unexpected(format!("payment {key}: {status} {reply}"));
                return Ok(None);
            }
        };
        if let Ok(mut l) = self.ledger.lock() {
            l.payments.insert(key, told.clone());
        }
        Ok(match (told.as_str(), reply["id"].as_str()) {
            ("succeeded", Some(id)) => Some((id.to_owned(), minor)),
            _ => None,
        })
    }

    /// Polls a submitted payment until it settles; the payment as last read.
    async fn settled(&self, id: &str) -> anyhow::Result<Value> {
        let t0 = Instant::now();
        loop {
            let read = self
                .http
                .get(format!("{}/api/v1/payments/{id}", self.base))
                .bearer_auth(&self.token)
                .send()
                .await;
            if let Ok(r) = read
                && r.status() == 200
            {
                let payment: Value = r.json().await.unwrap_or(Value::Null);
                if !matches!(
                    payment["status"].as_str(),
                    Some("pending" | "processing") | None
                ) {
                    return Ok(payment);
                }
            }
            if t0.elapsed() > Duration::from_secs(180) {
                bail!("the submitted payment {id} did not settle in 180 s");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn refund(&self, payment: &str) -> anyhow::Result<()> {
        let key = uuid::Uuid::now_v7().to_string();
        let path = format!("/api/v1/payments/{payment}/refunds");
        let (status, reply) = self.send(&path, &key, &json!({"amount": "1.00"})).await?;
        if (200..300).contains(&status) && reply["status"] == "succeeded" {
            if let Ok(mut l) = self.ledger.lock() {
                l.refunds.entry(payment.to_owned()).or_default().push(100);
            }
        } else {
            self.unexpected(format!("refund {key} of {payment}: {status} {reply}"));
        }
        Ok(())
    }

    /// An order, then its payment; the `orders` consumer confirms it.
    async fn order(&self) -> anyhow::Result<()> {
        let key = uuid::Uuid::now_v7().to_string();
        let body = json!({"currency": "USD", "items": [
            {"sku": "sku-1", "quantity": 2, "price": "7.50"}
        ]});
        let (status, order) = self.send("/api/v1/orders", &key, &body).await?;
        let Some(id) = order["id"]
            .as_str()
            .filter(|_| status == 201 || status == 200)
        else {
            self.unexpected(format!("order {key}: {status} {order}"));
            return Ok(());
        };
        let pay_key = format!("{key}-pay");
        let pay = json!({"payment_method_token": "tok_visa"});
        let (status, reply) = self
            .send(&format!("/api/v1/orders/{id}/pay"), &pay_key, &pay)
            .await?;
        if (200..300).contains(&status) {
            if let Ok(mut l) = self.ledger.lock() {
                l.paid_orders.push(id.to_owned());
            }
        } else {
            self.unexpected(format!("order payment {pay_key}: {status} {reply}"));
        }
        Ok(())
    }
}
