//! The Payment aggregate: its status machine, its refund rules and the events it records.

mod values;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use values::{Failure, Metadata, PaymentMethod, PaymentStatus};

use crate::aggregate::{Changes, aggregate};
use crate::error::DomainError;
use crate::events::{PaymentEvent, PaymentSnapshot};
use crate::ids::{CustomerId, PaymentId, TransactionId};
use crate::money::Money;
use crate::routing::{AttemptOutcome, RouteAttempt, Routing};

/// Everything that is stored about a payment. Plain data: the rules live in [`Payment`].
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct PaymentState {
    pub id: PaymentId,
    /// Who pays.
    pub customer_id: CustomerId,
    /// What is charged.
    pub amount: Money,
    pub method: PaymentMethod,
    /// The provider's token for the payment method (e.g. `tok_visa`); never a card number.
    pub method_token: String,
    /// Which provider adapter handles it (`mock`, later `stripe`, `paypal`).
    pub provider: String,
    /// Where it is in its life.
    pub status: PaymentStatus,
    /// Minor units refunded so far.
    pub refunded_minor: i64,
    /// Minor units of refunds started but not settled yet.
    pub refund_pending_minor: i64,
    /// The provider's id for the charge.
    pub provider_reference: Option<String>,
    /// Why it failed, when it did.
    pub failure: Option<Failure>,
    /// Free text from the client.
    pub description: Option<String>,
    /// Key-value strings from the client.
    pub metadata: Metadata,
    /// The route it took, when it went through routing (payments before routing have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<Routing>,
    /// Incremented by every change; used for optimistic concurrency.
    pub version: i64,
    /// Sequence number of the last event recorded for this payment.
    pub event_sequence: i64,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
}

impl PaymentState {
    /// What the payment is worth net of settled refunds.
    pub fn refunded(&self) -> Money {
        Money::from_minor(self.refunded_minor, self.amount.currency())
    }

    /// What may still be refunded: amount minus settled and in-flight refunds.
    pub fn refundable(&self) -> Money {
        let left = match self.status {
            PaymentStatus::Succeeded | PaymentStatus::PartiallyRefunded => {
                self.amount.minor() - self.refunded_minor - self.refund_pending_minor
            }
            _ => 0,
        };
        Money::from_minor(left.max(0), self.amount.currency())
    }
}

/// Upper bound for one payment, in minor units of its currency (Stripe's default is 99 999 999).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AmountLimit {
    /// The largest amount allowed, in minor units.
    pub max_minor: i64,
}

impl Default for AmountLimit {
    fn default() -> Self {
        AmountLimit {
            max_minor: 99_999_999,
        }
    }
}

impl AmountLimit {
    /// Checks that an amount is positive and within the limit.
    pub fn check(self, amount: Money) -> Result<(), DomainError> {
        if !amount.is_positive() {
            Err(DomainError::AmountNotPositive)
        } else if amount.minor() > self.max_minor {
            Err(DomainError::AmountTooLarge {
                max: self.max_minor,
            })
        } else {
            Ok(())
        }
    }
}

/// What a client asks for when it pays.
#[derive(Clone, Debug)]
pub struct NewPayment {
    /// Identity, from the id generator.
    pub id: PaymentId,
    /// Who pays.
    pub customer_id: CustomerId,
    /// What is charged.
    pub amount: Money,
    pub method: PaymentMethod,
    /// Provider token of the payment method.
    pub method_token: String,
    /// Provider adapter name.
    pub provider: String,
    /// Free text.
    pub description: Option<String>,
    /// Key-value strings.
    pub metadata: Metadata,
    /// The route that chose `provider`.
    pub routing: Option<Routing>,
}

/// A payment and the events it recorded since it was loaded.
#[derive(Clone, Debug)]
pub struct Payment {
    state: PaymentState,
    changes: Changes<PaymentEvent>,
}

const MAX_DESCRIPTION: usize = 1000;
const MAX_TOKEN: usize = 255;

