//! An honest start: `hookline serve` connects and migrates before it says it
//! listens; a start that cannot work fails fast with its root cause said once,
//! as a message (never a backtrace), and leaves nothing on disk; after a
//! signal it exits as soon as it has stopped.

use std::{
    net::TcpListener,
    path::Path,
    process::{Command, Output},
    time::{Duration, Instant},
};

use crate::support::{
    app::{fresh_database, on_postgres},
    jwt::{ENCRYPTION_KEY, JWT_SECRET},
    process::ServerProcess,
};

/// `hookline serve` on `database_url` in `dir`, with backtraces asked for,
/// run to its end.
fn serve(dir: &Path, database_url: &str, env: &[(&str, &str)]) -> (Output, Duration) {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_hookline"))
        .current_dir(dir)
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url"])
        .arg(database_url)
        .env_remove("HOOKLINE_DATABASE_URL")
        .env_remove("HOOKLINE_JWT_SECRET")
        .env_remove("HOOKLINE_ENCRYPTION_KEY")
        .env("RUST_BACKTRACE", "1")
        .env("HOOKLINE_LOG", "info")
        .envs(env.iter().copied())
        .output()
        .expect("run hookline serve");
    (output, started.elapsed())
}

/// What is in `dir`, by name.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The start failed, said "error: ..." with `cause` exactly once on one
/// line, never claimed to listen, and printed no backtrace.
fn assert_failed_once(output: &Output, cause: &str) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "the start failed\n{stderr}");
    assert!(
        !stdout.contains("listening"),
        "it never says it listens: {stdout}"
    );
    assert_eq!(
        stderr.matches(cause).count(),
        1,
        "the cause {cause:?} is said exactly once:\n{stderr}"
    );
    let error_lines: Vec<&str> = stderr.lines().filter(|l| l.contains(cause)).collect();
    assert!(
        error_lines[0].starts_with("error: "),
        "one `error:` line: {stderr}"
    );
    for noise in ["backtrace", "Caused by", "panicked", "pool timed out"] {
        assert!(!stderr.contains(noise), "no {noise:?} in:\n{stderr}");
    }
}

fn keys() -> [(&'static str, &'static str); 2] {
    [
        ("HOOKLINE_JWT_SECRET", JWT_SECRET),
        ("HOOKLINE_ENCRYPTION_KEY", ENCRYPTION_KEY),
    ]
}

#[test]
fn an_unreachable_postgres_fails_at_once_saying_connection_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A port nobody listens on: bound, then released.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let (output, took) = serve(
        dir.path(),
        &format!("postgres://postgres@127.0.0.1:{port}/hookline"),
        &keys(),
    );
    assert_failed_once(&output, "connection refused");
    assert!(
        took < Duration::from_secs(10),
        "a refused connection is not retried until a pool times out ({took:?})"
    );
    assert_eq!(listing(dir.path()), Vec::<String>::new(), "nothing written");
}

#[test]
fn an_sqlite_file_that_cannot_be_opened_is_named_and_no_keys_file_is_left() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Its directory is a regular file, so the database cannot be created
    // there (whoever runs the test, root included).
    std::fs::write(dir.path().join("not-a-dir"), "").expect("file");
    let url = format!("sqlite://{}/not-a-dir/hookline.db", dir.path().display());
    let (output, _) = serve(dir.path(), &url, &[]);
    assert_failed_once(&output, "not-a-dir is not a directory that exists");
    assert_eq!(listing(dir.path()), ["not-a-dir"], "nothing written");

    // A file that is not a database: refused before a keys file is made
    // beside it.
    std::fs::write(dir.path().join("junk.db"), "not sqlite at all, not at all").expect("junk");
    let url = format!("sqlite://{}/junk.db", dir.path().display());
    let (output, _) = serve(dir.path(), &url, &[]);
    assert_failed_once(&output, "file is not a database");
    assert_eq!(
        listing(dir.path()),
        ["junk.db", "not-a-dir"],
        "no junk.db.keys, no WAL"
    );
}

#[test]
fn a_configuration_mistake_is_one_line_not_a_backtrace_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/hookline.db", dir.path().display());
    let (output, _) = serve(
        dir.path(),
        &url,
        &[("HOOKLINE_ENCRYPTION_KEY", "not base64!")],
    );
    assert_failed_once(&output, "HOOKLINE_ENCRYPTION_KEY must be base64");
    assert_eq!(
        listing(dir.path()),
        Vec::<String>::new(),
        "no database made"
    );

    let (output, _) = serve(dir.path(), "mysql://localhost/hookline", &keys());
    assert_failed_once(
        &output,
        "unsupported database URL mysql://localhost/hookline",
    );

    // PostgreSQL without the shared keys: said before connecting anywhere.
    let (output, _) = serve(dir.path(), "postgres://postgres@127.0.0.1:1/x", &[]);
    assert_failed_once(
        &output,
        "HOOKLINE_JWT_SECRET and HOOKLINE_ENCRYPTION_KEY are required",
    );
    assert_eq!(listing(dir.path()), Vec::<String>::new());
}

