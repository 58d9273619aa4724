//! The search use cases: validated queries (customers find only their own documents), document
//! indexing for the gRPC service, the read model fed by events, and the rebuild from the store.

mod ports;
#[cfg(test)]
mod tests;

pub use ports::*;

use portside_kernel::PageRequest;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use portside_domain::{
    Actor, DomainEvent, OrderEvent, OrderEventData, OrderSnapshot, PaymentEvent, PaymentEventData,
    PaymentSnapshot, ProductEvent, ProductEventData, ProductSnapshot,
};

use crate::catalog::{CatalogRepository, ProductFilter};
use crate::error::AppError;
use crate::orders::{OrderFilter, OrderRepository};
use crate::payments::customer_of;
use crate::payments::{PaymentFilter, PaymentRepository};
use portside_events::Envelope;
use portside_events::InboxMark;
use portside_events::worker::{EventHandler, HandlerError, Subscription};

/// The consumer group of the read model.
pub const PROJECTION_GROUP: &str = "search";

/// Longest query, in characters.
pub const MAX_QUERY: usize = 1000;
/// Largest page.
pub const MAX_LIMIT: u32 = 100;
/// The most documents one bulk write may carry.
pub const MAX_BULK: usize = 1000;
/// Deepest offset.
pub const MAX_OFFSET: u32 = 10_000;

/// Checks a query's bounds, facets and filters; the index checks its syntax.
pub fn validate(q: &SearchQuery) -> Result<(), SearchError> {
    let invalid = |m: String| Err(SearchError::Invalid(m));
    let chars = q.text.chars().count();
    if q.text.trim().is_empty() {
        return invalid("query must not be empty".into());
    }
    if chars > MAX_QUERY {
        return invalid(format!(
            "query must be at most {MAX_QUERY} characters, got {chars}"
        ));
    }
    if q.limit == 0 || q.limit > MAX_LIMIT {
        return invalid(format!("limit must be 1 to {MAX_LIMIT}"));
    }
    if q.offset > MAX_OFFSET {
        return invalid(format!("offset must be 0 to {MAX_OFFSET}"));
    }
    if let Some(f) = q.facets.iter().find(|f| !FACETS.contains(&f.as_str())) {
        return invalid(format!(
            "unknown facet {f:?}; facets: {}",
            FACETS.join(", ")
        ));
    }
    if let Some(f) = q.filters.keys().find(|f| !FILTERS.contains(&f.as_str())) {
        return invalid(format!(
            "unknown filter {f:?}; filters: {}",
            FILTERS.join(", ")
        ));
    }
    Ok(())
}

/// Checks a document given over gRPC.
pub fn validate_document(d: &SearchDocument) -> Result<(), SearchError> {
    let invalid = |m: &str| Err(SearchError::Invalid(m.into()));
    if d.id.trim().is_empty() || d.id.len() > 200 {
        return invalid("document id must be 1 to 200 characters");
    }
    if d.doc_type.trim().is_empty() || d.doc_type.len() > 50 {
        return invalid("document type must be 1 to 50 characters");
    }
    if d.fields.len() > 100
        || d.fields
            .iter()
            .any(|(k, v)| k.is_empty() || k.len() > 100 || v.len() > 10_000)
    {
        return invalid(
            "a document has at most 100 fields, names up to 100 characters, values up to 10 000",
        );
    }
    Ok(())
}

fn search_error(e: SearchError) -> AppError {
    match e {
        SearchError::Invalid(m) => AppError::BadQuery(m),
        SearchError::Unavailable(m) => AppError::Unavailable(m),
        SearchError::Timeout => AppError::Unavailable("search timed out".into()),
        SearchError::Other(m) => AppError::Internal(m),
    }
}

/// The search use cases.
pub struct Search {
    index: Arc<dyn SearchIndex>,
    orders: Arc<dyn OrderRepository>,
    payments: Arc<dyn PaymentRepository>,
    catalog: Arc<dyn CatalogRepository>,
}

/// The document type of a product; the one type customers search beyond their own documents.
pub const PRODUCT: &str = "product";

impl Search {
    /// Over one index, rebuilt from the orders, payments and products of the store.
    pub fn new(
        index: Arc<dyn SearchIndex>,
        orders: Arc<dyn OrderRepository>,
        payments: Arc<dyn PaymentRepository>,
        catalog: Arc<dyn CatalogRepository>,
    ) -> Self {
        Search {
            index,
            orders,
            payments,
            catalog,
        }
    }

    /// The index itself, for the gRPC service (an internal, trusted caller).
    pub fn index(&self) -> &Arc<dyn SearchIndex> {
        &self.index
    }

