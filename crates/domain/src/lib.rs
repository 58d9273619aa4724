//! Portside's domain: the pure model of payments. No I/O, no framework: value objects,
//! aggregates with their state machines, and the events they record.

pub mod error;
pub mod events;
pub mod ids;
pub mod money;
pub mod payment;
pub mod transaction;

pub use error::DomainError;
pub use events::{PaymentEvent, PaymentSnapshot, RecordedEvent};
pub use ids::{CustomerId, PaymentId, TransactionId};
pub use money::{Currency, Money, MoneyError};
pub use payment::{
    AmountLimit, Failure, Metadata, NewPayment, Payment, PaymentMethod, PaymentState, PaymentStatus,
};
pub use transaction::{Transaction, TransactionKind, TransactionStatus};
