//! Payment routing: an ordered list of rules, the first that matches a payment naming the
//! providers to try in turn (optionally split between them by weight), and the record of each
//! attempt a payment made along its route.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::DomainError;
use crate::money::{Currency, Money};
use crate::payment::{Metadata, PaymentMethod};
use crate::purpose::Purpose;

/// The rule name recorded when no rule matched and the default provider was used.
pub const DEFAULT_RULE: &str = "default";
/// The rule name recorded when the request named its provider (it never fails over).
pub const REQUESTED_RULE: &str = "requested";

/// What a payment pays for, as a rule matches it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PurposeKind {
    /// An order's total.
    Order,
    /// The premium membership.
    Membership,
    /// Money put into a wallet.
    TopUp,
    /// A payment a client made directly, for nothing Portside tracks.
    Direct,
}

impl PurposeKind {
    /// Every kind, for the API's documentation.
    pub const ALL: [PurposeKind; 4] = [
        PurposeKind::Order,
        PurposeKind::Membership,
        PurposeKind::TopUp,
        PurposeKind::Direct,
    ];

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PurposeKind::Order => "order",
            PurposeKind::Membership => "membership",
            PurposeKind::TopUp => "top_up",
            PurposeKind::Direct => "direct",
        }
    }

    /// The kind a wire spelling names.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// The kind of purpose a payment's metadata records (`direct` when none, or unreadable).
    pub fn of(metadata: &Metadata) -> Self {
        match Purpose::of(metadata) {
            Ok(Some(Purpose::Order(_))) => PurposeKind::Order,
            Ok(Some(Purpose::Membership(_))) => PurposeKind::Membership,
            Ok(Some(Purpose::TopUp(_))) => PurposeKind::TopUp,
            _ => PurposeKind::Direct,
        }
    }
}

/// One provider of a rule's route, with its share of the rule's payments when the rule splits.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteProvider {
    /// A configured provider's name.
    pub name: String,
    /// Percent of the rule's payments tried here first; all of a rule's providers have one, or
    /// none does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

/// A rule: what it matches (an empty list matches anything) and the providers it names.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRule {
    /// Shown on the payments it routes.
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub currencies: Vec<Currency>,
    /// Smallest amount matched, in minor units of the rule's currencies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_amount: Option<i64>,
    /// Largest amount matched, in minor units of the rule's currencies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_amount: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<PaymentMethod>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub purposes: Vec<PurposeKind>,
    /// Tried in this order (the weighted pick first, when the rule splits).
    pub providers: Vec<RouteProvider>,
}

/// What a rule looks at.
#[derive(Clone, Copy, Debug)]
pub struct RouteFacts {
    pub amount: Money,
    pub method: PaymentMethod,
    pub purpose: PurposeKind,
}

impl RouteRule {
    fn matches(&self, facts: &RouteFacts) -> bool {
        let minor = facts.amount.minor();
        (self.currencies.is_empty() || self.currencies.contains(&facts.amount.currency()))
            && self.min_amount.is_none_or(|min| minor >= min)
            && self.max_amount.is_none_or(|max| minor <= max)
            && (self.methods.is_empty() || self.methods.contains(&facts.method))
            && (self.purposes.is_empty() || self.purposes.contains(&facts.purpose))
    }

    /// Whether every payment this rule matches is matched by `earlier` too.
    fn covered_by(&self, earlier: &RouteRule) -> bool {
        fn within<T: PartialEq>(inner: &[T], outer: &[T]) -> bool {
            outer.is_empty() || (!inner.is_empty() && inner.iter().all(|x| outer.contains(x)))
        }
        let (min, max) = (
            self.min_amount.unwrap_or(i64::MIN),
            self.max_amount.unwrap_or(i64::MAX),
        );
        within(&self.currencies, &earlier.currencies)
            && within(&self.methods, &earlier.methods)
            && within(&self.purposes, &earlier.purposes)
            && earlier.min_amount.unwrap_or(i64::MIN) <= min
            && earlier.max_amount.unwrap_or(i64::MAX) >= max
    }

