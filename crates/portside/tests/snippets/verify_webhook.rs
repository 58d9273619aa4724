use standardwebhooks::Webhook;

/// The event of a request from Portside. `body` is the raw body as received (not parsed and
/// serialised again), `secret` the endpoint's `whsec_…` secret.
pub fn verify(
    body: &[u8],
    headers: &http::HeaderMap,
    secret: &str,
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    Webhook::new(secret)?.verify(body, headers)?;
    Ok(serde_json::from_slice(body)?)
}
