//! News between instances sharing one PostgreSQL: LISTEN/NOTIFY on one
//! channel, ids only (payloads must stay under 8 000 bytes) plus the status
//! a changed delivery went to, each instance ignoring its own.
//! Notifications are hints: the database is the truth, so after the
//! listening connection drops, a new one LISTENs and then the loader
//! re-reads what may have been missed (see `bus::resync`); workers keep
//! polling anyway.

use std::sync::Arc;

use futures::future::BoxFuture;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, Statement,
    sqlx::postgres::{PgListener, PgPool},
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use entity::delivery::DeliveryStatus;
use sea_orm::ActiveEnum;

use super::{Bus, Notice};
use crate::{
    db::chunks_by_size,
    domain::facts::{AttemptState, DeliveryChange},
    ids::{DeliveryId, InstanceId, PublicId},
    reconnect::Reconnect,
    time::now_ms,
};

pub const CHANNEL: &str = "hookline";
/// How far before the last moment it knew it was listening an instance
/// re-reads, for the others' clocks (they stamp what they record).
pub const SLACK_MS: i64 = 5_000;
/// How long before it noticed its connection was lost an instance may have
/// stopped hearing: a connection whose peer vanished without closing it is
/// noticed late. Bounds the re-read of an instance that heard nothing for
/// long (one alone is sent nothing) to what it may have missed.
const LOOKBACK_MS: i64 = 60_000;
/// Ids per NOTIFY: ~30 bytes each keeps a payload well under 8 000 bytes.
const IDS_PER_PAYLOAD: usize = 150;
/// Delivery changes per NOTIFY: ~90 bytes each.
const CHANGES_PER_PAYLOAD: usize = 60;

#[derive(Serialize, Deserialize)]
struct Payload {
    /// The instance that sent it.
    o: String,
    /// `d` deliveries due, `e` events, `a` attempts, `c` changed deliveries.
    k: char,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    changes: Vec<WireChange>,
}

/// A [`DeliveryChange`], compact: id, status, and after an attempt
/// `[count, at, response status, next attempt at]`.
type WireChange = (
    DeliveryId,
    String,
    Option<(i32, i64, Option<i32>, Option<i64>)>,
);

fn to_wire(change: DeliveryChange) -> WireChange {
    (
        change.id,
        change.status.to_value(),
        change
            .attempt
            .map(|a| (a.count, a.at, a.response_status, a.next_attempt_at)),
    )
}

fn from_wire((id, status, attempt): WireChange) -> Option<DeliveryChange> {
    Some(DeliveryChange {
        id,
        status: DeliveryStatus::try_from_value(&status).ok()?,
        attempt: attempt.map(
            |(count, at, response_status, next_attempt_at)| AttemptState {
                count,
                at,
                response_status,
                next_attempt_at,
            },
        ),
    })
}

/// Starts sending this instance's news and listening for the others', as
/// tasks of `tasks` that end when `stop` is cancelled.
pub fn start(
    tasks: &TaskTracker,
    stop: &CancellationToken,
    db: DatabaseConnection,
    bus: Arc<Bus>,
    outgoing: mpsc::Receiver<Notice>,
    instance: InstanceId,
) {
    let until_stopped = |task: BoxFuture<'static, ()>| {
        let stop = stop.clone();
        async move {
            tokio::select! {
                () = task => {}
                () = stop.cancelled() => {}
            }
        }
    };
    tasks.spawn(until_stopped(Box::pin(send(
        db.clone(),
        outgoing,
        instance.clone(),
    ))));
    // Dropping the listener hands its connection back, so the pool can close.
    tasks.spawn(until_stopped(Box::pin(listen(db, bus, instance))));
}

/// Sends queued news, merging what queued up meanwhile into few NOTIFYs,
/// sent by as few statements as fit `db::STATEMENT_BYTES` (one round trip
/// each; the NOTIFYs of one statement arrive together, in order).
async fn send(db: DatabaseConnection, mut outgoing: mpsc::Receiver<Notice>, instance: InstanceId) {
    let mut batch = Vec::new();
    while outgoing.recv_many(&mut batch, 256).await > 0 {
        let payloads = payloads(&instance, batch.drain(..));
        for chunk in chunks_by_size(&payloads, 64, String::len) {
            let Ok(json) = serde_json::to_string(chunk) else {
                continue;
            };
            let statement = Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_notify($1, p) FROM json_array_elements_text($2::json) AS p",
                [CHANNEL.into(), json.into()],
            );
            if let Err(err) = db.execute_raw(statement).await {
                tracing::debug!("NOTIFY failed; other instances will catch up by polling: {err}");
            }
        }
    }
}

