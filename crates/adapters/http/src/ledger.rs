//! `/api/v1/ledger/…`: the books for administrators (accounts with balances, an account's
//! entries, one ledger transaction, the trial balance and the reconciliation); a customer reads
//! the entries of their own wallet only.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use portside_app::AppError;
use portside_app::ledger::{
    AccountBalance, AccountFilter, Difference, EntryLine, Ledger, Reconciliation,
};
use portside_domain::{AccountName, Balance, Currency, LedgerTransactionId, Money, Posting};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::ApiState;
use crate::auth::Authenticated;
use crate::json::QueryParams;
use crate::page::{self, ListBody};
use crate::problem::{Problem, ProblemBody};
use crate::timestamp::Timestamp;

pub(crate) fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/ledger/accounts", get(list_accounts))
        .route(
            "/api/v1/ledger/accounts/{account}/entries",
            get(list_entries),
        )
        .route("/api/v1/ledger/transactions/{id}", get(get_transaction))
        .route("/api/v1/ledger/trial-balance", get(trial_balance))
        .route("/api/v1/ledger/check", get(check))
}

fn decimal(minor: i64, currency: Currency) -> String {
    Money::from_minor(minor, currency).to_decimal_string()
}

/// An account's balance in one currency. Amounts are decimal strings.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountView {
    /// Always `ledger_account`.
    pub object: &'static str,
    /// `platform:revenue`, `provider:{name}:clearing` or `customer:{id}:wallet`.
    pub name: String,
    pub currency: String,
    /// `debit` or `credit`: the side on which the balance grows.
    pub normal_side: &'static str,
    /// Whether the balance may never go below zero (wallets).
    pub guarded: bool,
    /// Posted, on the normal side.
    pub balance: String,
    /// Held by pending amounts against the normal side.
    pub held: String,
    /// Balance minus held.
    pub available: String,
    pub debits_posted: String,
    pub credits_posted: String,
    pub debits_pending: String,
    pub credits_pending: String,
}

impl AccountView {
    fn of(a: &AccountBalance) -> Self {
        let normal = a.account.normal_side();
        let c = a.currency;
        let b = &a.balance;
        AccountView {
            object: "ledger_account",
            name: a.account.to_string(),
            currency: c.code().to_owned(),
            normal_side: normal.as_str(),
            guarded: a.account.guarded(),
            balance: decimal(b.posted(normal), c),
            held: decimal(b.held(normal), c),
            available: decimal(b.available(normal), c),
            debits_posted: decimal(b.debits_posted, c),
            credits_posted: decimal(b.credits_posted, c),
            debits_pending: decimal(b.debits_pending, c),
            credits_pending: decimal(b.credits_pending, c),
        }
    }
}

/// One line of a ledger transaction.
#[derive(Debug, Serialize, ToSchema)]
pub struct EntryView {
    /// Always `ledger_entry`.
    pub object: &'static str,
    pub transaction_id: Uuid,
    /// Its place in the transaction, from 0.
    pub line: i32,
    /// The transaction's phase: `posted`, `pending`, `post`, `void` or `reversal`.
    pub phase: &'static str,
    /// What caused the transaction (`charge:{id}:pending`).
    pub cause: String,
    pub account: String,
    pub currency: String,
    /// `debit` or `credit`.
    pub side: &'static str,
    /// A decimal string, always positive.
    pub amount: String,
    pub created_at: Timestamp,
}

impl EntryView {
    fn of(e: &EntryLine) -> Self {
        EntryView {
            object: "ledger_entry",
            transaction_id: e.transaction_id.0,
            line: e.line,
            phase: e.phase.as_str(),
            cause: e.cause.clone(),
            account: e.entry.account.to_string(),
            currency: e.entry.currency.code().to_owned(),
            side: e.entry.side.as_str(),
            amount: decimal(e.entry.amount_minor, e.entry.currency),
            created_at: e.created_at.into(),
        }
    }
}

/// A ledger transaction: immutable, its entries balanced per currency.
#[derive(Debug, Serialize, ToSchema)]
pub struct LedgerTransactionView {
    pub id: Uuid,
    /// Always `ledger_transaction`.
    pub object: &'static str,
    /// `posted`, `pending`, `post`, `void` or `reversal`.
    pub phase: &'static str,
    /// The pending transaction a `post` or `void` settles, or the one a `reversal` undoes.
    pub refers_to: Option<Uuid>,
    pub cause: String,
    pub created_at: Timestamp,
    pub entries: Vec<LedgerEntryLine>,
}

