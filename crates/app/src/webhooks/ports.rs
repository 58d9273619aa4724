//! What the webhooks context needs: a store of endpoints and deliveries, and a sender.

use std::time::Duration;

use async_trait::async_trait;
use portside_domain::webhook::delivery::{
    Attempt, DeliveryId, DeliveryStatus, DisabledReason, WebhookDelivery,
};
use portside_domain::webhook::{EndpointId, WebhookEndpoint};
use portside_kernel::{PageRequest, StoreError};
use time::OffsetDateTime;
use uuid::Uuid;

/// Webhook endpoints.
#[async_trait]
pub trait WebhookEndpointStore: Send + Sync {
    /// Stores a new endpoint unless `limit` endpoints exist already (`Refused`,
    /// `webhook_endpoints_limit`), checked in the same transaction.
    async fn insert_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        limit: u32,
    ) -> Result<(), StoreError>;

    /// One endpoint.
    async fn endpoint(&self, id: EndpointId) -> Result<Option<WebhookEndpoint>, StoreError>;

    /// Up to `page.limit` endpoints, oldest first.
    async fn endpoints(
        &self,
        page: PageRequest<EndpointId>,
    ) -> Result<Vec<WebhookEndpoint>, StoreError>;

    /// Saves an endpoint's changes (last write wins); false if there is no such endpoint.
    async fn update_endpoint(&self, endpoint: &WebhookEndpoint) -> Result<bool, StoreError>;

    /// Deletes an endpoint; false if there was none.
    async fn delete_endpoint(&self, id: EndpointId) -> Result<bool, StoreError>;
}

/// A delivery with its attempts, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub delivery: WebhookDelivery,
    pub attempts: Vec<Attempt>,
}

/// Which deliveries a list holds; `None` for any.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub endpoint: Option<EndpointId>,
    pub event: Option<Uuid>,
    pub status: Option<DeliveryStatus>,
}

/// The pending deliveries of one endpoint, for the gauges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingFigures {
    pub endpoint: EndpointId,
    pub pending: u64,
    pub oldest: OffsetDateTime,
}

/// Deliveries, their attempts, and the endpoints' health as delivery sees it.
#[async_trait]
pub trait WebhookDeliveryStore: Send + Sync {
    /// The enabled endpoints: those an event may be delivered to.
    async fn enabled_endpoints(&self) -> Result<Vec<WebhookEndpoint>, StoreError>;

    /// Stores deliveries in one transaction; one that exists already for its endpoint and
    /// event is left as it is (an event handled again enqueues nothing twice).
    async fn enqueue(&self, deliveries: &[WebhookDelivery]) -> Result<(), StoreError>;

    /// The enabled endpoints that have deliveries due at `now`.
    async fn due_endpoints(&self, now: OffsetDateTime) -> Result<Vec<WebhookEndpoint>, StoreError>;

    /// Takes up to `limit` deliveries of the endpoint due at `now`, oldest due first, and
    /// leases them: they are due again at `lease_until`, so one whose attempt is never
    /// recorded (the process died) is sent again, with the same `webhook-id`.
    async fn claim(
        &self,
        endpoint: EndpointId,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>, StoreError>;

    /// Saves deliveries after an attempt each, with their attempts, in one transaction (an
    /// attempt recorded before is kept once).
    async fn record_attempts(
        &self,
        attempts: &[(WebhookDelivery, Attempt)],
    ) -> Result<(), StoreError>;

    /// An attempt to the endpoint succeeded: it is failing no more.
    async fn endpoint_succeeded(&self, endpoint: EndpointId) -> Result<(), StoreError>;

    /// An attempt to the endpoint failed: since when it has been failing (`now`, unless it was
    /// already).
    async fn endpoint_failed(
        &self,
        endpoint: EndpointId,
        now: OffsetDateTime,
    ) -> Result<Option<OffsetDateTime>, StoreError>;

    /// Disables an enabled endpoint and writes `webhook_endpoint.disabled` to the outbox in the
    /// same transaction; false if it was not enabled (nothing written).
    async fn disable_endpoint(
        &self,
        endpoint: EndpointId,
        reason: DisabledReason,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// One delivery.
    async fn delivery(&self, id: DeliveryId) -> Result<Option<DeliveryRecord>, StoreError>;

    /// Up to `page.limit` deliveries matching `filter`, oldest first.
    async fn deliveries(
        &self,
        filter: &DeliveryFilter,
        page: PageRequest<DeliveryId>,
    ) -> Result<Vec<DeliveryRecord>, StoreError>;

    /// Makes a delivery pending and due at `now`, whatever its status; false if there is none.
    async fn retry_now(&self, id: DeliveryId, now: OffsetDateTime) -> Result<bool, StoreError>;

    /// Makes the endpoint's failed deliveries created since `since` pending and due at `now`;
    /// how many.
    async fn recover(
        &self,
        endpoint: EndpointId,
        since: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError>;

    /// Pending deliveries per endpoint that has any.
    async fn pending(&self) -> Result<Vec<PendingFigures>, StoreError>;
}

/// One signed request to an endpoint.
#[derive(Debug, Clone)]
pub struct WebhookRequest<'a> {
    pub url: &'a str,
    /// `webhook-id`.
    pub id: &'a str,
    /// `webhook-timestamp`, Unix seconds.
    pub timestamp: i64,
    /// `webhook-signature`.
    pub signature: &'a str,
    pub body: &'a str,
}

/// What came back: a status and the start of the body, or why nothing did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookResponse {
    pub status_code: Option<u16>,
    /// At most [`RESPONSE_KEPT`](portside_domain::webhook::delivery::RESPONSE_KEPT) bytes.
    pub body: Option<String>,
    pub error: Option<String>,
}

/// Sends webhook requests over HTTP: within `timeout`, no redirects followed, to public
/// addresses only unless the deployment allows private ones.
#[async_trait]
pub trait WebhookSender: Send + Sync {
    async fn send(&self, request: WebhookRequest<'_>, timeout: Duration) -> WebhookResponse;
}