impl Payment {
    /// Creates a payment and submits it: Pending → Processing, the state in which it is first
    /// stored (just before the provider is called). Records `payment.created`, whose snapshot
    /// is that stored state.
    pub fn create(
        new: NewPayment,
        limit: AmountLimit,
        now: OffsetDateTime,
    ) -> Result<Self, DomainError> {
        let mut payment = Self::open(new, limit, now)?;
        payment.start(now)?;
        Ok(payment)
    }

    /// Creates a payment for asynchronous charging: it stays Pending, the state in which it
    /// is stored until a worker takes it ([`Payment::start`]). Records `payment.submitted`.
    pub fn submit(
        new: NewPayment,
        limit: AmountLimit,
        now: OffsetDateTime,
    ) -> Result<Self, DomainError> {
        let mut payment = Self::open(new, limit, now)?;
        payment.record(now, |snapshot| PaymentEvent::Submitted {
            payment: snapshot,
        });
        Ok(payment)
    }

    /// Pending → Processing, just before the provider is called; records `payment.created`.
    pub fn start(&mut self, now: OffsetDateTime) -> Result<(), DomainError> {
        self.transition(PaymentStatus::Processing, now)?;
        self.record(now, |snapshot| PaymentEvent::Created { payment: snapshot });
        Ok(())
    }

