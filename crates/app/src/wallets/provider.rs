//! The provider behind `payment_method: "wallet"`: the payer's wallet balance pays, so no one
//! outside is asked. The money check happens when the payment starts: its pending posting
//! debits the wallet, and the store refuses it when the available balance is short. By the time
//! this provider is called the amount is held, so it always succeeds; asked again for the same
//! transaction (a retry, the recovery task) it answers the same.

use async_trait::async_trait;

use crate::payments::{
    ChargeRequest, PaymentProvider, ProviderError, ProviderOutcome, RefundRequest,
};

/// The wallet "provider".
#[derive(Debug, Default, Clone, Copy)]
pub struct WalletProvider;

#[async_trait]
impl PaymentProvider for WalletProvider {
    async fn charge(&self, request: &ChargeRequest) -> Result<ProviderOutcome, ProviderError> {
        Ok(ProviderOutcome::Succeeded {
            reference: format!("wallet_{}", request.transaction_id),
        })
    }

    async fn refund(&self, request: &RefundRequest) -> Result<ProviderOutcome, ProviderError> {
        Ok(ProviderOutcome::Succeeded {
            reference: format!("wallet_{}", request.transaction_id),
        })
    }
}
