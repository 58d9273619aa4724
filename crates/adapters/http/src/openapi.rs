//! The OpenAPI document, generated from the handlers' annotations.

use utoipa::OpenApi;

use crate::dto::{
    CreatePayment, CreateRefund, FailureView, PaymentList, PaymentView, RefundView,
    TransactionList, TransactionView,
};
use crate::health::{self, Health};
use crate::payments;
use crate::problem::{FieldError, ProblemBody};

/// Portside's REST API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Portside",
        description = "Commerce backend: payments with refunds and idempotency. Amounts are decimal strings in the currency's units; errors are RFC 9457 problem+json with a stable `code`."
    ),
    paths(
        payments::create_payment,
        payments::list_payments,
        payments::get_payment,
        payments::create_refund,
        payments::list_transactions,
        health::live,
        health::ready,
    ),
    components(schemas(
        CreatePayment, CreateRefund, PaymentView, TransactionView, RefundView, PaymentList,
        TransactionList, FailureView, ProblemBody, FieldError, Health
    )),
    tags(
        (name = "payments", description = "Charges, refunds and their ledger"),
        (name = "health", description = "Liveness and readiness"),
    )
)]
pub struct ApiDoc;