    /// The providers in the order to try them: with weights, the one `roll` (0–99) falls on
    /// first, then the others as listed.
    fn order(&self, roll: u32) -> Vec<String> {
        let mut names: Vec<String> = self.providers.iter().map(|p| p.name.clone()).collect();
        if self.providers.iter().all(|p| p.weight.is_some()) {
            let mut upto = 0;
            for (i, p) in self.providers.iter().enumerate() {
                upto += p.weight.unwrap_or(0);
                if roll < upto {
                    let first = names.remove(i);
                    names.insert(0, first);
                    break;
                }
            }
        }
        names
    }
}

/// Why a set of rules is refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RouteProblem {
    /// A provider that is not configured (or the wallet, which routing never picks).
    UnknownProvider,
    /// Weights on some providers only, not 1–100, or not adding up to 100.
    Weights,
    /// A rule that an earlier rule matches entirely, so it would never be used.
    Unreachable,
    /// Anything else: no providers, one named twice, a repeated rule name, min above max,
    /// an amount range without currencies, the wallet method.
    Invalid,
}

impl RouteProblem {
    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            RouteProblem::UnknownProvider => "route_provider_unknown",
            RouteProblem::Weights => "route_weights_invalid",
            RouteProblem::Unreachable => "route_unreachable",
            RouteProblem::Invalid => "route_invalid",
        }
    }
}

/// The most rules a set may hold.
pub const MAX_RULES: usize = 200;

/// Checks a set of rules against the configured providers' names; every problem, each with
/// the path of the field at fault (`rules[2].providers[1].name`).
pub fn check_rules(rules: &[RouteRule], configured: &[&str]) -> Vec<(String, DomainError)> {
    let mut problems = Vec::new();
    let mut fault = |field: String, problem: RouteProblem, message: String| {
        problems.push((field, DomainError::Route(problem, message)));
    };
    if rules.len() > MAX_RULES {
        fault(
            "rules".into(),
            RouteProblem::Invalid,
            format!("at most {MAX_RULES} rules"),
        );
    }
    for (i, rule) in rules.iter().enumerate() {
        let at = |field: &str| format!("rules[{i}].{field}");
        if rule.name.trim().is_empty() || rule.name.chars().count() > 100 {
            fault(
                at("name"),
                RouteProblem::Invalid,
                "a name of 1 to 100 characters".into(),
            );
        } else if rule.name == DEFAULT_RULE || rule.name == REQUESTED_RULE {
            fault(
                at("name"),
                RouteProblem::Invalid,
                format!("{:?} is the name of routes no rule chose", rule.name),
            );
        } else if rules[..i].iter().any(|r| r.name == rule.name) {
            fault(
                at("name"),
                RouteProblem::Invalid,
                format!("rule {:?} is named twice", rule.name),
            );
        }
        if let (Some(min), Some(max)) = (rule.min_amount, rule.max_amount)
            && min > max
        {
            fault(
                at("min_amount"),
                RouteProblem::Invalid,
                "min_amount is above max_amount".into(),
            );
        }
        if (rule.min_amount.is_some() || rule.max_amount.is_some()) && rule.currencies.is_empty() {
            fault(
                at("currencies"),
                RouteProblem::Invalid,
                "an amount range is in minor units of the rule's currencies: name them".into(),
            );
        }
        if rule.methods.contains(&PaymentMethod::Wallet) {
            fault(
                at("methods"),
                RouteProblem::Invalid,
                "wallet payments always go to the wallet, never through routing".into(),
            );
        }
        if rule.providers.is_empty() {
            fault(
                at("providers"),
                RouteProblem::Invalid,
                "name at least one provider".into(),
            );
        }
        for (j, p) in rule.providers.iter().enumerate() {
            if !configured.contains(&p.name.as_str()) || p.name == crate::WALLET_PROVIDER {
                fault(
                    at(&format!("providers[{j}].name")),
                    RouteProblem::UnknownProvider,
                    format!(
                        "provider {:?} is not configured (configured: {})",
                        p.name,
                        configured.join(", ")
                    ),
                );
            } else if rule.providers[..j].iter().any(|q| q.name == p.name) {
                fault(
                    at(&format!("providers[{j}].name")),
                    RouteProblem::Invalid,
                    format!("provider {:?} is named twice", p.name),
                );
            }
        }
        let weighted = rule.providers.iter().filter(|p| p.weight.is_some()).count();
        if weighted > 0 {
            let weights: Vec<u32> = rule.providers.iter().filter_map(|p| p.weight).collect();
            if weighted < rule.providers.len() {
                fault(
                    at("providers"),
                    RouteProblem::Weights,
                    "give every provider of the rule a weight, or none".into(),
                );
            } else if weights.iter().any(|w| !(1..=100).contains(w))
                || weights.iter().sum::<u32>() != 100
            {
                fault(
                    at("providers"),
                    RouteProblem::Weights,
                    format!(
                        "weights are percents from 1 to 100 that add up to 100 (these add up to {})",
                        weights.iter().sum::<u32>()
                    ),
                );
            }
        }
        if let Some(k) = rules[..i]
            .iter()
            .position(|earlier| rule.covered_by(earlier))
        {
            fault(
                format!("rules[{i}]"),
                RouteProblem::Unreachable,
                format!(
                    "rule {:?} matches every payment rule {:?} would, so it is never used",
                    rules[k].name, rule.name
                ),
            );
        }
    }
    problems
}

