//! The scenarios, and what they share: sizes, a running server with a
//! receiver and an API client, publishing loops, and waiting for progress.

mod capacity;
mod fanout;
mod filters;
mod ingest;
mod isolation;
mod latency;
mod memory;
mod memory_attacks;
mod ordering;
mod publish;
mod single;
mod throughput;

use std::time::{Duration, Instant};

use crate::{
    Cli, Scenario,
    api::{Api, DeliveryStats, WebhookSpec},
    auth,
    cost::{Cost, CostMeter},
    receiver::Receiver,
    report::Section,
    server::{JWT_SECRET, Server, ServerOptions},
    statements::Statements,
};

pub use publish::{Publish, Published, publish};

/// Events per `publishEvents` call when publishing as fast as possible.
pub const BATCH: u64 = 100;
/// Most endpoints one webhook may have.
const ENDPOINTS_PER_WEBHOOK: u32 = 10;

/// Sizes of every scenario, after `--quick` and the flags.
pub struct Sizes {
    pub ingest_events: u64,
    pub ingest_batch_events: u64,
    pub ingest_concurrency: usize,
    pub events: u64,
    pub endpoints: Vec<u32>,
    pub publishers: usize,
    pub single_events: u64,
    pub single_endpoints: Vec<u32>,
    pub connections: usize,
    pub rate: u32,
    pub duration: Duration,
    pub subscribers: u32,
    pub isolation_events: u64,
    pub queued: u64,
    /// Ports the receiver listens on; endpoints are spread over them.
    pub receiver_ports: u32,
    /// capacity: instance counts, and endpoints per event of the sized load.
    pub instances: Vec<usize>,
    pub capacity_mix: u32,
}

pub struct Ctx {
    pub options: ServerOptions,
    pub sizes: Sizes,
    pub quick: bool,
    /// Give up waiting after this long without progress.
    pub stall: Duration,
    /// Whether SQL statements can be counted.
    pub statements: Statements,
}

impl Ctx {
    pub fn new(cli: &Cli, options: ServerOptions, statements: Statements) -> Self {
        let q = cli.quick;
        let pick =
            |flag: Option<u64>, full: u64, quick: u64| flag.unwrap_or(if q { quick } else { full });
        let sizes = Sizes {
            ingest_events: pick(cli.ingest_events, 5_000, 300),
            ingest_batch_events: pick(cli.ingest_batch_events, 20_000, 300),
            ingest_concurrency: cli.ingest_concurrency.max(1),
            events: pick(cli.events, 20_000, 300),
            endpoints: if cli.endpoints.is_empty() {
                vec![1, 10]
            } else {
                cli.endpoints.iter().map(|&e| e.max(1)).collect()
            },
            publishers: cli.publishers.max(1),
            single_events: pick(cli.single_events, 20_000, 300),
            single_endpoints: if cli.single_endpoints.is_empty() {
                vec![1, 5]
            } else {
                cli.single_endpoints.iter().map(|&e| e.max(1)).collect()
            },
            connections: cli.connections.max(1),
            rate: cli.rate.max(1),
            duration: cli
                .duration
                .unwrap_or(Duration::from_secs(if q { 2 } else { 20 })),
            subscribers: cli.subscribers.unwrap_or(if q { 20 } else { 1_000 }),
            isolation_events: pick(cli.isolation_events, 5_000, 300),
            queued: pick(cli.queued, 100_000, 2_000),
            receiver_ports: cli.receiver_ports.max(1),
            instances: match (cli.instances.is_empty(), q) {
                (false, _) => cli.instances.iter().map(|&n| n.max(1)).collect(),
                (true, false) => vec![1, 3, 5],
                (true, true) => vec![1, 2],
            },
            capacity_mix: cli.capacity_mix.max(1),
        };
        Self {
            options,
            sizes,
            quick: q,
            stall: cli.stall_timeout,
            statements,
        }
    }