/// An entry as its transaction shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct LedgerEntryLine {
    pub account: String,
    pub currency: String,
    /// `debit` or `credit`.
    pub side: &'static str,
    pub amount: String,
}

impl From<Posting> for LedgerTransactionView {
    fn from(p: Posting) -> Self {
        LedgerTransactionView {
            id: p.id.0,
            object: "ledger_transaction",
            phase: p.phase.as_str(),
            refers_to: p.phase.refers_to().map(|r| r.0),
            cause: p.cause,
            created_at: p.created_at.into(),
            entries: p
                .entries
                .iter()
                .map(|e| LedgerEntryLine {
                    account: e.account.to_string(),
                    currency: e.currency.code().to_owned(),
                    side: e.side.as_str(),
                    amount: decimal(e.amount_minor, e.currency),
                })
                .collect(),
        }
    }
}

/// Every account's balance summed in one currency: debits equal credits when the books hold.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrialBalanceLine {
    pub currency: String,
    pub debits_posted: String,
    pub credits_posted: String,
    pub debits_pending: String,
    pub credits_pending: String,
    /// Debits equal credits, posted and pending.
    pub balanced: bool,
}

fn trial_line((currency, b): &(Currency, Balance)) -> TrialBalanceLine {
    let c = *currency;
    TrialBalanceLine {
        currency: c.code().to_owned(),
        debits_posted: decimal(b.debits_posted, c),
        credits_posted: decimal(b.credits_posted, c),
        debits_pending: decimal(b.debits_pending, c),
        credits_pending: decimal(b.credits_pending, c),
        balanced: b.debits_posted == b.credits_posted && b.debits_pending == b.credits_pending,
    }
}

/// The trial balance, one line per currency.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrialBalance {
    pub data: Vec<TrialBalanceLine>,
}

/// One difference the reconciliation found.
#[derive(Debug, Serialize, ToSchema)]
pub struct DifferenceView {
    /// Stable: `posting_missing`, `settlement_differs`, `posting_amount_differs`,
    /// `posting_without_movement`, `transaction_unbalanced`, `balance_differs`,
    /// `trial_balance_not_zero`.
    pub code: &'static str,
    /// What it is about: a payment transaction's or a ledger transaction's id, an account and
    /// currency, or a currency.
    pub subject: String,
    pub detail: String,
}

impl From<&Difference> for DifferenceView {
    fn from(d: &Difference) -> Self {
        DifferenceView {
            code: d.code,
            subject: d.subject.clone(),
            detail: d.detail.clone(),
        }
    }
}

/// What `portside ledger check` reports.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReconciliationView {
    /// No difference found.
    pub clean: bool,
    /// At most 1000.
    pub differences: Vec<DifferenceView>,
    pub trial_balance: Vec<TrialBalanceLine>,
}

impl From<&Reconciliation> for ReconciliationView {
    fn from(r: &Reconciliation) -> Self {
        ReconciliationView {
            clean: r.is_clean(),
            differences: r.differences.iter().map(DifferenceView::from).collect(),
            trial_balance: r.trial_balance.iter().map(trial_line).collect(),
        }
    }
}