/// The providers a payment tries, in order, and the rule that chose them.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Route {
    pub rule: String,
    pub providers: Vec<String>,
}

/// The route of a payment: the first matching rule's, else the default provider alone.
/// `roll` (0–99, uniformly drawn by the caller) picks among weighted providers.
pub fn choose(rules: &[RouteRule], facts: &RouteFacts, default: &str, roll: u32) -> Route {
    match rules.iter().find(|r| r.matches(facts)) {
        Some(rule) => Route {
            rule: rule.name.clone(),
            providers: rule.order(roll % 100),
        },
        None => Route {
            rule: DEFAULT_RULE.to_owned(),
            providers: vec![default.to_owned()],
        },
    }
}

/// What happened when a payment tried a provider of its route.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// Skipped: the provider's circuit was open; nothing was sent.
    CircuitOpen,
    /// The provider could not be reached and certainly charged nothing: the payment moved on.
    Unavailable,
    /// The provider charged.
    Succeeded,
    /// The provider refused the charge (a decline, a processing error).
    Failed,
}

impl AttemptOutcome {
    /// The wire spelling (and the metrics label).
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::CircuitOpen => "circuit_open",
            AttemptOutcome::Unavailable => "unavailable",
            AttemptOutcome::Succeeded => "succeeded",
            AttemptOutcome::Failed => "failed",
        }
    }
}

/// One immutable attempt of a payment's route.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct RouteAttempt {
    pub provider: String,
    pub outcome: AttemptOutcome,
    /// Why a provider was passed over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// The route a payment took: the rule, the provider that has the charge now, and each attempt
/// whose outcome is known (the current provider's is added when the charge settles).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Routing {
    pub rule: String,
    pub provider: String,
    pub attempts: Vec<RouteAttempt>,
    /// The providers after `provider`, kept for a payment charged later by a worker.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub next: Vec<String>,
}

