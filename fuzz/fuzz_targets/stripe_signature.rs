//! The `Stripe-Signature` header arrives from anyone who can reach the webhook endpoint: any
//! text is refused cleanly or gives a timestamp and at least one signature of at most 64 bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portside_providers::parse_stripe_signature;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((_, signatures)) = parse_stripe_signature(text) {
        assert!(!signatures.is_empty());
        assert!(signatures.iter().all(|s| s.len() <= 64));
    }
});