    /// Each scenario's parameters, for the report's header.
    pub fn parameters(&self) -> Vec<(&'static str, Vec<(&'static str, String)>)> {
        let mut all = vec![("server", self.server_params())];
        all.extend(Scenario::ALL.map(|s| (s.name(), self.params(s))));
        all
    }

    fn server_params(&self) -> Vec<(&'static str, String)> {
        let show = |v: Option<u32>, default: &str| {
            v.map_or(format!("{default} (default)"), |v| v.to_string())
        };
        vec![
            (
                "worker_concurrency",
                show(self.options.worker_concurrency, "512"),
            ),
            (
                "endpoint_concurrency",
                show(self.options.endpoint_concurrency, "32"),
            ),
            ("quick", self.quick.to_string()),
            ("receiver_ports", self.sizes.receiver_ports.to_string()),
            ("stall_timeout", format!("{:?}", self.stall)),
            ("statements", self.statements.describe()),
        ]
    }

    pub fn params(&self, scenario: Scenario) -> Vec<(&'static str, String)> {
        let s = &self.sizes;
        let rate_load = || {
            vec![
                ("rate", format!("{}/s", s.rate)),
                ("duration", format!("{:?}", s.duration)),
                ("events", self.open_loop_events().to_string()),
                ("endpoints", "1".into()),
            ]
        };
        match scenario {
            Scenario::Ingest => vec![
                ("events_single", s.ingest_events.to_string()),
                ("concurrency", s.ingest_concurrency.to_string()),
                ("events_batched", s.ingest_batch_events.to_string()),
                ("batch", BATCH.to_string()),
                ("publishers", s.publishers.to_string()),
                ("endpoints", "1".into()),
            ],
            Scenario::Throughput => vec![
                ("events", s.events.to_string()),
                ("endpoints", join(&s.endpoints)),
                ("batch", BATCH.to_string()),
                ("publishers", s.publishers.to_string()),
            ],
            Scenario::Single => vec![
                ("events", s.single_events.to_string()),
                ("endpoints", join(&s.single_endpoints)),
                ("connections", s.connections.to_string()),
                ("request", "publishEvent, closed loop".into()),
            ],
            Scenario::Latency => rate_load(),
            Scenario::Fanout => {
                let mut params = vec![("subscribers", s.subscribers.to_string())];
                params.extend(rate_load());
                params
            }
            Scenario::Isolation => vec![
                ("events", s.isolation_events.to_string()),
                ("healthy_endpoints", "1".into()),
                ("hanging_endpoints", "1 (timeoutMs 10000)".into()),
                ("batch", BATCH.to_string()),
                ("publishers", s.publishers.to_string()),
            ],
            Scenario::Ordering => vec![
                (
                    "events",
                    format!(
                        "{} (1 key: {})",
                        s.events,
                        ordering::one_key_events(s.events)
                    ),
                ),
                ("keys", "unordered|1|1000".into()),
                ("endpoints", "1".into()),
                ("batch", BATCH.to_string()),
                ("publishers", s.publishers.to_string()),
            ],
            Scenario::Filters => vec![
                ("events", s.events.to_string()),
                ("webhooks", format!("1 delivering + {}", filters::OTHERS)),
                ("endpoints", "1".into()),
                ("batch", BATCH.to_string()),
                ("publishers", s.publishers.to_string()),
            ],
            Scenario::Capacity => capacity::params(s),
            Scenario::Memory => vec![
                ("events", s.events.to_string()),
                ("endpoints", "1".into()),
                ("queued", s.queued.to_string()),
                ("sample_every", "100ms".into()),
            ],
        }
    }

    pub fn open_loop_events(&self) -> u64 {
        (f64::from(self.sizes.rate) * self.sizes.duration.as_secs_f64()).round() as u64
    }

    /// How long to keep listening for duplicates once everything arrived.
    pub fn settle(&self) -> Duration {
        Duration::from_millis(if self.quick { 300 } else { 1_000 })
    }
}

pub fn join<T: ToString>(values: &[T]) -> String {
    values
        .iter()
        .map(T::to_string)
        .collect::<Vec<_>>()
        .join("|")
}

pub async fn run(scenario: Scenario, ctx: &Ctx) -> anyhow::Result<Section> {
    match scenario {
        Scenario::Ingest => ingest::run(ctx).await,
        Scenario::Throughput => throughput::run(ctx).await,
        Scenario::Single => single::run(ctx).await,
        Scenario::Latency => latency::run(ctx).await,
        Scenario::Fanout => fanout::run(ctx).await,
        Scenario::Isolation => isolation::run(ctx).await,
        Scenario::Memory => memory::run(ctx).await,
        Scenario::Ordering => ordering::run(ctx).await,
        Scenario::Filters => filters::run(ctx).await,
        Scenario::Capacity => capacity::run(ctx).await,
    }
}

/// A server on a fresh database, a receiver, and an admin client; with
/// `peers`, more instances on the same database.
pub struct Env {
    pub server: Server,
    pub receiver: Receiver,
    pub api: Api,
    pub token: String,
    pub peers: Vec<Server>,
    /// `api` and a client of each peer: publishing spreads over them.
    pub apis: Vec<Api>,
}

impl Env {
    pub async fn start(ctx: &Ctx, label: &str) -> anyhow::Result<Self> {
        Self::start_with(ctx, label, &[]).await
    }

    /// With extra `hookline serve` arguments.
    pub async fn start_with(ctx: &Ctx, label: &str, extra: &[&str]) -> anyhow::Result<Self> {
        let receiver = Receiver::start(ctx.sizes.receiver_ports).await?;
        let server = Server::start(&ctx.options, label, extra).await?;
        let token = auth::admin_token(JWT_SECRET, "bench");
        let api = Api::new(server.addr, &token)?;
        eprintln!(
            "[bench]   server {} (pid {}) ready in {:.1} s",
            server.addr,
            server.pid,
            server.started_in.as_secs_f64()
        );
        Ok(Self {
            server,
            receiver,
            apis: vec![api.clone()],
            api,
            token,
            peers: Vec::new(),
        })
    }