impl Routing {
    /// A route starting at `provider`, after the providers `skipped` for an open circuit,
    /// with `next` to try after it.
    pub fn start(
        rule: String,
        provider: String,
        skipped: Vec<RouteAttempt>,
        next: Vec<String>,
    ) -> Self {
        Routing {
            rule,
            provider,
            attempts: skipped,
            next,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(minor: i64) -> Money {
        Money::from_minor(minor, Currency::from_code("USD").unwrap())
    }

    fn facts(amount: Money) -> RouteFacts {
        RouteFacts {
            amount,
            method: PaymentMethod::Card,
            purpose: PurposeKind::Direct,
        }
    }

    fn rule(name: &str, providers: &[(&str, Option<u32>)]) -> RouteRule {
        RouteRule {
            name: name.into(),
            currencies: vec![],
            min_amount: None,
            max_amount: None,
            methods: vec![],
            purposes: vec![],
            providers: providers
                .iter()
                .map(|(n, w)| RouteProvider {
                    name: (*n).into(),
                    weight: *w,
                })
                .collect(),
        }
    }

    fn codes(problems: &[(String, DomainError)]) -> Vec<(String, &'static str)> {
        problems
            .iter()
            .map(|(f, e)| (f.clone(), e.code()))
            .collect()
    }

    #[test]
    fn the_first_matching_rule_wins_and_the_default_takes_the_rest() {
        let mut big = rule("big-usd", &[("paypal", None), ("stripe", None)]);
        big.currencies = vec![Currency::from_code("USD").unwrap()];
        big.min_amount = Some(100_000);
        let cards = rule("cards", &[("stripe", None)]);
        let rules = [big, cards];
        let route = choose(&rules, &facts(usd(100_000)), "mock", 0);
        assert_eq!(route.rule, "big-usd");
        assert_eq!(route.providers, ["paypal", "stripe"]);
        assert_eq!(choose(&rules, &facts(usd(99_999)), "mock", 0).rule, "cards");
        let mut bank = facts(usd(5));
        bank.method = PaymentMethod::BankTransfer;
        let mut only_cards = rules.clone();
        only_cards[1].methods = vec![PaymentMethod::Card];
        let route = choose(&only_cards, &bank, "mock", 0);
        assert_eq!(
            (route.rule.as_str(), route.providers),
            (DEFAULT_RULE, vec!["mock".to_owned()])
        );
    }

    #[test]
    fn weights_pick_the_first_provider_and_the_rest_follow_in_order() {
        let split = rule(
            "split",
            &[("a", Some(70)), ("b", Some(20)), ("c", Some(10))],
        );
        let at =
            |roll| choose(std::slice::from_ref(&split), &facts(usd(1)), "mock", roll).providers;
        assert_eq!(at(0), ["a", "b", "c"]);
        assert_eq!(at(69), ["a", "b", "c"]);
        assert_eq!(at(70), ["b", "a", "c"]);
        assert_eq!(at(89), ["b", "a", "c"]);
        assert_eq!(at(90), ["c", "a", "b"]);
        assert_eq!(at(99), ["c", "a", "b"]);
        let firsts: Vec<String> = (0..100).map(|r| at(r)[0].clone()).collect();
        assert_eq!(firsts.iter().filter(|p| *p == "a").count(), 70);
        assert_eq!(firsts.iter().filter(|p| *p == "c").count(), 10);
    }

    #[test]
    fn bad_rules_are_refused_with_the_field_at_fault() {
        let configured = ["mock", "stripe"];
        let mut ranged = rule("ranged", &[("stripe", None)]);
        ranged.min_amount = Some(10);
        ranged.max_amount = Some(5);
        let mut wallet = rule("wallet", &[("stripe", None)]);
        wallet.methods = vec![PaymentMethod::Wallet];
        let rules = [
            rule("unknown", &[("adyen", None), ("wallet", None)]),
            rule("some-weights", &[("mock", Some(50)), ("stripe", None)]),
            rule("bad-sum", &[("mock", Some(50)), ("stripe", Some(40))]),
            rule("twice", &[("mock", None), ("mock", None)]),
            ranged,
            wallet,
            rule("empty", &[]),
        ];
        // Each in a currency of its own (but the one with the bad range), so that none
        // covers another.
        let mut rules = rules;
        for (r, code) in rules
            .iter_mut()
            .zip(["USD", "EUR", "GBP", "JPY", "", "CHF", "SEK"])
        {
            if !code.is_empty() {
                r.currencies = vec![Currency::from_code(code).unwrap()];
            }
        }
        assert_eq!(
            codes(&check_rules(&rules, &configured)),
            [
                (
                    "rules[0].providers[0].name".to_owned(),
                    "route_provider_unknown"
                ),
                (
                    "rules[0].providers[1].name".to_owned(),
                    "route_provider_unknown"
                ),
                ("rules[1].providers".to_owned(), "route_weights_invalid"),
                ("rules[2].providers".to_owned(), "route_weights_invalid"),
                ("rules[3].providers[1].name".to_owned(), "route_invalid"),
                ("rules[4].min_amount".to_owned(), "route_invalid"),
                ("rules[4].currencies".to_owned(), "route_invalid"),
                ("rules[5].methods".to_owned(), "route_invalid"),
                ("rules[6].providers".to_owned(), "route_invalid"),
            ]
        );
        assert!(
            check_rules(
                &[rule("ok", &[("mock", Some(60)), ("stripe", Some(40))])],
                &configured
            )
            .is_empty()
        );
    }

    #[test]
    fn a_rule_an_earlier_one_covers_is_unreachable() {
        let usd_code = Currency::from_code("USD").unwrap();
        let eur = Currency::from_code("EUR").unwrap();
        let mut small = rule("small-usd", &[("mock", None)]);
        small.currencies = vec![usd_code];
        small.max_amount = Some(10_000);
        let mut smaller = rule("smaller-usd", &[("stripe", None)]);
        smaller.currencies = vec![usd_code];
        smaller.min_amount = Some(100);
        smaller.max_amount = Some(5_000);
        let mut eur_small = smaller.clone();
        eur_small.name = "smaller-eur".into();
        eur_small.currencies = vec![eur];
        let mut wider = smaller.clone();
        wider.name = "wider-usd".into();
        wider.max_amount = Some(20_000);
        let configured = ["mock", "stripe"];
        assert_eq!(
            codes(&check_rules(&[small.clone(), smaller], &configured)),
            [("rules[1]".to_owned(), "route_unreachable")]
        );
        assert!(check_rules(&[small.clone(), eur_small, wider], &configured).is_empty());
        assert_eq!(
            codes(&check_rules(
                &[rule("all", &[("mock", None)]), small],
                &configured
            )),
            [("rules[1]".to_owned(), "route_unreachable")]
        );
    }

    #[test]
    fn rules_read_from_toml_and_json_alike() {
        let toml_text = r#"
            [[rules]]
            name = "eu-split"
            currencies = ["EUR"]
            max_amount = 50000
            purposes = ["order", "direct"]
            providers = [{ name = "stripe", weight = 70 }, { name = "paypal", weight = 30 }]
        "#;
        #[derive(Deserialize)]
        struct File {
            rules: Vec<RouteRule>,
        }
        let file: File = toml::from_str(toml_text).unwrap();
        let json = serde_json::to_value(&file.rules).unwrap();
        assert_eq!(
            json,
            serde_json::json!([{"name": "eu-split", "currencies": ["EUR"], "max_amount": 50000,
                "purposes": ["order", "direct"],
                "providers": [{"name": "stripe", "weight": 70}, {"name": "paypal", "weight": 30}]}])
        );
        let back: Vec<RouteRule> = serde_json::from_value(json).unwrap();
        assert_eq!(back, file.rules);
        assert!(
            serde_json::from_value::<RouteRule>(
                serde_json::json!({"name": "x", "providers": [], "currency": ["EUR"]})
            )
            .is_err()
        );
    }
}
