//! Ports of the ordering context.

use async_trait::async_trait;
use portside_domain::{CustomerId, Order, OrderId, OrderStatus};
use time::OffsetDateTime;

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
}

/// Orders and their outbox events; each write is one DB transaction.
#[async_trait]
pub trait OrderRepository: Send + Sync {
    /// Inserts a new order with its events.
    async fn insert_order(&self, order: &mut Order) -> Result<(), StoreError>;
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
