//! Outgoing webhooks: administrators register the endpoints that want Portside's events, each
//! with a signing secret Portside makes (shown at creation and by an explicit reveal, never in
//! lists); the `webhooks` consumer group turns events into deliveries ([`fan_out`]), the
//! dispatcher sends them on a retry schedule ([`dispatch`]), and administrators see every
//! attempt, retry one delivery, recover what failed, and send a test event.

mod dispatch;
mod fan_out;
mod ports;
#[cfg(test)]
mod tests;

pub use dispatch::{DispatchSettings, WebhookDispatcher};
pub use fan_out::{WebhookFanOut, body};
pub use ports::{
    DeliveryFilter, DeliveryRecord, PendingFigures, WebhookDeliveryStore, WebhookEndpointStore,
    WebhookRequest, WebhookResponse, WebhookSender,
};

use std::sync::Arc;

use portside_domain::webhook::delivery::{DeliveryId, WebhookDelivery};
use portside_domain::webhook::{
    EndpointChanges, EndpointId, SECRET_BYTES, UrlPolicy, WebhookEndpoint, WebhookSecret,
};
use portside_domain::{Actor, DomainError};
use portside_events::CATALOG;
use portside_kernel::{Clock, IdGenerator, Page, PageRequest, StoreError};
use rand::RngCore;
use time::OffsetDateTime;
use tokio::sync::Notify;

use crate::AppError;

/// Tunables of the webhooks context.
#[derive(Debug, Clone, Copy)]
pub struct WebhookSettings {
    pub urls: UrlPolicy,
    /// At most this many endpoints (a documented limit: each one is a consumer of every event).
    pub max_endpoints: u32,
    /// How long a rotated secret keeps signing beside the new one.
    pub rotation_overlap: time::Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            urls: UrlPolicy::default(),
            max_endpoints: 100,
            rotation_overlap: time::Duration::hours(24),
        }
    }
}

/// The refusal of an endpoint beyond the limit, as every store reports it.
pub fn limit_reached(limit: u32) -> StoreError {
    StoreError::Refused {
        code: "webhook_endpoints_limit".into(),
        subject: "url".into(),
        detail: format!("at most {limit} webhook endpoints; delete one first"),
    }
}

/// An endpoint asked for.
#[derive(Debug, Clone)]
pub struct NewEndpoint {
    pub url: String,
    pub description: Option<String>,
    /// `None`: every event type.
    pub event_types: Option<Vec<String>>,
}

/// The type of the event [`WebhookEndpoints::send_test`] sends (only on request, never
/// subscribed to).
pub const TEST_EVENT: &str = "webhook_endpoint.test";

/// The webhook endpoints' use cases (administrators only).
pub struct WebhookEndpoints {
    store: Arc<dyn WebhookEndpointStore>,
    deliveries: Arc<dyn WebhookDeliveryStore>,
    /// Wakes this process's dispatcher for a delivery made due now.
    wake: Arc<Notify>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    settings: WebhookSettings,
}

fn admin(actor: &Actor) -> Result<(), AppError> {
    if actor.is_admin() {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "only administrators manage webhook endpoints",
        ))
    }
}

impl WebhookEndpoints {
    pub fn new(
        store: Arc<dyn WebhookEndpointStore>,
        deliveries: Arc<dyn WebhookDeliveryStore>,
        wake: Arc<Notify>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        settings: WebhookSettings,
    ) -> Self {
        WebhookEndpoints {
            store,
            deliveries,
            wake,
            clock,
            ids,
            settings,
        }
    }

    /// Registers an endpoint with a new secret (returned with it: the one time it is shown
    /// without asking).
    pub async fn create(
        &self,
        actor: &Actor,
        new: NewEndpoint,
    ) -> Result<WebhookEndpoint, AppError> {
        admin(actor)?;
        known_types(new.event_types.as_ref())?;
        let endpoint = WebhookEndpoint::create(
            EndpointId(self.ids.new_id()),
            &new.url,
            new.description,
            new.event_types,
            new_secret(),
            self.settings.urls,
            self.clock.now(),
        )
        .map_err(refused)?;
        self.store
            .insert_endpoint(&endpoint, self.settings.max_endpoints)
            .await?;
        Ok(endpoint)
    }

    /// One endpoint (its secret is only for [`Self::reveal_secret`]).
    pub async fn get(&self, actor: &Actor, id: EndpointId) -> Result<WebhookEndpoint, AppError> {
        admin(actor)?;
        self.store
            .endpoint(id)
            .await?
            .ok_or(AppError::NotFound("webhook_endpoint"))
    }

    /// The endpoint's signing secret, `whsec_…`.
    pub async fn reveal_secret(&self, actor: &Actor, id: EndpointId) -> Result<String, AppError> {
        Ok(self.get(actor, id).await?.secret.reveal())
    }

    /// Endpoints, oldest first.
    pub async fn list(
        &self,
        actor: &Actor,
        page: PageRequest<EndpointId>,
    ) -> Result<Page<WebhookEndpoint, EndpointId>, AppError> {
        admin(actor)?;
        let found = self.store.endpoints(page.probe()).await?;
        Ok(page.page(found, |e| e.id))
    }

