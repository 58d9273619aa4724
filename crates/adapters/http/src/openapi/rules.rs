//! The rules the server enforces on what it reads, written into the document where the
//! handlers' annotations cannot say them: patterns built from the domain's own tables
//! (currencies, payment methods), amounts, names and texts as the domain trims and counts
//! them, and the one rule every JSON body shares (no NUL character). A client generated from
//! the document, or a schema-driven tester, then sends only what the server accepts, and is
//! refused whatever the document forbids.
//!
//! Rules that depend on data or on configuration (a refund above what remains, a price that
//! is not the catalog's, a provider's name, a password built from the email) cannot be a
//! schema: their fields' descriptions say them and their operations document the answer.

use portside_domain::routing::PurposeKind;
use portside_domain::{Currency, OrderStatus, PaymentMethod, PaymentStatus};
use serde_json::{Map, Value, json};
use utoipa::openapi::OpenApi;

/// Whitespace as `char::is_whitespace` (and so `str::trim`) reads it, as a regex class body.
const SPACE: &str =
    r"\t\n\u000b\u000c\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

/// Control characters (`char::is_control`), as a regex class body.
const CONTROL: &str = r"\u0000-\u001f\u007f-\u009f";

/// Every JSON body is refused when a string holds `\u0000` (422 `nul_character`).
const NO_NUL: &str = r"^[^\u0000]*$";

/// An idempotency key: 1 to 255 visible ASCII characters.
const IDEMPOTENCY_KEY: &str = "^[!-~]{1,255}$";

/// `If-Match` as the server reads it: `*`, or a list of entity tags (possibly empty, which
/// matches nothing: 412).
const IF_MATCH: &str =
    r#"^([ \t]*\*[ \t]*|[ \t,]*((W/)?"[!#-~]*"([ \t]*,[ \t,]*(W/)?"[!#-~]*")*)?[ \t,]*)$"#;

/// A customer id: 1 to 64 visible ASCII characters.
const CUSTOMER_ID: &str = "^[!-~]{1,64}$";

/// An amount as text: digits, then optionally a point and digits (no sign, no exponent).
const AMOUNT: &str = r"^[0-9]+(\.[0-9]+)?$";

/// The same, above zero: a non-zero digit somewhere.
const POSITIVE_AMOUNT: &str = r"^([0-9]*[1-9][0-9]*(\.[0-9]+)?|[0-9]+\.[0-9]*[1-9][0-9]*)$";

/// Where a rule goes: a property of a component schema, or the parameters of a name (of one
/// operation, or of every operation that has one).
enum Target {
    Property(&'static str, &'static str),
    Parameter(Option<&'static str>, &'static str),
}