    /// A new payment, Pending, checked against the limits.
    fn open(new: NewPayment, limit: AmountLimit, now: OffsetDateTime) -> Result<Self, DomainError> {
        limit.check(new.amount)?;
        if new
            .description
            .as_ref()
            .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION)
        {
            return Err(DomainError::TextTooLong {
                field: "description",
                max: MAX_DESCRIPTION,
            });
        }
        if new.method_token.is_empty() || new.method_token.chars().count() > MAX_TOKEN {
            return Err(DomainError::TextTooLong {
                field: "payment_method_token",
                max: MAX_TOKEN,
            });
        }
        let state = PaymentState {
            id: new.id,
            customer_id: new.customer_id,
            amount: new.amount,
            method: new.method,
            method_token: new.method_token,
            provider: new.provider,
            status: PaymentStatus::Pending,
            refunded_minor: 0,
            refund_pending_minor: 0,
            provider_reference: None,
            failure: None,
            description: new.description,
            metadata: new.metadata,
            routing: new.routing,
            version: 1,
            event_sequence: 0,
            created_at: now,
            updated_at: now,
        };
        Ok(Payment {
            state,
            changes: Changes::new(),
        })
    }

    /// Rebuilds a payment from storage; it has no new events.
    pub fn restore(state: PaymentState) -> Self {
        Payment {
            changes: Changes::loaded(state.version),
            state,
        }
    }

    /// The stored data.
    pub fn state(&self) -> &PaymentState {
        &self.state
    }

    /// Identity.
    pub fn id(&self) -> PaymentId {
        self.state.id
    }

    /// Current status.
    pub fn status(&self) -> PaymentStatus {
        self.state.status
    }

    /// Processing → Succeeded; records `payment.succeeded`.
    pub fn succeed(
        &mut self,
        provider_reference: String,
        now: OffsetDateTime,
    ) -> Result<(), DomainError> {
        self.transition(PaymentStatus::Succeeded, now)?;
        self.attempted(AttemptOutcome::Succeeded, None, now);
        self.state.provider_reference = Some(provider_reference.clone());
        self.record(now, |payment| PaymentEvent::Succeeded {
            payment,
            provider_reference,
        });
        Ok(())
    }

    /// Processing → Failed; records `payment.failed`.
    pub fn fail(&mut self, failure: Failure, now: OffsetDateTime) -> Result<(), DomainError> {
        self.transition(PaymentStatus::Failed, now)?;
        self.attempted(AttemptOutcome::Failed, Some(failure.code.clone()), now);
        self.state.failure = Some(failure.clone());
        self.record(now, |payment| PaymentEvent::Failed { payment, failure });
        Ok(())
    }

    /// The current provider certainly charged nothing (it could not be reached): the charge
    /// moves to `next`, the next provider of the route, and the attempt is recorded. Only while
    /// the charge is processing and the payment was routed.
    pub fn fail_over(
        &mut self,
        next: &str,
        error: String,
        now: OffsetDateTime,
    ) -> Result<(), DomainError> {
        if self.state.status != PaymentStatus::Processing || self.state.routing.is_none() {
            return Err(DomainError::InvalidTransition {
                from: self.state.status,
                to: PaymentStatus::Processing,
            });
        }
        self.attempted(AttemptOutcome::Unavailable, Some(error), now);
        self.state.provider = next.to_owned();
        if let Some(routing) = &mut self.state.routing {
            routing.provider = next.to_owned();
            routing.next.retain(|p| p != next);
        }
        self.touch(now);
        Ok(())
    }

    /// Records that the route passed over `provider`, whose circuit was open.
    pub fn skip_provider(&mut self, provider: &str, at: OffsetDateTime) {
        if let Some(routing) = &mut self.state.routing {
            routing.next.retain(|p| p != provider);
            routing.attempts.push(RouteAttempt {
                provider: provider.to_owned(),
                outcome: AttemptOutcome::CircuitOpen,
                error: None,
                at,
            });
        }
    }

    /// Records the current provider's attempt on the route, if the payment was routed.
    fn attempted(&mut self, outcome: AttemptOutcome, error: Option<String>, at: OffsetDateTime) {
        let provider = self.state.provider.clone();
        if let Some(routing) = &mut self.state.routing {
            routing.attempts.push(RouteAttempt {
                provider,
                outcome,
                error,
                at,
            });
        }
    }

    /// Reserves a refund: `None` refunds all that remains. The amount is held as pending
    /// until [`Payment::complete_refund`] or [`Payment::fail_refund`], so two concurrent refunds
    /// can never together exceed the payment.
    pub fn begin_refund(
        &mut self,
        amount: Option<Money>,
        now: OffsetDateTime,
    ) -> Result<Money, DomainError> {
        let status = self.state.status;
        if !matches!(
            status,
            PaymentStatus::Succeeded | PaymentStatus::PartiallyRefunded
        ) {
            return Err(DomainError::NotRefundable(status));
        }
        let refundable = self.state.refundable();
        let explicit = amount.is_some();
        let amount = amount.unwrap_or(refundable);
        self.same_currency(amount)?;
        if explicit && !amount.is_positive() {
            return Err(DomainError::AmountNotPositive);
        }
        if !amount.is_positive() || amount.minor() > refundable.minor() {
            return Err(DomainError::RefundExceedsRefundable {
                requested: amount.to_decimal_string(),
                refundable: refundable.to_decimal_string(),
            });
        }
        self.state.refund_pending_minor += amount.minor();
        self.touch(now);
        Ok(amount)
    }

    /// Settles a reserved refund as done; records `payment.refunded`.
    pub fn complete_refund(
        &mut self,
        refund_id: TransactionId,
        amount: Money,
        now: OffsetDateTime,
    ) -> Result<(), DomainError> {
        self.release_reservation(amount)?;
        let refunded = self.state.refunded_minor + amount.minor();
        let to = if refunded >= self.state.amount.minor() {
            PaymentStatus::Refunded
        } else {
            PaymentStatus::PartiallyRefunded
        };
        self.transition(to, now)?;
        self.state.refunded_minor = refunded;
        self.record(now, |payment| PaymentEvent::Refunded {
            payment,
            refund_id,
            refund_amount: amount.to_decimal_string(),
            refund_minor: amount.minor(),
        });
        Ok(())
    }

    /// Releases a reserved refund that the provider refused; records `payment.refund_failed`.
    pub fn fail_refund(
        &mut self,
        refund_id: TransactionId,
        amount: Money,
        failure: Failure,
        now: OffsetDateTime,
    ) -> Result<(), DomainError> {
        self.release_reservation(amount)?;
        self.touch(now);
        self.record(now, |payment| PaymentEvent::RefundFailed {
            payment,
            refund_id,
            refund_amount: amount.to_decimal_string(),
            refund_minor: amount.minor(),
            failure,
        });
        Ok(())
    }

    fn same_currency(&self, amount: Money) -> Result<(), DomainError> {
        let expected = self.state.amount.currency();
        if amount.currency() == expected {
            Ok(())
        } else {
            Err(DomainError::CurrencyMismatch {
                expected,
                given: amount.currency(),
            })
        }
    }

    fn release_reservation(&mut self, amount: Money) -> Result<(), DomainError> {
        self.same_currency(amount)?;
        if amount.minor() <= 0 || amount.minor() > self.state.refund_pending_minor {
            return Err(DomainError::RefundExceedsRefundable {
                requested: amount.to_decimal_string(),
                refundable: Money::from_minor(self.state.refund_pending_minor, amount.currency())
                    .to_decimal_string(),
            });
        }
        self.state.refund_pending_minor -= amount.minor();
        Ok(())
    }

    fn transition(&mut self, to: PaymentStatus, now: OffsetDateTime) -> Result<(), DomainError> {
        let from = self.state.status;
        if !from.can_become(to) {
            return Err(DomainError::InvalidTransition { from, to });
        }
        self.state.status = to;
        self.touch(now);
        Ok(())
    }

    fn touch(&mut self, now: OffsetDateTime) {
        self.changes.bump(&mut self.state.version);
        self.state.updated_at = now;
    }

    fn record(&mut self, now: OffsetDateTime, event: impl FnOnce(PaymentSnapshot) -> PaymentEvent) {
        let snapshot = PaymentSnapshot::of(&self.state);
        self.changes
            .record(&mut self.state.event_sequence, now, event(snapshot));
    }
}

