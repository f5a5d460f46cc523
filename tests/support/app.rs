use std::{net::SocketAddr, time::Duration};

use hookline::{Config, auth::Role};
use sea_orm::{ConnectionTrait, Database};
use tempfile::TempDir;
use tokio::{sync::oneshot, task::JoinHandle};

use super::{
    gql::Gql,
    jwt::{self, ENCRYPTION_KEY, JWT_SECRET},
};

/// hookline in this test's process, on 127.0.0.1 port 0, stopped when
/// dropped. Tokens from [`TestApp::token`] are signed with the key it uses.
pub struct TestApp {
    pub addr: SocketAddr,
    pub database_url: String,
    pub gql: Gql,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
    _dir: Option<TempDir>,
}

impl TestApp {
    /// A server with test defaults: private endpoints allowed (receivers run
    /// on 127.0.0.1), a fresh database.
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(configure: impl FnOnce(&mut Config)) -> Self {
        let (database_url, dir) = fresh_database().await;
        let mut config = test_config(&database_url);
        configure(&mut config);
        Self::start(config, database_url, dir).await
    }

    /// A server on an existing database (e.g. a second instance).
    pub async fn spawn_on(database_url: &str, configure: impl FnOnce(&mut Config)) -> Self {
        let mut config = test_config(database_url);
        configure(&mut config);
        Self::start(config, database_url.to_owned(), None).await
    }

    async fn start(config: Config, database_url: String, dir: Option<TempDir>) -> Self {
        // Server logs go to the test's captured output (shown when it fails).
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(std::env::var("HOOKLINE_LOG").unwrap_or_else(|_| "warn".into()))
            .try_init();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind port 0");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(hookline::run(config, listener, async move {
            let _ = rx.await;
        }));
        let mut app = Self {
            addr,
            gql: Gql::new(format!("http://{addr}/graphql")),
            database_url,
            shutdown: Some(tx),
            handle: Some(handle),
            _dir: dir,
        };
        app.wait_ready().await;
        app
    }

    async fn wait_ready(&mut self) {
        let client = reqwest::Client::new();
        let url = format!("http://{}/readyz", self.addr);
        for _ in 0..500 {
            if self.handle.as_ref().is_some_and(JoinHandle::is_finished) {
                let handle = self.handle.take().expect("handle");
                panic!("server exited during start-up: {:?}", handle.await);
            }
            if let Ok(resp) = client.get(&url).send().await
                && resp.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("server at {} never became ready", self.addr);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn token(&self, tenant: &str, role: Role) -> String {
        jwt::token(tenant, role)
    }

    pub fn admin(&self, tenant: &str) -> String {
        jwt::admin_token(tenant)
    }

    /// The value of one `/metrics` series, named as exposed with its labels
    /// (`hookline_queue_due`, `x_total{outcome="failed"}`), or `None`.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        scrape_metric(self.addr, series).await
    }

    /// Stops the server and hands over its temporary directory, so the same
    /// database can be opened by another server.
    pub async fn stop_keeping_data(mut self) -> Option<TempDir> {
        let dir = self._dir.take();
        self.stop().await;
        dir
    }

    /// Stops the server gracefully and waits for it to finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle
                .await
                .expect("server task")
                .expect("server ran cleanly");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl AsRef<Gql> for TestApp {
    fn as_ref(&self) -> &Gql {
        &self.gql
    }
}

pub fn test_config(database_url: &str) -> Config {
    Config::from_args([
        "--database-url",
        database_url,
        "--jwt-secret",
        JWT_SECRET,
        "--encryption-key",
        ENCRYPTION_KEY,
        "--allow-private-endpoints",
        "--listen",
        "127.0.0.1:0",
    ])
    .expect("test config parses")
}

/// True when the suite runs against PostgreSQL.
pub fn on_postgres() -> bool {
    std::env::var("HOOKLINE_TEST_DATABASE_URL").is_ok_and(|url| !url.is_empty())
}

/// For a test that only PostgreSQL can run: true, after saying that it
/// skipped and `why`, when the suite runs on SQLite.
pub fn skipped_without_postgres(why: &str) -> bool {
    if on_postgres() {
        return false;
    }
    eprintln!("skipped: {why}; CI runs it with HOOKLINE_TEST_DATABASE_URL");
    true
}

/// A database nobody else uses: a temporary SQLite file, or a new schema in
/// the PostgreSQL database named by `HOOKLINE_TEST_DATABASE_URL`.
pub async fn fresh_database() -> (String, Option<TempDir>) {
    match std::env::var("HOOKLINE_TEST_DATABASE_URL") {
        Ok(base) if !base.is_empty() => (fresh_pg_schema(&base).await, None),
        _ => {
            let dir = tempfile::tempdir().expect("tempdir");
            let url = format!("sqlite://{}/hookline.db", dir.path().display());
            (url, Some(dir))
        }
    }
}

async fn fresh_pg_schema(base: &str) -> String {
    let schema = format!("t_{}", ulid::Ulid::new().to_string().to_lowercase());
    let db = Database::connect(base)
        .await
        .expect("connect to HOOKLINE_TEST_DATABASE_URL");
    db.execute_unprepared(&format!("CREATE SCHEMA {schema}"))
        .await
        .expect("create schema");
    db.close().await.ok();
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}options[search_path]={schema}")
}

/// The value of one series on the `/metrics` of the server at `addr`.
pub async fn scrape_metric(addr: SocketAddr, series: &str) -> Option<f64> {
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("scrape /metrics")
        .text()
        .await
        .expect("metrics text");
    metric(&text, series)
}

/// The value of `series` in a Prometheus text exposition, or `None`.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok()).flatten()
    })
}