/// What a rule does to the schema it targets.
enum Rule {
    /// Adds (or replaces) these keywords.
    Merge(Value),
    /// An amount, as text or as a JSON number; `true` when it must be above zero.
    Amount(bool),
    /// The field may only be absent or `null`.
    Absent,
    /// A named schema of [`named_schemas`], so that a generated client has one type for it.
    Named(&'static str),
}

/// The value sets that several fields share, as components of their own.
fn named_schemas() -> Value {
    json!({
        "Currency": {
            "type": "string",
            "enum": Currency::all().map(|c| c.code()).collect::<Vec<_>>(),
            "description": "ISO-4217 code of a currency Portside holds money in (upper case; lower case is read too)",
        },
        "Role": {
            "type": "string",
            "enum": ["customer", "admin"],
            "description": "What a user may do: `admin` manages the catalog and reads everything",
        },
        "PaymentMethod": {
            "type": "string",
            "enum": PaymentMethod::ALL.map(|m| m.as_str()),
            "description": "The kind of payment method (`card` when absent)",
        },
    })
}

fn rules() -> Vec<(Target, Rule)> {
    use Rule::{Absent, Amount, Merge, Named};
    use Target::{Parameter, Property};
    let currency = || Named("Currency");
    let method = || Named("PaymentMethod");
    let token = || Merge(json!({ "minLength": 1, "maxLength": 255, "pattern": NO_NUL }));
    let key = || Merge(json!({ "pattern": IDEMPOTENCY_KEY }));
    let customer = || Merge(json!({ "pattern": CUSTOMER_ID }));
    let provider = || {
        Merge(json!({
            "minLength": 1,
            "pattern": NO_NUL,
            "description": "A configured provider's name (422 `provider_unknown` otherwise); the configured default when absent",
        }))
    };
    let metadata = || {
        Merge(json!({
            "maxProperties": 50,
            "propertyNames": { "type": "string", "minLength": 1, "maxLength": 40, "pattern": NO_NUL },
            "additionalProperties": { "type": "string", "maxLength": 500, "pattern": NO_NUL },
        }))
    };
    let text = |max: usize| Merge(json!({ "maxLength": max, "pattern": NO_NUL }));
    let not_blank =
        |max: usize| Merge(json!({ "minLength": 1, "maxLength": max, "pattern": not_blank() }));
    let prices = |at_least_one: bool| {
        let mut prices = json!({
            "propertyNames": { "$ref": "#/components/schemas/Currency" },
            "additionalProperties": amount(false),
        });
        if at_least_one {
            prices["minProperties"] = json!(1);
        }
        Merge(prices)
    };
    let email = || {
        Merge(json!({
            "maxLength": 254,
            "pattern": email(),
            "description": "Email address, case-insensitive. The pattern is the common form (at most one dot before the @); the server also reads any RFC 5321 dot-atom of up to 64 characters there",
        }))
    };
    let password = || {
        Merge(json!({
            "minLength": 10,
            "maxLength": 128,
            "pattern": NO_NUL,
            "description": "10 to 128 characters, at least 5 different ones, and not containing the part of the email before the @ (422 `password_weak` names which)",
        }))
    };
    let user_name = || Merge(json!({ "pattern": user_name() }));
    let sku = || Merge(json!({ "pattern": sku() }));
    let threshold = || Merge(json!({ "minimum": 0, "maximum": 1_000_000_000 }));
    let lines = || Merge(json!({ "minItems": 1, "maxItems": 100 }));
    vec![
        (Property("Register", "email"), email()),
        (Property("Register", "password"), password()),
        (Property("Register", "name"), user_name()),
        (Property("UpdateUser", "email"), email()),
        (Property("UpdateUser", "password"), password()),
        (Property("UpdateUser", "name"), user_name()),
        (Property("UpdateUser", "role"), Named("Role")),
        (Property("MessageInput", "body"), not_blank(10_000)),
        (Property("CreatePayment", "customer_id"), customer()),
        (Property("CreatePayment", "amount"), Amount(true)),
        (Property("CreatePayment", "currency"), currency()),
        (Property("CreatePayment", "payment_method"), method()),
        (Property("CreatePayment", "payment_method_token"), token()),
        (Property("CreatePayment", "provider"), provider()),
        (Property("CreatePayment", "description"), text(1000)),
        (Property("CreatePayment", "metadata"), metadata()),
        (Property("CreatePayment", "idempotency_key"), key()),
        (Property("CreateRefund", "amount"), Amount(true)),
        (Property("CreateRefund", "currency"), currency()),
        (Property("CreateRefund", "reason"), text(500)),
        (Property("CreateRefund", "metadata"), metadata()),
        (Property("CreateRefund", "idempotency_key"), key()),
        (Property("CheckoutRequest", "payment_method"), method()),
        (Property("CheckoutRequest", "payment_method_token"), token()),
        (Property("CheckoutRequest", "provider"), provider()),
        (Property("CheckoutRequest", "idempotency_key"), key()),
        (Property("PayOrderRequest", "payment_method"), method()),
        (Property("PayOrderRequest", "payment_method_token"), token()),
        (Property("PayOrderRequest", "provider"), provider()),
        (Property("PayOrderRequest", "idempotency_key"), key()),
        (Property("TopUpRequest", "amount"), Amount(true)),
        (Property("TopUpRequest", "currency"), currency()),
        (Property("TopUpRequest", "payment_method"), method()),
        (Property("TopUpRequest", "payment_method_token"), token()),
        (Property("TopUpRequest", "provider"), provider()),
        (Property("TopUpRequest", "idempotency_key"), key()),
        (
            Property("CreateTransfer", "recipient_id"),
            Merge(json!({ "format": "uuid" })),
        ),
        (Property("CreateTransfer", "amount"), Amount(true)),
        (Property("CreateTransfer", "currency"), currency()),
        (Property("CreateTransfer", "description"), text(500)),
        (Property("CreateTransfer", "idempotency_key"), key()),
        (
            Property("CreateEndpoint", "url"),
            Merge(json!({ "minLength": 1, "maxLength": 2048, "pattern": NO_NUL })),
        ),
        (Property("CreateEndpoint", "description"), text(500)),
        (
            Property("CreateEndpoint", "event_types"),
            Merge(json!({
                "minItems": 1,
                "uniqueItems": true,
                "items": { "type": "string", "enum": portside_events::CATALOG.iter().map(|(t, _)| *t).collect::<Vec<_>>() },
            })),
        ),
        (
            Property("UpdateEndpoint", "url"),
            Merge(json!({ "minLength": 1, "maxLength": 2048, "pattern": NO_NUL })),
        ),
        (Property("UpdateEndpoint", "description"), text(500)),
        (
            Property("UpdateEndpoint", "event_types"),
            Merge(json!({
                "minItems": 1,
                "uniqueItems": true,
                "items": { "type": "string", "enum": portside_events::CATALOG.iter().map(|(t, _)| *t).collect::<Vec<_>>() },
            })),
        ),
        (Property("CreateProduct", "sku"), sku()),
        (Property("CreateProduct", "name"), not_blank(200)),
        (Property("CreateProduct", "description"), text(2000)),
        (Property("CreateProduct", "prices"), prices(true)),
        (Property("StockInput", "low_stock_threshold"), threshold()),
        (Property("UpdateProduct", "name"), not_blank(200)),
        (Property("UpdateProduct", "description"), text(2000)),
        (Property("UpdateProduct", "prices"), prices(true)),
        (Property("AdjustStock", "reason"), not_blank(200)),
        (Property("AdjustStock", "low_stock_threshold"), threshold()),
        (
            Property("AdjustStock", "quantity"),
            Merge(json!({ "minimum": -1_000_000_000, "maximum": 1_000_000_000 })),
        ),
        (Property("CreateOrder", "customer_id"), customer()),
        (Property("CreateOrder", "currency"), currency()),
        (Property("CreateOrder", "items"), lines()),
        (Property("CreateOrder", "total"), Absent),
        (Property("ReplaceItems", "items"), lines()),
        (Property("ReplaceItems", "total"), Absent),
        (Property("ItemInput", "sku"), sku()),
        (Property("ItemInput", "product_id"), sku()),
        (Property("ItemInput", "price"), Amount(false)),
        (Property("ItemInput", "unit_price"), Amount(false)),
        (Property("ItemInput", "price_override"), Amount(false)),
        (Property("ItemInput", "currency"), currency()),
        (
            Property("RouteRuleBody", "currencies"),
            Merge(json!({ "items": { "$ref": "#/components/schemas/Currency" } })),
        ),
        (
            Property("RouteRuleBody", "methods"),
            Merge(json!({ "items": {
                "type": "string",
                "enum": PaymentMethod::ALL
                    .into_iter()
                    .filter(|m| *m != PaymentMethod::Wallet)
                    .map(|m| m.as_str())
                    .collect::<Vec<_>>(),
            } })),
        ),
        (
            Property("RouteRuleBody", "purposes"),
            Merge(json!({ "items": {
                "type": "string",
                "enum": PurposeKind::ALL.map(|p| p.as_str()),
            } })),
        ),
        (Property("RouteRuleBody", "name"), not_blank(100)),
        (
            Parameter(Some("list_messages"), "sort"),
            Merge(json!({
                "enum": ["created_at", "-created_at"],
                "x-enum-varnames": ["OLDEST_FIRST", "NEWEST_FIRST"],
            })),
        ),
        (
            Parameter(Some("list_orders"), "status"),
            Merge(json!({ "enum": OrderStatus::ALL.map(|s| s.as_str()) })),
        ),
        (
            Parameter(Some("list_payments"), "status"),
            Merge(json!({ "enum": PaymentStatus::ALL.map(|s| s.as_str()) })),
        ),
        (
            Parameter(Some("list_deliveries"), "status"),
            Merge(json!({ "enum": ["pending", "succeeded", "failed"] })),
        ),
        (
            Parameter(Some("list_accounts"), "prefix"),
            Merge(json!({ "type": "string", "maxLength": 200, "pattern": NO_NUL })),
        ),
        (
            Parameter(None, "If-Match"),
            Merge(json!({ "type": "string", "pattern": IF_MATCH })),
        ),
        (
            Parameter(None, "Idempotency-Key"),
            Merge(json!({ "type": "string", "pattern": IDEMPOTENCY_KEY })),
        ),
    ]
}

/// Text with at least one character that is not whitespace, and no NUL.
fn not_blank() -> String {
    format!(r"^[^\u0000]*[^\u0000{SPACE}][^\u0000]*$")
}

/// A display name: after trimming, 1 to 100 characters without control characters.
fn user_name() -> String {
    let inner = format!("[^{CONTROL}]");
    let edge = format!(r"[^{CONTROL}{SPACE}]");
    format!("^[{SPACE}]*{edge}({inner}{{0,98}}{edge})?[{SPACE}]*$")
}

/// A SKU: 1 to 64 of letters, digits, `.`, `_` and `-`, surrounding whitespace ignored.
fn sku() -> String {
    format!("^[{SPACE}]*[A-Za-z0-9._-]{{1,64}}[{SPACE}]*$")
}

/// The common form of an address: a dot-atom local part with at most one dot, a domain of
/// labels and an alphabetic top-level label.
fn email() -> String {
    let atom = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]";
    let label = "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
    format!(r"^{atom}{{1,32}}(\.{atom}{{1,31}})?@({label}\.)+[A-Za-z]{{2,63}}$")
}

