//! A private PostgreSQL cluster in a temporary directory, on its own port,
//! that a test may restart without touching the machine's shared server.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

pub struct PrivatePostgres {
    bin: PathBuf,
    data: PathBuf,
    _dir: tempfile::TempDir,
    pub port: u16,
}

impl PrivatePostgres {
    /// `None` when PostgreSQL's server binaries are not installed.
    pub fn start() -> Option<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
            .find(|path| path.join("initdb").exists())?;
        let pg = Self::place(bin);
        let as_root = Self::as_root();
        pg.run(
            "initdb",
            &["-A", "trust", "-U", "postgres", "-D", &pg.data_str()],
            as_root,
        );
        pg.ctl(
            &["start", "-w", "-l", &format!("{}/log", pg.data_str())],
            as_root,
        );
        Some(pg)
    }

    /// A cluster not made yet: a temporary directory (owned by `postgres`
    /// when the tests run as root: PostgreSQL refuses to run as root) and a
    /// free port.
    fn place(bin: PathBuf) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        if Self::as_root() {
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            Command::new("chmod")
                .arg("755")
                .arg(dir.path())
                .status()
                .expect("chmod");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("port")
            .local_addr()
            .expect("addr")
            .port();
        Self {
            bin,
            data: dir.path().join("data"),
            _dir: dir,
            port,
        }
    }

    fn data_str(&self) -> String {
        self.data.display().to_string()
    }

    fn as_root() -> bool {
        Command::new("id")
            .arg("-u")
            .output()
            .map(|o| o.stdout == b"0\n")
            .unwrap_or(false)
    }

    fn run(&self, tool: &str, args: &[&str], as_root: bool) {
        let program = self.bin.join(tool);
        let status = if as_root {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&program)
                .args(args)
                .status()
        } else {
            Command::new(&program).args(args).status()
        }
        .unwrap_or_else(|err| panic!("{tool}: {err}"));
        assert!(status.success(), "{tool} {args:?} failed");
    }

    fn ctl(&self, args: &[&str], as_root: bool) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.data_str()
        );
        let mut all: Vec<&str> = vec![args[0], "-D"];
        let data = self.data_str();
        all.push(&data);
        all.extend(["-o", &options]);
        all.extend(&args[1..]);
        self.run("pg_ctl", &all, as_root);
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server, if it runs.
    pub fn stop(&self) {
        if self.data.join("postmaster.pid").exists() {
            self.ctl(&["stop", "-m", "fast", "-w"], Self::as_root());
        }
    }

    /// Stops the server the way a crash does: no checkpoint, connections cut,
    /// crash recovery at the next start.
    pub fn kill(&self) {
        self.ctl(&["stop", "-m", "immediate", "-w"], Self::as_root());
    }

    pub fn start_again(&self) {
        self.ctl(
            &["start", "-w", "-l", &format!("{}/log", self.data_str())],
            Self::as_root(),
        );
    }

    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// A streaming replica of this cluster (`pg_basebackup -R`), in a
    /// temporary directory of its own, on its own port.
    pub fn start_replica(&self) -> Self {
        let as_root = Self::as_root();
        let replica = Self::place(self.bin.clone());
        let source = self.port.to_string();
        replica.run(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &source,
                "-U",
                "postgres",
                "-D",
                &replica.data_str(),
                "-R",
                "-X",
                "stream",
            ],
            as_root,
        );
        replica.ctl(
            &["start", "-w", "-l", &format!("{}/log", replica.data_str())],
            as_root,
        );
        replica
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.stop()));
    }
}
