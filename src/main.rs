//! The `hookline` binary: parses the command line and calls the library.

use std::{io::IsTerminal, process::ExitCode, time::Duration};

use anyhow::Context;
use clap::{Parser, Subcommand};
use hookline::{
    Config,
    auth::{JwtKeys, Role},
    config::StoreConfig,
    keys::{KeyOrigin, Keys},
    telemetry,
};
use tracing_subscriber::{Layer, layer::SubscriberExt, util::SubscriberInitExt};

#[derive(Parser)]
#[command(
    name = "hookline",
    version,
    about = "Webhook delivery for affiliate and partner-marketing platforms"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,

    /// Log filter, in `tracing` EnvFilter syntax (`info`, `debug`,
    /// `warn,hookline::delivery=debug`). Libraries (HTTP, TLS, SQL) stay at
    /// WARN unless named, e.g. `debug,hyper=debug`.
    #[arg(long, global = true, env = "HOOKLINE_LOG", default_value = "info")]
    log: String,

    /// Log format: `text` for people, `json` for log pipelines.
    #[arg(long, global = true, env = "HOOKLINE_LOG_FORMAT", default_value = "text",
          value_parser = ["text", "json"])]
    log_format: String,

    /// OpenTelemetry collector to export traces to over OTLP/HTTP, e.g.
    /// `http://127.0.0.1:4318` (traces go to `/v1/traces`): a span per
    /// publish and per delivery attempt, in the publisher's trace. Unset: no
    /// export (a publisher's `traceparent` still reaches the receivers).
    #[arg(long, global = true, env = "HOOKLINE_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API and the delivery worker.
    Serve(Box<Config>),
    /// Apply database migrations and exit.
    Migrate(StoreConfig),
    /// Print an API token signed with the configured secret.
    Token(TokenArgs),
    /// Print the GraphQL schema (SDL); `schema.graphql` is its output.
    Schema,
    /// Receive webhooks on 127.0.0.1 for development: verify, print, answer.
    Listen(hookline::listen::ListenArgs),
}

#[derive(clap::Args)]
struct TokenArgs {
    #[command(flatten)]
    store: StoreConfig,
    /// Tenant (account / network) the token acts for.
    #[arg(long)]
    tenant: String,
    /// admin, publisher or viewer.
    #[arg(long)]
    role: Role,
    /// Login id of the caller (the token's `sub`).
    #[arg(long, default_value = "admin")]
    sub: String,
    /// How long the token stays valid, e.g. `24h`, `30d`.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    ttl: Duration,
}

/// jemalloc rather than the C library's allocator: the server spends a fifth
/// less CPU per event at saturation (README, Performance). Its settings are
/// fixed at build time (`.cargo/config.toml`): freed pages go back to the
/// system within a second, from a background thread, so what a large
/// response used does not stay with the process.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Errors are printed as one line a person can act on, never as a
/// backtrace: a start that fails is a configuration or environment problem,
/// not a crash.
fn main() -> ExitCode {
    let cli = Cli::parse();
    let exporter = match init_tracing(&cli.log, &cli.log_format, cli.otlp_endpoint.as_deref()) {
        Ok(exporter) => exporter,
        Err(err) => return fail(&err),
    };
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Command::Serve(config) = &cli.command
        && let Some(threads) = config.threads
    {
        runtime.worker_threads(threads.get());
    }
    let runtime = match runtime.enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => return fail(&anyhow::Error::new(err).context("starting the async runtime")),
    };
    let result = runtime.block_on(run(cli));
    // Anything still running (a blocking read, a connection being torn down)
    // does not hold up the exit once the work is done.
    runtime.shutdown_timeout(Duration::from_millis(200));
    if let Some(exporter) = exporter {
        exporter.shutdown();
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(&err),
    }
}

fn fail(err: &anyhow::Error) -> ExitCode {
    eprintln!("error: {}", report(err));
    ExitCode::FAILURE
}

/// The error and its causes on one line, each said once: a cause whose text
/// its parent already quotes is left out, and so is a parent that only
/// repeats its cause.
fn report(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if parts.last().is_some_and(|last| last.contains(&text)) {
            continue;
        }
        if let Some(last) = parts.last_mut()
            && text.contains(last.as_str())
        {
            *last = text;
            continue;
        }
        parts.push(text);
    }
    parts.join(": ")
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(config) => serve(*config).await,
        Command::Migrate(store) => {
            hookline::db::migrate(&store.database_url).await?;
            println!(
                "migrations applied to {}",
                hookline::db::redact_url(&store.database_url)
            );
            Ok(())
        }
        Command::Token(args) => {
            let keys = Keys::resolve(&args.store)?;
            let token = JwtKeys::new(&keys.jwt_secret).issue(
                &args.tenant,
                &args.sub,
                args.role,
                args.ttl,
            )?;
            println!("{token}");
            Ok(())
        }
        Command::Listen(args) => hookline::listen::run(args, shutdown_signal()).await,
        Command::Schema => {
            print!("{}", hookline::graphql::sdl());
            Ok(())
        }
    }
}

/// Binds the address first (a port in use fails before anything is
/// written), then prepares everything else, and says "listening" only once
/// requests can be served.
async fn serve(config: Config) -> anyhow::Result<()> {
    config.validate()?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let address = listener.local_addr()?;
    let jwt_configured = Keys::jwt_configured(&config.store);
    let prepared = hookline::prepare(config).await?;
    println!("hookline listening on http://{address}  (GraphiQL: http://{address}/graphql)");
    // The same news for programs that start hookline on port 0 (tests,
    // scripts, the benchmark): one JSON object on a line of its own, so that
    // rewording the banner above breaks no one.
    println!("{{\"listening\":\"{address}\"}}");
    if !jwt_configured {
        let keys = prepared.keys();
        if let KeyOrigin::KeyFile(path) = &keys.origin {
            println!(
                "keys: {} (generated on first start; keep it with the database)",
                path.display()
            );
        }
        let token = JwtKeys::new(&keys.jwt_secret).issue(
            "default",
            "admin",
            Role::Admin,
            Duration::from_secs(24 * 3600),
        )?;
        println!(
            "admin token for tenant `default`, valid 24h (more: `hookline token --help`):\n\n  {token}\n"
        );
    }
    prepared.serve(listener, shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

/// Logs to stderr (text or JSON), and traces over OTLP when an endpoint is
/// given: the exporter comes back to be flushed at exit.
fn init_tracing(
    filter: &str,
    format: &str,
    otlp_endpoint: Option<&str>,
) -> anyhow::Result<Option<telemetry::Exporter>> {
    let filter = hookline::logging::filter(filter)?;
    // Colours only for a person at a terminal, never in a file or a pipe.
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        // By default a line that cannot be written (stderr on a full disk)
        // is reported on stderr with `eprintln!`, which panics when that
        // fails too: the line is lost, the service must not be.
        .log_internal_errors(false);
    let fmt = if format == "json" {
        fmt.json().with_filter(filter).boxed()
    } else {
        fmt.with_filter(filter).boxed()
    };
    let mut layers = vec![fmt];
    let mut exporter = None;
    if let Some(endpoint) = otlp_endpoint.filter(|e| !e.trim().is_empty()) {
        let (layer, flush) = telemetry::otlp_layer(endpoint)?;
        layers.push(layer);
        exporter = Some(flush);
    }
    tracing_subscriber::registry().with(layers).init();
    Ok(exporter)
}
