//! The store contract suite against real SQLite files and a real PostgreSQL server, plus the
//! migrations in both directions. PostgreSQL comes from TEST_DATABASE_URL (default: the local
//! server); each run gets its own schema. Without a server the PostgreSQL tests are skipped
//! loudly, unless CI=true or PORTSIDE_REQUIRE_SERVICES=1 makes that a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::str::FromStr;
use std::sync::Arc;

use portside_app::testing::{
    catalog, ledger, messages, orders, payments, routing, users, wallets, webhooks,
};
use portside_sql::{AnyStore, PoolSettings, SqlStore};
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, Executor, PgConnection};

fn require_services() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var("PORTSIDE_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

fn database_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn sqlite_path() -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "portside-contract-{}.db",
        uuid::Uuid::now_v7().simple()
    ))
}

/// A fresh schema on the test server, or None (after saying so) when there is no server.
async fn pg_schema() -> Option<(String, PgConnection)> {
    let url = database_url();
    match PgConnection::connect(&url).await {
        Ok(mut admin) => {
            let schema = format!("t_{}", uuid::Uuid::now_v7().simple());
            admin
                .execute(format!("CREATE SCHEMA {schema}").as_str())
                .await
                .unwrap();
            Some((schema, admin))
        }
        Err(e) if !require_services() => {
            // Straight to stderr: the test harness would swallow eprintln! of a passing test.
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED: PostgreSQL at {url} is unreachable ({e}); CI=true makes this a failure ***\n"
            );
            None
        }
        Err(e) => panic!("PostgreSQL at {url} is required (CI=true): {e}"),
    }
}

