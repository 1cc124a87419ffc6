//! What an outside attack found, each closed and held closed: read-only commands that
//! wrote, credentials in logs, and the smaller holes (issue 21). Each test fails on the
//! code before its fix.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use identity_test_support::TestDb;

use crate::helpers::{run_cli, ServerProcess};

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("hardening-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir.join(name)
}

/// Whether the server holds a database of this name.
fn database_exists(name: &str) -> bool {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = PgConnection::establish(&TestDb::admin_url()).expect("the server");
    diesel::sql_query("SELECT count(*) AS n FROM pg_database WHERE datname = $1")
        .bind::<diesel::sql_types::Text, _>(name)
        .get_result::<Count>(&mut conn)
        .expect("pg_database")
        .n
        > 0
}

/// The admin URL with another database name.
fn url_of(database: &str) -> String {
    let admin = TestDb::admin_url();
    let (base, query) = admin.split_once('?').unwrap_or((admin.as_str(), ""));
    let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    format!("{server}/{database}{query}")
}

const READ_ONLY: &[&[&str]] = &[&["check"], &["stats"], &["events", "list"], &["keys", "list"]];

#[test]
fn read_only_commands_never_create_a_database() {
    let missing = format!("identity_test_{}_mistyped", std::process::id());
    for args in READ_ONLY {
        let output = run_cli(&url_of(&missing), args);
        assert!(!output.status.success(), "{args:?}: {}", text(&output));
        assert!(
            text(&output).contains("does not exist") && text(&output).contains("identity-api migrate"),
            "{args:?}: {}",
            text(&output)
        );
        assert!(!database_exists(&missing), "{args:?} created the database");
    }
    // Without any database setting, in a fresh directory: no ./data/identity.db appears.
    let dir = scratch("read-only-default");
    std::fs::create_dir_all(&dir).expect("a directory");
    for args in READ_ONLY {
        let output = Command::new(ServerProcess::BINARY)
            .args(*args)
            .current_dir(&dir)
            .env_remove("DATABASE_URL")
            .env("IDENTITY_CONFIG_DIR", "/nonexistent")
            .stdin(Stdio::null())
            .output()
            .expect("the binary runs");
        assert!(!output.status.success(), "{args:?}: {}", text(&output));
        assert!(text(&output).contains("identity-api migrate"), "{}", text(&output));
        assert!(!dir.join("data").exists(), "{args:?} created ./data");
    }
}

#[test]
fn read_only_commands_never_migrate() {
    // A database with no schema at all.
    let empty = TestDb::empty();
    let output = run_cli(empty.url(), &["check"]);
    assert!(!output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("behind") && text(&output).contains("identity-api migrate"),
        "{}",
        text(&output)
    );
    let mut conn = empty.connect();
    #[derive(QueryableByName)]
    struct Exists {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        present: bool,
    }
    let tables = diesel::sql_query(
        "SELECT count(*) > 0 AS present FROM pg_tables WHERE schemaname = 'public'",
    )
    .get_result::<Exists>(&mut conn)
    .expect("pg_tables");
    assert!(!tables.present, "check created tables");

    // A database missing its newest migration: every read-only command refuses, and the
    // migration stays unapplied.
    let behind = TestDb::new();
    let mut conn = behind.connect();
    diesel::sql_query(
        "DELETE FROM __diesel_schema_migrations WHERE version = \
         (SELECT max(version) FROM __diesel_schema_migrations)",
    )
    .execute(&mut conn)
    .expect("forget the newest migration");
    for args in READ_ONLY {
        let output = run_cli(behind.url(), args);
        assert!(!output.status.success(), "{args:?}: {}", text(&output));
        assert!(text(&output).contains("identity-api migrate"), "{}", text(&output));
    }
    let pending = identity_persistence::pending_migrations(
        &identity_persistence::DatabaseUrl::parse(behind.url()).expect("a URL"),
    )
    .expect("readable");
    assert_eq!(pending.len(), 1, "still unapplied: {pending:?}");
}

#[test]
fn writing_commands_create_a_database_only_when_allowed() {
    let missing = format!("identity_test_{}_typo", std::process::id());
    let output = Command::new(ServerProcess::BINARY)
        .args(["keys", "create", "--name", "ops", "--scope", "read"])
        .env("DATABASE_URL", url_of(&missing))
        .env("IDENTITY_CONFIG_DIR", "/nonexistent")
        .env("IDENTITY__DATABASE__CREATE_IF_MISSING", "false")
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs");
    assert!(!output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("does not exist"), "{}", text(&output));
    assert!(!database_exists(&missing));

    let file = scratch("nowhere.db");
    let output = Command::new(ServerProcess::BINARY)
        .args(["keys", "create", "--name", "ops", "--scope", "read"])
        .env("DATABASE_URL", format!("sqlite://{}", file.display()))
        .env("IDENTITY_CONFIG_DIR", "/nonexistent")
        .env("IDENTITY__DATABASE__CREATE_IF_MISSING", "false")
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs");
    assert!(!output.status.success(), "{}", text(&output));
    assert!(!file.exists(), "the SQLite file was created");
}

/// Runs `dispatch` for a moment with a webhook URL carrying credentials, and `serve` with the
/// same: neither logs them.
#[test]
fn webhook_credentials_never_reach_the_log() {
    let db = TestDb::new();
    let webhook = "http://hookuser:hunter2@127.0.0.1:9/identity?token=t0psecret&v=1";
    let env = [
        ("IDENTITY__EVENTS__WEBHOOK_URL", webhook),
        ("IDENTITY__EVENTS__SECRET", "signing-secret"),
        ("IDENTITY__LOG__LEVEL", "info"),
    ];
    let log = scratch("dispatch.log");
    let out = std::fs::File::create(&log).expect("a log file");
    let mut dispatch = Command::new(ServerProcess::BINARY)
        .arg("dispatch")
        .env("DATABASE_URL", db.url())
        .env("IDENTITY_CONFIG_DIR", "/nonexistent")
        .envs(env)
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("a log file"))
        .stderr(out)
        .spawn()
        .expect("dispatch starts");
    let started = Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("event dispatcher started")
        && started.elapsed() < Duration::from_secs(20)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = dispatch.kill();
    let _ = dispatch.wait();
    let server = ServerProcess::start(db.url(), &env);
    let started = Instant::now();
    while !server.log_text().contains("event dispatcher started")
        && started.elapsed() < Duration::from_secs(20)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    for logged in [std::fs::read_to_string(&log).unwrap_or_default(), server.log_text()] {
        assert!(logged.contains("event dispatcher started"), "{logged}");
        assert!(logged.contains("127.0.0.1:9/identity"), "{logged}");
        for secret in ["hookuser", "hunter2", "t0psecret"] {
            assert!(!logged.contains(secret), "{secret} logged: {logged}");
        }
    }
}
