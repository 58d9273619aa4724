//! The composition of the use cases: every use case and consumer group of this version, built
//! from ports in one place. The binary, the HTTP suite and the bench build their application
//! here, each with the adapters it chose, so the list of use cases is written once.

use std::sync::Arc;
use std::time::Duration;

use portside_domain::{Currency, Money};
use portside_events::worker::{EventHandler, Subscription};
use portside_events::{AuditLog, DeadLetters, EventHistory};
use portside_kernel::{Cache, Clock, IdGenerator};

use crate::catalog::{Catalog, CatalogRepository};
use crate::dead_letters::DeadLetterDesk;
use crate::history::EventLog;
use crate::ledger::{Ledger, LedgerStore};
use crate::memberships::{MembershipUpgrade, Memberships};
use crate::messages::{MessageRepository, Messages};
use crate::orders::{
    CancellationRefunds, OrderConfirmation, OrderRepository, OrderStreamFeed, OrderStreamPorts,
    Orders,
};
use crate::payments::notices::Notices;
use crate::payments::{
    IdempotencyStore, PaymentRepository, PaymentSettings, Payments, ProviderEvents, Providers,
    SubmittedCharges, WebhookVerifier,
};
use crate::routing::{Routing, RoutingStore};
use crate::search::{Search, SearchIndex, SearchProjection};
use crate::users::cache::UserCache;
use crate::users::{PasswordHasher, RefreshTokens, TokenService, UserRepository, Users};
use crate::wallets::{TransferStore, Wallets};
use crate::webhooks::{
    DispatchSettings, WebhookDeliveryStore, WebhookDispatcher, WebhookEndpointStore,
    WebhookEndpoints, WebhookFanOut, WebhookSender, WebhookSettings,
};
use portside_domain::routing::RouteRule;

/// The consumer groups of this version and what each wants: what a relay declares before it
/// publishes, and what the dead-letter commands know, without building the consumers.
pub const SUBSCRIPTIONS: &[Subscription] = &[
    SubmittedCharges::SUBSCRIPTION,
    MembershipUpgrade::SUBSCRIPTION,
    OrderConfirmation::SUBSCRIPTION,
    CancellationRefunds::SUBSCRIPTION,
    OrderStreamFeed::SUBSCRIPTION,
    SearchProjection::SUBSCRIPTION,
    AuditLog::SUBSCRIPTION,
    WebhookFanOut::SUBSCRIPTION,
];

/// The store ports of every context.
#[derive(Clone)]
pub struct StorePorts {
    pub payments: Arc<dyn PaymentRepository>,
    pub keys: Arc<dyn IdempotencyStore>,
    pub provider_events: Arc<dyn ProviderEvents>,
    pub users: Arc<dyn UserRepository>,
    pub refresh_tokens: Arc<dyn RefreshTokens>,
    pub messages: Arc<dyn MessageRepository>,
    pub orders: Arc<dyn OrderRepository>,
    pub catalog: Arc<dyn CatalogRepository>,
    pub history: Arc<dyn EventHistory>,
    pub ledger: Arc<dyn LedgerStore>,
    pub transfers: Arc<dyn TransferStore>,
    pub webhook_endpoints: Arc<dyn WebhookEndpointStore>,
    pub webhook_deliveries: Arc<dyn WebhookDeliveryStore>,
    pub routing: Arc<dyn RoutingStore>,
}

impl StorePorts {
    /// The ports of one store that implements them all (the SQL store, the in-memory fake).
    pub fn of<S>(store: Arc<S>) -> Self
    where
        S: PaymentRepository
            + IdempotencyStore
            + ProviderEvents
            + UserRepository
            + RefreshTokens
            + MessageRepository
            + OrderRepository
            + CatalogRepository
            + EventHistory
            + LedgerStore
            + TransferStore
            + WebhookEndpointStore
            + WebhookDeliveryStore
            + RoutingStore
            + 'static,
    {
        StorePorts {
            payments: store.clone(),
            keys: store.clone(),
            provider_events: store.clone(),
            users: store.clone(),
            refresh_tokens: store.clone(),
            messages: store.clone(),
            orders: store.clone(),
            catalog: store.clone(),
            history: store.clone(),
            ledger: store.clone(),
            transfers: store.clone(),
            webhook_endpoints: store.clone(),
            webhook_deliveries: store.clone(),
            routing: store,
        }
    }
}

