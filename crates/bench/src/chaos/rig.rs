//! The server under test and its store: a real Portside process started from its binary,
//! with a PostgreSQL schema (or a SQLite file) and a bus namespace of its own that are removed
//! afterwards.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use sqlx::Row;
use tokio::process::{Child, Command};

const SECRET: &str = "chaos-test-secret-that-is-long-enough-to-sign";
const PASSWORD: &str = "correct horse battery";
/// The consumer groups of a Portside process, for removing their queues afterwards.
fn groups() -> Vec<&'static str> {
    portside_app::application::SUBSCRIPTIONS
        .iter()
        .map(|s| s.group)
        .collect()
}

pub struct Server {
    bin: PathBuf,
    env: Vec<(String, String)>,
    /// The subcommand (none: `serve`, everything in one process).
    args: Vec<String>,
    pub log: PathBuf,
    pub base: String,
    child: Option<Child>,
}

impl Server {
    pub fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new(&self.bin)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", self.bin.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// `portside ledger check` with this server's settings (run once it stopped): whether the
    /// books hold, and what the command printed.
    pub async fn ledger_check(&self) -> anyhow::Result<(bool, String)> {
        let out = Command::new(&self.bin)
            .args(["ledger", "check"])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .await
            .with_context(|| format!("cannot run {} ledger check", self.bin.display()))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok((out.status.success(), text))
    }

    /// Time until `/health/ready` answers 200 (ready or degraded).
    pub async fn ready(&self, http: &reqwest::Client) -> anyhow::Result<Duration> {
        self.until(http, |code, _| code == 200).await
    }

    /// Time until `/health/ready` says every dependency answers.
    pub async fn fully_ready(&self, http: &reqwest::Client) -> anyhow::Result<Duration> {
        self.until(http, |code, word| code == 200 && word == "ready")
            .await
    }

