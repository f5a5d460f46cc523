//! Prometheus metrics, rendered at `/metrics`. Each server has its own
//! registry (no process-wide recorder), so several instances in one process,
//! as in the tests, count separately.
//!
//! `/metrics` needs no login, and the queue gauges come from a count over
//! the whole queue: they are counted at most once per
//! [`QUEUE_COUNT_INTERVAL`], whoever scrapes and however often, so a loop on
//! `/metrics` costs one count a second, not a database connection kept busy.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Level, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Value};

use entity::{delivery_attempt::AttemptErrorKind, event};
use sea_orm::Iterable;
use tokio::sync::Mutex;

use crate::{
    db::statement,
    domain::facts::{DeliveryChange, Facts, LiveAttempt, WritePath, Writer},
    time::now_ms,
};

/// The queue gauges are counted at most this often per instance. A second
/// is well under any scrape interval (Prometheus' is 15 s to a minute), so
/// each regular scrape still gets a count of its own, while a loop on
/// `/metrics`, or several scrapers at once, cost one count a second. The
/// gauges are then at most this old, which their help texts say.
const QUEUE_COUNT_INTERVAL: Duration = Duration::from_secs(1);
const FINAL_STATUSES: &[&str] = &["SUCCEEDED", "FAILED", "CANCELLED"];
/// Attempt duration buckets, in seconds: fast local receivers to timeouts.
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

pub struct Metrics {
    handle: PrometheusHandle,
    events_published: Counter,
    deliveries_created: Counter,
    /// By error kind; `None` counts the successes.
    attempts: HashMap<Option<AttemptErrorKind>, Counter>,
    /// Deliveries that reached a final status, by status.
    finished: HashMap<&'static str, Counter>,
    attempt_seconds: Histogram,
    queue_due: Gauge,
    queue_open: Gauge,
    queue_oldest_due_seconds: Gauge,
    /// When the queue was last counted, or tried to be. Held while counting,
    /// so one scrape counts and the scrapes meanwhile wait for its figures.
    queue_counted_at: Mutex<Option<Instant>>,
    subscribers: Gauge,
    /// Requests in flight that left the worker's slots.
    worker_lingering: Gauge,
    read_replica_lag_seconds: Gauge,
    /// Log queries answered by the replica, and by the primary instead.
    log_queries: [Counter; 2],
    /// Writes by writer and path (`hookline_writes_total`).
    writes: HashMap<(Writer, WritePath), Counter>,
}