fn payloads(instance: &InstanceId, notices: impl Iterator<Item = Notice>) -> Vec<String> {
    let mut due = false;
    let mut lists: [(char, Vec<String>); 2] = [('e', Vec::new()), ('a', Vec::new())];
    let mut changes = Vec::new();
    for notice in notices {
        match notice {
            Notice::DeliveriesDue => due = true,
            Notice::Events(ids) => lists[0].1.extend(ids.into_iter().map(String::from)),
            Notice::Attempts(ids) => lists[1].1.extend(ids.into_iter().map(String::from)),
            Notice::Deliveries(more) => changes.extend(more.into_iter().map(to_wire)),
            Notice::Resync { .. } | Notice::Hello => {}
        }
    }
    let encode = |k: char, ids: Vec<String>, changes: Vec<WireChange>| {
        serde_json::to_string(&Payload {
            o: instance.to_string(),
            k,
            ids,
            changes,
        })
        .expect("payload serializes")
    };
    let mut out = Vec::new();
    if due {
        out.push(encode('d', Vec::new(), Vec::new()));
    }
    for (kind, ids) in lists {
        for chunk in ids.chunks(IDS_PER_PAYLOAD) {
            out.push(encode(kind, chunk.to_vec(), Vec::new()));
        }
    }
    for chunk in changes.chunks(CHANGES_PER_PAYLOAD) {
        out.push(encode('c', Vec::new(), chunk.to_vec()));
    }
    out
}

fn decode(text: &str, instance: &InstanceId) -> Option<Notice> {
    let payload: Payload = serde_json::from_str(text).ok()?;
    if payload.o == instance.as_str() {
        return None;
    }
    Some(match payload.k {
        'd' => Notice::DeliveriesDue,
        'e' => Notice::Events(parsed(&payload.ids)),
        'a' => Notice::Attempts(parsed(&payload.ids)),
        'c' => Notice::Deliveries(payload.changes.into_iter().filter_map(from_wire).collect()),
        'h' => Notice::Hello,
        _ => return None,
    })
}

/// The ids of the kind expected; another instance sends no others.
fn parsed<T: PublicId>(ids: &[String]) -> Vec<T> {
    ids.iter().filter_map(|id| T::parse(id)).collect()
}

/// Tells the other instances this one listens.
async fn say_hello(db: &DatabaseConnection, instance: &InstanceId) {
    let hello = serde_json::json!({ "o": instance.as_str(), "k": "h" }).to_string();
    let statement = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_notify($1, $2)",
        [CHANNEL.into(), hello.into()],
    );
    if let Err(err) = db.execute_raw(statement).await {
        tracing::debug!("could not say hello to the other instances: {err}");
    }
}

/// Listens for other instances' news and hands it to the loader. Uses its
/// own connection from the pool for as long as it runs.
async fn listen(db: DatabaseConnection, bus: Arc<Bus>, instance: InstanceId) {
    let pool = db.get_postgres_connection_pool().clone();
    // The last moment this instance knew it was hearing the others.
    let mut last_heard = now_ms();
    // When this instance noticed it had stopped listening.
    let mut lost_at: Option<i64> = None;
    let mut reconnect = Reconnect::new("listening for other instances (LISTEN)");
    loop {
        let mut listener = listening(&pool, &mut reconnect).await;
        // The others may still count this instance out until their next
        // heartbeat, and would not relay their news to it meanwhile.
        say_hello(&db, &instance).await;
        // Only now that LISTEN is in place: what the others send from here
        // on is heard, and what they sent before is in the database.
        bus.to_loader_surely(Notice::Resync {
            since_ms: resync_since(last_heard, lost_at),
        })
        .await;
        last_heard = now_ms();
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => {
                    last_heard = now_ms();
                    if let Some(notice) = decode(notification.payload(), &instance) {
                        bus.heard_from_another();
                        if notice != Notice::Hello {
                            bus.to_loader(notice);
                        }
                    }
                }
                Ok(None) => {
                    tracing::warn!("lost the LISTEN connection; listening again on a new one");
                    lost_at = Some(now_ms());
                    break;
                }
                Err(err) => {
                    lost_at = Some(now_ms());
                    reconnect.failed(err).await;
                    break;
                }
            }
        }
    }
}

