//! `hookline listen`, the development receiver, as the real binary: real
//! deliveries from a server, and requests that must not verify.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use hookline::{crypto::signing_key, delivery::signer};
use serde_json::json;

use crate::support::{
    TestApp, eventually,
    fixtures::{create_webhook, delivery, fast_webhook, publish, wait_event_deliveries},
};

const WAIT: Duration = Duration::from_secs(15);

/// `hookline listen` as a child process, with everything it printed.
struct Listen {
    child: Child,
    port: u16,
    output: Arc<Mutex<String>>,
}

impl Listen {
    fn start(port: u16, args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hookline"))
            .args(["listen", "--port", &port.to_string()])
            .args(args)
            .env_remove("HOOKLINE_LISTEN_SECRET")
            .env_remove("HOOKLINE_LISTEN_PORT")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start hookline listen");
        let output = Arc::new(Mutex::new(String::new()));
        let stdout = child.stdout.take().expect("stdout");
        let sink = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut out = sink.lock().expect("output");
                out.push_str(&line);
                out.push('\n');
            }
        });
        let listen = Self {
            child,
            port,
            output,
        };
        listen.wait_for_text(&format!("ready on http://127.0.0.1:{port}/"));
        listen
    }

    fn output(&self) -> String {
        self.output.lock().expect("output").clone()
    }

    fn wait_for_text(&self, text: &str) {
        let deadline = std::time::Instant::now() + WAIT;
        while !self.output().contains(text) {
            assert!(
                std::time::Instant::now() < deadline,
                "`hookline listen` never printed {text:?}; it printed:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks", self.port)
    }
}

impl Drop for Listen {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on right now, so that a webhook can name the
/// listener's URL before the listener (which needs the webhook's secret)
/// starts.
fn free_port() -> u16 {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    socket.local_addr().expect("local addr").port()
}

#[tokio::test]
async fn listen_verifies_and_prints_each_attempt_and_rehearses_a_failure_before_success() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/hooks");
    let created = create_webhook(&app, &admin, fast_webhook(&url, &["offer.created"], 5)).await;
    let secret = created.secret.as_str();
    let listen = Listen::start(port, &["--secret", secret, "--fail-first", "1"]);

    let published = publish(&app, &admin, "offer.created", json!({ "offerId": 7 })).await;
    let event_id = published.event.id.as_str();
    let deliveries = wait_event_deliveries(&app, &admin, event_id, "SUCCEEDED").await;
    let delivery = delivery(&app, &admin, &deliveries[0].id).await;
    assert_eq!(delivery.attempt_count, 2);
    assert_eq!(delivery.attempts[0].response_status, Some(500));

    listen.wait_for_text("attempt   2\n");
    let printed = listen.output();
    let first = format!(
        "event     offer.created\nid        {event_id}\nattempt   1\nverified  yes (signed "
    );
    assert!(printed.contains(&first), "{printed}");
    assert!(
        printed.contains("answered  500 (--fail-first: failure 1 of 1)\n"),
        "{printed}"
    );
    let second = format!(
        "event     offer.created\nid        {event_id}\nattempt   2\nverified  yes (signed "
    );
    assert!(printed.contains(&second), "{printed}");
    assert!(printed.contains("answered  200\n"), "{printed}");
    assert!(printed.contains("\"offerId\": 7"), "{printed}");
    assert!(!printed.contains("NOT VERIFIED"), "{printed}");
}

#[tokio::test]
async fn listen_verifies_an_ed25519_webhook_with_its_public_key() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/hooks");
    let mut input = fast_webhook(&url, &["offer.created"], 5);
    input["signatureScheme"] = json!("ED25519");
    let created = create_webhook(&app, &admin, input).await;
    assert!(created.secret.starts_with("whpk_"));
    let listen = Listen::start(port, &["--secret", &created.secret]);
    let published = publish(&app, &admin, "offer.created", json!({ "offerId": 8 })).await;
    wait_event_deliveries(&app, &admin, &published.event.id, "SUCCEEDED").await;
    listen.wait_for_text("answered  200\n");
    let printed = listen.output();
    assert!(printed.contains("verified  yes (signed "), "{printed}");
    assert!(!printed.contains("NOT VERIFIED"), "{printed}");
}

#[tokio::test]
async fn listen_answers_401_and_says_why_to_requests_that_do_not_verify() {
    let secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    let key = signing_key(secret).expect("secret");
    let listen = Listen::start(
        free_port(),
        &["--secret", secret, "--max-body-bytes", "1000"],
    );
    let client = reqwest::Client::new();
    let body = r#"{"id":"evt_1","type":"offer.updated","data":{}}"#;
    let now = chrono::Utc::now().timestamp();
    let send = |timestamp: i64, signature: Option<String>, body: String| {
        let mut request = client
            .post(listen.url())
            .header("content-type", "application/json")
            .header("webhook-id", "evt_1")
            .header("webhook-timestamp", timestamp.to_string())
            .body(body);
        if let Some(signature) = signature {
            request = request.header("webhook-signature", signature);
        }
        async move { request.send().await.expect("request").status().as_u16() }
    };
    let signed =
        |key: &[u8], timestamp: i64| signer::sign(key, "evt_1", timestamp, body.as_bytes());

    assert_eq!(send(now, None, body.into()).await, 401);
    assert_eq!(
        send(now, Some(signed(b"another secret", now)), body.into()).await,
        401
    );
    assert_eq!(
        send(now - 600, Some(signed(&key, now - 600)), body.into()).await,
        401
    );
    assert_eq!(
        send(now + 600, Some(signed(&key, now + 600)), body.into()).await,
        401
    );
    assert_eq!(send(now, Some(signed(&key, now)), body.into()).await, 200);
    assert_eq!(
        send(now, Some(signed(&key, now)), "x".repeat(2000)).await,
        413
    );

    listen.wait_for_text("refused   413");
    let printed = listen.output();
    for reason in [
        "verified  NOT VERIFIED: no `webhook-signature` header\nanswered  401",
        "verified  NOT VERIFIED: none of the 1 signature(s) matches the secret",
        "verified  yes (signed ",
    ] {
        assert!(
            printed.contains(reason),
            "missing {reason:?} in:\n{printed}"
        );
    }
    // The listener's clock may have ticked a second past the test's.
    let age = |tail: &str| -> Option<i64> {
        printed.lines().find_map(|line| {
            let rest = line.strip_prefix("verified  NOT VERIFIED: signed ")?;
            rest.split_once(tail)?.0.parse().ok()
        })
    };
    let old = age(" s ago, more than 300 s");
    assert!(
        matches!(old, Some(600..=602)),
        "too old: {old:?} in:\n{printed}"
    );
    let early = age(" s in the future, more than 300 s");
    assert!(
        matches!(early, Some(598..=600)),
        "in the future: {early:?} in:\n{printed}"
    );
}

#[tokio::test]
async fn listen_without_a_secret_verifies_nothing_and_says_so() {
    let listen = Listen::start(free_port(), &[]);
    assert!(
        listen.output().contains("NO --secret given"),
        "{}",
        listen.output()
    );
    let status = reqwest::Client::new()
        .post(listen.url())
        .header("webhook-id", "evt_1")
        .header(
            "webhook-timestamp",
            chrono::Utc::now().timestamp().to_string(),
        )
        .header("webhook-signature", "v1,AAAA")
        .body("{}")
        .send()
        .await
        .expect("request")
        .status();
    assert_eq!(status, 401);
    eventually("the refusal to be printed", WAIT, || async {
        listen
            .output()
            .contains("NOT VERIFIED: no secret to check against")
            .then_some(())
    })
    .await;
}
