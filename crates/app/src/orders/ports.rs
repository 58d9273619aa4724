//! Ports of the ordering context.

use async_trait::async_trait;
use portside_domain::{CustomerId, Order, OrderId, OrderStatus};
use time::OffsetDateTime;

use crate::payments::idempotency::IdempotentRequest;
use portside_events::InboxMark;
use portside_kernel::{PageRequest, StoreError};

/// Which orders to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderFilter {
    /// Only this customer's.
    pub customer_id: Option<CustomerId>,
    /// Only in this status.
    pub status: Option<OrderStatus>,
    /// Placed strictly after.
    pub created_after: Option<OffsetDateTime>,
    /// Placed at or before (the expiry of unpaid orders).
    pub created_before: Option<OffsetDateTime>,
}

/// Orders and their outbox events; each write is one DB transaction.
#[async_trait]
pub trait OrderRepository: Send + Sync {
    /// Inserts a new order with its events and what its lines reserve.
    async fn insert_order(&self, order: &mut Order) -> Result<(), StoreError> {
        self.insert_keyed_order(order, None).await
    }
    /// Inserts a new order placed with an idempotency key, which the order keeps: `Duplicate`
    /// (and nothing written) when the caller's key placed an order before.
    async fn insert_keyed_order(
        &self,
        order: &mut Order,
        key: Option<&IdempotentRequest>,
    ) -> Result<(), StoreError>;
    /// The order a caller (`scope`) placed with `key`, and the fingerprint of that request.
    async fn order_by_key(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<Option<(Order, String)>, StoreError>;
    /// Saves changes, version-checked (`Conflict`). With `mark`, records it in the inbox in the
    /// same transaction (`AlreadyProcessed` if it is there, and nothing is written).
    async fn update_order(
        &self,
        order: &mut Order,
        mark: Option<&InboxMark>,
    ) -> Result<(), StoreError>;
    /// One order.
    async fn order(&self, id: OrderId) -> Result<Option<Order>, StoreError>;
    /// A page of orders, newest first.
    async fn orders(
        &self,
        filter: &OrderFilter,
        page: PageRequest<(OffsetDateTime, OrderId)>,
    ) -> Result<Vec<Order>, StoreError>;
}
