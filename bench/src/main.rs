//! `hookline-bench`: starts the real `hookline` binary as a child process,
//! drives it over HTTP and WebSocket like a user would, and reports ingest
//! rate, delivery throughput, end-to-end latency, subscription fan-out,
//! isolation from a hanging endpoint, and memory; and for each, what an event
//! cost in CPU and SQL statements.
//!
//! Every request goes to 127.0.0.1: the server, the receiver the webhooks
//! point at, and the PostgreSQL used for `--db postgres`.

mod api;
mod auth;
mod cost;
mod cpu;
mod machine;
mod receiver;
mod report;
mod scenarios;
mod server;
mod statements;
mod stats;
mod writes;
mod ws;

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context;
use clap::{Parser, ValueEnum};

use crate::{
    report::{Report, Section, Verdict},
    scenarios::Ctx,
    server::{DbKind, ServerOptions},
    statements::Statements,
};

#[derive(Parser, Debug)]
#[command(
    name = "hookline-bench",
    about = "Benchmarks a hookline binary: ingest, throughput, single-publish throughput, latency, \
             fan-out, isolation, memory; CPU and SQL statements per event",
    after_help = "1 000 WebSocket subscribers need about 2 100 open files in this process and \
                  as many in the server; the bench raises its soft limit to the hard limit \
                  (children inherit it). If that is too low: `ulimit -n 65536` first."
)]
pub struct Cli {
    /// Database the server runs on: a fresh SQLite file, or a fresh database
    /// created on `--postgres-url` (dropped at the end).
    #[arg(long, value_enum, default_value_t = DbKind::Sqlite)]
    db: DbKind,

    /// PostgreSQL server (without a database name) for `--db postgres`.
    #[arg(
        long,
        env = "HOOKLINE_BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432"
    )]
    postgres_url: String,

    /// The hookline binary; default: `target/release/hookline` of this
    /// workspace, built first with `cargo build --release` (a no-op when fresh).
    #[arg(long)]
    hookline_bin: Option<PathBuf>,

    /// Use the workspace's `target/release/hookline` as it is, without building it.
    #[arg(long)]
    no_build: bool,

    /// Scenarios to run, in this order (repeatable); default: all.
    #[arg(long, value_enum)]
    scenario: Vec<Scenario>,

    /// Tiny sizes, for CI: exits non-zero if any delivery is lost or duplicated.
    #[arg(long)]
    quick: bool,

    /// Also print the results as one JSON object, as the last line of stdout.
    #[arg(long)]
    json: bool,

    /// Also write the JSON results to this file.
    #[arg(long)]
    json_out: Option<PathBuf>,

    /// Keep the run directory (server logs, SQLite files) afterwards.
    #[arg(long)]
    keep: bool,

    /// ingest: events published one per request (default 5 000; quick 300).
    #[arg(long)]
    ingest_events: Option<u64>,

    /// ingest: events published with publishEvents, 100 per call (default 20 000; quick 300).
    #[arg(long)]
    ingest_batch_events: Option<u64>,

    /// ingest: concurrent publishEvent requests.
    #[arg(long, default_value_t = 32)]
    ingest_concurrency: usize,

    /// throughput and memory: events published (default 20 000; quick 300).
    #[arg(long)]
    events: Option<u64>,

    /// throughput: endpoint counts to run, one run each (repeatable; default 1 and 10).
    #[arg(long)]
    endpoints: Vec<u32>,

    /// single: events published, one `publishEvent` per request (default 20 000; quick 300).
    #[arg(long)]
    single_events: Option<u64>,

    /// single: endpoint counts to run, one run each (repeatable; default 1 and 5).
    #[arg(long)]
    single_endpoints: Vec<u32>,

    /// single: connections, each sending one `publishEvent` and waiting for
    /// its answer before the next (closed loop).
    #[arg(long, default_value_t = 16)]
    connections: usize,

    /// Concurrent publishing tasks for batched publishing.
    #[arg(long, default_value_t = 4)]
    publishers: usize,

    /// latency and fanout: events per second, open loop.
    #[arg(long, default_value_t = 500)]
    rate: u32,

    /// latency and fanout: how long the load runs, e.g. `20s` (default 20s; quick 2s).
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,

    /// fanout: WebSocket subscribers (default 1 000; quick 20).
    #[arg(long)]
    subscribers: Option<u32>,

    /// isolation: events published to the healthy endpoint (default 5 000; quick 300).
    #[arg(long)]
    isolation_events: Option<u64>,

    /// memory: deliveries queued behind a dead endpoint (default 100 000; quick 2 000).
    #[arg(long)]
    queued: Option<u64>,

    /// capacity: instance counts to run on one PostgreSQL database, one run
    /// each (repeatable; default 1, 3 and 5; quick 1 and 2).
    #[arg(long)]
    instances: Vec<usize>,

    /// capacity: endpoints per event of the load the sizing table is for.
    #[arg(long, default_value_t = 2)]
    capacity_mix: u32,

    /// Ports the receiver listens on; endpoint N is on port N mod this. With 1,
    /// every endpoint is the same host:port to the server's connection pool.
    #[arg(long, default_value_t = 10)]
    receiver_ports: u32,

    /// Passed to the server as `--worker-concurrency`.
    #[arg(long)]
    worker_concurrency: Option<u32>,

    /// Passed to the server as `--endpoint-concurrency`.
    #[arg(long)]
    endpoint_concurrency: Option<u32>,

    /// Passed to the server as `--max-request-bytes`.
    #[arg(long)]
    max_request_bytes: Option<u64>,

    /// PostgreSQL: before each server starts, make the (empty) history
    /// partitions of the weeks covering this many past days, as a database
    /// keeping that much history has them; statements on events, deliveries
    /// and attempts then plan over them. 0: a fresh database's two weeks.
    #[arg(long, default_value_t = 0)]
    history_days: u32,

    /// Give up waiting when nothing progresses for this long, e.g. `30s`.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    stall_timeout: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    Ingest,
    Throughput,
    Single,
    Latency,
    Fanout,
    Isolation,
    Memory,
    Ordering,
    Filters,
    Capacity,
}