/// An amount as the server reads it: text, or a JSON number taken as its exact text.
fn amount(positive: bool) -> Value {
    let (pattern, number) = if positive {
        (
            POSITIVE_AMOUNT,
            json!({ "type": "number", "exclusiveMinimum": 0 }),
        )
    } else {
        (AMOUNT, json!({ "type": "number", "minimum": 0 }))
    };
    json!({
        "oneOf": [{ "type": "string", "pattern": pattern }, number],
        "description": "A decimal amount as a string (\"12.50\") or a JSON number (12.50), read as the exact text sent: digits and a decimal point, no exponent, at most the currency's decimals (422 `amount_too_precise`)",
        "examples": ["12.50"],
    })
}

/// The document as JSON with every rule written in; the names of the rules whose target it
/// lacks (a renamed field), so that a test can catch a rule that no longer applies.
pub(crate) fn state(doc: &OpenApi) -> (Value, Vec<String>) {
    match serde_json::to_value(doc) {
        Ok(mut value) => {
            let missed = apply(&mut value);
            (value, missed)
        }
        Err(e) => (
            Value::Null,
            vec![format!("the document does not serialise: {e}")],
        ),
    }
}

fn apply(doc: &mut Value) -> Vec<String> {
    let mut missed = Vec::new();
    if let (Some(schemas), Value::Object(named)) = (
        doc.pointer_mut("/components/schemas")
            .and_then(Value::as_object_mut),
        named_schemas(),
    ) {
        schemas.extend(named);
    }
    for (target, rule) in rules() {
        let found = match target {
            Target::Property(schema, property) => doc
                .pointer_mut(&format!(
                    "/components/schemas/{schema}/properties/{property}"
                ))
                .map(|p| rule.apply(p))
                .is_some(),
            Target::Parameter(operation, name) => {
                let mut found = false;
                for (_, parameter) in parameters(doc).filter(|(op, p)| {
                    p["name"] == name && operation.is_none_or(|o| o == op.as_str())
                }) {
                    rule.apply(&mut parameter["schema"]);
                    found = true;
                }
                found
            }
        };
        if !found {
            missed.push(match target {
                Target::Property(s, p) => format!("{s}.{p}"),
                Target::Parameter(None, n) => format!("parameter {n}"),
                Target::Parameter(Some(o), n) => format!("parameter {n} of {o}"),
            });
        }
    }
    let bodies = request_bodies(doc);
    if let Some(schemas) = doc.pointer_mut("/components/schemas") {
        for name in bodies {
            if let Some(schema) = schemas.get_mut(&name) {
                forbid_nul(schema);
            }
        }
    }
    missed
}

