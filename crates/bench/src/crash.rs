//! The crash test: clients drive keyed payments, order payments and refunds against a real
//! Portside process, retrying on errors as a real client would (same idempotency key), while
//! the process is killed with SIGKILL at random moments and restarted. Afterwards the store
//! is compared with what the clients were told:
//!
//! - lost: a request that got a final answer whose effect is missing or different;
//! - duplicated: an idempotency key with two payments, a payment with two charges, a refund
//!   total other than the acknowledged refunds;
//! - events lost: committed outbox rows that never reached the consumers (the `audit` group
//!   consumes every event);
//! - effects applied twice: an order confirmed more than once by the `orders` consumer.
//!
//! `portside-bench crash postgres [KILLS]` runs on PostgreSQL and RabbitMQ (`BENCH_AMQP_URL`,
//! which may also name Redis Streams: `redis://…`);
//! `portside-bench crash sqlite [KILLS]` on the embedded mode. `PORTSIDE_BIN` names the
//! server binary (default: the release build beside this one).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rand::Rng;
use serde_json::{Value, json};
use sqlx::Row;
use tokio::process::{Child, Command};

const CLIENTS: usize = 8;
const SECRET: &str = "crash-test-secret-that-is-long-enough-to-sign";

/// What the clients were told, by idempotency key or id.
#[derive(Default)]
struct Ledger {
    /// Payment key → the final status the client was told (`succeeded` or `failed`).
    payments: HashMap<String, String>,
    /// Payment id → minor units of each acknowledged refund.
    refunds: HashMap<String, Vec<i64>>,
    /// Orders whose payment was acknowledged as succeeded.
    paid_orders: Vec<String>,
    /// Answers no correct server gives (an unexpected 4xx): printed, and they fail the run.
    unexpected: Vec<String>,
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    acknowledged: AtomicU64,
}

struct Server {
    bin: PathBuf,
    env: Vec<(String, String)>,
    log: PathBuf,
    base: String,
    child: Option<Child>,
}

