//! Every option hookline takes, in one place. Each is a command-line flag and
//! an environment variable; the doc comments are the `--help` text.

use std::{net::SocketAddr, time::Duration};

use clap::Args;

use crate::domain::retry::MAX_ENDPOINT_TIMEOUT;

mod access;
pub use access::AccessConfig;

/// Where hookline keeps its data, and the keys that protect it. Shared by every
/// command that touches the database or signs tokens.
#[derive(Args, Clone, Debug)]
pub struct StoreConfig {
    /// Database URL: `sqlite://FILE` for the embedded database (created on
    /// first start) or `postgres://USER@HOST/DB` for production; several
    /// hosts in libpq's form (`postgres://USER@H1:5432,H2:5432/DB?
    /// target_session_attrs=read-write`) follow the primary after a failover.
    #[arg(
        long,
        env = "HOOKLINE_DATABASE_URL",
        default_value = "sqlite://hookline.db"
    )]
    pub database_url: String,

    /// A streaming replica of the PostgreSQL database (`postgres://USER@HOST/DB`,
    /// one host) for log queries: events, deliveries, attempts and their
    /// counts go there while it is at most `HOOKLINE_DATABASE_READ_MAX_LAG`
    /// behind the primary, and to the primary otherwise.
    #[arg(long, env = "HOOKLINE_DATABASE_READ_URL")]
    pub database_read_url: Option<String>,

    /// How far behind the primary the read replica may be and still answer.
    #[arg(long, env = "HOOKLINE_DATABASE_READ_MAX_LAG", default_value = "2s", value_parser = humantime::parse_duration)]
    pub database_read_max_lag: Duration,

    /// Secret that signs API tokens (HS256), at least 32 characters. Unset on
    /// SQLite: generated on first start and kept in a `.keys` file beside the
    /// database. Required on PostgreSQL, and the same on every instance.
    #[arg(long, env = "HOOKLINE_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Key that encrypts webhook signing secrets at rest: 32 bytes, base64.
    /// Unset on SQLite: generated and kept beside the database like the JWT
    /// secret. Required on PostgreSQL, and the same on every instance.
    #[arg(long, env = "HOOKLINE_ENCRYPTION_KEY", hide_env_values = true)]
    pub encryption_key: Option<String>,
}

/// Options of `hookline serve`.
#[derive(Args, Clone, Debug)]
pub struct Config {
    #[command(flatten)]
    pub store: StoreConfig,

    #[command(flatten)]
    pub access: AccessConfig,

    /// Address the API listens on.
    #[arg(long, env = "HOOKLINE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Base URL clients reach this server at, for the links it hands out
    /// (pull feeds). Defaults to `http://` + the listening address.
    #[arg(long, env = "HOOKLINE_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Accept endpoints on private, loopback and link-local addresses. For
    /// local development and tests only: it lets webhooks reach your network.
    #[arg(long, env = "HOOKLINE_ALLOW_PRIVATE_ENDPOINTS")]
    pub allow_private_endpoints: bool,

    /// Run the API without the delivery worker (another instance delivers).
    #[arg(long, env = "HOOKLINE_NO_WORKER")]
    pub no_worker: bool,

    /// Threads that run requests and deliveries (the async runtime's
    /// workers); unset, one per core. At a steady, moderate load one thread
    /// spends less CPU per event (fewer wake-ups between threads) and may
    /// carry less at saturation: see README, Performance.
    #[arg(long, env = "HOOKLINE_THREADS")]
    pub threads: Option<std::num::NonZeroUsize>,

    /// Most HTTP requests to endpoints in flight at once, over all endpoints.
    #[arg(long, env = "HOOKLINE_WORKER_CONCURRENCY", default_value_t = 512,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub worker_concurrency: u32,

    /// Most requests in flight to one endpoint at once, so that one slow
    /// endpoint cannot take the whole worker.
    #[arg(long, env = "HOOKLINE_ENDPOINT_CONCURRENCY", default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub endpoint_concurrency: u32,

    /// Most requests in flight for one tenant at once, over all its
    /// endpoints, so that no tenant's endpoints can take the whole worker
    /// (default: half of `HOOKLINE_WORKER_CONCURRENCY`).
    #[arg(long, env = "HOOKLINE_TENANT_CONCURRENCY",
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub tenant_concurrency: Option<u32>,

    /// How long a worker owns a delivery it claimed. If the instance dies, the
    /// delivery is attempted again once this has passed. Must exceed the
    /// longest endpoint timeout (30s) plus 5s.
    #[arg(long, env = "HOOKLINE_LEASE", default_value = "60s", value_parser = humantime::parse_duration)]
    pub lease: Duration,