static METADATA: Metadata<'static> = Metadata::new("hookline", Level::INFO, Some(module_path!()));

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("hookline_attempt_duration_seconds".into()),
                DURATION_BUCKETS,
            )
            .expect("bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        describe_all(&recorder);
        let counter = |name: &'static str, labels: Vec<Label>| {
            recorder.register_counter(&Key::from_parts(name, labels), &METADATA)
        };
        let gauge = |name: &'static str| recorder.register_gauge(&Key::from_name(name), &METADATA);
        // Every series exists from the start, so a rate() over a kind that
        // has not happened yet reads 0 rather than nothing.
        let attempts = std::iter::once(None)
            .chain(AttemptErrorKind::iter().map(Some))
            .map(|kind| {
                let labels = outcome_labels(kind);
                (kind, counter("hookline_delivery_attempts_total", labels))
            })
            .collect();
        let finished = FINAL_STATUSES
            .iter()
            .map(|status| {
                let label = vec![Label::new("status", status.to_ascii_lowercase())];
                (
                    *status,
                    counter("hookline_deliveries_finished_total", label),
                )
            })
            .collect();
        Self {
            events_published: counter("hookline_events_published_total", Vec::new()),
            deliveries_created: counter("hookline_deliveries_created_total", Vec::new()),
            attempts,
            finished,
            attempt_seconds: recorder.register_histogram(
                &Key::from_name("hookline_attempt_duration_seconds"),
                &METADATA,
            ),
            queue_due: gauge("hookline_queue_due"),
            queue_open: gauge("hookline_queue_open"),
            queue_oldest_due_seconds: gauge("hookline_queue_oldest_due_seconds"),
            queue_counted_at: Mutex::new(None),
            subscribers: gauge("hookline_subscribers"),
            worker_lingering: gauge("hookline_worker_lingering"),
            read_replica_lag_seconds: gauge("hookline_read_replica_lag_seconds"),
            log_queries: ["replica", "primary"].map(|by| {
                counter(
                    "hookline_log_queries_total",
                    vec![Label::new("served_by", by)],
                )
            }),
            writes: writes(&counter),
            handle,
        }
    }

    pub fn published(&self, events: u64, deliveries: u64) {
        self.events_published.increment(events);
        self.deliveries_created.increment(deliveries);
    }

    /// One finished attempt. `error_kind` is `None` for a success.
    pub fn attempt(
        &self,
        error_kind: Option<AttemptErrorKind>,
        duration_ms: i32,
        final_status: Option<&str>,
    ) {
        if let Some(counter) = self.attempts.get(&error_kind) {
            counter.increment(1);
        }
        self.attempt_seconds
            .record(f64::from(duration_ms.max(0)) / 1000.0);
        if let Some(status) = final_status {
            self.finished(status);
        }
    }

    pub fn finished(&self, status: &str) {
        if let Some(counter) = self.finished.get(status) {
            counter.increment(1);
        }
    }

    /// With a read replica: its lag (`None`: unknown), and the log queries
    /// it and the primary answered so far.
    pub fn log_reads(&self, lag: Option<Duration>, by_replica: u64, by_primary: u64) {
        self.read_replica_lag_seconds
            .set(lag.map_or(f64::NAN, |lag| lag.as_secs_f64()));
        self.log_queries[0].absolute(by_replica);
        self.log_queries[1].absolute(by_primary);
    }

    /// One write by `writer`, the way `path` says (see `Facts::written`).
    pub fn written(&self, writer: Writer, path: WritePath) {
        if let Some(counter) = self.writes.get(&(writer, path)) {
            counter.increment(1);
        }
    }

    /// Samples the queue gauges (at most once per [`QUEUE_COUNT_INTERVAL`])
    /// and the subscriber gauge, then renders the text format.
    pub async fn render(&self, db: &DatabaseConnection, subscribers: usize) -> String {
        self.count_queue(db).await;
        self.subscribers.set(subscribers as f64);
        self.handle.render()
    }

    /// The worker's count of lingering requests (`delivery::worker`).
    pub fn worker_lingering(&self) -> Gauge {
        self.worker_lingering.clone()
    }

    /// Counts the queue into its gauges, unless it was counted or tried less
    /// than [`QUEUE_COUNT_INTERVAL`] ago. A scrape that comes while another
    /// counts waits for that count rather than starting its own. A count
    /// that fails leaves the gauges as they were and is tried again after
    /// the interval too, so a failing database is not asked on every scrape.
    async fn count_queue(&self, db: &DatabaseConnection) {
        let mut counted_at = self.queue_counted_at.lock().await;
        if counted_at.is_some_and(|at| at.elapsed() < QUEUE_COUNT_INTERVAL) {
            return;
        }
        // Stamped before the count: its figures are as old as its start, and
        // a scrape whose client hangs up mid-count still used up the turn.
        *counted_at = Some(Instant::now());
        match queue_depth(db).await {
            Ok((due, open, oldest_due_ms)) => {
                self.queue_due.set(due as f64);
                self.queue_open.set(open as f64);
                self.queue_oldest_due_seconds
                    .set(oldest_due_ms as f64 / 1000.0);
            }
            Err(err) => tracing::warn!("sampling the queue for /metrics failed: {err}"),
        }
    }
}

