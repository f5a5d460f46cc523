//! Where the CPU went during a scenario: the hookline servers, PostgreSQL,
//! the bench itself, and everything else on the machine (from /proc); and,
//! with [`Meter`], over one timed part, what a server and its database spent.

use std::{
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use serde::Serialize;

/// CPU ticks of the servers stopped so far (read just before each stop).
static SERVER_TICKS: AtomicU64 = AtomicU64::new(0);

#[derive(Clone, Copy)]
pub struct Snapshot {
    at: Instant,
    /// Busy ticks of the whole machine.
    busy: u64,
    bench: u64,
    postgres: u64,
    servers: u64,
}

/// Core-seconds used over a scenario.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Usage {
    pub wall_s: f64,
    pub cores: usize,
    pub server_s: f64,
    pub postgres_s: f64,
    pub bench_s: f64,
    pub other_s: f64,
}

impl Usage {
    pub fn line(&self) -> String {
        format!(
            "CPU over {:.1} s on {} cores ({:.1} core-s): server {:.1}, postgres {:.1}, bench {:.1}, \
             other {:.1} core-s",
            self.wall_s,
            self.cores,
            self.wall_s * self.cores as f64,
            self.server_s,
            self.postgres_s,
            self.bench_s,
            self.other_s
        )
    }

    /// A warning when other programs took a noticeable share of the machine.
    pub fn disturbance(&self) -> Option<String> {
        let available = self.wall_s * self.cores as f64;
        let share = self.other_s / available;
        (share > 0.1).then(|| {
            format!(
                "WARNING: other programs used {:.0} % of the machine meanwhile: these numbers are disturbed",
                share * 100.0
            )
        })
    }
}

fn ticks_per_second() -> f64 {
    static HZ: OnceLock<f64> = OnceLock::new();
    *HZ.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// (comm, utime + stime, cutime + cstime) of a process.
fn process_ticks(pid: &str) -> Option<(String, u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_owned();
    let fields: Vec<u64> = stat
        .get(close + 2..)?
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let [utime, stime, cutime, cstime] = fields[..] else {
        return None;
    };
    Some((comm, utime + stime, cutime + cstime))
}

/// Adds a server's CPU time to the running total; call just before stopping it.
pub fn record_server(pid: u32) {
    if let Some((_, own, _)) = process_ticks(&pid.to_string()) {
        SERVER_TICKS.fetch_add(own, Ordering::Relaxed);
    }
}

fn machine_busy() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    // user nice system idle iowait irq softirq steal ...
    line.split_whitespace()
        .skip(1)
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .filter_map(|(_, v)| v.parse::<u64>().ok())
        .sum()
}

/// PostgreSQL's processes, and the children the postmaster has reaped.
fn postgres_ticks() -> u64 {
    postgres_ticks_split(None).0
}

/// (all of PostgreSQL's ticks, the ticks of the backends connected to
/// `database`). A backend's title (its cmdline) is `postgres: USER DB HOST
/// state`; the other processes (WAL writer, checkpointer, autovacuum) serve
/// every database and only count in the first figure.
fn postgres_ticks_split(database: Option<&str>) -> (u64, u64) {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return (0, 0);
    };
    let marker = database.map(|db| format!(" {db} "));
    let (mut all, mut backends) = (0, 0);
    let pids = dir
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| name.bytes().all(|b| b.is_ascii_digit()));
    for pid in pids {
        let Some((comm, own, children)) = process_ticks(&pid) else {
            continue;
        };
        if comm != "postgres" && comm != "postmaster" {
            continue;
        }
        all += own + children;
        if let Some(marker) = &marker
            && let Ok(title) = std::fs::read(format!("/proc/{pid}/cmdline"))
            && String::from_utf8_lossy(&title).contains(marker.as_str())
        {
            backends += own;
        }
    }
    (all, backends)
}

pub fn snapshot() -> Snapshot {
    Snapshot {
        at: Instant::now(),
        busy: machine_busy(),
        bench: process_ticks("self").map_or(0, |(_, own, _)| own),
        postgres: postgres_ticks(),
        servers: SERVER_TICKS.load(Ordering::Relaxed),
    }
}

