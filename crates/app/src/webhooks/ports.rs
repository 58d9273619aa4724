//! What the webhooks context needs of a store: its endpoints.

use async_trait::async_trait;
use portside_domain::webhook::{EndpointId, WebhookEndpoint};
use portside_kernel::{PageRequest, StoreError};

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