    /// Searches as an actor: customers see only their own documents, or, asking for
    /// `type=product`, the active products of the catalog.
    pub async fn search(
        &self,
        actor: &Actor,
        mut q: SearchQuery,
    ) -> Result<SearchResults, AppError> {
        if !actor.is_admin() {
            if q.doc_type.as_deref() == Some(PRODUCT) {
                q.filters.insert("status".into(), "active".into());
            } else {
                q.filters
                    .insert("owner".into(), customer_of(actor).as_str().to_owned());
            }
        }
        validate(&q).map_err(search_error)?;
        self.index.search(&q).await.map_err(search_error)
    }

    /// Rebuilds the read model from the store, for administrators.
    pub async fn reindex_as(&self, actor: &Actor) -> Result<usize, AppError> {
        if !actor.is_admin() {
            return Err(AppError::Forbidden("only administrators rebuild the index"));
        }
        self.reindex().await
    }

    /// Writes one document for a trusted internal caller (the gRPC service, which scopes no
    /// owner); false when a newer version is already indexed.
    pub async fn index_document(&self, document: SearchDocument) -> Result<bool, SearchError> {
        validate_document(&document)?;
        Ok(self.index.upsert(&[document]).await? > 0)
    }

    /// Writes up to [`MAX_BULK`] documents for a trusted internal caller: every one is checked
    /// before any is written. Returns how many were written (an older version is not).
    pub async fn index_documents(
        &self,
        documents: &[SearchDocument],
    ) -> Result<usize, SearchError> {
        if documents.is_empty() || documents.len() > MAX_BULK {
            return Err(SearchError::Invalid(format!(
                "documents must hold 1 to {MAX_BULK} documents, got {}",
                documents.len()
            )));
        }
        for (i, d) in documents.iter().enumerate() {
            validate_document(d).map_err(|e| match e {
                SearchError::Invalid(m) => SearchError::Invalid(format!("documents[{i}]: {m}")),
                other => other,
            })?;
        }
        self.index.upsert(documents).await
    }

    /// Removes a document for a trusted internal caller; false when there was none.
    pub async fn delete_document(&self, id: &str) -> Result<bool, SearchError> {
        if id.trim().is_empty() {
            return Err(SearchError::Invalid("id is required".into()));
        }
        self.index.delete(id).await
    }

    /// Runs a validated query over every document, for a trusted internal caller.
    pub async fn search_everything(
        &self,
        query: &SearchQuery,
    ) -> Result<SearchResults, SearchError> {
        validate(query)?;
        self.index.search(query).await
    }

    /// Rebuilds the read model from the store: every order, payment and product, newest
    /// version wins, so running it while events flow loses nothing. Returns the documents
    /// written.
    pub async fn reindex(&self) -> Result<usize, AppError> {
        let mut written = 0;
        let mut after = None;
        loop {
            let page = self
                .catalog
                .products(&ProductFilter::default(), PageRequest { limit: 500, after })
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.sku().clone());
            let docs: Vec<_> = page
                .iter()
                .map(|p| product_document(&ProductSnapshot::of(p.state())))
                .collect();
            written += self.index.upsert(&docs).await.map_err(search_error)?;
        }
        let mut after = None;
        loop {
            let page = self
                .orders
                .orders(&OrderFilter::default(), PageRequest { limit: 500, after })
                .await?;
            let Some(last) = page.last() else { break };
            after = Some((last.state().created_at, last.id()));
            let docs: Vec<_> = page
                .iter()
                .map(|o| order_document(&OrderSnapshot::of(o.state())))
                .collect();
            written += self.index.upsert(&docs).await.map_err(search_error)?;
        }
        let mut after = None;
        loop {
            let page = self
                .payments
                .payments(&PaymentFilter::default(), PageRequest { limit: 500, after })
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id());
            let docs: Vec<_> = page
                .iter()
                .map(|p| payment_document(&PaymentSnapshot::of(p.state())))
                .collect();
            written += self.index.upsert(&docs).await.map_err(search_error)?;
        }
        Ok(written)
    }
}

/// The search document of an order, as its events carry it.
fn order_document(order: &OrderSnapshot) -> SearchDocument {
    let mut fields = BTreeMap::from([
        ("order_id".to_owned(), order.order_id.to_string()),
        ("customer_id".to_owned(), order.customer_id.clone()),
        ("status".to_owned(), order.status.as_str().to_owned()),
        ("currency".to_owned(), order.currency.clone()),
        ("total".to_owned(), order.total.clone()),
    ]);
    if let Some(payment) = order.payment_id {
        fields.insert("payment_id".into(), payment.to_string());
    }
    let lines: Vec<String> = order
        .items
        .iter()
        .map(|i| format!("{} × {}", i.quantity, i.name))
        .collect();
    fields.insert("items".into(), lines.join("; "));
    let products: Vec<&str> = order.items.iter().map(|i| i.product_id.as_str()).collect();
    fields.insert("product_ids".into(), products.join(" "));
    SearchDocument {
        id: format!("order:{}", order.order_id),
        doc_type: "order".into(),
        owner: Some(order.customer_id.clone()),
        version: order.version,
        fields,
    }
}