    /// Changes an endpoint's URL, description, event types or whether it is enabled.
    pub async fn update(
        &self,
        actor: &Actor,
        id: EndpointId,
        changes: EndpointChanges,
    ) -> Result<WebhookEndpoint, AppError> {
        let mut endpoint = self.get(actor, id).await?;
        if let Some(types) = &changes.event_types {
            known_types(types.as_ref())?;
        }
        endpoint
            .change(changes, self.settings.urls, self.clock.now())
            .map_err(refused)?;
        self.save(endpoint).await
    }

    /// Gives the endpoint a new secret; the old one signs beside it for the configured overlap.
    /// Returns the endpoint with its new secret.
    pub async fn rotate_secret(
        &self,
        actor: &Actor,
        id: EndpointId,
    ) -> Result<WebhookEndpoint, AppError> {
        let mut endpoint = self.get(actor, id).await?;
        endpoint.rotate(
            new_secret(),
            self.settings.rotation_overlap,
            self.clock.now(),
        );
        self.save(endpoint).await
    }

    async fn save(&self, endpoint: WebhookEndpoint) -> Result<WebhookEndpoint, AppError> {
        if self.store.update_endpoint(&endpoint).await? {
            Ok(endpoint)
        } else {
            Err(AppError::NotFound("webhook_endpoint"))
        }
    }

    /// Removes an endpoint.
    pub async fn delete(&self, actor: &Actor, id: EndpointId) -> Result<(), AppError> {
        admin(actor)?;
        if self.store.delete_endpoint(id).await? {
            Ok(())
        } else {
            Err(AppError::NotFound("webhook_endpoint"))
        }
    }
}

impl WebhookEndpoints {
    /// Deliveries with their attempts, oldest first.
    pub async fn deliveries(
        &self,
        actor: &Actor,
        filter: DeliveryFilter,
        page: PageRequest<DeliveryId>,
    ) -> Result<Page<DeliveryRecord, DeliveryId>, AppError> {
        admin(actor)?;
        let found = self.deliveries.deliveries(&filter, page.probe()).await?;
        Ok(page.page(found, |d| d.delivery.id))
    }

    /// One delivery with its attempts.
    pub async fn delivery(
        &self,
        actor: &Actor,
        id: DeliveryId,
    ) -> Result<DeliveryRecord, AppError> {
        admin(actor)?;
        self.deliveries
            .delivery(id)
            .await?
            .ok_or(AppError::NotFound("webhook_delivery"))
    }

    /// Sends a delivery again now, whatever its status (same `webhook-id`).
    pub async fn retry(&self, actor: &Actor, id: DeliveryId) -> Result<DeliveryRecord, AppError> {
        admin(actor)?;
        if !self.deliveries.retry_now(id, self.clock.now()).await? {
            return Err(AppError::NotFound("webhook_delivery"));
        }
        self.wake.notify_one();
        self.delivery(actor, id).await
    }

    /// Sends again every delivery to the endpoint that failed and was created since `since`;
    /// how many.
    pub async fn recover(
        &self,
        actor: &Actor,
        endpoint: EndpointId,
        since: OffsetDateTime,
    ) -> Result<u64, AppError> {
        self.get(actor, endpoint).await?;
        let n = self
            .deliveries
            .recover(endpoint, since, self.clock.now())
            .await?;
        self.wake.notify_one();
        Ok(n)
    }

    /// Sends the endpoint a `webhook_endpoint.test` event, whatever types it wants.
    pub async fn send_test(
        &self,
        actor: &Actor,
        endpoint: EndpointId,
    ) -> Result<DeliveryRecord, AppError> {
        self.get(actor, endpoint).await?;
        let now = self.clock.now();
        let event = self.ids.new_id();
        let data = serde_json::json!({
            "endpoint_id": endpoint.to_string(),
            "message": "a test event, sent by an administrator",
        });
        let delivery = WebhookDelivery::new(
            DeliveryId(self.ids.new_id()),
            endpoint,
            event,
            TEST_EVENT,
            body(TEST_EVENT, now, &data),
            now,
        );
        self.deliveries
            .enqueue(std::slice::from_ref(&delivery))
            .await?;
        self.wake.notify_one();
        Ok(DeliveryRecord {
            delivery,
            attempts: Vec::new(),
        })
    }
}

/// A secret from the operating system's CSPRNG.
fn new_secret() -> WebhookSecret {
    let mut key = [0u8; SECRET_BYTES];
    rand::rng().fill_bytes(&mut key);
    WebhookSecret::from_key(key)
}

/// Refuses event types Portside does not send.
fn known_types(types: Option<&Vec<String>>) -> Result<(), AppError> {
    match types
        .into_iter()
        .flatten()
        .find(|t| !CATALOG.iter().any(|(known, _)| known == t))
    {
        Some(unknown) => Err(AppError::Invalid {
            field: "event_types",
            error: DomainError::InvalidEventTypes(format!(
                "{unknown:?} is not an event type Portside sends (docs/EVENTS.md)"
            )),
        }),
        None => Ok(()),
    }
}

/// An endpoint's rule broken, named by its field.
fn refused(error: DomainError) -> AppError {
    let field = match error {
        DomainError::InvalidWebhookUrl(_) => "url",
        DomainError::InvalidEventTypes(_) => "event_types",
        _ => "description",
    };
    AppError::Invalid { field, error }
}
