//! `/api/v1/routing`: the rules that choose a payment's providers, read and replaced by
//! administrators with the version they read (`If-Match`), and reset to the configuration
//! file's; and the route a payment took, as its answer shows it.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use portside_app::routing::{Routing, RoutingTable};
use portside_domain::Currency;
use portside_domain::routing::{
    PurposeKind, RouteAttempt, RouteProvider, RouteRule, Routing as PaymentRoute,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ApiState;
use crate::auth::Authenticated;
use crate::if_match::{self, if_match};
use crate::json::JsonBody;
use crate::problem::{FieldError, Problem, ProblemBody};
use crate::timestamp::Timestamp;

pub(crate) fn router() -> Router<ApiState> {
    Router::new().route(
        "/api/v1/routing",
        get(get_routing).put(put_routing).delete(reset_routing),
    )
}

/// One provider of a rule.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteProviderBody {
    /// A configured provider (`stripe`, `paypal`, `mock`).
    #[schema(example = "stripe")]
    pub name: String,
    /// Percent of the rule's payments tried here first (1–100); all of a rule's providers
    /// have one, adding up to 100, or none has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 100, example = 70)]
    pub weight: Option<u32>,
}

/// A rule: an empty or absent list matches anything; the first rule that matches a payment
/// names the providers it tries, in order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteRuleBody {
    /// Shown on the payments it routes.
    #[schema(example = "eu-cards")]
    pub name: String,
    /// ISO-4217 codes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(example = json!(["EUR"]))]
    pub currencies: Vec<String>,
    /// Smallest amount matched, in minor units of the rule's currencies (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_amount: Option<i64>,
    /// Largest amount matched, in minor units of the rule's currencies (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = 50000)]
    pub max_amount: Option<i64>,
    /// Payment methods (`card`, `credit_card`, `debit_card`, `bank_transfer`, `paypal`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// What the payment pays for: `order`, `membership`, `top_up`, `direct` (none of these).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub purposes: Vec<String>,
    pub providers: Vec<RouteProviderBody>,
}

/// A new set of rules.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoutingBody {
    /// In order: the first that matches a payment wins.
    pub rules: Vec<RouteRuleBody>,
}

/// The rules in force.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoutingView {
    /// Always `routing`.
    #[schema(example = "routing")]
    pub object: &'static str,
    /// Also the `ETag`; a change names it in `If-Match`.
    pub version: i64,
    /// `file` (the configuration file's rules, or none) or `api` (set by an administrator).
    #[schema(example = "api")]
    pub source: &'static str,
    pub rules: Vec<RouteRuleBody>,
    /// Takes the payments no rule matches.
    #[schema(example = "stripe")]
    pub default_provider: String,
    pub updated_at: Option<Timestamp>,
    /// The administrator's user id.
    pub updated_by: Option<String>,
}

/// One attempt of a payment's route.
#[derive(Debug, Serialize, ToSchema)]
pub struct RouteAttemptView {
    pub provider: String,
    /// `circuit_open` (skipped), `unavailable` (not reached: the charge moved on),
    /// `succeeded` or `failed`.
    #[schema(example = "succeeded")]
    pub outcome: &'static str,
    /// Why a provider was passed over, or the failure's code.
    pub error: Option<String>,
    pub at: Timestamp,
}

/// The route a payment took: the rule (`requested` when the request named its provider,
/// `default` when no rule matched), the provider that has the charge, and each attempt whose
/// outcome is known.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentRouteView {
    #[schema(example = "eu-cards")]
    pub rule: String,
    #[schema(example = "stripe")]
    pub provider: String,
    pub attempts: Vec<RouteAttemptView>,
}

impl From<&PaymentRoute> for PaymentRouteView {
    fn from(r: &PaymentRoute) -> Self {
        PaymentRouteView {
            rule: r.rule.clone(),
            provider: r.provider.clone(),
            attempts: r.attempts.iter().map(RouteAttemptView::from).collect(),
        }
    }
}

impl From<&RouteAttempt> for RouteAttemptView {
    fn from(a: &RouteAttempt) -> Self {
        RouteAttemptView {
            provider: a.provider.clone(),
            outcome: a.outcome.as_str(),
            error: a.error.clone(),
            at: a.at.into(),
        }
    }
}

impl From<&RouteRule> for RouteRuleBody {
    fn from(r: &RouteRule) -> Self {
        RouteRuleBody {
            name: r.name.clone(),
            currencies: r.currencies.iter().map(|c| c.code().to_owned()).collect(),
            min_amount: r.min_amount,
            max_amount: r.max_amount,
            methods: r.methods.iter().map(|m| m.as_str().to_owned()).collect(),
            purposes: r.purposes.iter().map(|p| p.as_str().to_owned()).collect(),
            providers: r
                .providers
                .iter()
                .map(|p| RouteProviderBody {
                    name: p.name.clone(),
                    weight: p.weight,
                })
                .collect(),
        }
    }
}

