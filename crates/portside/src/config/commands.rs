//! The command line: `portside` and its subcommands (`serve` when none is given).

use clap::{Parser, Subcommand};

use super::Settings;

/// Portside: a commerce backend (payments with refunds and idempotency).
#[derive(Debug, Parser)]
#[command(name = "portside", version, about, long_about = None)]
pub struct Cli {
    /// Settings shared by every subcommand.
    #[command(flatten)]
    pub settings: Settings,
    /// What to run; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run the all-in-one server (migrates the store first).
    Serve,
    /// Run only the HTTP API (split mode; needs a broker in EVENT_BUS, and PostgreSQL to share).
    Api,
    /// Run only the outbox relay (split mode; needs a broker in EVENT_BUS).
    Relay,
    /// Run only the event consumers (split mode; needs a broker in EVENT_BUS).
    Worker,
    /// Operate the event backbone.
    Events {
        /// What to do.
        #[command(subcommand)]
        action: EventsAction,
    },
    /// Run only the search service (split mode): gRPC on GRPC_ADDR, fed by the `search`
    /// consumer group; `reindex` rebuilds the read model from the store instead.
    Search {
        /// What to do instead of serving (`reindex`).
        #[command(subcommand)]
        action: Option<SearchAction>,
    },
    /// Manage users from the command line.
    Users {
        /// What to do.
        #[command(subcommand)]
        action: UsersAction,
    },
    /// Read and check the books.
    Ledger {
        /// What to do.
        #[command(subcommand)]
        action: LedgerAction,
    },
    /// Migrate the configured store (and give payments stored before the ledger their
    /// postings).
    Migrate {
        /// `up` (default) applies every pending migration; `down` reverts.
        #[command(subcommand)]
        direction: Option<Direction>,
    },
}

/// Search operations.
#[derive(Debug, Clone, Subcommand)]
pub enum SearchAction {
    /// Rebuild the search index from every order and payment in the store.
    Reindex,
}

/// User administration.
#[derive(Debug, Clone, Subcommand)]
pub enum UsersAction {
    /// Create an administrator, or promote an existing user. The password is read from
    /// PORTSIDE_ADMIN_PASSWORD or, when that is unset, from the first line of standard input.
    CreateAdmin {
        /// The administrator's email.
        #[arg(long)]
        email: String,
        /// Display name.
        #[arg(long, default_value = "Administrator")]
        name: String,
    },
}

/// Event backbone operations.
#[derive(Debug, Clone, Subcommand)]
pub enum EventsAction {
    /// How many events wait in the outbox, and since when.
    Lag,
    /// The dead-letter queues of the consumer groups.
    Dlq {
        /// What to do with them.
        #[command(subcommand)]
        action: DlqAction,
    },
}

/// Dead-letter operations.
#[derive(Debug, Clone, Subcommand)]
pub enum DlqAction {
    /// List dead letters (all groups unless --group).
    List {
        /// Only this consumer group.
        #[arg(long)]
        group: Option<String>,
        /// At most this many per group.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Publish a dead letter again and remove it.
    Replay {
        /// The dead letter's id (from `list`).
        id: String,
        /// Its consumer group.
        #[arg(long)]
        group: String,
    },
    /// Delete dead letters (all groups unless --group).
    Purge {
        /// Only this consumer group.
        #[arg(long)]
        group: Option<String>,
    },
}

/// Ledger operations.
#[derive(Debug, Clone, Subcommand)]
pub enum LedgerAction {
    /// Reconcile: every charge and refund has exactly its postings, every ledger transaction
    /// balances, every stored balance equals its entries, the trial balance is zero. Prints
    /// each difference and exits with 1 when there is one.
    Check,
}

/// Migration direction.
#[derive(Debug, Clone, Subcommand)]
pub enum Direction {
    /// Apply every pending migration.
    Up,
    /// Revert the latest migration, or every migration after `--to`.
    Down {
        /// Version to go back to (0 reverts everything).
        #[arg(long)]
        to: Option<i64>,
    },
}