async fn pg_store(schema: &str) -> (AnyStore, SqlStore<sqlx::Postgres>) {
    let options = PgConnectOptions::from_str(&database_url())
        .unwrap()
        .options([("search_path", schema)]);
    let store = SqlStore::postgres(options, PoolSettings::default())
        .await
        .unwrap();
    (AnyStore::Postgres(store.clone()), store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_keeps_the_store_contract() {
    let (store, path) = sqlite_store().await;
    let store = Arc::new(store);
    payments::payment_store(store.clone()).await;
    users::user_store(store.clone()).await;
    messages::message_store(store.clone()).await;
    orders::order_store(store.clone()).await;
    ledger::ledger_store(store.clone()).await;
    wallets::wallet_store(store.clone()).await;
    webhooks::webhook_store(store.clone()).await;
    routing::routing_store(store.clone()).await;
    catalog::catalog_store(store).await;
    let _ = std::fs::remove_file(&path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_the_store_contract() {
    let Some((schema, mut admin)) = pg_schema().await else {
        return;
    };
    let (any, store) = pg_store(&schema).await;
    any.migrate().await.unwrap();
    let setting: String = sqlx::query_scalar("SHOW autovacuum")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(
        any.autovacuum_is_off().await,
        setting == "off",
        "the startup warning follows the server's setting ({setting})"
    );
    let store = Arc::new(store);
    payments::payment_store(store.clone()).await;
    users::user_store(store.clone()).await;
    messages::message_store(store.clone()).await;
    orders::order_store(store.clone()).await;
    ledger::ledger_store(store.clone()).await;
    wallets::wallet_store(store.clone()).await;
    webhooks::webhook_store(store.clone()).await;
    routing::routing_store(store.clone()).await;
    catalog::catalog_store(store).await;
    any.close().await;
    admin
        .execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
        .await
        .unwrap();
}

#[tokio::test]
async fn migrations_go_down_and_up_again_on_both_engines() {
    let path = sqlite_path();
    let url = format!("sqlite://{}", path.display());
    let sqlite = AnyStore::open(&url, PoolSettings::default()).await.unwrap();
    sqlite.migrate().await.unwrap();
    assert_eq!(sqlite.migrate_down(Some(0)).await.unwrap(), 0);
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let tables: i64 = sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('payments', 'payment_transactions', 'idempotency_keys', 'outbox', 'users', 'refresh_tokens', 'messages', 'orders', 'provider_events', 'products', 'stock_levels', 'stock_movements', 'stock_reservations', 'ledger_transactions', 'ledger_entries', 'ledger_balances', 'transfers', 'webhook_endpoints', 'webhook_deliveries', 'webhook_attempts', 'routing_rules')")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(tables, 0, "down removes every table");
    sqlite.migrate().await.unwrap();
    let tables: i64 = sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('payments', 'payment_transactions', 'idempotency_keys', 'outbox', 'users', 'refresh_tokens', 'messages', 'orders', 'provider_events', 'products', 'stock_levels', 'stock_movements', 'stock_reservations', 'ledger_transactions', 'ledger_entries', 'ledger_balances', 'transfers', 'webhook_endpoints', 'webhook_deliveries', 'webhook_attempts', 'routing_rules')")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(tables, 21, "up creates them again");
    let _ = std::fs::remove_file(&path);

    let Some((schema, mut admin)) = pg_schema().await else {
        return;
    };
    let (pg, _) = pg_store(&schema).await;
    pg.migrate().await.unwrap();
    async fn count(admin: &mut PgConnection, schema: &str) -> i64 {
        let q = format!(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = '{schema}' AND table_name IN ('payments', 'payment_transactions', 'idempotency_keys', 'outbox', 'users', 'refresh_tokens', 'messages', 'orders', 'provider_events', 'products', 'stock_levels', 'stock_movements', 'stock_reservations', 'ledger_transactions', 'ledger_entries', 'ledger_balances', 'transfers', 'webhook_endpoints', 'webhook_deliveries', 'webhook_attempts', 'routing_rules')"
        );
        sqlx::query_scalar::<_, i64>(&q)
            .fetch_one(admin)
            .await
            .unwrap()
    }
    assert_eq!(count(&mut admin, &schema).await, 21);
    assert_eq!(
        pg.migrate_down(None).await.unwrap(),
        20261201000018,
        "down reverts the latest (the membership periods)"
    );
    assert_eq!(
        pg.migrate_down(None).await.unwrap(),
        20261201000017,
        "then the order history"
    );
    assert_eq!(count(&mut admin, &schema).await, 21);
    assert_eq!(
        pg.migrate_down(None).await.unwrap(),
        20261201000016,
        "then routing"
    );
    assert_eq!(count(&mut admin, &schema).await, 20);
    assert_eq!(
        pg.migrate_down(None).await.unwrap(),
        20261201000015,
        "then the webhook deliveries"
    );
    assert_eq!(count(&mut admin, &schema).await, 18);
    assert_eq!(
        pg.migrate_down(None).await.unwrap(),
        20261201000014,
        "then the webhook secret's rotation"
    );
    assert_eq!(count(&mut admin, &schema).await, 18);
    assert_eq!(
        pg.migrate_down(None).await.unwrap(),
        20261201000013,
        "then the webhook endpoints"
    );
    assert_eq!(count(&mut admin, &schema).await, 17);
    assert_eq!(
        pg.migrate_down(None).await.unwrap(),
        20261201000012,
        "then transfers"
    );
    assert_eq!(count(&mut admin, &schema).await, 16);
    assert_eq!(
        pg.migrate_down(None).await.unwrap(),
        20261201000011,
        "then the ledger"
    );
    assert_eq!(
        pg.migrate_down(None).await.unwrap(),
        20261201000010,
        "then the inbox's key led by the event"
    );
    assert_eq!(
        pg.migrate_down(None).await.unwrap(),
        20261130000009,
        "then the event history"
    );
    assert_eq!(
        pg.migrate_down(None).await.unwrap(),
        20261130000008,
        "then the dead letters' table"
    );
    assert_eq!(count(&mut admin, &schema).await, 13);
    assert_eq!(pg.migrate_down(None).await.unwrap(), 20261130000007);
    assert_eq!(count(&mut admin, &schema).await, 13);
    assert_eq!(pg.migrate_down(None).await.unwrap(), 20261130000006);
    assert_eq!(count(&mut admin, &schema).await, 13);
    assert_eq!(pg.migrate_down(None).await.unwrap(), 20261122000005);
    assert_eq!(
        count(&mut admin, &schema).await,
        9,
        "the catalog tables are gone"
    );
    assert_eq!(pg.migrate_down(None).await.unwrap(), 20261122000004);
    assert_eq!(
        count(&mut admin, &schema).await,
        8,
        "the provider_events table is gone"
    );
    assert_eq!(
        pg.migrate_down(Some(20261122000003)).await.unwrap(),
        20261122000003
    );
    assert_eq!(
        count(&mut admin, &schema).await,
        7,
        "the orders table is gone"
    );
    assert_eq!(
        pg.migrate_down(Some(20261122000001)).await.unwrap(),
        20261122000001
    );
    assert_eq!(
        count(&mut admin, &schema).await,
        4,
        "the identity tables are gone"
    );
    assert_eq!(pg.migrate_down(Some(0)).await.unwrap(), 0);
    assert_eq!(count(&mut admin, &schema).await, 0);
    pg.migrate().await.unwrap();
    assert_eq!(count(&mut admin, &schema).await, 21);
    pg.close().await;
    admin
        .execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
        .await
        .unwrap();
}

/// Several relays on one store at once: every event published exactly once.
async fn relays_share_the_outbox(
    outbox: Arc<dyn portside_events::Outbox>,
    payments: Arc<dyn portside_app::payments::PaymentRepository>,
) {
    use portside_app::testing::fakes::RecordingBus;
    use portside_events::relay::{Relay, RelaySettings};
    use portside_kernel::SystemClock;
    // Drain what earlier checks left, then write 150 fresh events (one per new payment).
    let bus = Arc::new(RecordingBus::default());
    let drain = Relay::new(
        outbox.clone(),
        bus.clone(),
        Arc::new(SystemClock),
        "drain".into(),
        RelaySettings {
            batch: 10_000,
            ..RelaySettings::default()
        },
    );
    while drain.pass().await.unwrap() > 0 {}
    let already = bus.published().len();
    for i in 0..150 {
        let (mut p, c) = payments::processing_payment(
            &format!("relays{i}"),
            portside_domain::Money::from_minor(
                100,
                portside_domain::Currency::from_code("USD").unwrap(),
            ),
            time::OffsetDateTime::now_utc(),
        );
        payments.begin_charge(None, &mut p, &c).await.unwrap();
    }
    let mut relays = tokio::task::JoinSet::new();
    for n in 0..3 {
        let r = Relay::new(
            outbox.clone(),
            bus.clone(),
            Arc::new(SystemClock),
            format!("relay-{n}"),
            RelaySettings {
                batch: 7,
                ..RelaySettings::default()
            },
        );
        relays.spawn(async move {
            let mut total = 0;
            loop {
                match r.pass().await.unwrap() {
                    0 => return total,
                    n => total += n,
                }
            }
        });
    }
    let mut per_relay = Vec::new();
    while let Some(n) = relays.join_next().await {
        per_relay.push(n.unwrap());
    }
    let published: Vec<_> = bus.published().into_iter().skip(already).collect();
    let mut ids: Vec<_> = published.iter().map(|e| e.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(published.len(), 150, "every event once: {per_relay:?}");
    assert_eq!(ids.len(), 150, "no event twice");
    assert_eq!(outbox.lag().await.unwrap().unpublished, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_relays_publish_each_event_once() {
    let (store, path) = sqlite_store().await;
    relays_share_the_outbox(Arc::new(store.clone()), Arc::new(store)).await;
    let _ = std::fs::remove_file(&path);

    let Some((schema, mut admin)) = pg_schema().await else {
        return;
    };
    let (any, store) = pg_store(&schema).await;
    any.migrate().await.unwrap();
    relays_share_the_outbox(Arc::new(store.clone()), Arc::new(store)).await;
    any.close().await;
    admin
        .execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
        .await
        .unwrap();
}

/// The read pool hands connections back without checking them, so it must notice by itself
/// when the server has dropped them: each read that fails retires its connection, and the
/// reads after it get fresh ones. Every backend of the store is terminated, as a server
/// restart or an administrator would; then reads fail at most once per pooled connection and
/// the store serves again, with failures reported as "unavailable".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_reads_recover_from_connections_the_server_dropped() {
    use portside_app::payments::PaymentRepository;
    use portside_domain::PaymentId;
    use portside_kernel::StoreError;

    let Some((schema, mut admin)) = pg_schema().await else {
        return;
    };
    let app = format!("portside-{schema}");
    let options = PgConnectOptions::from_str(&database_url())
        .unwrap()
        .options([("search_path", schema.as_str())])
        .application_name(&app);
    let settings = PoolSettings {
        max_connections: 4,
        ..PoolSettings::default()
    };
    let store = SqlStore::postgres(options, settings).await.unwrap();
    AnyStore::Postgres(store.clone()).migrate().await.unwrap();
    let absent = PaymentId(uuid::Uuid::now_v7());
    // Fill the read pool: four reads at once take four connections.
    let reads = tokio::join!(
        store.payment(absent),
        store.payment(absent),
        store.payment(absent),
        store.payment(absent)
    );
    for read in [reads.0, reads.1, reads.2, reads.3] {
        assert!(matches!(read, Ok(None)), "{read:?}");
    }

    let killed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = $1) t",
    )
    .bind(&app)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert!(
        killed >= 4,
        "the store's connections were terminated ({killed})"
    );

    let mut failures = 0;
    let served = loop {
        match store.payment(absent).await {
            Ok(found) => break found,
            Err(StoreError::Unavailable(_)) if failures < 4 => failures += 1,
            Err(e) => panic!("after {failures} failures: {e:?}"),
        }
    };
    assert!(served.is_none());
    // And it stays served: the broken connections are gone, not back in the pool.
    for _ in 0..8 {
        assert!(matches!(store.payment(absent).await, Ok(None)));
    }
    AnyStore::Postgres(store).close().await;
    admin
        .execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
        .await
        .unwrap();
}

/// A migrated SQLite store in a temporary file, and the file (to remove after).
async fn sqlite_store() -> (SqlStore<sqlx::Sqlite>, std::path::PathBuf) {
    let path = sqlite_path();
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display())).unwrap();
    let store = SqlStore::sqlite(options, PoolSettings::default())
        .await
        .unwrap();
    AnyStore::Sqlite(store.clone()).migrate().await.unwrap();
    (store, path)
}

/// The embedded mode's bus with its dead letters in the store keeps the bus contract.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_process_bus_keeps_its_contract_with_stored_dead_letters() {
    use portside_bus::InProcessBus;
    let (store, path) = sqlite_store().await;
    let bus = InProcessBus::default().with_dead_letters(Arc::new(store));
    portside_events::testing::bus::bus(Arc::new(bus), ["narrow", "wide"]).await;
    let _ = std::fs::remove_file(&path);
}

/// A dead letter outlives the bus that wrote it (a restart of `serve`); a replay asked from
/// another process (`portside events dlq replay`) reaches the serving bus and that group
/// only; on PostgreSQL too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_dead_letters_outlive_a_restart_and_replay_to_their_group_only() {
    use portside_events::{DeadLetterStore, DeadLetters, EventBus, EventSource};
    async fn check(store: Arc<dyn DeadLetterStore>) {
        let (failing, other) = ("failing", "other");
        let event = portside_events::Envelope {
            id: uuid::Uuid::now_v7(),
            event_type: "payment.succeeded".into(),
            version: 1,
            aggregate_type: "payment".into(),
            aggregate_id: uuid::Uuid::now_v7().to_string(),
            sequence: 1,
            occurred_at: time::OffsetDateTime::now_utc()
                .replace_nanosecond(0)
                .unwrap(),
            traceparent: None,
            data: serde_json::json!({"n": 1}),
        };
        let wait = std::time::Duration::from_millis(300);
        let first =
            Arc::new(portside_bus::InProcessBus::default().with_dead_letters(store.clone()));
        for g in [failing, other] {
            first.subscribe(g, &["#"]).await.unwrap();
        }
        let publish = tokio::spawn({
            let (first, event) = (first.clone(), event.clone());
            async move { first.publish(&[event]).await }
        });
        let got = first
            .receive(failing, 1, std::time::Duration::from_secs(5))
            .await
            .unwrap();
        first
            .dead_letter(failing, &got[0], "handler exploded")
            .await
            .unwrap();
        let got = first
            .receive(other, 1, std::time::Duration::from_secs(5))
            .await
            .unwrap();
        first.ack(other, &got[0]).await.unwrap();
        publish.await.unwrap().unwrap();
        drop(first);

        // The serving process restarted: a new bus over the same store.
        let serving = portside_bus::InProcessBus::default().with_dead_letters(store.clone());
        for g in [failing, other] {
            serving.subscribe(g, &["#"]).await.unwrap();
        }
        let dead = serving.dead_letters(failing, 10).await.unwrap();
        assert_eq!(dead.len(), 1, "the dead letter survived the restart");
        assert_eq!(
            (dead[0].envelope.id, dead[0].error.as_str()),
            (event.id, "handler exploded")
        );
        // The operator's command, a process of its own: a bus that serves no group.
        let command = portside_bus::InProcessBus::default().with_dead_letters(store.clone());
        assert!(!command.replay(failing, "no-such-id").await.unwrap());
        assert!(command.replay(failing, &dead[0].id).await.unwrap());
        assert!(command.dead_letters(failing, 10).await.unwrap().is_empty());

        let mut again = Vec::new();
        for _ in 0..20 {
            again = serving.receive(failing, 1, wait).await.unwrap();
            if !again.is_empty() {
                break;
            }
        }
        assert_eq!(again.len(), 1, "the serving bus took the replay up");
        assert_eq!(again[0].envelope, event);
        assert!(
            serving.receive(other, 1, wait).await.unwrap().is_empty(),
            "the replay goes to its group only"
        );
        serving.ack(failing, &again[0]).await.unwrap();
        assert!(store.letters(failing, 10).await.unwrap().is_empty());
        assert!(
            store.asked(failing, 10).await.unwrap().is_empty(),
            "a handled replay is forgotten"
        );

        // Failing again, it is listed again, once; purge forgets it.
        store
            .keep(&portside_events::DeadLetter {
                id: "stored-1".into(),
                group: failing.into(),
                envelope: event.clone(),
                error: "first".into(),
                failed_at: time::OffsetDateTime::now_utc(),
            })
            .await
            .unwrap();
        assert!(
            store
                .ask_replay(failing, "stored-1", time::OffsetDateTime::now_utc())
                .await
                .unwrap()
        );
        store
            .keep(&portside_events::DeadLetter {
                id: "stored-1".into(),
                group: failing.into(),
                envelope: event.clone(),
                error: "second".into(),
                failed_at: time::OffsetDateTime::now_utc(),
            })
            .await
            .unwrap();
        let listed = store.letters(failing, 10).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].error, "second");
        assert_eq!(serving.purge(failing).await.unwrap(), 1);
        assert!(serving.dead_letters(failing, 10).await.unwrap().is_empty());
    }
    let (sqlite, path) = sqlite_store().await;
    check(Arc::new(sqlite)).await;
    let _ = std::fs::remove_file(&path);
    let Some((schema, mut admin)) = pg_schema().await else {
        return;
    };
    let (any, pg) = pg_store(&schema).await;
    any.migrate().await.unwrap();
    check(Arc::new(pg)).await;
    any.close().await;
    admin
        .execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
        .await
        .unwrap();
}

