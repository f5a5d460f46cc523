//! What the numbers were measured on: the machine, the hookline commit, the
//! database, and the exact command line.

use std::{path::Path, process::Command};

use serde::Serialize;

use crate::server::DbKind;

#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub command_line: String,
    pub database: String,
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_total: String,
    pub hookline_commit: String,
    pub hookline_binary: String,
    pub open_files: String,
    pub started_at: String,
}

pub fn describe(
    workspace: &Path,
    binary: &Path,
    db: DbKind,
    postgres_url: &str,
    open_files: String,
) -> Machine {
    Machine {
        command_line: command_line(),
        database: match db {
            DbKind::Sqlite => "sqlite (fresh file per server)".into(),
            DbKind::Postgres => postgres_version(postgres_url)
                .map_or("postgres (fresh database per server)".into(), |v| {
                    format!("postgres {v} (fresh database per server)")
                }),
        },
        cpus: std::thread::available_parallelism().map_or(0, usize::from),
        cpu_model: proc_field("/proc/cpuinfo", "model name").unwrap_or_else(|| "unknown".into()),
        memory_total: proc_field("/proc/meminfo", "MemTotal")
            .and_then(|kb| kb.split_whitespace().next()?.parse::<u64>().ok())
            .map_or("unknown".into(), |kb| {
                format!("{:.1} GiB", kb as f64 / 1024.0 / 1024.0)
            }),
        hookline_commit: git_commit(workspace),
        hookline_binary: binary_description(binary),
        open_files,
        started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }
}

/// Raises this process's soft open-file limit to its hard limit; the server,
/// started later, inherits it. Returns what the limit now is.
pub fn raise_open_file_limit() -> String {
    match rlimit::increase_nofile_limit(1 << 20) {
        Ok(limit) if limit < 4_096 => {
            format!("{limit} (low for 1 000 subscribers: run `ulimit -n 65536` before the bench)")
        }
        Ok(limit) => limit.to_string(),
        Err(err) => format!("unknown ({err})"),
    }
}

fn command_line() -> String {
    std::env::args()
        .map(|arg| {
            if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || "'\"$\\".contains(c)) {
                format!("'{}'", arg.replace('\'', r"'\''"))
            } else {
                arg
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn proc_field(file: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        (name.trim() == key).then(|| value.trim().to_owned())
    })
}

fn run(program: &str, args: &[&str], dir: &Path) -> Option<String> {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn git_commit(workspace: &Path) -> String {
    let Some(commit) = run("git", &["rev-parse", "--short", "HEAD"], workspace) else {
        return "unknown (not a git checkout?)".into();
    };
    let dirty = run(
        "git",
        &[
            "status",
            "--porcelain",
            "--",
            "src",
            "entity",
            "migration",
            "Cargo.toml",
        ],
        workspace,
    )
    .is_some_and(|status| !status.is_empty());
    if dirty {
        format!("{commit} (+ uncommitted changes in src/, entity/ or migration/)")
    } else {
        commit
    }
}

fn binary_description(binary: &Path) -> String {
    let built = std::fs::metadata(binary)
        .and_then(|m| m.modified())
        .ok()
        .map(|t| {
            chrono::DateTime::<chrono::Utc>::from(t)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        });
    match built {
        Some(built) => format!("{} (built {built})", binary.display()),
        None => binary.display().to_string(),
    }
}

fn postgres_version(postgres_url: &str) -> Option<String> {
    let url = format!("{postgres_url}/postgres");
    let version = run(
        "psql",
        &["-XtAc", "SHOW server_version", &url],
        Path::new("."),
    )?;
    version.split_whitespace().next().map(str::to_owned)
}