    /// Starts instances on the server's database until there are `count`.
    pub async fn add_instances(&mut self, ctx: &Ctx, count: usize) -> anyhow::Result<()> {
        while self.peers.len() + 1 < count {
            let peer = self.server.join(&ctx.options, self.peers.len() + 2).await?;
            eprintln!(
                "[bench]   instance {} at {} (pid {}) ready in {:.1} s",
                self.peers.len() + 2,
                peer.addr,
                peer.pid,
                peer.started_in.as_secs_f64()
            );
            self.apis.push(Api::new(peer.addr, &self.token)?);
            self.peers.push(peer);
        }
        Ok(())
    }

    /// Replaces the server with one on the same database and `extra` arguments.
    pub async fn restart(&mut self, ctx: &Ctx, extra: &[&str]) -> anyhow::Result<()> {
        self.server.restart(&ctx.options, extra).await?;
        self.api = Api::new(self.server.addr, &self.token)?;
        self.apis[0] = self.api.clone();
        eprintln!(
            "[bench]   restarted: server {} (pid {}) ready in {:.1} s",
            self.server.addr,
            self.server.pid,
            self.server.started_in.as_secs_f64()
        );
        Ok(())
    }

    /// Webhooks (10 endpoints each) delivering to healthy endpoints `0..count`.
    pub async fn healthy_webhooks(&self, count: u32) -> anyhow::Result<Vec<u32>> {
        let endpoints: Vec<u32> = (0..count).collect();
        for (n, chunk) in endpoints.chunks(ENDPOINTS_PER_WEBHOOK as usize).enumerate() {
            let urls = chunk.iter().map(|&e| self.receiver.url(e)).collect();
            let spec = WebhookSpec::healthy(&format!("bench healthy {n}"), urls);
            self.api.create_webhook(&spec).await?;
        }
        Ok(endpoints)
    }

    /// Starts measuring what a timed part costs; just before it.
    pub async fn meter(&self, ctx: &Ctx) -> CostMeter {
        CostMeter::start(&ctx.statements, &self.server, &self.peers).await
    }

    /// What the part since `meter` cost, for `events` and `deliveries`.
    pub async fn cost(
        &self,
        ctx: &Ctx,
        meter: CostMeter,
        case: &str,
        events: u64,
        deliveries: u64,
    ) -> Cost {
        meter
            .finish(
                &ctx.statements,
                (&self.server, &self.peers),
                case,
                events,
                deliveries,
            )
            .await
    }

    /// Stops the server and notes what it logged at WARN or above.
    pub async fn stop(self, section: &mut Section, label: &str) {
        let (count, first) = self.server.log_problems(3);
        if count > 0 {
            section.note(format!(
                "{label}: the server logged {count} WARN/ERROR lines ({}); first: {}",
                self.server.log_path.display(),
                first.join(" | ")
            ));
        }
        if self.receiver.rejected() > 0 {
            section.note(format!(
                "{label}: the receiver rejected {} requests (unknown path or webhook-id)",
                self.receiver.rejected()
            ));
        }
        for peer in self.peers {
            peer.stop().await;
        }
        self.server.stop().await;
    }

    /// Waits until the receiver has `target` arrivals. `false` if it stopped
    /// progressing for `stall` first; an error if the server died.
    pub async fn wait_arrivals(&mut self, target: u64, stall: Duration) -> anyhow::Result<bool> {
        let receiver = &self.receiver;
        wait_progress(&mut self.server, stall, || {
            let count = receiver.count();
            std::future::ready(Ok((count >= target, count)))
        })
        .await
    }

    /// Polls `deliveryStats` until `done` holds. Returns the last stats and
    /// whether `done` held before progress stalled.
    pub async fn wait_stats(
        &mut self,
        stall: Duration,
        done: impl Fn(&DeliveryStats) -> bool,
    ) -> anyhow::Result<(DeliveryStats, bool)> {
        let last = std::sync::Mutex::new(DeliveryStats::default());
        let (api, last_ref, done) = (&self.api, &last, &done);
        let reached = wait_progress(&mut self.server, stall, move || async move {
            let stats = api.delivery_stats().await?;
            *last_ref.lock().expect("stats lock") = stats;
            let progress = stats.attempts + stats.succeeded + stats.failed + stats.retrying;
            Ok((done(&stats), progress))
        })
        .await?;
        let stats = *last.lock().expect("stats lock");
        Ok((stats, reached))
    }
}

/// Polls `probe` (done?, progress counter) every 10 ms until done; `false`
/// once the counter has not moved for `stall`.
async fn wait_progress<F, Fut>(
    server: &mut Server,
    stall: Duration,
    mut probe: F,
) -> anyhow::Result<bool>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<(bool, u64)>>,
{
    let mut last_progress = (u64::MAX, Instant::now());
    let mut last_alive_check = Instant::now();
    loop {
        let (done, progress) = probe().await?;
        if done {
            return Ok(true);
        }
        if progress != last_progress.0 {
            last_progress = (progress, Instant::now());
        } else if last_progress.1.elapsed() > stall {
            return Ok(false);
        }
        if last_alive_check.elapsed() > Duration::from_secs(1) {
            server.check_alive()?;
            last_alive_check = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