/// `ours_postgres`: the servers run on PostgreSQL, so its time is theirs;
/// otherwise PostgreSQL counts as another program.
pub fn usage(before: &Snapshot, after: &Snapshot, ours_postgres: bool) -> Usage {
    let hz = ticks_per_second();
    let secs = |a: u64, b: u64| a.saturating_sub(b) as f64 / hz;
    let server_s = secs(after.servers, before.servers);
    let postgres_s = if ours_postgres {
        secs(after.postgres, before.postgres)
    } else {
        0.0
    };
    let bench_s = secs(after.bench, before.bench);
    let busy_s = secs(after.busy, before.busy);
    Usage {
        wall_s: after.at.duration_since(before.at).as_secs_f64(),
        cores: std::thread::available_parallelism().map_or(1, usize::from),
        server_s,
        postgres_s,
        bench_s,
        other_s: (busy_s - server_s - postgres_s - bench_s).max(0.0),
    }
}

/// The servers' CPU ticks so far: the servers already stopped, and the
/// ones running as `pids`. Read at both ends of a part, it also counts a
/// server replaced in between (`Env::restart`).
fn server_ticks(pids: &[u32]) -> u64 {
    SERVER_TICKS.load(Ordering::Relaxed)
        + pids
            .iter()
            .map(|pid| process_ticks(&pid.to_string()).map_or(0, |(_, own, _)| own))
            .sum::<u64>()
}

/// Measures one timed part of a scenario: started just before it, finished
/// just after.
pub struct Meter {
    at: Instant,
    busy: u64,
    bench: u64,
    server: u64,
    postgres: u64,
    backends: u64,
    /// The server's PostgreSQL database; `None` on SQLite.
    database: Option<String>,
}

/// CPU seconds over one timed part.
#[derive(Clone, Debug, Serialize)]
pub struct PartCpu {
    pub wall_s: f64,
    pub cores: usize,
    pub server_s: f64,
    /// All of PostgreSQL's processes; `None` on SQLite, which runs inside
    /// the server and is part of `server_s`.
    pub db_s: Option<f64>,
    /// Of `db_s`, the backends connected to the server's database.
    pub db_backends_s: Option<f64>,
    pub bench_s: f64,
    pub other_s: f64,
}

impl Meter {
    /// `server_pids`: every instance running now.
    pub fn start(server_pids: &[u32], postgres_database: Option<&str>) -> Self {
        let (postgres, backends) = match postgres_database {
            Some(db) => postgres_ticks_split(Some(db)),
            None => (0, 0),
        };
        Self {
            at: Instant::now(),
            busy: machine_busy(),
            bench: process_ticks("self").map_or(0, |(_, own, _)| own),
            server: server_ticks(server_pids),
            postgres,
            backends,
            database: postgres_database.map(str::to_owned),
        }
    }

    /// `server_pids`: the instances running now (one may have been
    /// restarted).
    pub fn finish(self, server_pids: &[u32]) -> PartCpu {
        let hz = ticks_per_second();
        let secs = |after: u64, before: u64| after.saturating_sub(before) as f64 / hz;
        let server_s = secs(server_ticks(server_pids), self.server);
        let bench_s = secs(
            process_ticks("self").map_or(0, |(_, own, _)| own),
            self.bench,
        );
        let (db_s, db_backends_s) = match &self.database {
            Some(db) => {
                let (postgres, backends) = postgres_ticks_split(Some(db));
                (
                    Some(secs(postgres, self.postgres)),
                    Some(secs(backends, self.backends)),
                )
            }
            None => (None, None),
        };
        let busy_s = secs(machine_busy(), self.busy);
        PartCpu {
            wall_s: self.at.elapsed().as_secs_f64(),
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            server_s,
            db_s,
            db_backends_s,
            bench_s,
            other_s: (busy_s - server_s - db_s.unwrap_or(0.0) - bench_s).max(0.0),
        }
    }
}
