//! Provider webhooks: a notice is verified on its raw body by the provider's verifier, applied
//! to the payment it names (idempotently: a settled transaction is never settled again), and
//! recorded, so that a replayed notice answers at once and changes nothing.

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::AppError;
use crate::payments::Payments;
use crate::payments::{
    NoticeOutcome, ProviderEventRecord, ProviderEvents, WebhookError, WebhookVerifier,
};
use portside_kernel::Clock;

/// The webhook use case.
pub struct Notices {
    verifiers: HashMap<String, Arc<dyn WebhookVerifier>>,
    events: Arc<dyn ProviderEvents>,
    payments: Arc<Payments>,
    clock: Arc<dyn Clock>,
}

impl Notices {
    /// No provider yet; add them with [`Notices::with`].
    pub fn new(
        events: Arc<dyn ProviderEvents>,
        payments: Arc<Payments>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Notices {
            verifiers: HashMap::new(),
            events,
            payments,
            clock,
        }
    }

    /// Accepts notices of `provider`, checked by `verifier`.
    pub fn with(mut self, provider: &str, verifier: Arc<dyn WebhookVerifier>) -> Self {
        self.verifiers.insert(provider.to_owned(), verifier);
        self
    }

    /// Verifies, applies and records one notice.
    pub async fn receive(
        &self,
        provider: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<NoticeOutcome, AppError> {
        let verifier = self
            .verifiers
            .get(provider)
            .ok_or(AppError::NotFound("webhook"))?;
        let notice = verifier.verify(headers, body).await.map_err(|e| {
            tracing::warn!(provider, error = %e, "webhook refused");
            match e {
                WebhookError::Unavailable(m) => AppError::Unavailable(m),
                e => AppError::Webhook(e),
            }
        })?;
        if self
            .events
            .provider_event_seen(provider, &notice.event_id)
            .await?
        {
            tracing::info!(provider, event = %notice.event_id, "webhook replayed; nothing to do");
            return Ok(NoticeOutcome::Duplicate);
        }
        let (outcome, payment_id) = match &notice.change {
            Some(change) => {
                self.payments
                    .apply_provider_change(provider, change)
                    .await?
            }
            None => (NoticeOutcome::Ignored, None),
        };
        let fresh = self
            .events
            .record_provider_event(&ProviderEventRecord {
                provider: provider.to_owned(),
                event_id: notice.event_id.clone(),
                event_type: notice.event_type.clone(),
                payment_id,
                outcome,
                received_at: self.clock.now(),
            })
            .await?;
        tracing::info!(provider, event = %notice.event_id, event_type = %notice.event_type, outcome = outcome.as_str(), payment = ?payment_id.map(|p| p.0), "webhook processed");
        Ok(if fresh {
            outcome
        } else {
            NoticeOutcome::Duplicate
        })
    }
}
