//! The README's local walkthrough, run as written: its `serve`, `listen` and
//! `publish` blocks (each follows a `<!-- walkthrough: NAME -->` marker) in
//! bash, with the freshly built `hookline` first on `PATH`, in an empty
//! directory, on two free ports in place of 8080 and 8090. The receiver must
//! print the delivery, verified. Every GraphQL block of the README must pass
//! the schema's validation, and its configuration table must agree with
//! `hookline serve --help`.

use std::{
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::json;

use crate::support::app::TestApp;

const README: &str = include_str!("../../README.md");

/// The body of the fenced block that follows `<!-- walkthrough: name -->`,
/// unindented.
fn walkthrough_block(name: &str) -> String {
    let marker = format!("<!-- walkthrough: {name} -->");
    let after = README
        .split_once(&marker)
        .unwrap_or_else(|| panic!("README has no {marker}"))
        .1;
    let fence_start = after.find("```").expect("a fenced block after the marker");
    let body = &after[fence_start..];
    let body = &body[body.find('\n').expect("fence line") + 1..];
    let end = body.find("```").expect("closing fence");
    let lines: Vec<&str> = body[..end].lines().collect();
    let indent = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    lines
        .iter()
        .map(|l| l.get(indent..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// One terminal of the walkthrough: a bash running a block in its own
/// process group, its output in files.
struct Terminal {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Terminal {
    fn open(name: &str, script: &str, dir: &Path, env: &[(&str, String)]) -> Self {
        let stdout = dir.join(format!("{name}.out"));
        let stderr = dir.join(format!("{name}.err"));
        let bin_dir = Path::new(env!("CARGO_BIN_EXE_hookline"))
            .parent()
            .expect("bin dir");
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let child = Command::new("bash")
            .args(["-euo", "pipefail", "-c", script])
            .current_dir(dir)
            .env("PATH", path)
            .env_remove("HOOKLINE_DATABASE_URL")
            .env_remove("HOOKLINE_JWT_SECRET")
            .env_remove("HOOKLINE_ENCRYPTION_KEY")
            .env("HOOKLINE_LOG", "info")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .process_group(0)
            .spawn()
            .expect("bash");
        Self {
            child,
            stdout,
            stderr,
        }
    }

    fn output(&self) -> String {
        let out = std::fs::read_to_string(&self.stdout).unwrap_or_default();
        let err = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        format!("{out}\n--- stderr ---\n{err}")
    }

    fn wait_for(&mut self, what: &str, texts: &[&str], within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let out = std::fs::read_to_string(&self.stdout).unwrap_or_default();
            if texts.iter().all(|t| out.contains(t)) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{what}: the terminal ended ({status}) first:\n{}",
                    self.output()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{what}: {texts:?} not printed within {within:?}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn finish(mut self, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(
                    status.success(),
                    "the block failed ({status}):\n{}",
                    self.output()
                );
                return std::fs::read_to_string(&self.stdout).unwrap_or_default();
            }
            assert!(
                Instant::now() < deadline,
                "the block did not finish within {within:?}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        // The whole group: bash and what it started.
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

#[test]
fn the_readme_walkthrough_delivers_a_verified_event_to_hookline_listen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (api, receiver) = (free_port(), free_port());
    let ports = |block: String| {
        block
            .replace("127.0.0.1:8080", &format!("127.0.0.1:{api}"))
            .replace("127.0.0.1:8090", &format!("127.0.0.1:{receiver}"))
    };
    let env = [
        ("HOOKLINE_LISTEN", format!("127.0.0.1:{api}")),
        ("HOOKLINE_LISTEN_PORT", receiver.to_string()),
    ];

    let mut serve = Terminal::open(
        "serve",
        &ports(walkthrough_block("serve")),
        dir.path(),
        &env,
    );
    serve.wait_for(
        "serve",
        &["hookline listening on", "admin token"],
        Duration::from_secs(60),
    );

    let mut listen = Terminal::open(
        "listen",
        &ports(walkthrough_block("listen")),
        dir.path(),
        &env,
    );
    listen.wait_for(
        "listen",
        &["ready on", "signatures are checked with the given secret"],
        Duration::from_secs(30),
    );

    let publish = Terminal::open(
        "publish",
        &ports(walkthrough_block("publish")),
        dir.path(),
        &env,
    );
    let answer = publish.finish(Duration::from_secs(30));
    assert!(
        answer.contains(r#""deliveryCount":1"#),
        "publishEvent answered {answer}"
    );

    listen.wait_for(
        "the delivery",
        &[
            "event     conversion.status_changed",
            "attempt   1",
            "verified  yes",
            "answered  200",
            "cnv_981",
        ],
        Duration::from_secs(30),
    );
    drop(serve);
}

/// What a valid operation may answer without a token over HTTP: both come
/// only after the document parsed and validated.
const AFTER_VALIDATION: [&str; 2] = [
    "UNAUTHENTICATED",
    "Subscriptions are not supported on this transport.",
];

fn errors_after_validation(answer: &serde_json::Value) -> Vec<String> {
    answer["errors"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|e| {
            !AFTER_VALIDATION.contains(&e["extensions"]["code"].as_str().unwrap_or_default())
                && !AFTER_VALIDATION.contains(&e["message"].as_str().unwrap_or_default())
        })
        .map(ToString::to_string)
        .collect()
}

/// Every ```graphql block of the README parses and validates against the
/// schema: sent without a token, the only errors allowed come after
/// validation (UNAUTHENTICATED; a subscription over HTTP is refused too).
#[tokio::test]
async fn every_graphql_example_in_the_readme_validates() {
    let app = TestApp::spawn().await;
    // The check can fail: a wrong field is reported, in a subscription too.
    for wrong in [
        "{ viewer { nope } }",
        "subscription { deliveryAttempts { nope } }",
    ] {
        let answer = app.gql.run(None, wrong, json!({})).await;
        assert!(
            !errors_after_validation(&answer).is_empty(),
            "{wrong} answered {answer}"
        );
    }
    let mut checked = 0;
    for block in README.split("```graphql").skip(1) {
        let query = block.split("```").next().expect("block");
        let answer = app.gql.run(None, query, json!({})).await;
        let wrong = errors_after_validation(&answer);
        assert!(
            wrong.is_empty(),
            "README example does not validate:\n{query}\n{wrong:?}"
        );
        checked += 1;
    }
    assert!(checked >= 6, "found {checked} GraphQL examples");
    app.stop().await;
}

/// Each `[env: NAME=]` of `serve --help` with its `[default: ...]`, if any.
fn help_variables() -> Vec<(String, Option<String>)> {
    let output = Command::new(env!("CARGO_BIN_EXE_hookline"))
        .args(["serve", "--help"])
        .output()
        .expect("hookline serve --help");
    let help = String::from_utf8(output.stdout).expect("utf-8");
    let mut found = Vec::new();
    for chunk in help.split("[env: ").skip(1) {
        let name: String = chunk
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        let rest = &chunk[..chunk.find("\n").unwrap_or(chunk.len())];
        let default = rest
            .split_once("[default: ")
            .map(|(_, d)| d.split(']').next().expect("default").to_owned());
        found.push((name, default));
    }
    found
}

/// Each row of the README's configuration table: variable and default.
fn table_variables() -> Vec<(String, String)> {
    let section = README
        .split_once("## Configuration")
        .expect("a Configuration section")
        .1;
    section
        .lines()
        .filter_map(|line| line.strip_prefix("| `HOOKLINE_"))
        .map(|row| {
            let mut cells = row.split(" | ");
            let name = format!(
                "HOOKLINE_{}",
                cells.next().expect("name").trim_end_matches('`')
            );
            let default = cells.next().expect("default").trim().to_owned();
            (name, default)
        })
        .collect()
}

#[test]
fn the_configuration_table_and_serve_help_list_the_same_variables_and_defaults() {
    let help = help_variables();
    let table = table_variables();
    assert!(
        help.len() >= 25,
        "parsed {} variables from --help",
        help.len()
    );
    let mut names_help: Vec<&str> = help.iter().map(|(n, _)| n.as_str()).collect();
    let mut names_table: Vec<&str> = table.iter().map(|(n, _)| n.as_str()).collect();
    names_help.sort_unstable();
    names_table.sort_unstable();
    assert_eq!(
        names_help, names_table,
        "--help and the README table differ"
    );
    for (name, default) in &help {
        let Some(default) = default else { continue };
        let (_, in_table) = table.iter().find(|(n, _)| n == name).expect("listed");
        assert_eq!(
            in_table.trim_matches('`'),
            default,
            "{name}: --help says {default}, the README {in_table}"
        );
    }
}