impl Rule {
    fn apply(&self, schema: &mut Value) {
        match self {
            Rule::Merge(keywords) => {
                if let (Some(s), Some(k)) = (schema.as_object_mut(), keywords.as_object()) {
                    s.extend(k.clone());
                }
            }
            Rule::Amount(positive) => replace(schema, amount(*positive)),
            Rule::Named(name) => {
                replace(
                    schema,
                    json!({ "$ref": format!("#/components/schemas/{name}") }),
                );
            }
            Rule::Absent => replace(schema, json!({ "type": "null" })),
        }
    }
}

/// Puts `stated` in the place of `schema`, keeping its description, and `null` allowed when it
/// was (utoipa writes an optional field as `type: [T, "null"]` or `oneOf: [null, T]`).
fn replace(schema: &mut Value, stated: Value) {
    let is_null = |t: &Value| t == "null";
    let nullable = schema["type"]
        .as_array()
        .is_some_and(|ts| ts.iter().any(is_null))
        || schema["oneOf"]
            .as_array()
            .is_some_and(|bs| bs.iter().any(|b| is_null(&b["type"])));
    let description = schema.get("description").cloned();
    *schema = if nullable && stated["type"] != "null" {
        json!({ "oneOf": [{ "type": "null" }, stated] })
    } else {
        stated
    };
    if let Some(d) = description {
        schema["description"] = d;
    }
}