/// Every port the use cases drive.
pub struct Ports {
    pub store: StorePorts,
    pub index: Arc<dyn SearchIndex>,
    pub cache: Arc<dyn Cache>,
    pub providers: Providers,
    /// The verifier of each provider whose webhooks are accepted, by provider name.
    pub verifiers: Vec<(String, Arc<dyn WebhookVerifier>)>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub tokens: Arc<dyn TokenService>,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdGenerator>,
    /// Seed 003's `orders:events` stream, when one is configured.
    pub order_stream: Option<OrderStreamPorts>,
    /// The bus's dead letters, which administrators operate.
    pub dead_letters: Arc<dyn DeadLetters>,
    /// Sends outgoing webhooks.
    pub webhook_sender: Arc<dyn WebhookSender>,
}

/// What the use cases are told rather than asked.
#[derive(Debug, Clone)]
pub struct Settings {
    pub payments: PaymentSettings,
    pub membership_price: Money,
    /// What one membership payment buys.
    pub membership_period: time::Duration,
    /// The currency of an order placed without one.
    pub order_currency: Currency,
    /// How long a cached user profile may be served.
    pub user_cache_ttl: Duration,
    pub refresh_token_ttl: time::Duration,
    pub webhooks: WebhookSettings,
    pub webhook_dispatch: DispatchSettings,
    /// The configuration file's routing rules, already checked with [`Routing::check`].
    pub routing_rules: Vec<RouteRule>,
}

/// The use cases of this version and its consumer groups.
pub struct Application {
    pub payments: Arc<Payments>,
    pub users: Arc<Users>,
    pub messages: Arc<Messages>,
    pub memberships: Arc<Memberships>,
    pub catalog: Arc<Catalog>,
    pub orders: Arc<Orders>,
    pub search: Arc<Search>,
    /// The payment providers' webhooks.
    pub notices: Arc<Notices>,
    pub dead_letters: Arc<DeadLetterDesk>,
    /// Payments' and orders' events.
    pub history: Arc<EventLog>,
    /// The books.
    pub ledger: Arc<Ledger>,
    /// Customers' wallets: balances, top-ups, transfers.
    pub wallets: Arc<Wallets>,
    /// The endpoints that want Portside's events, and their deliveries.
    pub webhook_endpoints: Arc<WebhookEndpoints>,
    /// Sends the deliveries: run by the processes that run the consumer groups.
    pub webhook_dispatcher: Arc<WebhookDispatcher>,
    /// The rules that choose a payment's providers.
    pub routing: Arc<Routing>,
    consumers: Vec<Arc<dyn EventHandler>>,
}

impl Application {
    /// Builds every use case and consumer from `ports`.
    pub fn new(ports: Ports, settings: Settings) -> Self {
        let Ports {
            store,
            index,
            cache,
            providers,
            verifiers,
            hasher,
            tokens,
            clock,
            ids,
            order_stream,
            dead_letters,
            webhook_sender,
        } = ports;
        let wake = Arc::new(tokio::sync::Notify::new());
        let routing = Arc::new(Routing::new(
            store.routing.clone(),
            settings.routing_rules,
            providers.names(),
            providers.default_name().to_owned(),
            clock.clone(),
        ));
        let payments = Arc::new(
            Payments::new(
                store.payments.clone(),
                store.keys,
                providers,
                clock.clone(),
                ids.clone(),
                settings.payments,
            )
            .with_router(routing.clone()),
        );
        let users = Arc::new(Users::new(
            store.users.clone(),
            store.refresh_tokens,
            hasher,
            tokens,
            UserCache::new(cache, settings.user_cache_ttl),
            clock.clone(),
            ids.clone(),
            settings.refresh_token_ttl,
        ));
        let notices = verifiers.into_iter().fold(
            Notices::new(store.provider_events, payments.clone(), clock.clone()),
            |notices, (provider, verifier)| notices.with(&provider, verifier),
        );
        let orders = Arc::new(Orders::new(
            store.orders.clone(),
            store.catalog.clone(),
            payments.clone(),
            clock.clone(),
            ids.clone(),
            settings.order_currency,
        ));
        let consumers: Vec<Arc<dyn EventHandler>> = vec![
            Arc::new(SubmittedCharges::new(payments.clone())),
            Arc::new(MembershipUpgrade::new(
                users.clone(),
                settings.membership_price,
                settings.membership_period,
            )),
            Arc::new(OrderConfirmation::new(orders.clone())),
            Arc::new(CancellationRefunds::new(orders.clone())),
            Arc::new(OrderStreamFeed::new(store.orders.clone(), order_stream)),
            Arc::new(SearchProjection::new(index.clone())),
            Arc::new(AuditLog::new(store.history.clone())),
            Arc::new(WebhookFanOut::new(
                store.webhook_deliveries.clone(),
                clock.clone(),
                ids.clone(),
                wake.clone(),
            )),
        ];
        let groups = consumers.iter().map(|c| c.group().to_owned()).collect();
        Application {
            dead_letters: Arc::new(DeadLetterDesk::new(dead_letters, groups)),
            history: Arc::new(EventLog::new(
                store.history,
                payments.clone(),
                orders.clone(),
            )),
            ledger: Arc::new(Ledger::new(store.ledger.clone())),
            wallets: Arc::new(Wallets::new(
                store.transfers,
                store.ledger,
                store.users.clone(),
                payments.clone(),
                clock.clone(),
                ids.clone(),
                settings.payments.amount_limit,
            )),
            webhook_dispatcher: Arc::new(WebhookDispatcher::new(
                store.webhook_deliveries.clone(),
                webhook_sender,
                clock.clone(),
                settings.webhook_dispatch,
                wake.clone(),
            )),
            webhook_endpoints: Arc::new(WebhookEndpoints::new(
                store.webhook_endpoints,
                store.webhook_deliveries,
                wake,
                clock.clone(),
                ids.clone(),
                settings.webhooks,
            )),
            messages: Arc::new(Messages::new(store.messages, clock.clone(), ids)),
            memberships: Arc::new(Memberships::new(
                payments.clone(),
                settings.membership_price,
            )),
            search: Arc::new(Search::new(
                index,
                store.orders,
                store.payments,
                store.catalog.clone(),
            )),
            notices: Arc::new(notices),
            catalog: Arc::new(Catalog::new(store.catalog, clock.clone())),
            payments,
            users,
            orders,
            routing,
            consumers,
        }
    }

