//! `TestApp`: the real server, started in-process on a free port against a fresh database,
//! and typed helpers to talk to it and to look at its table.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Once;
use std::thread::JoinHandle;

use actix_web::dev::ServerHandle;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};
use identity_api::{telemetry, Application, Settings};
use identity_persistence::DatabaseUrl;
use identity_test_support::TestDb;
use serde_json::Value;

/// An HTTP answer, with its body parsed as JSON (a JSON string holding the raw text when it
/// is not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Asserts an RFC 9457 problem with this status and `type`, and returns its detail.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, kind: &str) -> String {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.content_type, "application/problem+json", "{self:?}");
        assert_eq!(self.body["status"], status, "{self:?}");
        assert_eq!(self.body["type"], format!("/problems/{kind}"), "{self:?}");
        assert!(
            self.body["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{self:?}"
        );
        let detail = self.body["detail"].as_str().unwrap_or_default().to_owned();
        assert!(!detail.is_empty(), "{self:?}");
        detail
    }
}

/// One row of the `contact` table.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct Row {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub email: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub phone_number: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub linked_id: Option<i64>,
    #[diesel(sql_type = Text)]
    pub link_precedence: String,
}

pub struct TestApp {
    pub address: String,
    handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
    agent: ureq::Agent,
    // Dropped after the server has stopped (fields drop in declaration order).
    pub db: TestDb,
    /// The API key the helpers send, once [`TestApp::with_key`] stored one.
    key: Option<String>,
}

pub fn init_test_log() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            if let Ok(settings) = Settings::defaults() {
                telemetry::init(&settings.log);
            }
        }
    });
}

/// Settings for a server of the tests: free port, small pool, the given database; read
/// the way the service reads its own, from the defaults and the environment's variables.
pub fn test_settings(database_url: &str) -> Settings {
    settings_from_env(&[
        ("DATABASE_URL", database_url),
        ("PORT", "0"),
        ("IDENTITY__SERVER__WORKERS", "2"),
        ("IDENTITY__SERVER__SHUTDOWN_TIMEOUT_SECS", "1"),
        ("IDENTITY__DATABASE__POOL_SIZE", "4"),
        ("IDENTITY__DATABASE__MIN_IDLE", "0"),
        ("IDENTITY__DATABASE__ACQUIRE_TIMEOUT_MS", "1000"),
        ("IDENTITY__AUTH__REFRESH_MS", "100"),
    ])
}

/// A directory of this test run for files a test writes, `<name>-<pid>` under cargo's
/// scratch directory.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

/// The compiled-in defaults under these environment variables.
pub fn settings_from_env(env: &[(&str, &str)]) -> Settings {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Settings::load_from(Path::new("/nonexistent"), &env).expect("valid test settings")
}

/// A database URL the tests name, as the settings hold it.
pub fn database_url(url: &str) -> DatabaseUrl {
    DatabaseUrl::parse(url).expect("a supported database URL")
}

impl TestApp {
    pub fn spawn() -> Self {
        Self::spawn_with(|_| {})
    }

    /// Starts a server on a fresh database, after `tweak` has adjusted its settings.
    pub fn spawn_with(tweak: impl FnOnce(&mut Settings)) -> Self {
        Self::spawn_on(TestDb::new(), tweak)
    }

