//! Portside's domain: the pure model of payments, users, messages, the catalog, stock, orders,
//! the ledger, wallets and outgoing webhooks' signatures. No I/O, no framework: value objects,
//! aggregates with their state machines, and the events they record.

pub mod aggregate;
pub mod catalog;
pub mod error;
pub mod events;
pub mod ids;
pub mod ledger;
pub mod message;
pub mod money;
pub mod order;
pub mod payment;
pub mod purpose;
pub mod routing;
pub mod stock;
pub mod transaction;
pub mod transfer;
pub mod user;
pub mod webhook;

pub use aggregate::Aggregate;
pub use catalog::{
    Prices, Product, ProductDetails, ProductEvent, ProductEventData, ProductSnapshot, ProductState,
    Sku,
};
pub use error::DomainError;
pub use events::{DomainEvent, PaymentEvent, PaymentEventData, PaymentSnapshot, RecordedEvent};
pub use ids::{CustomerId, MessageId, OrderId, PaymentId, TransactionId, TransferId, UserId};
pub use ledger::{
    AccountName, Balance, Entry, LedgerTransactionId, Phase, Posting, Side, WALLET_PROVIDER,
};
pub use message::{Message, MessageBody};
pub use money::{Currency, Money, MoneyError};
pub use order::{
    Order, OrderEvent, OrderEventData, OrderItem, OrderRefund, OrderSnapshot, OrderState,
    OrderStatus, OrderTransition, RefundOutcome, RefundStatus, StockIntent, TransitionCause,
};
pub use payment::{
    AmountLimit, Failure, Metadata, NewPayment, Payment, PaymentMethod, PaymentState, PaymentStatus,
};
pub use purpose::Purpose;
pub use stock::{
    MovementKind, Stock, StockAdjustment, StockEvent, StockMovement, StockOp, StockSnapshot,
    StockState,
};
pub use transaction::{Transaction, TransactionKind, TransactionStatus};
pub use transfer::{Transfer, TransferEvent, TransferSnapshot, TransferState};
pub use user::{
    Actor, Email, Membership, MembershipEnd, Role, User, UserEvent, UserName, UserSnapshot,
    UserState, check_password,
};