/// `hookline_writes_total`'s series: every writer and path, from the start.
fn writes(
    counter: &dyn Fn(&'static str, Vec<Label>) -> Counter,
) -> HashMap<(Writer, WritePath), Counter> {
    let writers = [(Writer::Publish, "publish"), (Writer::Recorder, "recorder")];
    let paths = [
        (WritePath::OneStatement, "one_statement"),
        (WritePath::Transaction, "transaction"),
        (WritePath::Refused, "refused"),
    ];
    writers
        .into_iter()
        .flat_map(|writer| paths.map(|path| (writer, path)))
        .map(|((writer, writer_label), (path, path_label))| {
            let labels = vec![
                Label::new("writer", writer_label),
                Label::new("way", path_label),
            ];
            ((writer, path), counter("hookline_writes_total", labels))
        })
        .collect()
}

fn outcome_labels(error_kind: Option<AttemptErrorKind>) -> Vec<Label> {
    match error_kind {
        None => vec![Label::new("outcome", "succeeded")],
        Some(kind) => vec![
            Label::new("outcome", "failed"),
            Label::new("error_kind", kind.as_label()),
        ],
    }
}

/// (due now, open in all, age of the oldest due in ms).
async fn queue_depth(db: &DatabaseConnection) -> Result<(i64, i64, i64), DbErr> {
    let now = now_ms();
    let sql = "SELECT \
        COUNT(CASE WHEN due_at <= $1 THEN 1 END) AS due, \
        COUNT(*) AS open, \
        MIN(CASE WHEN due_at <= $1 THEN due_at END) AS oldest \
        FROM delivery_queue";
    let values: Vec<Value> = vec![now.into()];
    let row = db
        .query_one_raw(statement(db.get_database_backend(), sql, values))
        .await?;
    let Some(row) = row else { return Ok((0, 0, 0)) };
    let due: i64 = row.try_get("", "due")?;
    let open: i64 = row.try_get("", "open")?;
    let oldest: Option<i64> = row.try_get("", "oldest")?;
    Ok((due, open, oldest.map_or(0, |at| (now - at).max(0))))
}

/// The facts port, counting what is published on the way to `inner`.
pub struct Counting {
    pub metrics: Arc<Metrics>,
    pub inner: Arc<dyn Facts>,
}

impl Facts for Counting {
    fn published(&self, events: &[event::Model], delivery_count: u64, due: u64) {
        self.metrics.published(events.len() as u64, delivery_count);
        self.inner.published(events, delivery_count, due);
    }

    fn deliveries_due(&self) {
        self.inner.deliveries_due();
    }

    fn attempts_recorded(&self, attempts: Vec<LiveAttempt>) {
        self.inner.attempts_recorded(attempts);
    }

    fn deliveries_changed(&self, changes: Vec<DeliveryChange>) {
        self.inner.deliveries_changed(changes);
    }

    fn written(&self, writer: Writer, path: WritePath) {
        self.metrics.written(writer, path);
        self.inner.written(writer, path);
    }
}

/// The help text and unit of every series, for `/metrics`.
fn describe_all(recorder: &PrometheusRecorder) {
    let describe = |name: &'static str, unit: Option<Unit>, help: &'static str| {
        recorder.describe_counter(KeyName::from(name), unit, help.into());
    };
    describe(
        "hookline_events_published_total",
        None,
        "Events accepted by publishEvent(s).",
    );
    describe(
        "hookline_deliveries_created_total",
        None,
        "Deliveries created (one per event and matching endpoint).",
    );
    describe(
        "hookline_delivery_attempts_total",
        None,
        "Delivery attempts by outcome and error kind.",
    );
    describe(
        "hookline_deliveries_finished_total",
        None,
        "Deliveries that reached a final status.",
    );
    describe(
        "hookline_writes_total",
        None,
        "Writes of group commits of publishes and of batches of attempts, by the way they \
         went: one_statement, transaction, or refused (the one statement wrote nothing; a \
         transaction took it).",
    );
    recorder.describe_histogram(
        KeyName::from("hookline_attempt_duration_seconds"),
        Some(Unit::Seconds),
        "Duration of delivery requests.".into(),
    );
    recorder.describe_gauge(
        KeyName::from("hookline_queue_due"),
        None,
        "Open deliveries due now (waiting for a worker); counted at most once a \
         second, so up to a second old."
            .into(),
    );
    recorder.describe_gauge(
        KeyName::from("hookline_queue_open"),
        None,
        "Deliveries pending or retrying, due or scheduled; counted at most once a \
         second, so up to a second old."
            .into(),
    );
    recorder.describe_gauge(
        KeyName::from("hookline_queue_oldest_due_seconds"),
        Some(Unit::Seconds),
        "How long the oldest due delivery has been waiting; counted at most once a \
         second, so up to a second old."
            .into(),
    );
    recorder.describe_gauge(
        KeyName::from("hookline_read_replica_lag_seconds"),
        Some(Unit::Seconds),
        "How far the read replica is behind the primary at most (NaN: unknown or none).".into(),
    );
    recorder.describe_counter(
        KeyName::from("hookline_log_queries_total"),
        None,
        "Log queries with a read replica configured, by the database that answered.".into(),
    );
    recorder.describe_gauge(
        KeyName::from("hookline_worker_lingering"),
        None,
        "Delivery requests running for over a second that left the worker's slots \
         (the worker was full, or their tenant's share held back its other endpoints)."
            .into(),
    );
    recorder.describe_gauge(
        KeyName::from("hookline_subscribers"),
        None,
        "Live GraphQL subscriptions on this instance.".into(),
    );
}