    /// How often an idle worker looks for due deliveries. Publishing wakes it
    /// at once; this bounds how late retries and expired leases are noticed.
    #[arg(long, env = "HOOKLINE_POLL_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub poll_interval: Duration,

    /// An instance whose heartbeat is older than this is taken for dead, and
    /// the deliveries it held go back to the queue. Heartbeats are sent at a
    /// fifth of this interval.
    #[arg(long, env = "HOOKLINE_INSTANCE_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub instance_timeout: Duration,

    /// Items each live subscription may fall behind by before it loses the
    /// oldest and is told how many (`LAGGED`).
    #[arg(long, env = "HOOKLINE_SUBSCRIBER_BUFFER", default_value_t = 8_192,
          value_parser = clap::value_parser!(u32).range(16..=1_000_000))]
    pub subscriber_buffer: u32,

    /// Bytes the buffers of all live subscriptions may hold together. A
    /// buffer holds only items some subscriber has yet to read; past this,
    /// a subscription sheds its own oldest unread items (its laggards get
    /// `LAGGED`) as it receives new ones.
    #[arg(long, env = "HOOKLINE_SUBSCRIBER_BUFFER_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub subscriber_buffer_bytes: usize,

    /// Live subscriptions one tenant may run on one instance; past it, a new
    /// one is refused with `TOO_MANY_SUBSCRIPTIONS`.
    #[arg(long, env = "HOOKLINE_MAX_SUBSCRIPTIONS_PER_TENANT", default_value_t = 500,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_subscriptions_per_tenant: u32,

    /// Live subscriptions one instance runs, over all tenants; past it, a new
    /// one is refused with `TOO_MANY_SUBSCRIPTIONS`.
    #[arg(long, env = "HOOKLINE_MAX_SUBSCRIPTIONS", default_value_t = 5_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_subscriptions: u32,

    /// Largest response to one query or mutation, in bytes of payload
    /// (event `data` and `body`, payload schemas, attempt response bodies).
    /// Past it, the request answers `RESPONSE_TOO_LARGE` and nothing else.
    /// The default fits a full page of the largest events. Also the most
    /// event bodies one pull-feed page holds.
    #[arg(long, env = "HOOKLINE_MAX_RESPONSE_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub max_response_bytes: usize,

    /// Payload bytes all running queries and mutations may hold together
    /// (and, apart, all pull-feed pages being built). Past it, a request
    /// answers `RATE_LIMITED` (retry after a second) instead of adding to it.
    #[arg(long, env = "HOOKLINE_MAX_RESPONSE_BYTES_IN_FLIGHT", default_value_t = 256 * 1024 * 1024)]
    pub max_response_bytes_in_flight: usize,

    /// A WebSocket that sends no `connection_init` within this is closed (4408).
    #[arg(long, env = "HOOKLINE_WS_INIT_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub ws_init_timeout: Duration,

    /// A WebSocket whose client has not taken what the server writes within
    /// this (it stopped reading, and the connection's buffers are full) is
    /// dropped, and its subscriptions end.
    #[arg(long, env = "HOOKLINE_WS_WRITE_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub ws_write_timeout: Duration,

    /// Largest accepted event payload (`data`), in bytes.
    #[arg(long, env = "HOOKLINE_MAX_PAYLOAD_BYTES", default_value_t = 256 * 1024)]
    pub max_payload_bytes: usize,

    /// Largest accepted HTTP request body, in bytes.
    #[arg(long, env = "HOOKLINE_MAX_REQUEST_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_request_bytes: usize,

    /// How long the previous signing secret keeps signing after a rotation.
    #[arg(long, env = "HOOKLINE_SECRET_ROTATION_GRACE", default_value = "24h", value_parser = humantime::parse_duration)]
    pub secret_rotation_grace: Duration,

    /// An endpoint whose attempts have all failed for this long is disabled.
    #[arg(long, env = "HOOKLINE_DISABLE_AFTER", default_value = "5d", value_parser = humantime::parse_duration)]
    pub disable_after: Duration,

    /// After this many failed attempts in a row, an endpoint is reported
    /// failing (the `hookline.endpoint.failing` event), once per streak.
    #[arg(long, env = "HOOKLINE_FAILING_AFTER", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub failing_after: u32,

    /// Deliveries a recovery job re-queues per step (one transaction).
    #[arg(long, env = "HOOKLINE_RECOVERY_BATCH", default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub recovery_batch: u64,

    /// Most of one recovery job's deliveries open at once: the job waits for
    /// them to be attempted before it re-queues more.
    #[arg(long, env = "HOOKLINE_RECOVERY_IN_FLIGHT", default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub recovery_in_flight: u64,

    /// Longest wait a `Retry-After` header can impose before the next attempt.
    #[arg(long, env = "HOOKLINE_RETRY_AFTER_CAP", default_value = "1h", value_parser = humantime::parse_duration)]
    pub retry_after_cap: Duration,

    /// On shutdown, how long in-flight requests may take to finish.
    #[arg(long, env = "HOOKLINE_SHUTDOWN_GRACE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,

    /// Events per second one tenant may publish to one instance (bursts of
    /// up to twice that); 0 turns the limit off. Over it, publishing answers
    /// `RATE_LIMITED` with `extensions.retryAfterMs`.
    #[arg(long, env = "HOOKLINE_PUBLISH_RATE", default_value_t = 50_000)]
    pub publish_rate: u32,

    /// How long events, their deliveries and attempts are kept. Older ones are
    /// purged in small batches (events with deliveries still open are kept).
    #[arg(long, env = "HOOKLINE_RETENTION", default_value = "30d", value_parser = humantime::parse_duration)]
    pub retention: Duration,

    /// Most webhooks one tenant may have.
    #[arg(
        long,
        env = "HOOKLINE_MAX_WEBHOOKS_PER_TENANT",
        default_value_t = 1_000
    )]
    pub max_webhooks_per_tenant: u64,
}

