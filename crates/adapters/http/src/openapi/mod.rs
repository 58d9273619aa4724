//! The OpenAPI document, generated from the handlers' annotations, with the input rules of
//! [`rules`] written in.

mod rules;

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::catalog::{
    self, AdjustStock, CreateProduct, MovementView, ProductView, StockInput, StockView,
    UpdateProduct,
};
use crate::dead_letters::{self, DeadEventView, DeadLetterList, DeadLetterView, Replayed};
use crate::health::{self, Health};
use crate::history::{self, EventList, EventView};
use crate::ledger::{
    self, AccountView, DifferenceView, EntryView, LedgerEntryLine, LedgerTransactionView,
    ReconciliationView, TrialBalance, TrialBalanceLine,
};
use crate::memberships::{self, CheckoutRequest};
use crate::messages::{self, MessageInput, MessageView};
use crate::orders::{
    self, CreateOrder, ItemInput, ItemView, OrderRefundView, OrderView, PayOrderRequest,
    ReplaceItems, TransitionView,
};
use crate::payments::{
    self, CreatePayment, CreateRefund, FailureView, PaymentView, Received, RefundView,
    TransactionList, TransactionView, notices,
};
use crate::problem::{FieldError, ProblemBody};
use crate::routing::{
    self, PaymentRouteView, RouteAttemptView, RouteProviderBody, RouteRuleBody, RoutingBody,
    RoutingView,
};
use crate::search::{self, Hit, Reindexed, SearchResponse};
use crate::users::{
    self, Login, Logout, Refresh, Register, TokenPair, UpdateUser, UserView, sessions,
};
use crate::wallets::{
    self, CreateTransfer, TopUpRequest, TransferView, WalletBalanceView, WalletView,
};
use crate::webhooks::{
    self, AttemptView, CreateEndpoint, CreatedEndpoint, DeliveryView, EndpointSecret, EndpointView,
    Recover, Recovered, UpdateEndpoint,
};

/// The document `/openapi.json` serves.
pub fn document() -> serde_json::Value {
    let (document, missed) = rules::state(&ApiDoc::openapi());
    for rule in missed {
        tracing::error!(
            rule,
            "an input rule of the OpenAPI document found no target"
        );
    }
    document
}

/// The input rules whose target the document lacks (a field renamed since the rule was
/// written); empty when every rule applies, which the HTTP suite checks.
pub fn unapplied_rules() -> Vec<String> {
    rules::state(&ApiDoc::openapi()).1
}