impl Server {
    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new(&self.bin)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", self.bin.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// Time until `/health/ready` answers 200.
    async fn ready(&self, http: &reqwest::Client) -> anyhow::Result<Duration> {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(60) {
            if let Ok(r) = http.get(format!("{}/health/ready", self.base)).send().await
                && r.status().is_success()
            {
                return Ok(t0.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!(
            "the server was not ready within 60 s; see {}",
            self.log.display()
        )
    }

    async fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    async fn terminate(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status();
            }
            let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await??;
            if !status.success() {
                bail!("the server exited with {status} on SIGTERM");
            }
        }
        Ok(())
    }
}

/// One store to verify, through text-only queries that both engines understand.
enum Store {
    Postgres(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

impl Store {
    async fn rows(&self, sql: &str) -> anyhow::Result<Vec<Vec<String>>> {
        macro_rules! texts {
            ($pool:expr) => {
                sqlx::query(sql)
                    .fetch_all($pool)
                    .await?
                    .iter()
                    .map(|row| {
                        (0..row.len())
                            .map(|i| {
                                row.try_get::<Option<String>, _>(i)
                                    .ok()
                                    .flatten()
                                    .unwrap_or_default()
                            })
                            .collect()
                    })
                    .collect()
            };
        }
        Ok(match self {
            Store::Postgres(p) => texts!(p),
            Store::Sqlite(p) => texts!(p),
        })
    }

    async fn count(&self, sql: &str) -> anyhow::Result<i64> {
        let rows = self.rows(sql).await?;
        Ok(rows
            .first()
            .and_then(|r| r.first())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Runs the crash test; prints the report and fails when anything was lost or duplicated.
pub async fn run(args: &[String]) -> anyhow::Result<()> {
    let engine = args.get(1).map(String::as_str).unwrap_or("postgres");
    let kills: u32 = args.get(2).map(|k| k.parse()).transpose()?.unwrap_or(20);
    let bin = match std::env::var("PORTSIDE_BIN") {
        Ok(b) => PathBuf::from(b),
        Err(_) => std::env::current_exe()?
            .parent()
            .context("no directory beside this binary")?
            .join("portside"),
    };
    let dir = std::env::temp_dir().join(format!("portside-crash-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let port = free_port()?;
    let mut env: Vec<(String, String)> = [
        ("JWT_SECRET", SECRET.to_owned()),
        ("HTTP_ADDR", format!("127.0.0.1:{port}")),
        ("GRPC_ADDR", "127.0.0.1:0".to_owned()),
        ("DATA_DIR", dir.display().to_string()),
        ("RATE_LIMIT_PER_IP", "0".to_owned()),
        ("RATE_LIMIT_PER_USER", "0".to_owned()),
        ("RATE_LIMIT_CREDENTIALS", "0".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let db = crate::env(
        "BENCH_DATABASE_URL",
        "postgres://postgres@127.0.0.1:5432/postgres",
    );
    let schema = format!("crash_{}", std::process::id());
    let store = match engine {
        "postgres" => {
            let admin = sqlx::PgPool::connect(&db).await?;
            sqlx::query(&format!("CREATE SCHEMA {schema}"))
                .execute(&admin)
                .await?;
            let url = format!("{db}?options=-c%20search_path%3D{schema}");
            env.push(("DATABASE_URL".into(), url.clone()));
            env.push((
                "EVENT_BUS".into(),
                crate::env("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
            ));
            env.push(("EVENT_NAMESPACE".into(), schema.clone()));
            Store::Postgres(sqlx::PgPool::connect(&url).await?)
        }
        "sqlite" => {
            let file = dir.join("portside.db");
            env.push((
                "DATABASE_URL".into(),
                format!("sqlite://{}", file.display()),
            ));
            Store::Sqlite(
                sqlx::SqlitePool::connect_with(
                    sqlx::sqlite::SqliteConnectOptions::new()
                        .filename(&file)
                        .create_if_missing(true),
                )
                .await?,
            )
        }
        other => bail!("unknown store {other:?}: use postgres or sqlite"),
    };
    let label = match env.iter().find(|(k, _)| k == "EVENT_BUS") {
        Some((_, bus)) if bus.starts_with("redis") => "PostgreSQL + Redis Streams",
        Some(_) => "PostgreSQL + RabbitMQ",
        None => "SQLite, in-process bus",
    };
    let mut server = Server {
        bin,
        env,
        log: dir.join("server.log"),
        base: format!("http://127.0.0.1:{port}"),
        child: None,
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    server.spawn()?;
    server.ready(&http).await?;
    let token = sign_in(&http, &server.base).await?;

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let client = Client {
            http: http.clone(),
            base: server.base.clone(),
            token: token.clone(),
            ledger: ledger.clone(),
            counters: counters.clone(),
        };
        let stop = stop.clone();
        clients.push(tokio::spawn(async move { client.run(&stop).await }));
    }
    let mut recoveries = Vec::new();
    for i in 0..kills {
        let pause = rand::rng().random_range(300..1500);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        server.kill9().await;
        server.spawn()?;
        let took = server.ready(&http).await?;
        recoveries.push(took);
        eprintln!("kill {}/{kills}: back in {} ms", i + 1, took.as_millis());
    }
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await??;
    }
    let load_time = started.elapsed();

    // Let the relay and the consumers finish, then stop the server cleanly.
    let drained = Instant::now();
    let undelivered = "SELECT CAST(count(*) AS TEXT) FROM outbox o WHERE NOT EXISTS \
        (SELECT 1 FROM inbox i WHERE i.consumer_group = 'audit' AND i.event_id = o.id)";
    while store.count(undelivered).await? > 0 && drained.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let drain_time = drained.elapsed();
    server.terminate().await?;

    let ledger = std::mem::take(&mut *ledger.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    let report = verify(&store, &ledger).await?;
    let sent = counters.sent.load(Ordering::SeqCst);
    let acked = counters.acknowledged.load(Ordering::SeqCst);
    let max_recovery = recoveries.iter().max().copied().unwrap_or_default();
    let mean_recovery = recoveries.iter().sum::<Duration>() / recoveries.len().max(1) as u32;
    println!(
        "| store | kills | requests sent | acknowledged | payments stored | events | lost | duplicated | events lost | effects twice | restart to ready (mean / max) | load | drain |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {kills} | {sent} | {acked} | {} | {} | {} | {} | {} | {} | {} / {} ms | {:.0} s | {:.1} s |",
        label,
        report.payments,
        report.events,
        report.lost,
        report.duplicated,
        report.events_lost,
        report.effects_twice,
        mean_recovery.as_millis(),
        max_recovery.as_millis(),
        load_time.as_secs_f64(),
        drain_time.as_secs_f64(),
    );
    for line in &report.details {
        println!("- {line}");
    }
    for line in &ledger.unexpected {
        println!("- unexpected answer: {line}");
    }
    if let Store::Postgres(pool) = &store {
        pool.close().await;
        let admin = sqlx::PgPool::connect(&db).await?;
        sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
            .execute(&admin)
            .await?;
    }
    let failed = report.lost + report.duplicated + report.effects_twice;
    if failed > 0 || report.events_lost > 0 || !ledger.unexpected.is_empty() {
        bail!(
            "the crash test found defects; the server log is {}",
            server.log.display()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

async fn sign_in(http: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    let email = format!("crash{}@example.com", std::process::id());
    let password = "correct horse battery";
    http.post(format!("{base}/api/v1/users"))
        .json(&json!({"email": email, "password": password, "name": "Crash Test"}))
        .send()
        .await?;
    let login: Value = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await?
        .json()
        .await?;
    login["access_token"]
        .as_str()
        .map(str::to_owned)
        .context("login gave no access token")
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
    ledger: Arc<Mutex<Ledger>>,
    counters: Arc<Counters>,
}

impl Client {
    async fn run(&self, stop: &AtomicBool) -> anyhow::Result<()> {
        let mut succeeded: Vec<(String, i64)> = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            let pick = rand::rng().random_range(0..10);
            match pick {
                0..=5 => {
                    if let Some(p) = self.payment("tok_visa").await? {
                        succeeded.push(p);
                    }
                }
                6 => {
                    self.payment("tok_chargeDeclined").await?;
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
        let t0 = Instant::now();
        loop {
            self.counters.sent.fetch_add(1, Ordering::Relaxed);
            let answer = self
                .http
                .post(format!("{}{path}", self.base))
                .bearer_auth(&self.token)
                .header("idempotency-key", key)
                .json(body)
                .send()
                .await;
            if let Ok(r) = answer {
                let status = r.status().as_u16();
                let retry = status >= 500 || status == 409 || status == 429;
                if !retry {
                    let body = r.json().await.unwrap_or(Value::Null);
                    self.counters.acknowledged.fetch_add(1, Ordering::Relaxed);
                    return Ok((status, body));
                }
            }
            if t0.elapsed() > Duration::from_secs(180) {
                bail!("{path} with key {key} had no final answer in 180 s");
            }
            let pause = rand::rng().random_range(50..300);
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    }

    fn unexpected(&self, what: String) {
        if let Ok(mut l) = self.ledger.lock() {
            l.unexpected.push(what);
        }
    }

    /// A keyed payment; the id and refundable minor units when it succeeded.
    async fn payment(&self, token: &str) -> anyhow::Result<Option<(String, i64)>> {
        let key = uuid::Uuid::now_v7().to_string();
        let minor: i64 = rand::rng().random_range(100..100_000);
        let body = json!({
            "amount": format!("{}.{:02}", minor / 100, minor % 100),
            "currency": "USD",
            "payment_method": "credit_card",
            "payment_method_token": token,
            "metadata": {"crash_key": key},
        });
        let (status, reply) = self.send("/api/v1/payments", &key, &body).await?;
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
            {"product_id": "sku-1", "name": "Mug", "quantity": 2, "unit_price": "7.50"}
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

#[derive(Default)]
struct Report {
    payments: usize,
    events: i64,
    lost: usize,
    duplicated: usize,
    events_lost: i64,
    effects_twice: usize,
    details: Vec<String>,
}

async fn verify(store: &Store, ledger: &Ledger) -> anyhow::Result<Report> {
    let mut r = Report::default();
    // Payments by the client's key (in their metadata).
    let mut by_key: BTreeMap<String, Vec<(String, String, i64)>> = BTreeMap::new();
    for row in store
        .rows("SELECT CAST(id AS TEXT), status, CAST(metadata AS TEXT), CAST(refunded_minor AS TEXT) FROM payments")
        .await?
    {
        let key = serde_json::from_str::<Value>(&row[2])
            .ok()
            .and_then(|m| m["crash_key"].as_str().map(str::to_owned));
        if let Some(key) = key {
            let refunded = row[3].parse().unwrap_or(0);
            by_key
                .entry(key)
                .or_default()
                .push((row[0].clone(), row[1].clone(), refunded));
        }
    }
    r.payments = by_key.values().map(Vec::len).sum();
    for (key, told) in &ledger.payments {
        match by_key.get(key).map(Vec::as_slice) {
            None | Some([]) => {
                r.lost += 1;
                r.details
                    .push(format!("lost: payment {key} ({told}) is not stored"));
            }
            Some([(id, status, _)]) => {
                let settled_as_told = status == told
                    || (told == "succeeded"
                        && matches!(status.as_str(), "partially_refunded" | "refunded"));
                if !settled_as_told {
                    r.lost += 1;
                    r.details
                        .push(format!("lost: payment {id} was told {told}, is {status}"));
                }
            }
            Some(more) => {
                r.duplicated += 1;
                r.details
                    .push(format!("duplicated: key {key} has {} payments", more.len()));
            }
        }
    }
    for (key, rows) in &by_key {
        if rows.len() > 1 && !ledger.payments.contains_key(key) {
            r.duplicated += 1;
            r.details
                .push(format!("duplicated: key {key} has {} payments", rows.len()));
        }
    }
    // One charge per payment, refunds exactly as acknowledged.
    for row in store
        .rows("SELECT CAST(payment_id AS TEXT), CAST(count(*) AS TEXT) FROM payment_transactions WHERE kind = 'charge' GROUP BY payment_id HAVING count(*) > 1")
        .await?
    {
        r.duplicated += 1;
        r.details.push(format!("duplicated: payment {} has {} charges", row[0], row[1]));
    }
    let refunded: HashMap<String, i64> = by_key
        .values()
        .flatten()
        .map(|(id, _, refunded)| (id.clone(), *refunded))
        .collect();
    for (payment, acked) in &ledger.refunds {
        let told: i64 = acked.iter().sum();
        let stored = refunded.get(payment).copied().unwrap_or(0);
        if stored < told {
            r.lost += 1;
            r.details.push(format!(
                "lost: payment {payment} refunded {stored}, told {told}"
            ));
        } else if stored > told {
            r.duplicated += 1;
            r.details.push(format!(
                "duplicated: payment {payment} refunded {stored}, told {told}"
            ));
        }
    }
    // Orders paid are confirmed once.
    let confirmations: HashMap<String, i64> = store
        .rows("SELECT aggregate_id, CAST(count(*) AS TEXT) FROM outbox WHERE event_type = 'order.confirmed' GROUP BY aggregate_id")
        .await?
        .into_iter()
        .map(|row| (row[0].clone(), row[1].parse().unwrap_or(0)))
        .collect();
    for order in &ledger.paid_orders {
        match confirmations.get(order).copied().unwrap_or(0) {
            0 => {
                r.lost += 1;
                r.details
                    .push(format!("lost: order {order} was paid and never confirmed"));
            }
            1 => {}
            n => {
                r.effects_twice += 1;
                r.details
                    .push(format!("effect twice: order {order} confirmed {n} times"));
            }
        }
    }
    r.events = store
        .count("SELECT CAST(count(*) AS TEXT) FROM outbox")
        .await?;
    r.events_lost = store
        .count("SELECT CAST(count(*) AS TEXT) FROM outbox o WHERE NOT EXISTS (SELECT 1 FROM inbox i WHERE i.consumer_group = 'audit' AND i.event_id = o.id)")
        .await?;
    if r.events_lost > 0 {
        r.details.push(format!(
            "events lost: {} outbox rows never reached the audit consumer",
            r.events_lost
        ));
    }
    Ok(r)
}