/// Every parameter of the document, with the id of its operation.
fn parameters(doc: &mut Value) -> impl Iterator<Item = (String, &mut Value)> {
    doc["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(Value::as_object_mut)
        .flat_map(Map::values_mut)
        .flat_map(|operation| {
            let id = operation["operationId"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            operation
                .get_mut("parameters")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
                .map(move |p| (id.clone(), p))
        })
}

/// The components that request bodies name, with those they name in turn. A body that may be
/// absent is documented as the object or nothing (the server refuses a JSON `null`), and so is
/// every body whose fields are all optional: no body at all reads as `{}`.
fn request_bodies(doc: &mut Value) -> Vec<String> {
    let mut names = Vec::new();
    let all_optional: Vec<String> = doc["components"]["schemas"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, s)| s["required"].as_array().is_none_or(Vec::is_empty))
        .map(|(name, _)| format!("#/components/schemas/{name}"))
        .collect();
    if let Some(paths) = doc["paths"].as_object_mut() {
        for operation in paths
            .values_mut()
            .filter_map(Value::as_object_mut)
            .flat_map(Map::values_mut)
        {
            if let Some(body) = operation.get_mut("requestBody")
                && body
                    .pointer("/content/application~1json/schema/$ref")
                    .and_then(Value::as_str)
                    .is_some_and(|r| all_optional.iter().any(|o| o == r))
            {
                body["required"] = json!(false);
            }
            let Some(content) =
                operation.pointer_mut("/requestBody/content/application~1json/schema")
            else {
                continue;
            };
            if let Some(branches) = content["oneOf"].as_array()
                && let [null, body] = branches.as_slice()
                && null["type"] == "null"
            {
                *content = body.clone();
            }
            references(content, &mut names);
        }
    }
    let mut i = 0;
    while let Some(name) = names.get(i).cloned() {
        if let Some(schema) = doc.pointer(&format!("/components/schemas/{name}")) {
            references(schema, &mut names);
        }
        i += 1;
    }
    names
}

fn references(schema: &Value, names: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            if let Some(name) = map
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
                && !names.iter().any(|n| n == name)
            {
                names.push(name.to_owned());
            }
            map.values().for_each(|v| references(v, names));
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, names)),
        _ => {}
    }
}

/// Every string of a body (values and object keys) without a pattern or a list of values
/// gets the NUL rule.
fn forbid_nul(schema: &mut Value) {
    let Some(map) = schema.as_object_mut() else {
        if let Some(items) = schema.as_array_mut() {
            items.iter_mut().for_each(forbid_nul);
        }
        return;
    };
    let is_string = match map.get("type") {
        Some(Value::String(t)) => t == "string",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "string"),
        _ => false,
    };
    if is_string && !map.contains_key("pattern") && !map.contains_key("enum") {
        map.insert("pattern".into(), json!(NO_NUL));
    }
    if matches!(map.get("additionalProperties"), Some(Value::Object(_))) {
        let names = map
            .entry("propertyNames")
            .or_insert_with(|| json!({ "type": "string" }));
        if names.get("pattern").is_none() && names.get("enum").is_none() {
            names["pattern"] = json!(NO_NUL);
        }
    }
    for (key, value) in map.iter_mut() {
        if key != "propertyNames" && key != "examples" && key != "example" && key != "enum" {
            forbid_nul(value);
        }
    }
}