impl RoutingBody {
    /// The rules as the domain reads them; a 422 naming every value that is not one.
    fn into_rules(self) -> Result<Vec<RouteRule>, Problem> {
        let mut errors = Vec::new();
        let mut rules = Vec::new();
        for (i, r) in self.rules.into_iter().enumerate() {
            let mut at = Field {
                errors: &mut errors,
                rule: i,
            };
            let currencies = at.list(
                "currencies",
                &r.currencies,
                |v| Currency::from_code(v).ok(),
                "currency_unknown",
                "a supported ISO-4217 currency",
            );
            let methods = at.list(
                "methods",
                &r.methods,
                |v| v.parse().ok(),
                "payment_method_invalid",
                "a payment method",
            );
            let purposes = at.list(
                "purposes",
                &r.purposes,
                PurposeKind::parse,
                "purpose_invalid",
                "order, membership, top_up or direct",
            );
            rules.push(RouteRule {
                name: r.name,
                currencies,
                min_amount: r.min_amount,
                max_amount: r.max_amount,
                methods,
                purposes,
                providers: r
                    .providers
                    .into_iter()
                    .map(|p| RouteProvider {
                        name: p.name,
                        weight: p.weight,
                    })
                    .collect(),
            });
        }
        if errors.is_empty() {
            Ok(rules)
        } else {
            Err(Problem::invalid(errors))
        }
    }
}

/// The errors of one rule's values.
struct Field<'a> {
    errors: &'a mut Vec<FieldError>,
    rule: usize,
}

impl Field<'_> {
    /// The values of the list `name` that `parse` reads; an error for each it does not.
    fn list<T>(
        &mut self,
        name: &str,
        values: &[String],
        parse: impl Fn(&str) -> Option<T>,
        code: &str,
        what: &str,
    ) -> Vec<T> {
        let mut parsed = Vec::new();
        for (j, v) in values.iter().enumerate() {
            match parse(v) {
                Some(x) => parsed.push(x),
                None => self.errors.push(FieldError {
                    field: format!("rules[{}].{name}[{j}]", self.rule),
                    code: code.to_owned(),
                    message: format!("{v:?} is not {what}"),
                }),
            }
        }
        parsed
    }
}

fn answer(table: &RoutingTable) -> Response {
    let view = RoutingView {
        object: "routing",
        version: table.version,
        source: table.source.as_str(),
        rules: table.rules.iter().map(RouteRuleBody::from).collect(),
        default_provider: table.default_provider.clone(),
        updated_at: table.updated_at.map(Into::into),
        updated_by: table.updated_by.clone(),
    };
    if_match::with_etag(StatusCode::OK, view, table.version, String::new)
}

/// The routing rules in force (administrators).
#[utoipa::path(get, path = "/api/v1/routing", tag = "routing", security(("bearer" = [])),
    responses(
        (status = 200, description = "The rules in force (ETag: the version)", body = RoutingView),
        (status = 403, description = "Not an administrator", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn get_routing(
    State(routing): State<Arc<Routing>>,
    Authenticated(actor): Authenticated,
) -> Result<Response, Problem> {
    Ok(answer(&routing.rules(&actor).await?))
}

/// Replaces the routing rules (administrators); they win over the configuration file's until
/// reset. Applies to the next payment in every process.
#[utoipa::path(put, path = "/api/v1/routing", tag = "routing", security(("bearer" = [])),
    params(("If-Match" = Option<String>, Header, nullable = false, description = "The ETag you read; 412 when the rules changed since")),
    request_body = RoutingBody,
    responses(
        (status = 200, description = "The new rules (ETag: the new version)", body = RoutingView),
        (status = 400, description = "Malformed body or If-Match", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator", body = ProblemBody, content_type = "application/problem+json"),
        (status = 412, description = "Stale If-Match", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A rule that cannot be used: `route_provider_unknown`, `route_weights_invalid`, `route_unreachable`, `route_invalid`, `currency_unknown`, `payment_method_invalid`, `purpose_invalid`", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn put_routing(
    State(routing): State<Arc<Routing>>,
    Authenticated(actor): Authenticated,
    headers: HeaderMap,
    body: JsonBody<RoutingBody>,
) -> Result<Response, Problem> {
    let expected = if_match(&headers)?;
    let rules = body.value.into_rules()?;
    Ok(answer(&routing.replace(&actor, &expected, rules).await?))
}

/// Goes back to the configuration file's rules (administrators).
#[utoipa::path(delete, path = "/api/v1/routing", tag = "routing", security(("bearer" = [])),
    params(("If-Match" = Option<String>, Header, nullable = false, description = "The ETag you read; 412 when the rules changed since")),
    responses(
        (status = 200, description = "The file's rules (ETag: the new version)", body = RoutingView),
        (status = 400, description = "Malformed If-Match", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator", body = ProblemBody, content_type = "application/problem+json"),
        (status = 412, description = "Stale If-Match", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn reset_routing(
    State(routing): State<Arc<Routing>>,
    Authenticated(actor): Authenticated,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let expected = if_match(&headers)?;
    Ok(answer(&routing.reset(&actor, &expected).await?))
}