impl Config {
    /// Configuration from the given arguments and the environment, exactly as
    /// `hookline serve` would see it. Tests use it to get the real defaults.
    pub fn from_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            config: Config,
        }
        use clap::Parser;
        let args = std::iter::once("hookline".into()).chain(args.into_iter().map(Into::into));
        Ok(Wrapper::try_parse_from(args)?.config)
    }

    /// Refuses combinations that cannot work, before anything starts.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.access.validate()?;
        if let Some(url) = &self.store.database_read_url {
            let postgres = |u: &str| u.starts_with("postgres://") || u.starts_with("postgresql://");
            if !postgres(&self.store.database_url) || !postgres(url) {
                anyhow::bail!(
                    "HOOKLINE_DATABASE_READ_URL is for a PostgreSQL replica of a PostgreSQL                      HOOKLINE_DATABASE_URL"
                );
            }
        }
        if self.lease <= MAX_ENDPOINT_TIMEOUT + Duration::from_secs(5) {
            anyhow::bail!(
                "HOOKLINE_LEASE ({}) must be longer than the longest endpoint timeout ({}) plus 5s, \
                 or deliveries still in flight would be handed to another worker",
                humantime::format_duration(self.lease),
                humantime::format_duration(MAX_ENDPOINT_TIMEOUT),
            );
        }
        if self.max_payload_bytes == 0 || self.max_payload_bytes > self.max_request_bytes {
            anyhow::bail!(
                "HOOKLINE_MAX_PAYLOAD_BYTES must be between 1 and HOOKLINE_MAX_REQUEST_BYTES ({})",
                self.max_request_bytes
            );
        }
        if self.max_response_bytes > self.max_response_bytes_in_flight {
            anyhow::bail!(
                "HOOKLINE_MAX_RESPONSE_BYTES ({}) cannot exceed HOOKLINE_MAX_RESPONSE_BYTES_IN_FLIGHT ({})",
                self.max_response_bytes,
                self.max_response_bytes_in_flight
            );
        }
        if self.endpoint_concurrency > self.worker_concurrency {
            anyhow::bail!(
                "HOOKLINE_ENDPOINT_CONCURRENCY ({}) cannot exceed HOOKLINE_WORKER_CONCURRENCY ({})",
                self.endpoint_concurrency,
                self.worker_concurrency
            );
        }
        if self.tenant_concurrency() > self.worker_concurrency {
            anyhow::bail!(
                "HOOKLINE_TENANT_CONCURRENCY ({}) cannot exceed HOOKLINE_WORKER_CONCURRENCY ({})",
                self.tenant_concurrency(),
                self.worker_concurrency
            );
        }
        Ok(())
    }

    /// Most requests in flight for one tenant: as set, or half the worker's.
    pub fn tenant_concurrency(&self) -> u32 {
        self.tenant_concurrency
            .unwrap_or((self.worker_concurrency / 2).max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let config = Config::from_args(Vec::<String>::new()).expect("defaults parse");
        config.validate().expect("defaults validate");
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
    }

    #[test]
    fn lease_shorter_than_timeout_is_refused() {
        let config = Config::from_args(["--lease", "20s"]).expect("parses");
        let err = config.validate().expect_err("must be refused");
        assert!(err.to_string().contains("HOOKLINE_LEASE"));
    }
}