    /// Starts a server on `db`, after `tweak` has adjusted its settings.
    pub fn spawn_on(db: TestDb, tweak: impl FnOnce(&mut Settings)) -> Self {
        init_test_log();
        let mut settings = test_settings(db.url());
        tweak(&mut settings);
        let (sender, receiver) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                match Application::build(&settings) {
                    Ok(app) => {
                        let _ = sender.send(Ok((app.port(), app.handle())));
                        let _ = app.run_until_stopped().await;
                    }
                    Err(error) => {
                        let _ = sender.send(Err(error.to_string()));
                    }
                }
            });
        });
        let (port, handle) = match receiver.recv() {
            Ok(Ok(started)) => started,
            Ok(Err(error)) => panic!("the server did not start: {error}"),
            Err(_) => panic!("the server thread died while starting"),
        };
        Self {
            address: format!("http://127.0.0.1:{port}"),
            handle,
            thread: Some(thread),
            agent: agent(),
            db,
            key: None,
        }
    }

    /// Stores `secret` as an API key with `scopes` (`identify,read`) in the app's database,
    /// sends it with every request of these helpers from now on, and waits until the server
    /// requires keys.
    #[must_use]
    pub fn with_key(mut self, secret: &str, scopes: &str) -> Self {
        let settings = test_settings(self.db.url());
        let store =
            identity_persistence::open(&settings.store_settings()).expect("the store opens");
        store
            .keys
            .create(
                "test",
                &identity_api::auth::hash_key(secret),
                &identity_domain::Scopes::parse_list(scopes).expect("valid scopes"),
            )
            .expect("the key is stored");
        let started = std::time::Instant::now();
        while self.get("/contacts/1").status != 401 {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(5),
                "the server did not start requiring keys"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        self.key = Some(secret.to_owned());
        self
    }

    /// POSTs `body` as JSON to `/identify`.
    pub fn identify(&self, body: Value) -> Reply {
        self.post("/identify", Some("application/json"), &body.to_string())
    }

    /// POSTs `body` to `/identify` and returns its `contact` after checking the status is 200.
    #[track_caller]
    pub fn identify_ok(&self, body: Value) -> Value {
        let reply = self.identify(body.clone());
        assert_eq!(reply.status, 200, "{body} -> {reply:?}");
        reply.body["contact"].clone()
    }

    pub fn post(&self, path: &str, content_type: Option<&str>, body: &str) -> Reply {
        let mut request = self.agent.post(format!("{}{path}", self.address));
        if let Some(key) = &self.key {
            request = request.header("Authorization", format!("Bearer {key}"));
        }
        if let Some(content_type) = content_type {
            request = request.header("Content-Type", content_type);
        }
        into_reply(request.send(body))
    }

    pub fn request(&self, method: &str, path: &str) -> Reply {
        let mut request = http_request(method, &format!("{}{path}", self.address));
        if let Some(key) = &self.key {
            if let Ok(value) = format!("Bearer {key}").parse() {
                request.headers_mut().insert("authorization", value);
            }
        }
        into_reply(self.agent.run(request))
    }

    pub fn get(&self, path: &str) -> Reply {
        let mut request = self.agent.get(format!("{}{path}", self.address));
        if let Some(key) = &self.key {
            request = request.header("Authorization", format!("Bearer {key}"));
        }
        into_reply(request.call())
    }

    /// Every row of the table, by id.
    pub fn rows(&self) -> Vec<Row> {
        let mut conn = self.db.connect();
        diesel::sql_query(
            "SELECT id, email, phone_number, linked_id, link_precedence FROM contact ORDER BY id",
        )
        .load(&mut conn)
        .expect("the contact table can be read")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        actix_web::rt::System::new().block_on(self.handle.stop(false));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn http_request(method: &str, url: &str) -> ureq::http::Request<()> {
    ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .body(())
        .expect("a valid request")
}

pub fn into_reply(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
    let mut response = result.expect("the server answers");
    let status = response.status().as_u16();
    let headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response
        .body_mut()
        .read_to_string()
        .expect("a readable body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Reply {
        status,
        content_type,
        headers,
        body,
    }
}

/// The ids in a JSON array of numbers.
pub fn ids(value: &Value) -> Vec<i64> {
    value
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default()
}

/// The real `identity-api` binary, started as a child process on a free loopback port.
/// Killed when dropped, if still running.
pub struct ServerProcess {
    child: std::process::Child,
    pub base: String,
    pub log: std::path::PathBuf,
}

impl ServerProcess {
    pub const BINARY: &'static str = env!("CARGO_BIN_EXE_identity-api");

    /// Starts the binary on `database_url` with the given extra environment, and waits until
    /// it answers `/healthz`. Its output goes to a log file under the target directory.
    pub fn start(database_url: &str, env: &[(&str, &str)]) -> Self {
        Self::spawn(Some(database_url), None, env)
    }

    /// Starts the binary in `dir` with no database setting at all: the zero set-up default.
    pub fn start_embedded(dir: &std::path::Path, env: &[(&str, &str)]) -> Self {
        Self::spawn(None, Some(dir), env)
    }

    fn spawn(
        database_url: Option<&str>,
        dir: Option<&std::path::Path>,
        env: &[(&str, &str)],
    ) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("identity-api-{}-{port}.log", std::process::id()));
        let out = std::fs::File::create(&log).expect("a log file");
        let err = out.try_clone().expect("a log file");
        let mut command = std::process::Command::new(Self::BINARY);
        match database_url {
            Some(url) => command.env("DATABASE_URL", url),
            None => command.env_remove("DATABASE_URL"),
        };
        if let Some(dir) = dir {
            command.current_dir(dir);
        }
        command
            .env("PORT", port.to_string())
            .env("IDENTITY_CONFIG_DIR", "/nonexistent")
            .env_remove("RUST_LOG")
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().expect("the binary starts");
        let server = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        };
        let agent = agent();
        let started = std::time::Instant::now();
        while !agent
            .get(format!("{}/healthz", server.base))
            .call()
            .is_ok_and(|r| r.status() == 200)
        {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(30),
                "the server never came up; see {}",
                server.log.display()
            );
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        server
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process to exit, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: std::time::Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(&mut self) {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(sent, "kill -TERM failed");
        let exit = self.wait_exit(std::time::Duration::from_secs(20));
        assert!(exit.is_some_and(|e| e.success()), "{exit:?}");
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// What the server logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if self.is_running() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// An HTTP client that returns 4xx/5xx answers instead of errors, with a time limit.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(30)))
        .build()
        .into()
}

/// Runs an operator command of the real binary (`import`, `check`, `keys create`, …) on
/// `database_url`, with the compiled-in defaults and quiet logs.
pub fn run_cli(database_url: &str, args: &[&str]) -> std::process::Output {
    run_cli_with(Some(database_url), args, &[])
}

/// The command printed `text` on its standard output.
#[track_caller]
pub fn assert_prints(output: &std::process::Output, text: &str) {
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(printed.contains(text), "{printed}");
}

/// [`run_cli`] with `env` on top, and without any database setting when `database_url` is
/// `None` (the embedded default).
pub fn run_cli_with(
    database_url: Option<&str>,
    args: &[&str],
    env: &[(&str, &str)],
) -> std::process::Output {
    let mut command = std::process::Command::new(ServerProcess::BINARY);
    match database_url {
        Some(url) => command.env("DATABASE_URL", url),
        None => command.env_remove("DATABASE_URL"),
    };
    command
        .args(args)
        .env("IDENTITY_CONFIG_DIR", "/nonexistent")
        .env("IDENTITY__LOG__LEVEL", "warn")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("the binary runs")
}

/// The primary contact id of a customer in the API's shape.
pub fn id_of(customer: &Value) -> i64 {
    customer["primaryContactId"].as_i64().expect("a primary id")
}

/// `identity-api check` passes on the app's database.
#[track_caller]
pub fn assert_check_clean(app: &TestApp) {
    let output = run_cli(app.db.url(), &["check"]);
    assert!(
        output.status.success(),
        "check: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