#[test]
fn a_port_in_use_fails_before_the_database_is_created() {
    let dir = tempfile::tempdir().expect("tempdir");
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = taken.local_addr().expect("addr").to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_hookline"))
        .current_dir(dir.path())
        .args(["serve", "--listen", &address, "--database-url"])
        .arg(format!("sqlite://{}/hookline.db", dir.path().display()))
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run hookline serve");
    assert_failed_once(&output, &format!("cannot listen on {address}"));
    assert_eq!(listing(dir.path()), Vec::<String>::new(), "nothing written");
}

#[test]
#[ignore = "needs PostgreSQL: HOOKLINE_TEST_DATABASE_URL and --include-ignored"]
fn a_missing_postgres_database_is_named() {
    assert!(on_postgres(), "set HOOKLINE_TEST_DATABASE_URL");
    let base = std::env::var("HOOKLINE_TEST_DATABASE_URL").expect("url");
    let server = base
        .rsplit_once('/')
        .map(|(server, _)| server.to_owned())
        .expect("a URL with a database name");
    let dir = tempfile::tempdir().expect("tempdir");
    let (output, _) = serve(
        dir.path(),
        &format!("{server}/hookline_no_such_database"),
        &keys(),
    );
    assert_failed_once(
        &output,
        "database \"hookline_no_such_database\" does not exist",
    );
}

#[test]
fn a_multi_host_url_without_a_primary_or_malformed_fails_in_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dead = || {
        TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port()
    };
    let (a, b) = (dead(), dead());
    let (output, took) = serve(
        dir.path(),
        &format!(
            "postgres://postgres:pw@127.0.0.1:{a},127.0.0.1:{b}/h?target_session_attrs=read-write"
        ),
        &keys(),
    );
    assert_failed_once(
        &output,
        "no host is a primary that suits target_session_attrs",
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("127.0.0.1:{a} connection refused"))
            && stderr.contains(&format!("127.0.0.1:{b} connection refused")),
        "each host's reason is given: {stderr}"
    );
    assert!(
        !stderr.contains("pw@"),
        "the password is redacted: {stderr}"
    );
    assert!(took < Duration::from_secs(10), "no pool retries ({took:?})");
    for (url, cause) in [
        ("postgres://u@h1,,h2/h", "the host list has an empty host"),
        ("postgres://u@h1:5x,h2/h", "invalid port `5x` for host h1"),
        (
            "postgres://u@h1,h2/h?target_session_attrs=standby",
            "target_session_attrs=standby cannot work",
        ),
    ] {
        let (output, _) = serve(dir.path(), url, &keys());
        assert_failed_once(&output, cause);
    }
    assert_eq!(listing(dir.path()), Vec::<String>::new(), "nothing written");
}

/// A multi-host URL whose first host is down: hookline takes the next one,
/// the writable primary, and works on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: HOOKLINE_TEST_DATABASE_URL and --include-ignored"]
async fn a_multi_host_url_connects_to_the_host_that_is_up_and_writable() {
    assert!(on_postgres(), "set HOOKLINE_TEST_DATABASE_URL");
    let (url, _dir) = fresh_database().await;
    let dead = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let at = url.find('@').expect("a URL with a user") + 1;
    let url = format!(
        "{}127.0.0.1:{dead},{}&target_session_attrs=read-write",
        &url[..at],
        &url[at..]
    );
    let logs = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(&url, logs.path(), &[]);
    let token = crate::support::jwt::admin_token("acme");
    let receiver = crate::support::receiver::Receiver::ok().await;
    let gql = server.gql();
    crate::support::fixtures::create_webhook(
        &gql,
        &token,
        crate::support::fixtures::fast_webhook(&receiver.url, &["*"], 5),
    )
    .await;
    let published = crate::support::fixtures::publish(
        &gql,
        &token,
        "conversion.created",
        serde_json::json!({ "n": 1 }),
    )
    .await;
    receiver.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(
        receiver.received()[0].header("webhook-id"),
        published.event.id
    );
}

/// After SIGTERM the process is gone once it has logged "stopped": nothing
/// (on PostgreSQL, the LISTEN connection of the instance relay) outlives the
/// shutdown, retries against a closed pool, or holds up the exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_signal_it_stops_at_once_and_quietly() {
    let (url, _dir) = fresh_database().await;
    let logs = tempfile::tempdir().expect("tempdir");
    let mut server = ServerProcess::start_logging(&url, logs.path(), &[], Some("info"));
    let status = server.terminate();
    assert!(status.success(), "exit status {status}");
    let log = server.log();
    let after_signal = log
        .split_once("shutting down")
        .map(|(_, rest)| rest)
        .expect("logged shutting down");
    assert!(after_signal.contains("hookline stopped"), "{log}");
    for line in after_signal.lines() {
        assert!(
            !line.contains("WARN") && !line.contains("ERROR"),
            "nothing goes wrong while stopping: {line}"
        );
    }
}
