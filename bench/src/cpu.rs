//! Where the CPU went during a scenario: the hookline servers, PostgreSQL,
//! the bench itself, and everything else on the machine (from /proc).

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
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| name.bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|pid| process_ticks(&pid))
        .filter(|(comm, _, _)| comm == "postgres" || comm == "postmaster")
        .map(|(_, own, children)| own + children)
        .sum()
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