fn currency_param(text: Option<&str>) -> Result<Option<Currency>, Problem> {
    text.map(|c| {
        Currency::from_code(c).map_err(|_| {
            Problem::bad_parameter(
                "currency",
                "currency_unknown",
                format!("{c:?} is not an ISO 4217 currency code"),
            )
        })
    })
    .transpose()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AccountsQuery {
    prefix: Option<String>,
    currency: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// Accounts with their balances, in name and currency order (administrators).
#[utoipa::path(get, path = "/api/v1/ledger/accounts", tag = "ledger", security(("bearer" = [])),
    params(
        ("prefix" = Option<String>, Query, description = "Names starting with this, e.g. `customer:` or `provider:stripe:`"),
        ("currency" = Option<String>, Query, description = "ISO 4217 code"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1 to 100 (default 20)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, body = ListBody<AccountView>),
        (status = 400, description = "A currency that is not ISO 4217, a prefix over 200 characters or with NUL, a cursor this API did not issue", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn list_accounts(
    State(ledger): State<Arc<Ledger>>,
    Authenticated(actor): Authenticated,
    QueryParams(q): QueryParams<AccountsQuery>,
) -> Result<Json<ListBody<AccountView>>, Problem> {
    if q.prefix
        .as_ref()
        .is_some_and(|p| p.chars().count() > 200 || p.contains('\0'))
    {
        return Err(Problem::bad_parameter(
            "prefix",
            "invalid_parameter",
            "prefix must be at most 200 characters, without NUL",
        ));
    }
    let filter = AccountFilter {
        prefix: q.prefix,
        currency: currency_param(q.currency.as_deref())?,
    };
    let page = page::request(q.limit.as_deref(), q.cursor.as_deref(), |c| {
        let key = page::decode_key('a', c)?;
        let (account, currency) = key.rsplit_once(' ').ok_or_else(page::invalid_cursor)?;
        Ok((account.to_owned(), currency.to_owned()))
    })?;
    let found = ledger.accounts(&actor, &filter, page).await?;
    Ok(Json(ListBody::of(found, AccountView::of, |(a, c)| {
        page::encode_key('a', &format!("{a} {c}"))
    })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EntriesQuery {
    currency: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// An account's entries, newest first: administrators any account, a customer their own wallet
/// (`customer:{your user id}:wallet`).
#[utoipa::path(get, path = "/api/v1/ledger/accounts/{account}/entries", tag = "ledger", security(("bearer" = [])),
    params(
        ("account" = String, Path, description = "The account's name, e.g. `platform:revenue`"),
        ("currency" = Option<String>, Query, description = "ISO 4217 code"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1 to 100 (default 20)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, body = ListBody<EntryView>),
        (status = 400, description = "A currency that is not ISO 4217, a cursor this API did not issue", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such account, or not yours", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn list_entries(
    State(ledger): State<Arc<Ledger>>,
    Authenticated(actor): Authenticated,
    Path(account): Path<String>,
    QueryParams(q): QueryParams<EntriesQuery>,
) -> Result<Json<ListBody<EntryView>>, Problem> {
    let account = AccountName::parse(&account).map_err(|_| AppError::NotFound("account"))?;
    let currency = currency_param(q.currency.as_deref())?;
    let page = page::request(q.limit.as_deref(), q.cursor.as_deref(), |c| {
        let key = page::decode_key('e', c)?;
        let (position, line) = key.rsplit_once(' ').ok_or_else(page::invalid_cursor)?;
        let (at, id) = page::decode_position('p', position)?;
        let line = line.parse().map_err(|_| page::invalid_cursor())?;
        Ok((at, LedgerTransactionId(id), line))
    })?;
    let found = ledger.entries(&actor, &account, currency, page).await?;
    Ok(Json(ListBody::of(
        found,
        EntryView::of,
        |(at, id, line)| {
            page::encode_key(
                'e',
                &format!("{} {line}", page::encode_position('p', at, id.0)),
            )
        },
    )))
}

/// One ledger transaction with its entries (administrators).
#[utoipa::path(get, path = "/api/v1/ledger/transactions/{id}", tag = "ledger", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Ledger transaction id (a charge's or refund's pending posting has the payment transaction's id)")),
    responses(
        (status = 200, body = LedgerTransactionView),
        (status = 403, description = "Not an administrator", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such ledger transaction", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn get_transaction(
    State(ledger): State<Arc<Ledger>>,
    Authenticated(actor): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<LedgerTransactionView>, Problem> {
    let id = Uuid::parse_str(&id).map_err(|_| AppError::NotFound("ledger_transaction"))?;
    Ok(Json(
        ledger
            .posting(&actor, LedgerTransactionId(id))
            .await?
            .into(),
    ))
}

/// The trial balance: per currency, the sum of every account's debits and credits (administrators).
#[utoipa::path(get, path = "/api/v1/ledger/trial-balance", tag = "ledger", security(("bearer" = [])),
    responses(
        (status = 200, body = TrialBalance),
        (status = 403, description = "Not an administrator", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn trial_balance(
    State(ledger): State<Arc<Ledger>>,
    Authenticated(actor): Authenticated,
) -> Result<Json<TrialBalance>, Problem> {
    let lines = ledger.trial_balance(&actor).await?;
    Ok(Json(TrialBalance {
        data: lines.iter().map(trial_line).collect(),
    }))
}

/// The reconciliation `portside ledger check` runs: every charge and refund has exactly its
/// postings, every transaction balances, every stored balance equals its entries, the trial
/// balance is zero (administrators).
#[utoipa::path(get, path = "/api/v1/ledger/check", tag = "ledger", security(("bearer" = [])),
    responses(
        (status = 200, body = ReconciliationView),
        (status = 403, description = "Not an administrator", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn check(
    State(ledger): State<Arc<Ledger>>,
    Authenticated(actor): Authenticated,
) -> Result<Json<ReconciliationView>, Problem> {
    Ok(Json(ReconciliationView::from(&ledger.check(&actor).await?)))
}