/// Portside's REST API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Portside",
        description = "Commerce backend: users and sessions, messages, memberships, payments with refunds and idempotency. Register, log in, then send `Authorization: Bearer <access_token>`. Amounts are decimal strings in the currency's units; errors are RFC 9457 problem+json with a stable `code`."
    ),
    modifiers(&BearerAuth, &CommonProblems),
    paths(
        payments::create_payment,
        payments::list_payments,
        payments::get_payment,
        payments::create_refund,
        payments::list_transactions,
        users::register,
        users::list_users,
        users::get_user,
        users::update_user,
        users::delete_user,
        sessions::login,
        sessions::refresh,
        sessions::logout,
        messages::post_message,
        messages::list_messages,
        messages::get_message,
        messages::edit_message,
        messages::delete_message,
        memberships::checkout,
        catalog::create_product,
        catalog::list_products,
        catalog::get_product,
        catalog::update_product,
        catalog::archive_product,
        catalog::adjust_stock,
        catalog::list_movements,
        orders::place_order,
        orders::list_orders,
        orders::get_order,
        orders::replace_items,
        orders::ship_order,
        orders::cancel_order,
        orders::pay_order,
        orders::retry_refund,
        search::search,
        search::reindex,
        dead_letters::list_dead_letters,
        dead_letters::replay_dead_letter,
        history::payment_events,
        history::order_events,
        ledger::list_accounts,
        ledger::list_entries,
        ledger::get_transaction,
        ledger::trial_balance,
        ledger::check,
        wallets::my_wallet,
        wallets::top_up,
        wallets::create_transfer,
        wallets::get_transfer,
        webhooks::create_endpoint,
        webhooks::list_endpoints,
        webhooks::get_endpoint,
        webhooks::reveal_secret,
        webhooks::update_endpoint,
        webhooks::rotate_secret,
        webhooks::delete_endpoint,
        webhooks::recover,
        webhooks::send_test,
        webhooks::list_deliveries,
        webhooks::get_delivery,
        webhooks::retry_delivery,
        routing::get_routing,
        routing::put_routing,
        routing::reset_routing,
        notices::receive,
        health::live,
        health::ready,
    ),
    components(schemas(
        CreatePayment, CreateRefund, PaymentView, TransactionView, RefundView,
        TransactionList, FailureView, ProblemBody, FieldError, Health, Register, UpdateUser,
        UserView, Login, Refresh, Logout, TokenPair, MessageInput, MessageView,
        CheckoutRequest, CreateOrder, ReplaceItems, ItemInput, ItemView, OrderView, TransitionView, OrderRefundView,
        PayOrderRequest, SearchResponse, Hit, Reindexed, Received, CreateProduct, UpdateProduct,
        StockInput, AdjustStock, ProductView, StockView, MovementView, DeadEventView,
        DeadLetterView, DeadLetterList, Replayed, EventView, EventList, AccountView, EntryView,
        LedgerTransactionView, LedgerEntryLine, TrialBalance, TrialBalanceLine, DifferenceView,
        ReconciliationView, WalletView, WalletBalanceView, TopUpRequest, CreateTransfer,
        TransferView, CreateEndpoint, CreatedEndpoint, EndpointView, EndpointSecret, UpdateEndpoint,
        DeliveryView, AttemptView, Recover, Recovered, RoutingBody, RoutingView, RouteRuleBody,
        RouteProviderBody, PaymentRouteView, RouteAttemptView
    )),
    tags(
        (name = "payments", description = "Charges, refunds and their ledger"),
        (name = "users", description = "Users: register, read, change, delete"),
        (name = "auth", description = "Sessions: login, refresh (rotating), logout"),
        (name = "messages", description = "Messages and their search"),
        (name = "memberships", description = "Premium membership purchase"),
        (name = "search", description = "Full-text search over orders and payments (the read model)"),
        (name = "catalog", description = "Products, prices per currency and stock (reservations, movements)"),
        (name = "orders", description = "Orders: lines, status machine, optimistic concurrency (ETag / If-Match), payment"),
        (name = "webhooks", description = "Signed notices from payment providers"),
        (name = "events", description = "Dead letters of the consumer groups (administrators)"),
        (name = "ledger", description = "The double-entry books under every money movement: accounts, entries, trial balance, reconciliation"),
        (name = "wallets", description = "Customers' wallets on the ledger: balances, top-ups, transfers; pay with `payment_method: \"wallet\"`"),
        (name = "webhook-endpoints", description = "Outgoing webhooks: the endpoints that want Portside's events, signed to the Standard Webhooks spec (administrators)"),
        (name = "routing", description = "The rules that choose a payment's providers, with failover between them (administrators)"),
        (name = "health", description = "Liveness and readiness"),
    )
)]
pub struct ApiDoc;

/// Declares the `bearer` security scheme the protected operations refer to.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Documents the problem+json answers that any operation of a kind can give, beside those its
/// handler declares: a client (or a schema-driven tester) then finds every status it can
/// receive in the document.
struct CommonProblems;

impl CommonProblems {
    fn add(operation: &mut Operation, path: &str) {
        let has_body = operation.request_body.is_some();
        let has_query = operation.parameters.as_ref().is_some_and(|ps| {
            ps.iter()
                .any(|p| matches!(p.parameter_in, utoipa::openapi::path::ParameterIn::Query))
        });
        let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
        let mut common = Vec::new();
        if has_body || has_query || path.contains('{') {
            common.push((
                "400",
                "Malformed request: unreadable JSON, parameter or header",
            ));
        }
        if secured {
            common.push(("401", "Missing, invalid or expired access token"));
        }
        if path.contains('{') {
            common.push(("404", "No such resource, or not one of the caller's"));
        }
        if has_body {
            common.push(("413", "Request body too large"));
            common.push(("415", "Request body is not JSON"));
        }
        if has_body || has_query {
            common.push(("422", "A value breaks a rule; `errors` names each field"));
        }
        common.push((
            "429",
            "Too many requests; `Retry-After` says when to come back",
        ));
        common.push((
            "503",
            "A dependency (the store) is unavailable; retry with the same idempotency key",
        ));
        for (status, description) in common {
            operation
                .responses
                .responses
                .entry(status.to_owned())
                .or_insert_with(|| {
                    ResponseBuilder::new()
                        .description(description)
                        .content(
                            "application/problem+json",
                            ContentBuilder::new()
                                .schema(Some(Ref::from_schema_name(ProblemBody::name())))
                                .build(),
                        )
                        .build()
                        .into()
                });
        }
    }
}

impl Modify for CommonProblems {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        for (path, item) in api.paths.paths.iter_mut() {
            if !path.starts_with("/api/") {
                continue;
            }
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                Self::add(operation, path);
            }
        }
    }
}
