//! The Portside binary: reads the configuration, wires the adapters to the use cases (the
//! composition root, the only place that knows every adapter) and runs a subcommand.

mod config;
mod serve;
mod telemetry;
mod wiring;

use std::process::ExitCode;

use config::{
    Command, Direction, DlqAction, EventsAction, LedgerAction, SearchAction, UsersAction,
};
use portside_domain::{Email, UserName};
use portside_sql::{AnyStore, PoolSettings};

/// jemalloc serves every allocation, SQLite's and the other C libraries' too (it replaces
/// `malloc` itself): glibc's per-thread arenas made the embedded mode's peak memory under load
/// high and erratic. The figures are in docs/BENCHMARKS.md ("What the profile showed", item 8).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = match config::load() {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("portside: {e:#}");
            return ExitCode::from(2);
        }
    };
    let telemetry = telemetry::init(&cli.settings.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("portside: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command.clone().unwrap_or(Command::Serve) {
            Command::Serve => serve::run(&cli.settings, serve::Mode::AllInOne).await,
            Command::Api => serve::run(&cli.settings, serve::Mode::Api).await,
            Command::Migrate { direction } => migrate(&cli.settings, direction).await,
            Command::Users { action } => users(&cli.settings, action).await,
            Command::Relay => serve::run_part(&cli.settings, serve::Part::Relay).await,
            Command::Worker => serve::run_part(&cli.settings, serve::Part::Worker).await,
            Command::Events { action } => events(&cli.settings, action).await,
            Command::Ledger { action } => ledger(&cli.settings, action).await,
            Command::Search {
                action: Some(SearchAction::Reindex),
            } => reindex(&cli.settings).await,
            Command::Search { action: None } => {
                serve::run_part(&cli.settings, serve::Part::Search).await
            }
        }
    });
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "portside stopped");
            eprintln!("portside: {e:#}");
            ExitCode::FAILURE
        }
    };
    drop(runtime);
    telemetry.shutdown();
    code
}

/// Opens the configured store, naming DATABASE_URL when that fails.
pub(crate) async fn open_store(settings: &config::Settings) -> anyhow::Result<AnyStore> {
    let url = settings.database_url();
    let pool = PoolSettings {
        max_connections: settings.db_max_connections,
        ..PoolSettings::default()
    };
    AnyStore::open(&url, pool)
        .await
        .map_err(|e| anyhow::anyhow!("DATABASE_URL ({}): {e}", redact(&url)))
}

/// The URL without its password, for messages and logs.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{}{}", &url[..scheme + 3], user, &url[at..])
        }
        _ => url.to_owned(),
    }
}

