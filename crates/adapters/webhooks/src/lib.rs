//! The webhook sender over `reqwest`. An endpoint's URL was checked when it was saved, but a
//! name can resolve elsewhere later: every connection's addresses are checked again here, in
//! the resolver, so a name that now points at a loopback, private, link-local or metadata
//! address is refused at delivery (unless the deployment allows private addresses), and the
//! connection goes to the very address that was checked. Redirects are not followed (a
//! receiver could redirect to an internal address), no proxy from the environment is used,
//! and at most the first KiB of a response body is read.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use portside_app::webhooks::{WebhookRequest, WebhookResponse, WebhookSender};
use portside_domain::webhook::delivery::{RESPONSE_KEPT, kept_response};
use portside_domain::webhook::is_public;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Resolves names, keeping only the addresses deliveries may go to.
struct GuardedResolver {
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| allow_private || is_public(a.ip()))
                .collect();
            if found.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            let addrs: Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

/// Sends signed webhook requests.
pub struct HttpWebhookSender {
    client: reqwest::Client,
    allow_private: bool,
}

impl HttpWebhookSender {
    /// A sender; `allow_private` lets deliveries reach private and loopback addresses.
    pub fn new(allow_private: bool) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver { allow_private }))
            .user_agent(concat!("Portside-Webhooks/", env!("CARGO_PKG_VERSION")))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| format!("cannot build the webhook client: {e}"))?;
        Ok(HttpWebhookSender {
            client,
            allow_private,
        })
    }

    /// A URL whose host is an IP address never reaches the resolver: checked here.
    fn refused_literal(&self, url: &reqwest::Url) -> Option<String> {
        let ip: IpAddr = match url.host()? {
            url::Host::Ipv4(ip) => ip.into(),
            url::Host::Ipv6(ip) => ip.into(),
            url::Host::Domain(_) => return None,
        };
        (!self.allow_private && !is_public(ip)).then(|| format!("{ip} is not a public address"))
    }
}

fn failed(error: String) -> WebhookResponse {
    WebhookResponse {
        status_code: None,
        body: None,
        error: Some(error),
    }
}

/// The error and its causes in one line (reqwest's own text names only the outermost).
fn describe(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "cannot connect".to_owned()
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[async_trait]
impl WebhookSender for HttpWebhookSender {
    async fn send(&self, request: WebhookRequest<'_>, timeout: Duration) -> WebhookResponse {
        let url = match reqwest::Url::parse(request.url) {
            Ok(u) => u,
            Err(e) => return failed(format!("not a URL: {e}")),
        };
        if let Some(refused) = self.refused_literal(&url) {
            return failed(refused);
        }
        let sent = self
            .client
            .post(url)
            .timeout(timeout)
            .header("content-type", "application/json")
            .header("webhook-id", request.id)
            .header("webhook-timestamp", request.timestamp.to_string())
            .header("webhook-signature", request.signature)
            .body(request.body.to_owned())
            .send()
            .await;
        let mut response = match sent {
            Ok(r) => r,
            Err(e) => return failed(describe(&e)),
        };
        let status = response.status().as_u16();
        let mut body = Vec::new();
        // The start of the body only; a read that fails leaves what came.
        while body.len() < RESPONSE_KEPT {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
        WebhookResponse {
            status_code: Some(status),
            body: (!body.is_empty()).then(|| kept_response(&body)),
            error: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(url: &str) -> WebhookRequest<'_> {
        WebhookRequest {
            url,
            id: "msg_1",
            timestamp: 1,
            signature: "v1,x",
            body: "{}",
        }
    }

    /// Serves `app` on a loopback port; the URL of its `/hook`.
    async fn serve(app: axum::Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/hook")
    }

    /// A receiver on loopback that answers `status` with a long body, and records the headers.
    async fn receiver(status: u16) -> (String, tokio::sync::mpsc::Receiver<Vec<(String, String)>>) {
        use axum::http::{HeaderMap, StatusCode};
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap| {
                let tx = tx.clone();
                async move {
                    let seen = headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                        .collect();
                    let _ = tx.send(seen).await;
                    (
                        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
                        "x".repeat(5000),
                    )
                }
            }),
        );
        (serve(app).await, rx)
    }

    #[tokio::test]
    async fn sends_the_standard_headers_and_keeps_a_kib_of_the_answer() {
        let (url, mut seen) = receiver(503).await;
        let sender = HttpWebhookSender::new(true).expect("client");
        let got = sender.send(request(&url), Duration::from_secs(5)).await;
        assert_eq!(got.status_code, Some(503));
        assert_eq!(got.body.as_deref().map(str::len), Some(RESPONSE_KEPT));
        let headers = seen.recv().await.expect("a request");
        for (name, value) in [
            ("webhook-id", "msg_1"),
            ("webhook-timestamp", "1"),
            ("webhook-signature", "v1,x"),
            ("content-type", "application/json"),
        ] {
            assert!(
                headers.iter().any(|(k, v)| k == name && v == value),
                "{name}: {value} in {headers:?}"
            );
        }
    }

    #[tokio::test]
    async fn refuses_loopback_unless_allowed_by_address_and_by_name() {
        let (url, _seen) = receiver(200).await;
        let guarded = HttpWebhookSender::new(false).expect("client");
        let by_address = guarded.send(request(&url), Duration::from_secs(5)).await;
        assert_eq!(by_address.status_code, None);
        assert!(
            by_address
                .error
                .unwrap_or_default()
                .contains("not a public address")
        );
        let named = url.replace("127.0.0.1", "localhost");
        let by_name = guarded.send(request(&named), Duration::from_secs(5)).await;
        assert_eq!(by_name.status_code, None, "{by_name:?}");
        assert!(
            by_name
                .error
                .unwrap_or_default()
                .contains("no public address"),
            "the resolver refused it"
        );
    }

    #[tokio::test]
    async fn does_not_follow_redirects() {
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(|| async {
                axum::response::Redirect::temporary("http://127.0.0.1:1/")
            }),
        );
        let url = serve(app).await;
        let sender = HttpWebhookSender::new(true).expect("client");
        let got = sender.send(request(&url), Duration::from_secs(5)).await;
        assert_eq!(
            got.status_code,
            Some(307),
            "a redirect is an answer, not followed"
        );
    }

    #[tokio::test]
    async fn a_request_that_takes_too_long_times_out() {
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        );
        let url = serve(app).await;
        let sender = HttpWebhookSender::new(true).expect("client");
        let got = sender.send(request(&url), Duration::from_millis(300)).await;
        assert_eq!(got.status_code, None);
        assert!(got.error.unwrap_or_default().contains("timed out"));
    }
}
