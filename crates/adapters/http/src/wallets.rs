//! Customers' wallets: `GET /api/v1/wallets/me`, `POST /api/v1/wallets/me/top-ups`, and
//! transfers between wallets (`POST /api/v1/transfers`, `GET /api/v1/transfers/{id}`). Paying
//! with the balance is `payment_method: "wallet"` on payments, orders and the membership.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use portside_app::AppError;
use portside_app::payments::customer_of;
use portside_app::payments::idempotency::IdempotentRequest;
use portside_app::wallets::{TopUp, TransferCommand, TransferReply, WalletBalance, Wallets};
use portside_domain::{AccountName, Currency, Money, TransferId, TransferState, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::ApiState;
use crate::auth::Authenticated;
use crate::idempotency::{BodyKey, Keyed};
use crate::payments::{DecimalText, PaymentView, REPLAYED, charge_response, method_or_card};
use crate::problem::{FieldError, Problem, ProblemBody, field, refusal};
use crate::timestamp::Timestamp;

/// The routes of the wallets context.
pub(crate) fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/wallets/me", get(my_wallet))
        .route("/api/v1/wallets/me/top-ups", post(top_up))
        .route("/api/v1/transfers", post(create_transfer))
        .route("/api/v1/transfers/{id}", get(get_transfer))
}

/// A wallet's money in one currency.
#[derive(Debug, Serialize, ToSchema)]
pub struct WalletBalanceView {
    #[schema(example = "USD")]
    pub currency: String,
    /// Credited and final, decimal text.
    #[schema(example = "50.00")]
    pub balance: String,
    /// Held by payments from the wallet that are not settled yet.
    #[schema(example = "0.00")]
    pub held: String,
    /// What can be spent: the balance less what is held.
    #[schema(example = "50.00")]
    pub available: String,
}

impl From<&WalletBalance> for WalletBalanceView {
    fn from(b: &WalletBalance) -> Self {
        WalletBalanceView {
            currency: b.balance.currency().code().to_owned(),
            balance: b.balance.to_decimal_string(),
            held: b.held.to_decimal_string(),
            available: b.available.to_decimal_string(),
        }
    }
}

/// The caller's wallet.
#[derive(Debug, Serialize, ToSchema)]
pub struct WalletView {
    /// Always `wallet`.
    #[schema(example = "wallet")]
    pub object: &'static str,
    /// The ledger account that holds it (`customer:{your user id}:wallet`).
    pub account: String,
    /// One per currency the wallet ever held; empty for a wallet never topped up.
    pub balances: Vec<WalletBalanceView>,
}

/// The caller's wallet: balance, held and available, per currency.
#[utoipa::path(get, path = "/api/v1/wallets/me", tag = "wallets", security(("bearer" = [])),
    responses((status = 200, body = WalletView)))]
pub async fn my_wallet(
    State(wallets): State<Arc<Wallets>>,
    Authenticated(actor): Authenticated,
) -> Result<Json<WalletView>, Problem> {
    let balances = wallets.balances(&actor).await?;
    Ok(Json(WalletView {
        object: "wallet",
        account: AccountName::wallet(&customer_of(&actor)).to_string(),
        balances: balances.iter().map(WalletBalanceView::from).collect(),
    }))
}

/// `POST /api/v1/wallets/me/top-ups`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TopUpRequest {
    /// Decimal amount, as a number or a string.
    #[schema(inline)]
    pub amount: DecimalText,
    /// ISO-4217 code.
    #[schema(example = "USD")]
    pub currency: String,
    /// Payment method kind (default `card`; not `wallet`).
    pub payment_method: Option<String>,
    /// Provider token of the payment method, e.g. `tok_visa`.
    #[schema(example = "tok_visa")]
    pub payment_method_token: String,
    /// Provider (default: the configured default).
    pub provider: Option<String>,
    /// Alternative to the `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
}

impl BodyKey for TopUpRequest {
    fn body_key(&self) -> Option<&str> {
        self.idempotency_key.as_deref()
    }
}

fn money(errors: &mut Vec<FieldError>, amount: &str, currency: &str) -> Option<Money> {
    let currency = field(
        errors,
        "currency",
        Currency::from_code(currency).map_err(|e| ("currency_unknown", e.to_string())),
    )?;
    field(
        errors,
        "amount",
        Money::parse(amount, currency).map_err(refusal),
    )
}

impl TopUpRequest {
    fn into_command(self, idempotency: IdempotentRequest) -> Result<TopUp, Problem> {
        let mut errors = Vec::new();
        let amount = money(&mut errors, &self.amount.0, &self.currency);
        let method = method_or_card(self.payment_method.as_deref());
        match (amount, method) {
            (Some(amount), Ok(method)) => Ok(TopUp {
                amount,
                method,
                method_token: self.payment_method_token,
                provider: self.provider,
                idempotency,
            }),
            (_, Err(p)) if errors.is_empty() => Err(p),
            _ => Err(Problem::invalid(errors)),
        }
    }
}

