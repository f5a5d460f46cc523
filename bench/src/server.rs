//! `hookline serve` as a child process on a fresh database: started on
//! 127.0.0.1:0, its address read from stdout, ready once `/readyz` answers 200.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::ValueEnum;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

/// The JWT secret the server is started with; the bench signs its tokens with it.
pub const JWT_SECRET: &str = "hookline-bench-jwt-secret-0123456789abcdef";
/// Base64 of 32 bytes of `*`.
pub const ENCRYPTION_KEY: &str = "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DbKind {
    Sqlite,
    Postgres,
}

#[derive(Clone, Debug)]
pub struct ServerOptions {
    pub binary: PathBuf,
    pub db: DbKind,
    /// `postgres://USER@HOST:PORT`, without a database name.
    pub postgres_url: String,
    pub run_dir: PathBuf,
    pub worker_concurrency: Option<u32>,
    pub endpoint_concurrency: Option<u32>,
    pub max_request_bytes: Option<u64>,
    /// PostgreSQL: past days' history partitions made before the server starts.
    pub history_days: u32,
}

/// A database made for one server, removed when dropped.
struct Database {
    url: String,
    /// PostgreSQL: (server URL, database name) to drop.
    postgres: Option<(String, String)>,
}

impl Database {
    fn create(options: &ServerOptions, dir: &Path) -> anyhow::Result<Self> {
        match options.db {
            DbKind::Sqlite => Ok(Self {
                url: format!("sqlite://{}/bench.db", dir.display()),
                postgres: None,
            }),
            DbKind::Postgres => {
                let name = format!(
                    "hookline_bench_{}",
                    ulid::Ulid::new().to_string().to_lowercase()
                );
                psql(&options.postgres_url, &format!("CREATE DATABASE {name}"))?;
                let database = Self {
                    url: format!("{}/{name}", options.postgres_url),
                    postgres: Some((options.postgres_url.clone(), name)),
                };
                if options.history_days > 0 {
                    past_partitions(options, &database.url)?;
                }
                Ok(database)
            }
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Some((server, name)) = &self.postgres
            && let Err(err) = psql(
                server,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            )
        {
            eprintln!("[bench] could not drop database {name}: {err:#}");
        }
    }
}

/// Migrates the database at `url` and makes the history tables' partitions
/// of the weeks covering `options.history_days` past days.
fn past_partitions(options: &ServerOptions, url: &str) -> anyhow::Result<()> {
    use migration::partitioning::{DAY_MS, make_weeks};
    let status = std::process::Command::new(&options.binary)
        .arg("migrate")
        .env("HOOKLINE_DATABASE_URL", url)
        .stdout(std::process::Stdio::null())
        .status()
        .context("running hookline migrate")?;
    anyhow::ensure!(status.success(), "hookline migrate failed ({status})");
    let today = chrono::Utc::now().timestamp_millis() / DAY_MS;
    let sql = make_weeks(today - i64::from(options.history_days), today);
    psql_on(url, &sql.join("; "))
}

fn psql(server: &str, sql: &str) -> anyhow::Result<()> {
    psql_on(&format!("{server}/postgres"), sql)
}

fn psql_on(url: &str, sql: &str) -> anyhow::Result<()> {
    let output = std::process::Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .arg(url)
        .output()
        .context("running psql (is the PostgreSQL client installed?)")?;
    if !output.status.success() {
        bail!(
            "psql `{sql}` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// Spawns `hookline serve` and reads the address it listens on.
async fn spawn(
    options: &ServerOptions,
    database_url: &str,
    log_path: &Path,
    extra: &[&str],
) -> anyhow::Result<(Child, SocketAddr, u32)> {
    let log = std::fs::File::create(log_path)?;
    let mut command = Command::new(&options.binary);
    command
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--database-url", database_url])
        .arg("--allow-private-endpoints")
        .args(extra)
        .env("HOOKLINE_JWT_SECRET", JWT_SECRET)
        .env("HOOKLINE_ENCRYPTION_KEY", ENCRYPTION_KEY)
        .env("HOOKLINE_LOG", "warn")
        .env("NO_COLOR", "1")
        .env_remove("HOOKLINE_DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .kill_on_drop(true);
    for (flag, value) in [
        (
            "--worker-concurrency",
            options.worker_concurrency.map(u64::from),
        ),
        (
            "--endpoint-concurrency",
            options.endpoint_concurrency.map(u64::from),
        ),
        ("--max-request-bytes", options.max_request_bytes),
    ] {
        if let Some(value) = value {
            command.arg(flag).arg(value.to_string());
        }
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {}", options.binary.display()))?;
    let pid = child.id().context("the server exited at once")?;
    let stdout = child.stdout.take().context("server stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let addr = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(addr) = listening_address(&line) {
                return Ok(addr);
            }
        }
        bail!(
            "the server exited before printing its `{{\"listening\":ADDR}}` line; see {}",
            log_path.display()
        )
    })
    .await
    .context("the server did not print its address within 60 s")??;
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, addr, pid))
}

/// The address in `serve`'s machine-readable line, `{"listening":"ADDR"}`;
/// `None` for every other line, the human banner included, whose wording
/// may change.
fn listening_address(line: &str) -> Option<SocketAddr> {
    #[derive(serde::Deserialize)]
    struct Listening {
        listening: SocketAddr,
    }
    let parsed: Listening = serde_json::from_str(line).ok()?;
    Some(parsed.listening)
}

pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub pid: u32,
    pub log_path: PathBuf,
    /// Logs of the servers this one replaced (`restart`).
    earlier_logs: Vec<PathBuf>,
    pub started_in: Duration,
    // Dropped after the child is killed (fields drop after `Drop::drop`).
    _database: Database,
}