/// From when an instance that last heard the others at `last_heard`, and
/// noticed at `lost_at` that it had stopped listening, re-reads.
fn resync_since(last_heard: i64, lost_at: Option<i64>) -> i64 {
    let from = lost_at.map_or(last_heard, |lost| last_heard.max(lost - LOOKBACK_MS));
    from - SLACK_MS
}

/// A connection from `pool` that LISTENs, retried with backoff until one
/// does.
async fn listening(pool: &PgPool, reconnect: &mut Reconnect) -> PgListener {
    loop {
        let mut listener = match PgListener::connect_with(pool).await {
            Ok(listener) => listener,
            Err(err) => {
                reconnect.failed(err).await;
                continue;
            }
        };
        // A lost connection ends `try_recv` with `Ok(None)` at once, rather
        // than after sqlx has connected and listened again by itself: the
        // caller must know when LISTEN is back in place to re-read what it
        // missed after that, not before.
        listener.eager_reconnect(false);
        match listener.listen(CHANNEL).await {
            Ok(()) => {
                reconnect.succeeded();
                return listener;
            }
            Err(err) => reconnect.failed(err).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::AttemptId;

    #[test]
    fn a_re_read_goes_back_to_what_may_have_been_missed_and_no_further() {
        let hour = 3_600_000;
        assert_eq!(resync_since(hour, None), hour - SLACK_MS, "at start");
        assert_eq!(
            resync_since(hour - 2_000, Some(hour)),
            hour - 2_000 - SLACK_MS,
            "heard 2 s before the loss"
        );
        assert_eq!(
            resync_since(0, Some(hour)),
            hour - LOOKBACK_MS - SLACK_MS,
            "heard nothing for an hour: a minute back, not an hour"
        );
    }

    #[test]
    fn another_instances_hello_is_heard_and_ones_own_is_not() {
        let (me, other) = (InstanceId::new(), InstanceId::new());
        let hello = |from: &InstanceId| format!(r#"{{"o":"{from}","k":"h"}}"#);
        assert_eq!(decode(&hello(&other), &me), Some(Notice::Hello));
        assert_eq!(decode(&hello(&me), &me), None);
    }

    #[test]
    fn payloads_merge_and_stay_small() {
        let ids: Vec<AttemptId> = (0..400).map(|_| AttemptId::new()).collect();
        let (us, them) = (InstanceId::new(), InstanceId::new());
        let notices = vec![
            Notice::DeliveriesDue,
            Notice::Attempts(ids[..200].to_vec()),
            Notice::DeliveriesDue,
            Notice::Attempts(ids[200..].to_vec()),
        ];
        let out = payloads(&us, notices.into_iter());
        assert_eq!(out.len(), 1 + 3, "one due, 400 ids in chunks of 150");
        assert!(out.iter().all(|p| p.len() < 8_000));
        assert_eq!(decode(&out[0], &them), Some(Notice::DeliveriesDue));
        assert_eq!(decode(&out[1], &us), None, "our own news is ignored");
        match decode(&out[1], &them) {
            Some(Notice::Attempts(got)) => assert_eq!(got, ids[..150].to_vec()),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn delivery_changes_keep_the_state_they_changed_to() {
        let changes: Vec<DeliveryChange> = (0..100)
            .map(|_| DeliveryChange {
                id: DeliveryId::new(),
                status: DeliveryStatus::Retrying,
                attempt: Some(AttemptState {
                    count: 12,
                    at: 1_764_000_000_000,
                    response_status: Some(503),
                    next_attempt_at: Some(1_764_000_360_000),
                }),
            })
            .chain([DeliveryChange {
                id: DeliveryId::new(),
                status: DeliveryStatus::Cancelled,
                attempt: None,
            }])
            .collect();
        let out = payloads(
            &InstanceId::new(),
            [Notice::Deliveries(changes.clone())].into_iter(),
        );
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|p| p.len() < 8_000), "{}", out[0].len());
        let mut got = Vec::new();
        for payload in &out {
            match decode(payload, &InstanceId::new()) {
                Some(Notice::Deliveries(part)) => got.extend(part),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(got, changes);
    }
}
