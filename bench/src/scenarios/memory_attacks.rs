//! Part of scenario 6, `memory`: what one viewer can make the server hold, on
//! a fresh server, with the server's resident memory before and after each
//! attack and what the server answered.
//!
//! - many distinct subscriptions: sockets × subscriptions that differ only
//!   in a variable (each distinct subscription runs, and buffers, on its own);
//! - a heavy aliased read: one query with 12 aliases of
//!   `events(first: 100) { nodes { data } }` over 100 stored events of 250 KB.

use std::{net::SocketAddr, time::Duration};

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{Message, client::IntoClientRequest, http::HeaderValue},
};

use super::{
    Ctx, Env,
    memory::{RssSampler, mib},
};
use crate::report::{Cell, Section, Table};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const SOCKETS: u32 = 10;
/// Subscriptions per socket; with the query that checks them, at the
/// server's limit of 100 operations per socket.
const PER_SOCKET: u32 = 99;
const BIG_EVENTS: usize = 100;
const BIG_EVENT_BYTES: usize = 250_000;
const ALIASES: usize = 12;
const WAIT: Duration = Duration::from_secs(60);

const SUBSCRIPTION: &str = "subscription($filter: EventPublishedFilter) { \
     eventsPublished(filter: $filter) { id type data } }";

pub async fn run(ctx: &Ctx, section: &mut Section) -> anyhow::Result<()> {
    let mut table = Table::new(
        "memory attacks, fresh server (MiB): VmRSS before and after, sampled peak; what the server answered",
        vec![
            "attack",
            "rss before",
            "rss after",
            "sampled peak",
            "answer",
        ],
    );
    let env = Env::start(ctx, "memory-attacks").await?;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let (before, _) = env.server.memory_kib()?;
    let sampler = RssSampler::start(env.server.pid);
    let (sockets, answer) = distinct_subscriptions(env.server.addr, &env.token).await?;
    let peak = sampler.finish().await;
    let (after, _) = env.server.memory_kib()?;
    table.row(vec![
        Cell::Text(format!(
            "{SOCKETS} sockets x {PER_SOCKET} distinct subscriptions"
        )),
        mib(before),
        mib(after),
        mib(peak.max(after)),
        Cell::Text(answer),
    ]);
    drop(sockets);
    tokio::time::sleep(Duration::from_secs(1)).await;

    publish_big_events(&env).await?;
    for (label, aliases) in [
        ("one page: events(first: 100) { data }", 1),
        ("12 aliases of that page in one query", ALIASES),
    ] {
        let (before, _) = env.server.memory_kib()?;
        let sampler = RssSampler::start(env.server.pid);
        let answer = heavy_read(&env, aliases).await;
        let peak = sampler.finish().await;
        let (after, _) = env.server.memory_kib()?;
        table.row(vec![
            Cell::Text(format!(
                "{label} ({BIG_EVENTS} events of {} KB stored)",
                BIG_EVENT_BYTES / 1000
            )),
            mib(before),
            mib(after),
            mib(peak.max(after)),
            Cell::Text(answer),
        ]);
    }
    section.tables.push(table);
    section.note(
        "memory attacks: bounds are the server's defaults: 500 live subscriptions per tenant \
         (TOO_MANY_SUBSCRIPTIONS past it), 100 operations per socket, subscription buffers that \
         hold only unread items (64 MiB for all), and 32 MiB of payload per query \
         (RESPONSE_TOO_LARGE past it)",
    );
    env.stop(section, "memory-attacks").await;
    Ok(())
}