/// A connection of the test's own to the store's database, to change rows behind its back.
enum Raw {
    Sqlite(sqlx::SqliteConnection),
    Postgres(PgConnection),
}

impl Raw {
    async fn run(&mut self, sql: &str) {
        match self {
            Raw::Sqlite(c) => c.execute(sql).await.map(|_| ()),
            Raw::Postgres(c) => c.execute(sql).await.map(|_| ()),
        }
        .unwrap();
    }
}

/// The reconciliation names what differs, and migrating posts the movements stored before the
/// ledger existed (and nothing else, and nothing twice).
async fn reconciles_and_backfills<S>(any: &AnyStore, store: &S, raw: &mut Raw)
where
    S: portside_app::payments::PaymentRepository + portside_app::ledger::LedgerStore,
{
    use portside_app::payments::Outcome;
    use portside_domain::{Currency, Money};
    let usd = |minor| Money::from_minor(minor, Currency::from_code("USD").unwrap());
    let at = payments::t0();
    let (mut p, mut charge) = payments::processing_payment("c_backfill", usd(1250), at);
    store.begin_charge(None, &mut p, &charge).await.unwrap();
    p.succeed("ch_backfill".into(), at).unwrap();
    charge.succeed("ch_backfill".into(), at).unwrap();
    let outcome = Outcome {
        payment: p.state().clone(),
        transaction: charge.clone(),
        accepted: false,
    };
    store.settle(&mut p, &charge, &outcome).await.unwrap();
    let (mut q, pending) = payments::processing_payment("c_backfill", usd(300), at);
    store.begin_charge(None, &mut q, &pending).await.unwrap();
    assert_eq!(store.differences(100).await.unwrap(), vec![]);

    raw.run("UPDATE ledger_balances SET debits_posted = debits_posted + 1 WHERE account = 'platform:revenue'")
        .await;
    let found = store.differences(100).await.unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (found[0].code, found[0].subject.as_str()),
        ("balance_differs", "platform:revenue USD")
    );
    raw.run("UPDATE ledger_balances SET debits_posted = debits_posted - 1 WHERE account = 'platform:revenue'")
        .await;

    // The books as they were before the ledger existed.
    raw.run("DELETE FROM ledger_entries").await;
    raw.run("DELETE FROM ledger_transactions").await;
    raw.run("DELETE FROM ledger_balances").await;
    let mut missing: Vec<_> = store
        .differences(100)
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.code, d.subject))
        .collect();
    missing.sort();
    let mut expected = vec![
        ("posting_missing", charge.id.to_string()),
        ("posting_missing", pending.id.to_string()),
    ];
    expected.sort();
    assert_eq!(missing, expected);
    assert_eq!(any.migrate().await.unwrap(), 2, "each movement posted once");
    assert_eq!(store.differences(100).await.unwrap(), vec![]);
    assert_eq!(any.migrate().await.unwrap(), 0, "nothing left to post");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconciliation_names_differences_and_migrating_backfills_on_both_engines() {
    let (store, path) = sqlite_store().await;
    let url = format!("sqlite://{}", path.display());
    let mut raw = Raw::Sqlite(sqlx::SqliteConnection::connect(&url).await.unwrap());
    reconciles_and_backfills(&AnyStore::Sqlite(store.clone()), &store, &mut raw).await;
    let _ = std::fs::remove_file(&path);

    let Some((schema, mut admin)) = pg_schema().await else {
        return;
    };
    let (any, store) = pg_store(&schema).await;
    any.migrate().await.unwrap();
    let mut conn = PgConnection::connect(&database_url()).await.unwrap();
    conn.execute(format!("SET search_path TO {schema}").as_str())
        .await
        .unwrap();
    let mut raw = Raw::Postgres(conn);
    reconciles_and_backfills(&any, &store, &mut raw).await;
    any.close().await;
    admin
        .execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
        .await
        .unwrap();
}