async fn migrate(
    settings: &config::Settings,
    direction: Option<Direction>,
) -> anyhow::Result<ExitCode> {
    let store = open_store(settings).await?;
    match direction.unwrap_or(Direction::Up) {
        Direction::Up => {
            let posted = store.migrate().await?;
            println!(
                "migrated {} to the latest version",
                redact(&settings.database_url())
            );
            if posted > 0 {
                println!("posted {posted} earlier charges and refunds in the ledger");
            }
        }
        Direction::Down { to } => {
            let at = store.migrate_down(to).await?;
            println!(
                "reverted {}; schema is now at version {at}",
                redact(&settings.database_url())
            );
        }
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn users(settings: &config::Settings, action: UsersAction) -> anyhow::Result<ExitCode> {
    match action {
        UsersAction::CreateAdmin { email, name } => {
            let password = match std::env::var("PORTSIDE_ADMIN_PASSWORD") {
                Ok(p) => p,
                Err(_) => {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    line.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            let (email, name) = match (Email::parse(&email), UserName::parse(&name)) {
                (Ok(email), Ok(name)) => (email, name),
                (Err(e), _) => {
                    eprintln!("portside: cannot create the administrator: email: {e}");
                    return Ok(ExitCode::from(2));
                }
                (_, Err(e)) => {
                    eprintln!("portside: cannot create the administrator: name: {e}");
                    return Ok(ExitCode::from(2));
                }
            };
            wiring::token_secret(settings)?;
            let store = wiring::store(settings).await?;
            let (app, _) = wiring::application(settings, &store, wiring::no_bus()).await?;
            let result = app.users.create_admin(email, &password, name).await;
            store.close().await;
            match result {
                Ok(profile) => {
                    println!("administrator {} ready (id {})", profile.email, profile.id);
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("portside: cannot create the administrator: {e}");
                    Ok(ExitCode::from(2))
                }
            }
        }
    }
}

async fn reindex(settings: &config::Settings) -> anyhow::Result<ExitCode> {
    let store = wiring::store(settings).await?;
    let search = wiring::search(settings, &store).await?;
    let started = std::time::Instant::now();
    let written = search.reindex().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "reindexed {written} documents in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn events(settings: &config::Settings, action: EventsAction) -> anyhow::Result<ExitCode> {
    let store = wiring::store(settings).await?;
    let ev = wiring::backbone(settings, &store)?;
    let groups = |only: Option<String>| -> anyhow::Result<Vec<String>> {
        let known: Vec<String> = wiring::Backbone::groups()
            .iter()
            .map(|g| (*g).to_owned())
            .collect();
        match only {
            None => Ok(known),
            Some(g) if known.contains(&g) => Ok(vec![g]),
            Some(g) => anyhow::bail!("unknown consumer group {g:?}; groups: {}", known.join(", ")),
        }
    };
    match action {
        EventsAction::Lag => {
            let lag = ev.outbox.lag().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            let age = lag
                .oldest
                .map(|t| {
                    format!(
                        "{:.1}s",
                        (time::OffsetDateTime::now_utc() - t).as_seconds_f64()
                    )
                })
                .unwrap_or_else(|| "-".into());
            println!("unpublished {}  oldest {age}", lag.unpublished);
        }
        EventsAction::Dlq {
            action: DlqAction::List { group, limit },
        } => {
            for g in groups(group)? {
                for d in ev
                    .dead
                    .dead_letters(&g, limit)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?
                {
                    println!(
                        "{}\t{g}\t{}\t{}\t{}\t{}",
                        d.id, d.envelope.event_type, d.envelope.id, d.failed_at, d.error
                    );
                }
            }
        }
        EventsAction::Dlq {
            action: DlqAction::Replay { id, group },
        } => {
            let g = groups(Some(group))?.remove(0);
            if !ev
                .dead
                .replay(&g, &id)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?
            {
                eprintln!("portside: no dead letter {id} in group {g}");
                store.close().await;
                return Ok(ExitCode::from(2));
            }
            println!("replayed {id}");
        }
        EventsAction::Dlq {
            action: DlqAction::Purge { group },
        } => {
            for g in groups(group)? {
                let n = ev
                    .dead
                    .purge(&g)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                println!("purged {n} dead letters of {g}");
            }
        }
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn ledger(settings: &config::Settings, action: LedgerAction) -> anyhow::Result<ExitCode> {
    let store = wiring::store(settings).await?;
    let LedgerAction::Check = action;
    let report = wiring::ledger(&store)
        .reconcile()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    store.close().await;
    for (currency, b) in &report.trial_balance {
        let amount =
            |minor| portside_domain::Money::from_minor(minor, *currency).to_decimal_string();
        println!(
            "trial balance {currency}: posted debits {} credits {}, pending debits {} credits {}",
            amount(b.debits_posted),
            amount(b.credits_posted),
            amount(b.debits_pending),
            amount(b.credits_pending)
        );
    }
    for d in &report.differences {
        println!("{}\t{}\t{}", d.code, d.subject, d.detail);
    }
    if report.is_clean() {
        println!("ledger clean");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "portside: the ledger has {} differences",
            report.differences.len()
        );
        Ok(ExitCode::FAILURE)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_never_reach_the_log() {
        assert_eq!(
            super::redact("postgres://app:s3cret@db:5432/portside"),
            "postgres://app@db:5432/portside"
        );
        assert_eq!(
            super::redact("sqlite://data/portside.db"),
            "sqlite://data/portside.db"
        );
    }
}