/// The search document of a product, as its events carry it: no owner (customers reach
/// products by asking for `type=product`, and see the active ones).
fn product_document(product: &ProductSnapshot) -> SearchDocument {
    let status = if product.active { "active" } else { "archived" };
    let prices: Vec<String> = product
        .prices
        .iter()
        .map(|(currency, price)| format!("{currency} {price}"))
        .collect();
    SearchDocument {
        id: format!("{PRODUCT}:{}", product.sku),
        doc_type: PRODUCT.into(),
        owner: None,
        version: product.version,
        fields: BTreeMap::from([
            ("sku".to_owned(), product.sku.to_string()),
            ("name".to_owned(), product.name.clone()),
            ("description".to_owned(), product.description.clone()),
            ("status".to_owned(), status.to_owned()),
            ("prices".to_owned(), prices.join("; ")),
        ]),
    }
}

/// The search document of a payment, as its events carry it.
fn payment_document(payment: &PaymentSnapshot) -> SearchDocument {
    let mut fields = BTreeMap::from([
        ("payment_id".to_owned(), payment.payment_id.to_string()),
        ("customer_id".to_owned(), payment.customer_id.clone()),
        ("status".to_owned(), payment.status.as_str().to_owned()),
        ("currency".to_owned(), payment.currency.clone()),
        ("amount".to_owned(), payment.amount.clone()),
        (
            "refunded_amount".to_owned(),
            payment.refunded_amount.clone(),
        ),
        ("provider".to_owned(), payment.provider.clone()),
    ]);
    for (k, v) in payment.metadata.as_map() {
        fields.insert(format!("metadata.{k}"), v.clone());
    }
    SearchDocument {
        id: format!("payment:{}", payment.payment_id),
        doc_type: "payment".into(),
        owner: Some(payment.customer_id.clone()),
        version: payment.version,
        fields,
    }
}

/// Keeps the search index up to date from order, payment and product events (the CQRS read
/// model).
/// Idempotent: the index keeps the highest version, so a redelivered or late event changes
/// nothing.
pub struct SearchProjection {
    index: Arc<dyn SearchIndex>,
}

impl SearchProjection {
    /// Every order, payment and product event.
    pub const SUBSCRIPTION: Subscription = Subscription {
        group: PROJECTION_GROUP,
        event_types: &[
            OrderEvent::CREATED,
            OrderEvent::UPDATED,
            OrderEvent::CONFIRMED,
            OrderEvent::SHIPPED,
            OrderEvent::CANCELLED,
            PaymentEvent::CREATED,
            PaymentEvent::SUCCEEDED,
            PaymentEvent::FAILED,
            PaymentEvent::REFUNDED,
            PaymentEvent::REFUND_FAILED,
            ProductEvent::CREATED,
            ProductEvent::UPDATED,
            ProductEvent::ARCHIVED,
        ],
    };

    /// Projects into `index`.
    pub fn new(index: Arc<dyn SearchIndex>) -> Self {
        SearchProjection { index }
    }
}

#[async_trait]
impl EventHandler for SearchProjection {
    fn subscription(&self) -> Subscription {
        Self::SUBSCRIPTION
    }

    async fn handle(&self, event: &Envelope, _: &InboxMark) -> Result<(), HandlerError> {
        self.upsert(document_of(event)?.into_iter().collect()).await
    }

    /// One index write (one Tantivy commit, one `_bulk`) for the whole batch.
    async fn handle_batch(
        &self,
        batch: &[(&Envelope, InboxMark)],
    ) -> Option<Result<(), HandlerError>> {
        let documents: Result<Vec<_>, _> = batch.iter().map(|(e, _)| document_of(e)).collect();
        Some(match documents {
            Ok(documents) => self.upsert(documents.into_iter().flatten().collect()).await,
            Err(e) => Err(e),
        })
    }
}

impl SearchProjection {
    async fn upsert(&self, documents: Vec<SearchDocument>) -> Result<(), HandlerError> {
        if documents.is_empty() {
            return Ok(());
        }
        self.index
            .upsert(&documents)
            .await
            .map(|_| ())
            .map_err(|e| HandlerError(e.to_string()))
    }
}

/// The document an order, payment or product event carries; none for other aggregates.
fn document_of(event: &Envelope) -> Result<Option<SearchDocument>, HandlerError> {
    Ok(match event.aggregate_type.as_str() {
        OrderEvent::AGGREGATE => {
            let OrderEventData { order } = event.decode().map_err(HandlerError)?;
            Some(order_document(&order))
        }
        PaymentEvent::AGGREGATE => {
            let PaymentEventData { payment } = event.decode().map_err(HandlerError)?;
            Some(payment_document(&payment))
        }
        ProductEvent::AGGREGATE => {
            let ProductEventData { product } = event.decode().map_err(HandlerError)?;
            Some(product_document(&product))
        }
        _ => None,
    })
}
