//! `hookline serve` as a child process, for tests that kill it.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use super::{
    gql::Gql,
    jwt::{ENCRYPTION_KEY, JWT_SECRET},
};

/// hookline's own debug lines (libraries stay at WARN unless named).
pub const DEBUG_LOG: &str = "debug";

pub struct ServerProcess {
    pub child: Child,
    pub addr: SocketAddr,
    /// Everything the process logged (stderr).
    pub log_path: PathBuf,
}

impl ServerProcess {
    /// Starts the real binary on `database_url` and waits until it listens,
    /// logging at debug.
    pub fn start(database_url: &str, log_dir: &std::path::Path, extra: &[&str]) -> Self {
        Self::start_logging(database_url, log_dir, extra, Some(DEBUG_LOG))
    }

    /// As `start`, with `HOOKLINE_LOG` set to `log_filter`, or left to the
    /// binary's default when `None`.
    pub fn start_logging(
        database_url: &str,
        log_dir: &std::path::Path,
        extra: &[&str],
        log_filter: Option<&str>,
    ) -> Self {
        let command = Command::new(env!("CARGO_BIN_EXE_hookline"));
        let log_path = log_dir.join(format!("server-{}.log", ulid::Ulid::new()));
        Self::spawn(command, database_url, log_path, extra, log_filter)
    }

    /// As `start_logging`, with SIGXFSZ ignored (a shell sets it to ignored
    /// and execs the binary, which keeps it so): past a file-size limit
    /// (see [`Self::limit_file_size`]) writes fail with EFBIG instead of the
    /// signal killing the process, as writes fail on a full disk.
    pub fn start_ignoring_file_size_signal(
        database_url: &str,
        log_dir: &std::path::Path,
        extra: &[&str],
        log_filter: &str,
    ) -> Self {
        let mut command = Command::new("sh");
        command.args([
            "-c",
            "trap '' XFSZ; exec \"$0\" \"$@\"",
            env!("CARGO_BIN_EXE_hookline"),
        ]);
        let log_path = log_dir.join(format!("server-{}.log", ulid::Ulid::new()));
        Self::spawn(command, database_url, log_path, extra, Some(log_filter))
    }

    /// Sets the process's soft limit on the size of any file it writes
    /// (RLIMIT_FSIZE), or lifts it with `None`, using util-linux `prlimit`.
    pub fn limit_file_size(&self, bytes: Option<u64>) {
        let soft = bytes.map_or_else(|| "unlimited".to_owned(), |b| b.to_string());
        let status = Command::new("prlimit")
            .arg("--pid")
            .arg(self.child.id().to_string())
            .arg(format!("--fsize={soft}:"))
            .status()
            .expect("prlimit (util-linux) is needed to limit file sizes");
        assert!(status.success(), "prlimit --fsize={soft}: failed");
    }

    /// As `start_logging`, writing the log (stderr) to `log_path` itself,
    /// e.g. `/dev/full`.
    pub fn start_logging_into(
        database_url: &str,
        log_path: PathBuf,
        extra: &[&str],
        log_filter: Option<&str>,
    ) -> Self {
        let command = Command::new(env!("CARGO_BIN_EXE_hookline"));
        Self::spawn(command, database_url, log_path, extra, log_filter)
    }

    fn spawn(
        mut command: Command,
        database_url: &str,
        log_path: PathBuf,
        extra: &[&str],
        log_filter: Option<&str>,
    ) -> Self {
        let log = std::fs::File::create(&log_path).expect("log file");
        // Quick heartbeats by default, so tests see dead instances fast; a
        // test that needs slow ones passes its own.
        let timeout: &[&str] = if extra.contains(&"--instance-timeout") {
            &[]
        } else {
            &["--instance-timeout", "1s"]
        };
        let mut child = command
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--database-url", database_url])
            .args(["--allow-private-endpoints", "--poll-interval", "200ms"])
            .args(timeout)
            .args(extra)
            .env("HOOKLINE_JWT_SECRET", JWT_SECRET)
            .env("HOOKLINE_ENCRYPTION_KEY", ENCRYPTION_KEY)
            .env_remove("HOOKLINE_LOG")
            .envs(log_filter.map(|filter| ("HOOKLINE_LOG", filter)))
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start hookline");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("hookline exited before listening")
                .expect("read stdout");
            if let Some(addr) = listening_address(&line) {
                break addr;
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let process = Self {
            child,
            addr,
            log_path,
        };
        process.wait_ready();
        process
    }

    fn wait_ready(&self) {
        for _ in 0..500 {
            if let Ok(mut stream) = std::net::TcpStream::connect(self.addr) {
                use std::io::{Read, Write};
                let _ = stream.write_all(b"GET /readyz HTTP/1.0\r\n\r\n");
                let mut answer = String::new();
                let _ = stream.read_to_string(&mut answer);
                if answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200") {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("hookline at {} never became ready", self.addr);
    }

    pub fn graphql_url(&self) -> String {
        format!("http://{}/graphql", self.addr)
    }

    /// The value of one `/metrics` series, as [`super::TestApp::metric`].
    pub async fn metric(&self, series: &str) -> Option<f64> {
        super::app::scrape_metric(self.addr, series).await
    }

    /// A GraphQL client for this server.
    pub fn gql(&self) -> Gql {
        Gql::new(self.graphql_url())
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("exit status") {
                return status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "hookline did not exit within 30 s of SIGTERM\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // A test that failed shows whether the server was still running and
        // what it logged last: its log is in a directory the test removes.
        if std::thread::panicking() {
            let state = match self.child.try_wait() {
                Ok(Some(status)) => format!("had exited ({status})"),
                _ => "was still running".to_owned(),
            };
            eprintln!(
                "the hookline server at {} {state}; its panics and last lines:",
                self.addr
            );
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let last = &lines[lines.len().saturating_sub(40)..];
            for line in lines.iter().filter(|l| l.contains("panicked")).chain(last) {
                eprintln!("hookline: {line}");
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address in `serve`'s machine-readable line, `{"listening":"ADDR"}`;
/// `None` for every other line (the human banner included).
pub fn listening_address(line: &str) -> Option<SocketAddr> {
    #[derive(serde::Deserialize)]
    struct Listening {
        listening: SocketAddr,
    }
    let parsed: Listening = serde_json::from_str(line).ok()?;
    Some(parsed.listening)
}