impl Scenario {
    pub const ALL: [Self; 10] = [
        Self::Ingest,
        Self::Throughput,
        Self::Single,
        Self::Latency,
        Self::Fanout,
        Self::Isolation,
        Self::Memory,
        Self::Ordering,
        Self::Filters,
        Self::Capacity,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Throughput => "throughput",
            Self::Single => "single",
            Self::Latency => "latency",
            Self::Fanout => "fanout",
            Self::Isolation => "isolation",
            Self::Memory => "memory",
            Self::Ordering => "ordering",
            Self::Filters => "filters",
            Self::Capacity => "capacity",
        }
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text
        .find(|c: char| c.is_ascii_alphabetic())
        .map_or((text, "s"), |at| text.split_at(at));
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 20s, 500ms or 2m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("unknown unit `{unit}` (ms, s or m)")),
    };
    if !(seconds.is_finite() && seconds > 0.0) {
        return Err(format!("`{text}` must be positive"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    // On Ctrl-C the run is dropped: servers are killed and their databases dropped.
    let outcome = runtime.block_on(async {
        tokio::select! {
            outcome = run(cli) => outcome,
            _ = tokio::signal::ctrl_c() => {
                eprintln!("hookline-bench: interrupted; cleaning up");
                Ok(ExitCode::from(130))
            }
        }
    });
    match outcome {
        Ok(code) => code,
        Err(err) => {
            eprintln!("hookline-bench: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Builds the workspace's hookline binary, so the bench never measures a
/// stale one. Selecting both packages (as CI's `cargo build -p hookline -p
/// hookline-bench` does) unifies features the same way, so after that build
/// this one has nothing to do.
fn build_hookline(workspace: &std::path::Path) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let args = [
        "build",
        "--release",
        "-p",
        "hookline",
        "-p",
        "hookline-bench",
        "--bin",
        "hookline",
    ];
    eprintln!("[bench] cargo {}", args.join(" "));
    let mut command = std::process::Command::new(cargo);
    // `cargo run` sets these for the bench; build scripts that watch them
    // (ring's do) would otherwise rebuild as if the environment had changed.
    for (name, _) in std::env::vars_os() {
        let name_text = name.to_string_lossy();
        let injected = name_text.starts_with("CARGO_PKG_")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_MANIFEST_LINKS",
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
            ]
            .contains(&name_text.as_ref());
        if injected {
            command.env_remove(&name);
        }
    }
    let status = command
        .args(args)
        .current_dir(workspace)
        .status()
        .context("running cargo (pass --no-build or --hookline-bin to skip building)")?;
    anyhow::ensure!(status.success(), "building hookline failed ({status})");
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let files = machine::raise_open_file_limit();
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest.parent().map_or(manifest.clone(), PathBuf::from);
    let binary = hookline_binary(&cli, &workspace)?;
    let run_dir = create_run_dir()?;
    let options = ServerOptions {
        binary: binary.clone(),
        db: cli.db,
        postgres_url: cli.postgres_url.trim_end_matches('/').to_owned(),
        run_dir: run_dir.clone(),
        worker_concurrency: cli.worker_concurrency,
        endpoint_concurrency: cli.endpoint_concurrency,
        max_request_bytes: cli.max_request_bytes,
        history_days: cli.history_days,
    };
    let statements = match cli.db {
        DbKind::Postgres => Statements::probe(&options.postgres_url).await,
        DbKind::Sqlite => Statements::sqlite(),
    };
    let ctx = Ctx::new(&cli, options, statements);
    let mut report = Report::new(machine::describe(
        &workspace,
        &binary,
        cli.db,
        &ctx.options.postgres_url,
        files,
    ));
    report.print_header(&ctx.parameters());
    run_scenarios(&cli, &ctx, &mut report).await;

    let verdict = report.verdict(cli.quick);
    report.print_summary(&verdict);
    write_json(&cli, &report, &verdict)?;
    if cli.keep || !verdict.passed {
        eprintln!("[bench] run directory kept: {}", run_dir.display());
    } else if let Err(err) = std::fs::remove_dir_all(&run_dir) {
        eprintln!("[bench] could not remove {}: {err}", run_dir.display());
    }
    Ok(if verdict.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `--hookline-bin`, or the workspace's release binary (built first unless
/// `--no-build`); an error if there is no file there.
fn hookline_binary(cli: &Cli, workspace: &std::path::Path) -> anyhow::Result<PathBuf> {
    let binary = match &cli.hookline_bin {
        Some(path) => path.clone(),
        None => {
            if !cli.no_build {
                build_hookline(workspace)?;
            }
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(|| workspace.join("target"), PathBuf::from);
            target.join("release/hookline")
        }
    };
    anyhow::ensure!(
        binary.is_file(),
        "no hookline binary at {} (build it: `cargo build --release --bin hookline`, or pass --hookline-bin)",
        binary.display()
    );
    Ok(binary)
}

/// A fresh directory for this run's server logs and SQLite files.
fn create_run_dir() -> anyhow::Result<PathBuf> {
    let run_dir = std::env::temp_dir().join(format!(
        "hookline-bench-{}",
        ulid::Ulid::new().to_string().to_lowercase()
    ));
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    Ok(run_dir)
}

/// Runs the selected scenarios in order, each printed as it ends; a
/// scenario's error becomes its failed section, and the next one runs.
async fn run_scenarios(cli: &Cli, ctx: &Ctx, report: &mut Report) {
    let selected: Vec<Scenario> = if cli.scenario.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        cli.scenario.clone()
    };
    for scenario in selected {
        eprintln!("[bench] scenario {} ...", scenario.name());
        let started = std::time::Instant::now();
        let before = cpu::snapshot();
        let mut section = match scenarios::run(scenario, ctx).await {
            Ok(section) => section,
            Err(err) => Section::failed(scenario.name(), format!("{err:#}")),
        };
        let on_postgres = cli.db == DbKind::Postgres;
        section.cpu = Some(cpu::usage(&before, &cpu::snapshot(), on_postgres));
        eprintln!(
            "[bench] scenario {} done in {:.1} s",
            scenario.name(),
            started.elapsed().as_secs_f64()
        );
        section.print();
        report.sections.push(section);
    }
}

/// The results as one JSON object: on stdout with `--json`, to a file with `--json-out`.
fn write_json(cli: &Cli, report: &Report, verdict: &Verdict) -> anyhow::Result<()> {
    if cli.json || cli.json_out.is_some() {
        let json = serde_json::to_string(&report.to_json(verdict))?;
        if cli.json {
            println!("{json}");
        }
        if let Some(path) = &cli.json_out {
            std::fs::write(path, format!("{json}\n"))
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_take_ms_s_and_m() {
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("20"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("3h").is_err());
        assert!(parse_duration("soon").is_err());
    }
}
