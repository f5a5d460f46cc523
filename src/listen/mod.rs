//! `hookline listen`: a receiver for development. It binds 127.0.0.1 only,
//! checks every request's Standard Webhooks signature with the webhook's
//! secret, prints what arrived, and answers with a chosen status so that a
//! developer can watch deliveries, and rehearse failures and retries, without
//! writing a receiver first.

mod report;
mod verify;

use std::{
    collections::HashMap,
    future::Future,
    io::Write,
    net::{Ipv4Addr, SocketAddr},
    sync::{Arc, Mutex},
};

use anyhow::Context;
use axum::{
    Router,
    body::Bytes,
    extract::{DefaultBodyLimit, State, rejection::BytesRejection},
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use tokio::net::TcpListener;

use crate::delivery::ATTEMPT_HEADER;

use verify::{Key, Refusal, SignedHeaders, Verified, verify};

/// Options of `hookline listen`.
#[derive(clap::Args, Clone, Debug)]
#[command(after_help = "\
Every request is printed: event type, event id, attempt number, whether its \
signature verified (and if not, why), the status answered, and the body \
(pretty-printed JSON).

Requests that do not verify are printed as NOT VERIFIED and answered 401: no \
`webhook-signature` (or `webhook-id`, `webhook-timestamp`) header, no \
signature matching the secret, a timestamp more than 5 minutes off, or no \
--secret to check against. Verified deliveries get --status (200), or 500 for \
the first --fail-first attempts of each event.

Point a webhook at the printed URL; `hookline serve` delivers to 127.0.0.1 \
only with --allow-private-endpoints (HOOKLINE_ALLOW_PRIVATE_ENDPOINTS=true).")]
pub struct ListenArgs {
    /// Port to receive on, on 127.0.0.1 (never another interface). 0 picks
    /// a free port.
    #[arg(long, env = "HOOKLINE_LISTEN_PORT", default_value_t = 8090)]
    pub port: u16,

    /// What to verify signatures with, as `createWebhook` or
    /// `rotateWebhookSecret` returned it: the webhook's `whsec_…` secret, or
    /// for an ED25519 webhook its `whpk_…` public key.
    #[arg(long, env = "HOOKLINE_LISTEN_SECRET", hide_env_values = true)]
    pub secret: Option<String>,

    /// Status to answer verified deliveries with, e.g. 500 or 503 to watch
    /// hookline retry, 410 to watch it disable the webhook.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u16).range(200..=599))]
    pub status: u16,

    /// Answer the first N attempts of each event with 500, then --status:
    /// rehearses retries that end in success.
    #[arg(long, default_value_t = 0)]
    pub fail_first: u32,

    /// Largest request body accepted, in bytes; larger ones are answered 413
    /// unread.
    #[arg(long, default_value_t = 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(1..=256 * 1024 * 1024))]
    pub max_body_bytes: u64,
}

/// Fail-first counts are kept for at most this many events; past it they
/// start again, so a long session cannot grow them without bound.
const MAX_TRACKED_EVENTS: usize = 10_000;

struct Listener {
    key: Option<Key>,
    status: u16,
    fail_first: u32,
    max_body_bytes: u64,
    /// Attempts answered with a rehearsed failure, per `webhook-id`.
    failed: Mutex<HashMap<String, u32>>,
}

/// Receives on 127.0.0.1:`args.port` until `shutdown` completes.
pub async fn run(
    args: ListenArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let key = args
        .secret
        .as_deref()
        .map(|secret| Key::parse(secret.trim()))
        .transpose()
        .context(
            "--secret (HOOKLINE_LISTEN_SECRET) must be a `whsec_` secret or a `whpk_` public key",
        )?;
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, args.port))
        .await
        .with_context(|| {
            format!(
                "binding 127.0.0.1:{} (choose another with --port)",
                args.port
            )
        })?;
    let address = listener.local_addr()?;
    let state = Arc::new(Listener {
        key,
        status: args.status,
        fail_first: args.fail_first,
        max_body_bytes: args.max_body_bytes,
        failed: Mutex::new(HashMap::new()),
    });
    print(&banner(address, &state));
    let body_limit = usize::try_from(args.max_body_bytes).unwrap_or(usize::MAX);
    let app = Router::new()
        .fallback(receive)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .context("receiving")
}

fn banner(address: SocketAddr, state: &Listener) -> String {
    let checks = if state.key.is_some() {
        "signatures are checked with the given secret; requests that do not verify are answered 401"
    } else {
        "NO --secret given: nothing can be verified, every request is answered 401"
    };
    let answer = if state.fail_first > 0 {
        format!(
            "verified deliveries: the first {} attempt(s) of each event are answered 500, then {}",
            state.fail_first, state.status
        )
    } else {
        format!("verified deliveries are answered {}", state.status)
    };
    format!(
        "hookline listen: ready on http://{address}/\n  \
         use http://{address}/ as a webhook endpoint URL \
         (hookline serve needs --allow-private-endpoints to deliver to 127.0.0.1)\n  \
         {checks}\n  {answer}\n  Ctrl-C to stop\n\n"
    )
}

async fn receive(
    State(state): State<Arc<Listener>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let received_at = chrono::Utc::now();
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let status = rejection.status();
            print(&format!(
                "--- {}  {method} {uri}\nrefused   {} ({}; the limit is {} bytes, see --max-body-bytes)\n\n",
                received_at.format("%Y-%m-%d %H:%M:%S UTC"),
                status.as_u16(),
                rejection.body_text(),
                state.max_body_bytes,
            ));
            return (status, "request body refused\n").into_response();
        }
    };
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let signed = SignedHeaders {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    // A GET postback has no body: hookline signs its path and query instead.
    let content: &[u8] = if method == Method::GET {
        path.as_bytes()
    } else {
        &body
    };
    let verdict = verify(state.key.as_ref(), signed, content, received_at.timestamp());
    let (status, status_note) = state.answer(&verdict, signed.id);
    print(&report::render(
        &report::Received {
            method: method.as_str(),
            path,
            message_id: signed.id,
            attempt: header(ATTEMPT_HEADER),
            verdict: &verdict,
            status,
            status_note,
            body: &body,
        },
        &received_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    ));
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match verdict {
        Err(refusal) => (status, format!("signature not verified: {refusal}\n")).into_response(),
        Ok(_) => status.into_response(),
    }
}

impl Listener {
    /// The status to answer with, and why when it is not simply --status.
    fn answer(
        &self,
        verdict: &Result<Verified, Refusal>,
        id: Option<&str>,
    ) -> (u16, Option<String>) {
        if verdict.is_err() {
            return (401, Some("not verified".to_owned()));
        }
        if self.fail_first == 0 {
            return (self.status, None);
        }
        let Ok(mut failed) = self.failed.lock() else {
            return (self.status, None);
        };
        if failed.len() >= MAX_TRACKED_EVENTS {
            failed.clear();
        }
        let count = failed.entry(id.unwrap_or_default().to_owned()).or_insert(0);
        if *count < self.fail_first {
            *count += 1;
            return (
                500,
                Some(format!(
                    "--fail-first: failure {} of {}",
                    count, self.fail_first
                )),
            );
        }
        (self.status, None)
    }
}

/// Writes to stdout, ignoring a closed pipe: what was received matters more
/// than whether anyone still reads the screen.
fn print(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}
