//! The HTTP client that makes delivery requests, and the SSRF guard on the
//! addresses it connects to.
//!
//! Endpoints were checked when saved, but a name can resolve elsewhere later
//! (DNS rebinding), so the resolver filters every lookup again; URLs with a
//! literal IP skip the resolver and are checked before sending. Redirects are
//! never followed and proxies are never used.

use std::{
    error::Error as StdError,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use entity::delivery_attempt::AttemptErrorKind;
use reqwest::{
    Client,
    dns::{Addrs, Name, Resolve, Resolving},
    header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER, USER_AGENT},
};
use url::{Host, Url};

use super::backoff::parse_retry_after;
use crate::domain::address::is_forbidden_ip;

/// How much of a response body is kept on the attempt.
pub const MAX_RESPONSE_BODY: usize = 4 * 1024;

pub const USER_AGENT_VALUE: &str = concat!("hookline/", env!("CARGO_PKG_VERSION"), " (webhooks)");

/// What a request comes back with, if it comes back at all.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    /// The first 4 KiB, lossily decoded.
    pub body: String,
    pub retry_after: Option<Duration>,
}

/// Why a request got no HTTP response. One variant per attempt error kind.
#[derive(Clone, Debug, thiserror::Error)]
pub enum SendError {
    #[error("no response within {0} ms")]
    Timeout(u64),
    #[error("connection failed: {0}")]
    Connection(String),
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    #[error("DNS lookup failed: {0}")]
    Dns(String),
    #[error("{0}")]
    BlockedAddress(String),
    /// No request made: the webhook's template could not be rendered.
    #[error("cannot render the request: {0}")]
    Render(String),
}

impl SendError {
    /// The attempt's error kind. Every kind but `Non2xx`, which is an
    /// answer, not a send error.
    pub fn kind(&self) -> AttemptErrorKind {
        match self {
            Self::Timeout(_) => AttemptErrorKind::Timeout,
            Self::Connection(_) => AttemptErrorKind::Connection,
            Self::Tls(_) => AttemptErrorKind::Tls,
            Self::Dns(_) => AttemptErrorKind::Dns,
            Self::BlockedAddress(_) => AttemptErrorKind::BlockedAddress,
            Self::Render(_) => AttemptErrorKind::Render,
        }
    }
}

/// One request to make.
pub struct Request<'a> {
    pub method: http::Method,
    pub url: &'a Url,
    /// None for a request without a body (a `GET` postback).
    pub content_type: Option<&'static str>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub timeout: Duration,
}

#[derive(Clone)]
pub struct DeliveryClient {
    http: Client,
    allow_private: bool,
}

impl DeliveryClient {
    pub fn new(allow_private: bool, max_idle_per_host: usize) -> anyhow::Result<Self> {
        let mut builder = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(USER_AGENT_VALUE)
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(max_idle_per_host);
        if !allow_private {
            builder = builder.dns_resolver(Arc::new(PublicOnlyResolver));
        }
        Ok(Self {
            http: builder.build()?,
            allow_private,
        })
    }

    pub async fn send(&self, request: Request<'_>) -> Result<Response, SendError> {
        if !self.allow_private {
            check_literal_host(request.url)?;
        }
        let timeout_ms = request.timeout.as_millis() as u64;
        let mut headers = request.headers;
        if let Some(content_type) = request.content_type {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        }
        headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        let exchange = async {
            let mut response = self
                .http
                .request(request.method, request.url.clone())
                .headers(headers)
                .body(request.body)
                .send()
                .await?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, SystemTime::now()));
            let mut body = Vec::new();
            while body.len() < MAX_RESPONSE_BODY {
                match response.chunk().await {
                    Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                    // A body that breaks off after the status still answered.
                    Ok(None) | Err(_) => break,
                }
            }
            body.truncate(MAX_RESPONSE_BODY);
            Ok::<_, reqwest::Error>(Response {
                status,
                body: storable_text(&body),
                retry_after,
            })
        };
        match tokio::time::timeout(request.timeout, exchange).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(err)) => Err(classify(&err, timeout_ms)),
            Err(_) => Err(SendError::Timeout(timeout_ms)),
        }
    }
}

fn check_literal_host(url: &Url) -> Result<(), SendError> {
    let ip = match url.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip),
        _ => return Ok(()),
    };
    if is_forbidden_ip(ip) {
        Err(blocked(ip))
    } else {
        Ok(())
    }
}

fn blocked(ip: IpAddr) -> SendError {
    SendError::BlockedAddress(format!(
        "refused to connect to {ip}: a private, loopback, link-local or reserved address"
    ))
}

/// Resolves with the system resolver and drops every forbidden address; a
/// name left with none fails with [`SendError::BlockedAddress`].
struct PublicOnlyResolver;

impl Resolve for PublicOnlyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|err| {
                    Box::new(SendError::Dns(format!("{host}: {err}")))
                        as Box<dyn StdError + Send + Sync>
                })?
                .collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| !is_forbidden_ip(a.ip()))
                .collect();
            match (allowed.is_empty(), found.first()) {
                (false, _) => Ok(Box::new(allowed.into_iter()) as Addrs),
                (true, Some(first)) => {
                    Err(Box::new(blocked(first.ip())) as Box<dyn StdError + Send + Sync>)
                }
                (true, None) => Err(Box::new(SendError::Dns(format!("{host}: no addresses")))
                    as Box<dyn StdError + Send + Sync>),
            }
        })
    }
}

/// Maps a reqwest failure onto an error kind by walking its causes.
fn classify(err: &reqwest::Error, timeout_ms: u64) -> SendError {
    if err.is_timeout() {
        return SendError::Timeout(timeout_ms);
    }
    let mut source: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(cause) = source {
        if let Some(ours) = cause.downcast_ref::<SendError>() {
            return ours.clone();
        }
        if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
            return SendError::Tls(tls.to_string());
        }
        // An io::Error's `source()` skips the error it wraps (the TLS layer's
        // error sits two io::Errors deep): step into it instead.
        source = match cause
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => cause.source(),
        };
    }
    SendError::Connection(crate::error::root_message(err))
}

/// Builds a header map from an endpoint's stored headers, skipping any that no
/// longer parse (they were validated when saved).
pub fn custom_headers(pairs: &[(String, String)]) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(pairs.len() + 5);
    for (name, value) in pairs {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(name, value);
        }
    }
    headers
}

/// What a receiver sent, as text any database column holds: invalid UTF-8
/// and NUL (which PostgreSQL's text refuses) become U+FFFD.
pub fn storable_text(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    if text.contains('\0') {
        text.replace('\0', "\u{fffd}")
    } else {
        text.into_owned()
    }
}

#[cfg(test)]
mod storable_tests {
    use super::storable_text;

    #[test]
    fn nul_and_invalid_utf8_become_replacement_characters() {
        assert_eq!(storable_text(b"ok"), "ok");
        assert_eq!(storable_text(b"a\0b"), "a\u{fffd}b");
        assert_eq!(storable_text(b"a\xffb"), "a\u{fffd}b");
    }
}
