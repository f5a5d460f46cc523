//! OpenTelemetry: with `--otlp-endpoint`, a publish and its delivery attempts
//! reach a collector (a stand-in on 127.0.0.1 decoding OTLP/HTTP protobuf) as
//! one trace, the attempts children of the publish, the publish a child of
//! the publisher's `traceparent`; each receiver sees the `traceparent` of the
//! attempt that called it. Without export, a publisher's `traceparent` is
//! passed through to the receivers unchanged.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, body::Bytes, extract::State, routing::post};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use serde_json::{Value, json};

use crate::support::{
    app::{TestApp, fresh_database},
    eventually,
    fixtures::{PUBLISH, create_webhook, create_webhook_doc, fast_webhook},
    gql::Gql,
    jwt::admin_token,
    process::ServerProcess,
    receiver::{Receiver, Reply},
};

#[derive(Clone, Debug)]
struct CollectedSpan {
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
}

/// An OTLP/HTTP collector stand-in: keeps every span it is sent.
async fn collector() -> (String, Arc<Mutex<Vec<CollectedSpan>>>) {
    let spans: Arc<Mutex<Vec<CollectedSpan>>> = Arc::default();
    let app = Router::new()
        .route(
            "/v1/traces",
            post(
                |State(spans): State<Arc<Mutex<Vec<CollectedSpan>>>>, body: Bytes| async move {
                    let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                    let mut kept = spans.lock().expect("spans");
                    for resource in request.resource_spans {
                        for scope in resource.scope_spans {
                            for span in scope.spans {
                                kept.push(CollectedSpan {
                                    name: span.name,
                                    trace_id: hex(&span.trace_id),
                                    span_id: hex(&span.span_id),
                                    parent_span_id: hex(&span.parent_span_id),
                                });
                            }
                        }
                    }
                    (
                        [("content-type", "application/x-protobuf")],
                        Vec::<u8>::new(),
                    )
                },
            ),
        )
        .with_state(spans.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, spans)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// (trace id, parent id) of a `traceparent` value.
fn parts(traceparent: &str) -> (String, String) {
    let fields: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(fields.len(), 4, "traceparent {traceparent}");
    (fields[1].to_owned(), fields[2].to_owned())
}

/// Publishes over HTTP with the given `traceparent` header.
async fn publish_traced(graphql_url: &str, token: &str, traceparent: Option<&str>) -> Value {
    let mut request = reqwest::Client::new()
        .post(graphql_url)
        .bearer_auth(token)
        .json(&json!({
            "query": PUBLISH,
            "variables": { "input": { "type": "conversion.status_changed", "data": { "conversionId": "cnv_1" } } },
        }));
    if let Some(traceparent) = traceparent {
        request = request.header("traceparent", traceparent);
    }
    let answer: Value = request
        .send()
        .await
        .expect("publish")
        .json()
        .await
        .expect("json");
    assert!(answer["errors"].is_null(), "{answer}");
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_and_its_attempts_are_one_trace_continued_by_the_receiver() {
    let (url, _dir) = fresh_database().await;
    let logs = tempfile::tempdir().expect("tempdir");
    let (collector_url, spans) = collector().await;
    // The first attempt of each event fails: two attempts per event.
    let receiver = Receiver::start(|n| {
        if n % 2 == 0 {
            Reply::Status(500)
        } else {
            Reply::Status(200)
        }
    })
    .await;
    let server = ServerProcess::start(&url, logs.path(), &["--otlp-endpoint", &collector_url]);
    let gql = Gql::new(server.graphql_url());
    let token = admin_token("acme");
    gql.ok(
        &token,
        &create_webhook_doc(),
        json!({ "input": fast_webhook(&receiver.url, &["conversion.*"], 3) }),
    )
    .await;

    let publisher_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let publisher_span = "00f067aa0ba902b7";
    let traceparent = format!("00-{publisher_trace}-{publisher_span}-01");
    publish_traced(&server.graphql_url(), &token, Some(&traceparent)).await;
    let received = receiver.wait_for(2, Duration::from_secs(30)).await;

    let trace = eventually(
        "the spans at the collector",
        Duration::from_secs(30),
        || {
            let spans = spans.clone();
            async move {
                let spans = spans.lock().expect("spans");
                let trace: Vec<CollectedSpan> = spans
                    .iter()
                    .filter(|s| s.trace_id == publisher_trace)
                    .cloned()
                    .collect();
                (trace.iter().filter(|s| s.name == "attempt").count() == 2).then_some(trace)
            }
        },
    )
    .await;
    let publish = trace
        .iter()
        .find(|s| s.name == "publish")
        .unwrap_or_else(|| panic!("a publish span in {trace:?}"));
    assert_eq!(
        publish.parent_span_id, publisher_span,
        "the publish continues the publisher's span"
    );
    let attempts: Vec<&CollectedSpan> = trace.iter().filter(|s| s.name == "attempt").collect();
    for attempt in &attempts {
        assert_eq!(
            attempt.parent_span_id, publish.span_id,
            "each attempt is a child of the publish"
        );
    }
    // Each request carried the traceparent of the attempt that sent it.
    for request in &received {
        let (trace_id, parent) = parts(request.header("traceparent"));
        assert_eq!(trace_id, publisher_trace);
        assert!(
            attempts.iter().any(|a| a.span_id == parent),
            "the receiver's parent {parent} is one of the attempts {attempts:?}"
        );
    }
    assert_ne!(
        parts(received[0].header("traceparent")).1,
        parts(received[1].header("traceparent")).1,
        "a retry is its own span"
    );

    // Without a traceparent the publish starts a trace of its own.
    let second = Receiver::ok().await;
    gql.ok(
        &token,
        &create_webhook_doc(),
        json!({ "input": fast_webhook(&second.url, &["offer.*"], 1) }),
    )
    .await;
    gql.ok(
        &token,
        PUBLISH,
        json!({ "input": { "type": "offer.updated", "data": {} } }),
    )
    .await;
    let got = second.wait_for(1, Duration::from_secs(30)).await;
    let (own_trace, own_parent) = parts(got[0].header("traceparent"));
    assert_ne!(own_trace, publisher_trace);
    eventually("the second trace", Duration::from_secs(30), || {
        let spans = spans.clone();
        let (own_trace, own_parent) = (own_trace.clone(), own_parent.clone());
        async move {
            let spans = spans.lock().expect("spans");
            let publish = spans
                .iter()
                .find(|s| s.trace_id == own_trace && s.name == "publish")?;
            let attempt = spans
                .iter()
                .find(|s| s.trace_id == own_trace && s.span_id == own_parent)?;
            (publish.parent_span_id.is_empty() && attempt.parent_span_id == publish.span_id)
                .then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn without_export_a_publishers_traceparent_reaches_the_receiver_unchanged() {
    let app = TestApp::spawn().await;
    let token = app.admin("acme");
    let receiver = Receiver::ok().await;
    create_webhook(
        &app,
        &token,
        fast_webhook(&receiver.url, &["conversion.*"], 1),
    )
    .await;
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    publish_traced(&app.url("/graphql"), &token, Some(traceparent)).await;
    // An invalid one is not passed on.
    publish_traced(&app.url("/graphql"), &token, Some("00-nonsense")).await;
    let received = receiver.wait_for(2, Duration::from_secs(30)).await;
    let headers: Vec<&str> = received.iter().map(|r| r.header("traceparent")).collect();
    assert!(headers.contains(&traceparent), "{headers:?}");
    assert!(
        headers.contains(&""),
        "no header for the invalid one: {headers:?}"
    );
    app.stop().await;
}