    /// The consumer groups of this version, one handler each.
    pub fn consumers(&self) -> &[Arc<dyn EventHandler>] {
        &self.consumers
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use portside_domain::Currency;
    use time::OffsetDateTime;

    use super::*;
    use crate::search::{SearchDocument, SearchError, SearchQuery, SearchResults};
    use crate::testing::fakes::{
        FakeReceiver, FakeTokens, FlakyCache, InMemoryStore, ManualClock, NoDeadLetters,
        PlainHasher, ScriptedProvider, SequentialIds,
    };

    /// An index this test never reaches.
    struct Unreachable;

    #[async_trait]
    impl SearchIndex for Unreachable {
        async fn upsert(&self, _: &[SearchDocument]) -> Result<usize, SearchError> {
            Err(SearchError::Unavailable("not in this test".into()))
        }
        async fn delete(&self, _: &str) -> Result<bool, SearchError> {
            Err(SearchError::Unavailable("not in this test".into()))
        }
        async fn get(&self, _: &str) -> Result<Option<SearchDocument>, SearchError> {
            Err(SearchError::Unavailable("not in this test".into()))
        }
        async fn search(&self, _: &SearchQuery) -> Result<SearchResults, SearchError> {
            Err(SearchError::Unavailable("not in this test".into()))
        }
    }

    #[test]
    fn a_relay_declares_exactly_the_consumers_the_application_runs() {
        let clock = Arc::new(ManualClock::at(OffsetDateTime::UNIX_EPOCH));
        let app = Application::new(
            Ports {
                store: StorePorts::of(Arc::new(InMemoryStore::new())),
                index: Arc::new(Unreachable),
                cache: Arc::new(FlakyCache::default()),
                providers: Providers::new("scripted", Arc::new(ScriptedProvider::answering([]))),
                verifiers: Vec::new(),
                hasher: Arc::new(PlainHasher),
                tokens: Arc::new(FakeTokens::new(clock.clone(), time::Duration::minutes(15))),
                clock,
                ids: Arc::new(SequentialIds::default()),
                order_stream: None,
                dead_letters: Arc::new(NoDeadLetters),
                webhook_sender: Arc::new(FakeReceiver::default()),
            },
            Settings {
                payments: PaymentSettings::default(),
                membership_price: Money::from_minor(999, Currency::from_code("USD").unwrap()),
                membership_period: time::Duration::days(30),
                webhooks: WebhookSettings::default(),
                order_currency: Currency::from_code("USD").unwrap(),
                user_cache_ttl: Duration::from_secs(60),
                refresh_token_ttl: time::Duration::days(30),
                webhook_dispatch: Default::default(),
                routing_rules: Vec::new(),
            },
        );
        let built: Vec<Subscription> = app
            .consumers()
            .iter()
            .map(|c| Subscription {
                group: c.group(),
                event_types: c.event_types(),
            })
            .collect();
        assert_eq!(built, SUBSCRIPTIONS);
    }
}