aggregate!(Payment, PaymentEvent);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::Aggregate;
    use crate::events::{DomainEvent, PaymentEvent};
    use crate::money::Currency;
    use proptest::prelude::*;
    use uuid::Uuid;

    fn usd(minor: i64) -> Money {
        Money::from_minor(minor, Currency::from_code("USD").unwrap())
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH
    }

    fn new_payment(amount: Money) -> NewPayment {
        NewPayment {
            id: PaymentId(Uuid::nil()),
            customer_id: CustomerId::parse("cust_1").unwrap(),
            amount,
            method: PaymentMethod::Card,
            method_token: "tok_visa".into(),
            provider: "mock".into(),
            description: None,
            metadata: Metadata::default(),
            routing: None,
        }
    }

    fn succeeded(amount: i64) -> Payment {
        let mut p =
            Payment::create(new_payment(usd(amount)), AmountLimit::default(), now()).unwrap();
        p.succeed("ch_1".into(), now()).unwrap();
        p.mark_saved();
        p
    }

    fn refund(p: &mut Payment, amount: Option<i64>) -> Result<Money, DomainError> {
        let m = p.begin_refund(amount.map(usd), now())?;
        p.complete_refund(TransactionId(Uuid::nil()), m, now())?;
        Ok(m)
    }

    #[test]
    fn the_whole_transition_table() {
        use PaymentStatus::*;
        let allowed = [
            (Pending, Processing),
            (Processing, Succeeded),
            (Processing, Failed),
            (Succeeded, PartiallyRefunded),
            (Succeeded, Refunded),
            (PartiallyRefunded, PartiallyRefunded),
            (PartiallyRefunded, Refunded),
        ];
        for from in PaymentStatus::ALL {
            for to in PaymentStatus::ALL {
                assert_eq!(
                    from.can_become(to),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn amounts_must_be_positive_and_within_the_limit() {
        let limit = AmountLimit { max_minor: 1000 };
        for (minor, code) in [
            (0, "amount_too_small"),
            (-1, "amount_too_small"),
            (1001, "amount_too_large"),
        ] {
            let err = Payment::create(new_payment(usd(minor)), limit, now()).unwrap_err();
            assert_eq!(err.code(), code);
        }
        assert!(Payment::create(new_payment(usd(1000)), limit, now()).is_ok());
    }

    #[test]
    fn a_charge_records_created_then_succeeded_with_sequences() {
        let mut p = Payment::create(new_payment(usd(500)), AmountLimit::default(), now()).unwrap();
        p.succeed("ch_9".into(), now()).unwrap();
        let types: Vec<_> = p
            .pending_events()
            .iter()
            .map(|e| (e.sequence, e.event.event_type()))
            .collect();
        assert_eq!(
            types,
            vec![(1, "payment.created"), (2, "payment.succeeded")]
        );
        assert_eq!(p.state().provider_reference.as_deref(), Some("ch_9"));
        assert_eq!(p.pending_events()[0].event.event_type(), "payment.created");
        assert!(
            matches!(&p.pending_events()[0].event, PaymentEvent::Created { payment } if payment.status == PaymentStatus::Processing)
        );
        assert!(
            p.succeed("again".into(), now()).is_err(),
            "succeeded is final for a charge"
        );
    }

    #[test]
    fn failed_payment_cannot_be_refunded() {
        let mut p = Payment::create(new_payment(usd(500)), AmountLimit::default(), now()).unwrap();
        p.fail(Failure::new("card_declined", "declined"), now())
            .unwrap();
        assert_eq!(
            p.begin_refund(None, now()).unwrap_err().code(),
            "payment_not_refundable"
        );
    }

    #[test]
    fn partial_then_full_refund() {
        let mut p = succeeded(1000);
        refund(&mut p, Some(300)).unwrap();
        assert_eq!(p.status(), PaymentStatus::PartiallyRefunded);
        assert_eq!(p.state().refundable().minor(), 700);
        let rest = refund(&mut p, None).unwrap();
        assert_eq!(rest.minor(), 700);
        assert_eq!(p.status(), PaymentStatus::Refunded);
        assert_eq!(
            p.begin_refund(None, now()).unwrap_err().code(),
            "payment_not_refundable"
        );
    }

    #[test]
    fn refund_rules() {
        let mut p = succeeded(1000);
        assert_eq!(
            refund(&mut p, Some(1001)).unwrap_err().code(),
            "refund_exceeds_refundable"
        );
        assert_eq!(
            refund(&mut p, Some(0)).unwrap_err().code(),
            "amount_too_small"
        );
        let eur = Money::from_minor(10, Currency::from_code("EUR").unwrap());
        assert_eq!(
            p.begin_refund(Some(eur), now()).unwrap_err().code(),
            "currency_mismatch"
        );
        // A reservation in flight counts against what remains.
        let held = p.begin_refund(Some(usd(800)), now()).unwrap();
        assert_eq!(
            p.begin_refund(Some(usd(201)), now()).unwrap_err().code(),
            "refund_exceeds_refundable"
        );
        p.fail_refund(
            TransactionId(Uuid::nil()),
            held,
            Failure::new("x", "y"),
            now(),
        )
        .unwrap();
        assert_eq!(p.state().refundable().minor(), 1000);
        assert_eq!(p.status(), PaymentStatus::Succeeded);
    }

    #[test]
    fn version_moves_once_per_save() {
        let mut p = succeeded(1000);
        let v = p.state().version;
        let m = p.begin_refund(Some(usd(10)), now()).unwrap();
        p.complete_refund(TransactionId(Uuid::nil()), m, now())
            .unwrap();
        assert_eq!(p.state().version, v + 1);
        assert_eq!(p.loaded_version(), Some(v));
    }

    proptest! {
        #[test]
        fn refunds_never_exceed_the_captured_amount(
            amount in 1i64..1_000_000,
            asks in proptest::collection::vec((proptest::option::of(0i64..1_200_000), any::<bool>()), 1..20),
        ) {
            let mut p = succeeded(amount);
            let mut settled = 0i64;
            for (ask, provider_ok) in asks {
                if let Ok(m) = p.begin_refund(ask.map(usd), now()) {
                    if provider_ok {
                        p.complete_refund(TransactionId(Uuid::nil()), m, now()).unwrap();
                        settled += m.minor();
                    } else {
                        p.fail_refund(TransactionId(Uuid::nil()), m, Failure::new("f", "f"), now()).unwrap();
                    }
                }
                prop_assert!(p.state().refunded_minor <= amount);
                prop_assert_eq!(p.state().refunded_minor, settled);
                prop_assert_eq!(p.state().refund_pending_minor, 0);
                prop_assert_eq!(p.state().refundable().minor(), amount - settled);
                let expected = if settled == 0 { PaymentStatus::Succeeded }
                    else if settled == amount { PaymentStatus::Refunded }
                    else { PaymentStatus::PartiallyRefunded };
                prop_assert_eq!(p.status(), expected);
            }
        }
    }
}