impl Server {
    /// Starts a server on a fresh database in `run_dir/label`; `extra`
    /// arguments go to `hookline serve` (e.g. `--no-worker`).
    pub async fn start(
        options: &ServerOptions,
        label: &str,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let started = Instant::now();
        let dir = options.run_dir.join(label);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let database = Database::create(options, &dir)?;
        Self::launch(options, database, dir.join("server.log"), extra, started).await
    }

    /// Spawns the server on `database` and waits until it is ready.
    async fn launch(
        options: &ServerOptions,
        database: Database,
        log_path: PathBuf,
        extra: &[&str],
        started: Instant,
    ) -> anyhow::Result<Self> {
        let (child, addr, pid) = spawn(options, &database.url, &log_path, extra).await?;
        let mut server = Self {
            child,
            addr,
            pid,
            log_path,
            earlier_logs: Vec::new(),
            started_in: Duration::ZERO,
            _database: database,
        };
        server.wait_ready().await?;
        server.started_in = started.elapsed();
        Ok(server)
    }

    /// Starts another instance on this server's database (several
    /// instances on one PostgreSQL database, as in production), its log next
    /// to the first's, numbered `n`. The database stays this server's.
    pub async fn join(&self, options: &ServerOptions, n: usize) -> anyhow::Result<Self> {
        let started = Instant::now();
        let log_path = self.log_path.with_file_name(format!("server-{n}.log"));
        let database = Database {
            url: self._database.url.clone(),
            postgres: None,
        };
        Self::launch(options, database, log_path, &[], started).await
    }

    /// Stops this server and starts another on the same database (its log
    /// next to the first, numbered), with `extra` arguments.
    pub async fn restart(&mut self, options: &ServerOptions, extra: &[&str]) -> anyhow::Result<()> {
        let started = Instant::now();
        crate::cpu::record_server(self.pid);
        self.child.start_kill()?;
        self.child.wait().await?;
        let log_path = self
            .log_path
            .with_extension(format!("{}.log", ulid::Ulid::new()));
        let (child, addr, pid) = spawn(options, &self._database.url, &log_path, extra).await?;
        let earlier = std::mem::replace(&mut self.log_path, log_path);
        self.earlier_logs.push(earlier);
        (self.child, self.addr, self.pid) = (child, addr, pid);
        self.wait_ready().await?;
        self.started_in = started.elapsed();
        Ok(())
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let http = reqwest::Client::builder().no_proxy().build()?;
        let url = format!("http://{}/readyz", self.addr);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(response) = http.get(&url).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            self.check_alive()?;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("{url} did not answer 200 within 60 s")
    }

    /// The name of the server's PostgreSQL database; `None` on SQLite (and
    /// for an instance that joined another's database).
    pub fn postgres_database(&self) -> Option<&str> {
        self._database
            .postgres
            .as_ref()
            .map(|(_, name)| name.as_str())
    }

    /// An error if the server has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "the server exited ({status}); last log lines:\n{}",
                self.log_tail(20)
            );
        }
        Ok(())
    }

    /// Resident set size and its high-water mark, in KiB, from /proc.
    pub fn memory_kib(&self) -> anyhow::Result<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .context("reading the server's /proc status")?;
        let field = |key: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(key))
                .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
                .with_context(|| format!("no {key} in /proc/{}/status", self.pid))
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// Lines of the server's log at WARN or ERROR: (count, first few).
    pub fn log_problems(&self, keep: usize) -> (usize, Vec<String>) {
        let text: String = self
            .earlier_logs
            .iter()
            .chain([&self.log_path])
            .map(|path| std::fs::read_to_string(path).unwrap_or_default())
            .collect();
        let problems: Vec<&str> = text
            .lines()
            .filter(|line| line.contains("WARN") || line.contains("ERROR"))
            .collect();
        let first = problems
            .iter()
            .take(keep)
            .map(|line| line.chars().take(300).collect())
            .collect();
        (problems.len(), first)
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Kills the server and waits for it; the database goes with `self`.
    pub async fn stop(mut self) {
        crate::cpu::record_server(self.pid);
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::listening_address;

    #[test]
    fn only_the_json_line_gives_the_address() {
        assert_eq!(
            listening_address(r#"{"listening":"127.0.0.1:4321"}"#),
            Some("127.0.0.1:4321".parse().expect("an address"))
        );
        assert_eq!(
            listening_address("hookline listening on http://127.0.0.1:4321"),
            None
        );
        assert_eq!(listening_address(r#"{"listening":"nowhere"}"#), None);
    }
}
