//! Outgoing webhooks (issue 21), first slice: administrators register the endpoints that want
//! Portside's events, each with a signing secret Portside makes (shown at creation and by an
//! explicit reveal, never in lists). Deliveries, retries and rotation come next.

mod ports;
#[cfg(test)]
mod tests;

pub use ports::WebhookEndpointStore;

use std::sync::Arc;

use portside_domain::webhook::{
    EndpointId, SECRET_BYTES, UrlPolicy, WebhookEndpoint, WebhookSecret,
};
use portside_domain::{Actor, DomainError};
use portside_events::CATALOG;
use portside_kernel::{Clock, IdGenerator, Page, PageRequest, StoreError};
use rand::RngCore;

use crate::AppError;

/// Tunables of the webhooks context.
#[derive(Debug, Clone, Copy)]
pub struct WebhookSettings {
    pub urls: UrlPolicy,
    /// At most this many endpoints (a documented limit: each one is a consumer of every event).
    pub max_endpoints: u32,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            urls: UrlPolicy::default(),
            max_endpoints: 100,
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

/// The webhook endpoints' use cases (administrators only).
pub struct WebhookEndpoints {
    store: Arc<dyn WebhookEndpointStore>,
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
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        settings: WebhookSettings,
    ) -> Self {
        WebhookEndpoints {
            store,
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
        if let Some(unknown) = new
            .event_types
            .iter()
            .flatten()
            .find(|t| !CATALOG.iter().any(|(known, _)| known == t))
        {
            return Err(AppError::Invalid {
                field: "event_types",
                error: DomainError::InvalidEventTypes(format!(
                    "{unknown:?} is not an event type Portside sends (docs/EVENTS.md)"
                )),
            });
        }
        let mut key = [0u8; SECRET_BYTES];
        rand::rng().fill_bytes(&mut key);
        let endpoint = WebhookEndpoint::create(
            EndpointId(self.ids.new_id()),
            &new.url,
            new.description,
            new.event_types,
            WebhookSecret::from_key(key),
            self.settings.urls,
            self.clock.now(),
        )
        .map_err(|error| {
            let field = match error {
                DomainError::InvalidWebhookUrl(_) => "url",
                DomainError::InvalidEventTypes(_) => "event_types",
                _ => "description",
            };
            AppError::Invalid { field, error }
        })?;
        match self
            .store
            .insert_endpoint(&endpoint, self.settings.max_endpoints)
            .await
        {
            Ok(()) => Ok(endpoint),
            Err(StoreError::Refused { code, detail, .. }) => Err(AppError::Refused {
                conflict: true,
                refusals: vec![crate::Refusal {
                    field: "url".into(),
                    code,
                    message: detail,
                }],
            }),
            Err(e) => Err(e.into()),
        }
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