    async fn until(
        &self,
        http: &reqwest::Client,
        ok: impl Fn(u16, &str) -> bool,
    ) -> anyhow::Result<Duration> {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(120) {
            let (code, word, _) = self.readiness(http).await;
            if ok(code, &word) {
                return Ok(t0.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!(
            "the server was not ready within 120 s; see {}",
            self.log.display()
        )
    }

    /// `/health/ready`: the status code (0: no answer), its word and the failing checks.
    pub async fn readiness(&self, http: &reqwest::Client) -> (u16, String, String) {
        let answer = http
            .get(format!("{}/health/ready", self.base))
            .timeout(Duration::from_secs(3))
            .send()
            .await;
        let Ok(r) = answer else {
            return (0, "no answer".into(), String::new());
        };
        let code = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        let failing = body["checks"]
            .as_object()
            .map(|checks| {
                checks
                    .iter()
                    .filter(|(_, v)| *v != "ok")
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        (
            code,
            body["status"].as_str().unwrap_or("?").to_owned(),
            failing,
        )
    }

    pub async fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    pub async fn terminate(&mut self) -> anyhow::Result<()> {
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
pub enum Store {
    Postgres(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

impl Store {
    pub async fn rows(&self, sql: &str) -> anyhow::Result<Vec<Vec<String>>> {
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

    pub async fn count(&self, sql: &str) -> anyhow::Result<i64> {
        let rows = self.rows(sql).await?;
        Ok(rows
            .first()
            .and_then(|r| r.first())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }
}

/// A server, its store and what to remove afterwards.
pub struct Rig {
    pub server: Server,
    pub store: Store,
    pub http: reqwest::Client,
    pub label: String,
    /// The relay, worker and search processes of split mode.
    parts: Vec<Server>,
    dir: PathBuf,
    db: String,
    schema: Option<String>,
    bus: Option<String>,
    backlog_mark: Option<String>,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Rig {
    /// Starts Portside on `engine` (`postgres` or `sqlite`); on PostgreSQL with `bus`
    /// (an AMQP or a Redis URL, or `inprocess`) and `extra` settings.
    pub async fn start(
        engine: &str,
        bus: Option<String>,
        extra: &[(&str, String)],
    ) -> anyhow::Result<Rig> {
        Self::start_in(engine, bus, extra, false).await
    }

    /// As [`Rig::start`]; `split` runs `portside api` with the search service, a relay and a
    /// worker as processes of their own (a broker is needed).
    pub async fn start_in(
        engine: &str,
        bus: Option<String>,
        extra: &[(&str, String)],
        split: bool,
    ) -> anyhow::Result<Rig> {
        let bin = match std::env::var("PORTSIDE_BIN") {
            Ok(b) => PathBuf::from(b),
            Err(_) => std::env::current_exe()?
                .parent()
                .context("no directory beside this binary")?
                .join("portside"),
        };
        let dir = std::env::temp_dir().join(format!("portside-chaos-{}", std::process::id()));
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
        .iter()
        .chain(extra)
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
        let db = crate::env(
            "BENCH_DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/postgres",
        );
        let schema = format!("chaos_{}", std::process::id());
        let (store, schema, bus) = match engine {
            "postgres" => {
                let admin = sqlx::PgPool::connect(&db).await?;
                sqlx::query(&format!("CREATE SCHEMA {schema}"))
                    .execute(&admin)
                    .await?;
                let url = format!("{db}?options=-c%20search_path%3D{schema}");
                env.push(("DATABASE_URL".into(), url.clone()));
                let bus = bus.unwrap_or_else(|| {
                    crate::env("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
                });
                env.push(("EVENT_BUS".into(), bus.clone()));
                env.push(("EVENT_NAMESPACE".into(), schema.clone()));
                let store = Store::Postgres(sqlx::PgPool::connect(&url).await?);
                (store, Some(schema), Some(bus))
            }
            "sqlite" => {
                let file = dir.join("portside.db");
                env.push((
                    "DATABASE_URL".into(),
                    format!("sqlite://{}", file.display()),
                ));
                let store = Store::Sqlite(
                    sqlx::SqlitePool::connect_with(
                        sqlx::sqlite::SqliteConnectOptions::new()
                            .filename(&file)
                            .create_if_missing(true),
                    )
                    .await?,
                );
                (store, None, None)
            }
            other => bail!("unknown store {other:?}: use postgres or sqlite"),
        };
        let label = match &bus {
            Some(b) if b.starts_with("redis") => "PostgreSQL + Redis Streams",
            Some(b) if b.starts_with("amqp") => "PostgreSQL + RabbitMQ",
            Some(_) => "PostgreSQL, in-process bus",
            None => "SQLite, in-process bus",
        };
        let label = if split {
            format!("{label}, split")
        } else {
            label.to_owned()
        };
        let process = |args: &[&str], log: &str| Server {
            bin: bin.clone(),
            env: env.clone(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            log: dir.join(log),
            base: format!("http://127.0.0.1:{port}"),
            child: None,
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(40))
            .build()?;
        let mut parts = Vec::new();
        if split {
            // The search process first: it owns the index the API reads.
            let mut search = process(&["search"], "search.log");
            search.spawn()?;
            tokio::time::sleep(Duration::from_secs(1)).await;
            parts.push(search);
        }
        let mut server = if split {
            process(&["api"], "server.log")
        } else {
            process(&[], "server.log")
        };
        server.spawn()?;
        server.ready(&http).await?;
        if split {
            for part in ["relay", "worker"] {
                let mut p = process(&[part], &format!("{part}.log"));
                p.spawn()?;
                parts.push(p);
            }
        }
        Ok(Rig {
            server,
            store,
            http,
            label,
            parts,
            dir,
            db,
            schema,
            bus,
            backlog_mark: None,
        })
    }

    /// The split-mode process started as `portside <name>` (`relay`, `worker`, `search`).
    pub fn part(&mut self, name: &str) -> Option<&mut Server> {
        self.parts
            .iter_mut()
            .find(|p| p.args.first().is_some_and(|a| a == name))
    }

    /// Lines of the server log that hold a secret: the token secret, the customer's password,
    /// an access or refresh token (`eyJ…`), a card token (`tok_…`).
    pub fn leaks(&self) -> anyhow::Result<usize> {
        let log = std::fs::read_to_string(&self.server.log)?;
        Ok(log
            .lines()
            .filter(|l| {
                [SECRET, PASSWORD, "eyJ", "tok_"]
                    .iter()
                    .any(|s| l.contains(s))
            })
            .count())
    }

    /// Puts the product the load orders (`sku-1`, 7.50 USD, stock not tracked) in the catalog,
    /// as an administrator made with `portside users create-admin`.
    pub async fn shelve(&self) -> anyhow::Result<()> {
        let token = self.admin_token().await?;
        let r = self
            .http
            .post(format!("{}/api/v1/products", self.server.base))
            .bearer_auth(token)
            .json(&json!({"sku": "sku-1", "name": "Mug", "prices": {"USD": "7.50"}}))
            .send()
            .await?;
        anyhow::ensure!(r.status() == 201, "product: {}", r.text().await?);
        Ok(())
    }

    /// An administrator's access token (the administrator made once, with `portside users
    /// create-admin`).
    pub async fn admin_token(&self) -> anyhow::Result<String> {
        let base = &self.server.base;
        let email = "chaos-admin@example.com";
        let made = std::process::Command::new(&self.server.bin)
            .envs(self.server.env.iter().map(|(k, v)| (k, v)))
            .env("PORTSIDE_ADMIN_PASSWORD", PASSWORD)
            .args(["users", "create-admin", "--email", email])
            .output()?;
        anyhow::ensure!(
            made.status.success(),
            "create-admin: {}",
            String::from_utf8_lossy(&made.stderr)
        );
        let login: Value = self
            .http
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await?
            .json()
            .await?;
        Ok(login["access_token"]
            .as_str()
            .context("admin login")?
            .to_owned())
    }

    /// Signs up a customer and returns its access token.
    pub async fn sign_in(&self) -> anyhow::Result<String> {
        let base = &self.server.base;
        let email = format!("chaos{}@example.com", std::process::id());
        let password = PASSWORD;
        self.http
            .post(format!("{base}/api/v1/users"))
            .json(&json!({"email": email, "password": password, "name": "Chaos Test"}))
            .send()
            .await?;
        let login: Value = self
            .http
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

    /// Signs up the customer the clients send transfers to; returns its user id.
    pub async fn recipient(&self) -> anyhow::Result<String> {
        let email = format!("chaos-recipient{}@example.com", std::process::id());
        let r: Value = self
            .http
            .post(format!("{}/api/v1/users", self.server.base))
            .json(&json!({"email": email, "password": PASSWORD, "name": "Chaos Recipient"}))
            .send()
            .await?
            .json()
            .await?;
        r["id"]
            .as_str()
            .map(str::to_owned)
            .context("sign-up gave no user id")
    }

    /// Waits (at most 300 s) until every committed event reached the `audit` consumer.
    pub async fn drain(&self) -> anyhow::Result<Duration> {
        let t0 = Instant::now();
        let undelivered = "SELECT CAST(count(*) AS TEXT) FROM outbox o WHERE NOT EXISTS \
            (SELECT 1 FROM inbox i WHERE i.consumer_group = 'audit' AND i.event_id = o.id)";
        while self.store.count(undelivered).await? > 0 && t0.elapsed() < Duration::from_secs(300) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(t0.elapsed())
    }

    /// Waits (at most 180 s) until no charge or refund is pending: those a provider left
    /// unknown are settled by the clients' retries and the recovery task.
    pub async fn settled(&self) -> anyhow::Result<Duration> {
        let t0 = Instant::now();
        let pending =
            "SELECT CAST(count(*) AS TEXT) FROM payment_transactions WHERE status = 'pending'";
        while self.store.count(pending).await? > 0 && t0.elapsed() < Duration::from_secs(180) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(t0.elapsed())
    }

    /// Notes the newest committed event (once the store answers), so that
    /// [`Rig::backlog_published`] can tell when everything committed until now is published.
    pub async fn mark_backlog(&mut self) {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(60) {
            if let Ok(rows) = self
                .store
                .rows("SELECT CAST(max(occurred_at) AS TEXT) FROM outbox")
                .await
            {
                self.backlog_mark = rows.into_iter().next().and_then(|r| r.into_iter().next());
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Time until the events committed up to the mark are all published, while new ones keep
    /// coming (at most 120 s: `None` beyond).
    pub async fn backlog_published(&self, since: Instant) -> anyhow::Result<Option<Duration>> {
        let t0 = Instant::now();
        let Some(mark) = &self.backlog_mark else {
            return Ok(Some(since.elapsed()));
        };
        let waiting = format!(
            "SELECT CAST(count(*) AS TEXT) FROM outbox WHERE published_at IS NULL \
             AND occurred_at <= CAST('{mark}' AS timestamptz)"
        );
        while t0.elapsed() < Duration::from_secs(120) {
            if self.store.count(&waiting).await.unwrap_or(1) == 0 {
                return Ok(Some(since.elapsed()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(None)
    }

    /// Events committed but not yet published.
    pub async fn unpublished(&self) -> anyhow::Result<i64> {
        self.store
            .count("SELECT CAST(count(*) AS TEXT) FROM outbox WHERE published_at IS NULL")
            .await
    }

    /// Removes the schema and the bus queues; the directory with the server log stays when
    /// the run `failed`.
    pub async fn remove(mut self, failed: bool) -> anyhow::Result<()> {
        for part in &mut self.parts {
            part.kill9().await;
        }
        self.server.kill9().await;
        if let Store::Postgres(pool) = &self.store {
            pool.close().await;
        }
        if let Some(schema) = &self.schema {
            let admin = sqlx::PgPool::connect(&self.db).await?;
            sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                .execute(&admin)
                .await?;
            match self.bus.as_deref() {
                Some(url) if url.starts_with("redis") => {
                    portside_bus::RedisStreamsBus::new(
                        url,
                        schema,
                        "chaos",
                        Duration::from_secs(30),
                    )?
                    .retire(&groups())
                    .await?;
                }
                Some(url) if url.starts_with("amqp") => {
                    portside_bus::RabbitBus::new(url, schema)
                        .retire(&groups(), true)
                        .await?;
                }
                _ => {}
            }
        }
        if !failed {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
        Ok(())
    }
}