/// Puts money into the caller's wallet by charging a payment method. The wallet is credited
/// when the charge succeeds: at once (201), or later through the provider's webhook or the
/// recovery task (202 while the charge is `processing`).
#[utoipa::path(post, path = "/api/v1/wallets/me/top-ups", tag = "wallets", security(("bearer" = [])),
    request_body = TopUpRequest,
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, description = "Required, here or as `idempotency_key` in the body: a top-up must be safe to retry (400 `idempotency_key_required` without one)")),
    responses(
        (status = 201, description = "Charged; the wallet is credited (the top-up's payment)", body = PaymentView),
        (status = 202, description = "Charge outcome pending; the wallet is credited when it succeeds", body = PaymentView),
        (status = 402, description = "Declined", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "A request with this key is still running", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Invalid values (`payment_method_invalid` for `wallet`), or the key was used with another request", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn top_up(
    State(wallets): State<Arc<Wallets>>,
    keyed: Keyed<TopUpRequest>,
) -> Result<Response, Problem> {
    let (actor, body, key) = keyed.required("a top-up")?;
    let reply = wallets.top_up(&actor, body.into_command(key)?).await?;
    Ok(charge_response(&reply))
}

/// `POST /api/v1/transfers`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTransfer {
    /// The recipient's user id.
    pub recipient_id: String,
    /// Decimal amount, as a number or a string.
    #[schema(inline)]
    pub amount: DecimalText,
    /// ISO-4217 code; the money moves in this currency.
    #[schema(example = "USD")]
    pub currency: String,
    /// Free text, at most 500 characters.
    pub description: Option<String>,
    /// Alternative to the `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
}

impl BodyKey for CreateTransfer {
    fn body_key(&self) -> Option<&str> {
        self.idempotency_key.as_deref()
    }
}

impl CreateTransfer {
    fn into_command(self, idempotency: IdempotentRequest) -> Result<TransferCommand, Problem> {
        let mut errors = Vec::new();
        let recipient = field(
            &mut errors,
            "recipient_id",
            Uuid::parse_str(&self.recipient_id)
                .map(UserId)
                .map_err(|_| ("recipient_unknown", "not a user id".to_owned())),
        );
        let amount = money(&mut errors, &self.amount.0, &self.currency);
        let (Some(recipient), Some(amount)) = (recipient, amount) else {
            return Err(Problem::invalid(errors));
        };
        Ok(TransferCommand {
            recipient,
            amount,
            description: self.description,
            idempotency,
        })
    }
}

/// A transfer between two wallets.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransferView {
    pub id: Uuid,
    /// Always `transfer`.
    #[schema(example = "transfer")]
    pub object: &'static str,
    /// The sender's customer id (their user id).
    pub sender_id: String,
    /// The recipient's customer id (their user id).
    pub recipient_id: String,
    #[schema(example = "12.50")]
    pub amount: String,
    #[schema(example = "USD")]
    pub currency: String,
    /// Always `succeeded`: a transfer is final when it is answered.
    #[schema(example = "succeeded")]
    pub status: &'static str,
    pub description: Option<String>,
    pub created_at: Timestamp,
}

impl From<&TransferState> for TransferView {
    fn from(t: &TransferState) -> Self {
        TransferView {
            id: t.id.0,
            object: "transfer",
            sender_id: t.sender.as_str().to_owned(),
            recipient_id: t.recipient.as_str().to_owned(),
            amount: t.amount.to_decimal_string(),
            currency: t.amount.currency().code().to_owned(),
            status: "succeeded",
            description: t.description.clone(),
            created_at: Timestamp(t.created_at),
        }
    }
}

fn transfer_response(reply: &TransferReply) -> Response {
    let location = format!("/api/v1/transfers/{}", reply.transfer.id);
    let mut response = (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(TransferView::from(&reply.transfer)),
    )
        .into_response();
    if reply.replayed {
        response
            .headers_mut()
            .insert(REPLAYED, HeaderValue::from_static("true"));
    }
    response
}

/// Moves money from the caller's wallet to another user's, at once and in full, or not at all.
/// A retry with the same key answers the first transfer (`Idempotent-Replayed: true`).
#[utoipa::path(post, path = "/api/v1/transfers", tag = "wallets", security(("bearer" = [])),
    request_body = CreateTransfer,
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, description = "Required, here or as `idempotency_key` in the body: a transfer must be safe to retry (400 `idempotency_key_required` without one)")),
    responses(
        (status = 201, description = "Transferred, or replayed", body = TransferView),
        (status = 402, description = "The available balance is short (`insufficient_funds`); nothing moved", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Invalid values: an unknown recipient (`recipient_unknown`), yourself (`transfer_to_self`), a bad amount or currency, or the key was used with another request", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn create_transfer(
    State(wallets): State<Arc<Wallets>>,
    keyed: Keyed<CreateTransfer>,
) -> Result<Response, Problem> {
    let (actor, body, key) = keyed.required("a transfer")?;
    let reply = wallets.transfer(&actor, body.into_command(key)?).await?;
    Ok(transfer_response(&reply))
}

/// One transfer, for its sender, its recipient or an administrator.
#[utoipa::path(get, path = "/api/v1/transfers/{id}", tag = "wallets", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = TransferView), (status = 404, body = ProblemBody, content_type = "application/problem+json")))]
pub async fn get_transfer(
    State(wallets): State<Arc<Wallets>>,
    Authenticated(actor): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<TransferView>, Problem> {
    let id = Uuid::parse_str(&id).map_err(|_| AppError::NotFound("transfer"))?;
    let transfer = wallets.get_transfer(&actor, TransferId(id)).await?;
    Ok(Json(TransferView::from(&transfer)))
}