/// Opens the sockets and subscriptions and keeps them open (returned); the
/// answer counts those taken and those refused, by code.
async fn distinct_subscriptions(
    addr: SocketAddr,
    token: &str,
) -> anyhow::Result<(Vec<Ws>, String)> {
    let mut sockets = Vec::new();
    let (mut taken, mut refused) = (0, std::collections::BTreeMap::<String, u32>::new());
    for s in 0..SOCKETS {
        let mut ws = connect(addr, token).await?;
        for i in 0..PER_SOCKET {
            let variables =
                json!({ "filter": { "type": "conversion.created" }, "n": s * 1_000 + i });
            let subscribe = json!({ "id": i.to_string(), "type": "subscribe",
                                    "payload": { "query": SUBSCRIPTION, "variables": variables } });
            send(&mut ws, subscribe).await?;
        }
        // Refusals come before the answer to a query sent after them.
        let query = json!({ "id": "q", "type": "subscribe",
                            "payload": { "query": "{ viewer { tenant } }" } });
        send(&mut ws, query).await?;
        let mut refused_here = 0;
        loop {
            let message = recv(&mut ws).await?;
            match message["type"].as_str() {
                Some("error") => {
                    let code = message["payload"][0]["extensions"]["code"]
                        .as_str()
                        .unwrap_or("?")
                        .to_owned();
                    *refused.entry(code).or_default() += 1;
                    refused_here += 1;
                }
                Some("next") if message["id"] == "q" => break,
                _ => {}
            }
        }
        taken += PER_SOCKET - refused_here;
        sockets.push(ws);
    }
    let refused: Vec<String> = refused.iter().map(|(c, n)| format!("{n} {c}")).collect();
    let refused = if refused.is_empty() {
        "none refused".to_owned()
    } else {
        format!("refused: {}", refused.join(", "))
    };
    Ok((sockets, format!("{taken} running, {refused}")))
}

async fn connect(addr: SocketAddr, token: &str) -> anyhow::Result<Ws> {
    let mut request = format!("ws://{addr}/graphql/ws").into_client_request()?;
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static("graphql-transport-ws"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .context("WebSocket upgrade")?;
    let init = json!({ "type": "connection_init",
                       "payload": { "Authorization": format!("Bearer {token}") } });
    send(&mut ws, init).await?;
    let ack = recv(&mut ws).await?;
    if ack["type"] != "connection_ack" {
        bail!("expected connection_ack, got {ack}");
    }
    Ok(ws)
}

async fn send(ws: &mut Ws, message: Value) -> anyhow::Result<()> {
    ws.send(Message::text(message.to_string()))
        .await
        .context("sending on the WebSocket")
}

/// The next JSON message, answering pings.
async fn recv(ws: &mut Ws) -> anyhow::Result<Value> {
    loop {
        let frame = tokio::time::timeout(WAIT, ws.next())
            .await
            .context("no message within 60 s")?
            .context("socket closed")??;
        match frame {
            Message::Text(text) => {
                let message: Value = serde_json::from_str(text.as_str())?;
                if message["type"] == "ping" {
                    send(ws, json!({ "type": "pong" })).await?;
                    continue;
                }
                return Ok(message);
            }
            Message::Close(frame) => bail!("socket closed: {frame:?}"),
            _ => {}
        }
    }
}

async fn publish_big_events(env: &Env) -> anyhow::Result<()> {
    let blob = "x".repeat(BIG_EVENT_BYTES);
    // Ten per call keeps each request far below the request size limit.
    for _ in 0..BIG_EVENTS / 10 {
        let inputs: Vec<Value> = (0..10)
            .map(|_| json!({ "type": "conversion.created", "data": { "blob": blob } }))
            .collect();
        env.api
            .request::<Value>(
                "mutation($inputs: [PublishEventInput!]!) { publishEvents(inputs: $inputs) { duplicate } }",
                json!({ "inputs": inputs }),
            )
            .await?;
    }
    Ok(())
}

/// Runs the read; the answer: its size, or the error code.
async fn heavy_read(env: &Env, aliases: usize) -> String {
    let fields: String = (0..aliases)
        .map(|i| format!("a{i}: events(first: {BIG_EVENTS}) {{ nodes {{ data }} }} "))
        .collect();
    match env
        .api
        .request::<Value>(&format!("{{ {fields} }}"), Value::Null)
        .await
    {
        Ok(data) => format!(
            "answered, {:.1} MB of JSON",
            data.to_string().len() as f64 / 1e6
        ),
        Err(err) => {
            let text = format!("{err:#}");
            match [
                "RESPONSE_TOO_LARGE",
                "BAD_USER_INPUT",
                "UNAVAILABLE",
                "INTERNAL",
            ]
            .into_iter()
            .find(|code| text.contains(code))
            {
                Some(code) => format!("refused: {code}"),
                None => format!("failed: {:.120}", text),
            }
        }
    }
}
