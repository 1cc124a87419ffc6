//! What operators rely on: probes, a database outage, configuration errors, graceful
//! shutdown. The last two run the real `identity-api` binary.

use std::process::{Command, Stdio};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use identity_test_support::TestDb;
use serde_json::json;

use crate::helpers::{agent, assert_prints, ServerProcess, TestApp};

#[test]
fn probes_answer_json() {
    let app = TestApp::spawn();
    let health = app.get("/healthz");
    assert_eq!(
        (health.status, health.body.clone()),
        (200, json!({"status": "ok"}))
    );
    let ready = app.get("/readyz");
    assert_eq!(
        (ready.status, ready.body.clone()),
        (200, json!({"status": "ready"}))
    );
}

#[test]
fn an_unreachable_database_is_a_503_and_nothing_is_written() {
    let app = TestApp::spawn_with(|settings| {
        // Nothing listens on port 1.
        settings.database.url =
            crate::helpers::database_url("postgres://postgres@127.0.0.1:1/identity");
        settings.database.run_migrations = false;
        settings.database.create_if_missing = false;
    });
    let reply = app.identify(json!({"email": "doc@hillvalley.edu"}));
    reply.assert_problem(503, "unavailable");
    assert_eq!(reply.header("retry-after"), Some("1"));
    app.get("/readyz").assert_problem(503, "unavailable");
    app.get("/healthz");
    assert_eq!(
        app.get("/healthz").status,
        200,
        "the process itself is fine"
    );
    assert!(app.rows().is_empty());
}

#[test]
fn the_service_recovers_by_itself_when_the_database_comes_back() {
    let db = TestDb::new();
    let admin_url = TestDb::admin_url();
    let rename = |from: &str, to: &str| {
        let mut admin = PgConnection::establish(&admin_url).expect("admin connection");
        admin
            .batch_execute(&format!("ALTER DATABASE {from} RENAME TO {to}"))
            .expect("rename");
    };
    let name = db.name().to_owned();
    let away = format!("{name}_away");
    rename(&name, &away);

    let app = TestApp::spawn_on(db, |settings| {
        settings.database.run_migrations = false;
        settings.database.create_if_missing = false;
    });
    app.identify(json!({"email": "doc@hillvalley.edu"}))
        .assert_problem(503, "unavailable");
    app.get("/readyz").assert_problem(503, "unavailable");

    rename(&away, &name);
    assert_eq!(app.get("/readyz").status, 200);
    let contact = app.identify_ok(json!({"email": "doc@hillvalley.edu"}));
    assert_eq!(contact["emails"], json!(["doc@hillvalley.edu"]));
    assert_eq!(app.rows().len(), 1, "the failed request wrote nothing");
}

#[test]
fn a_bad_setting_stops_start_up_with_one_line_naming_it() {
    for (key, value, named) in [
        ("IDENTITY__SERVER__PORT", "eighty", "server.port"),
        ("IDENTITY__DATABASE__POOL_SIZE", "0", "database.pool_size"),
        ("DATABASE_URL", "mysql://root@localhost/x", "database.url"),
        ("IDENTITY__SERVER__COLOUR", "blue", "colour"),
    ] {
        let output = Command::new(ServerProcess::BINARY)
            .env(key, value)
            .env("IDENTITY_CONFIG_DIR", "/nonexistent")
            .stdin(Stdio::null())
            .output()
            .expect("the binary runs");
        assert_eq!(output.status.code(), Some(2), "{key}={value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(named), "{key}={value}: {stderr}");
    }
}

#[test]
fn sigterm_lets_an_in_flight_request_finish() {
    let db = TestDb::new();
    let mut server = ServerProcess::start(
        db.url(),
        &[
            ("IDENTITY__DATABASE__LOCK_TIMEOUT_MS", "30000"),
            ("IDENTITY__DATABASE__STATEMENT_TIMEOUT_MS", "60000"),
            ("IDENTITY__SERVER__SHUTDOWN_TIMEOUT_SECS", "20"),
        ],
    );

    // Hold the table so that the next write has to wait.
    let mut blocker = db.connect();
    blocker
        .batch_execute("BEGIN; LOCK TABLE contact IN EXCLUSIVE MODE")
        .expect("lock the table");
    let in_flight = std::thread::spawn({
        let url = format!("{}/identify", server.base);
        move || {
            agent()
                .post(url)
                .header("Content-Type", "application/json")
                .send(json!({"email": "doc@hillvalley.edu"}).to_string())
                .map(|r| r.status().as_u16())
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    let killed = Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        server.is_running(),
        "the server must wait for the in-flight request"
    );

    blocker.batch_execute("COMMIT").expect("release the table");
    let status = in_flight.join().expect("the client thread");
    assert_eq!(status.ok(), Some(200), "the in-flight request completed");
    let exit = server
        .wait_exit(Duration::from_secs(20))
        .expect("the server stopped");
    assert!(exit.success(), "{exit:?}");
    let count: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
        "(SELECT count(*) FROM contact)",
    ))
    .get_result(&mut db.connect())
    .expect("count");
    assert_eq!(count, 1);
}

#[test]
fn replicas_starting_together_apply_each_migration_once() {
    let db = TestDb::empty();
    let url = db.url().to_owned();
    let starting: Vec<_> = (0..3)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || ServerProcess::start(&url, &[]))
        })
        .collect();
    let servers: Vec<ServerProcess> = starting
        .into_iter()
        .map(|t| t.join().expect("a replica started"))
        .collect();
    let applied: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
        "(SELECT count(*) FROM __diesel_schema_migrations)",
    ))
    .get_result(&mut db.connect())
    .expect("count");
    let on_disk = std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../migrations/postgres"
    ))
    .expect("the migrations directory")
    .count();
    assert_eq!(applied, i64::try_from(on_disk).expect("small"));
    drop(servers);
}

#[test]
fn the_normalize_command_rewrites_rows_stored_before_normalization() {
    let db = identity_test_support::TestStore::sqlite();
    let mut conn = db.connect();
    conn.execute(
        "INSERT INTO contact (id, email, phone_number, link_precedence) VALUES
           (1, 'Doc@HillValley.edu ', '415-555-0100', 'primary'),
           (2, 'doc@hillvalley.edu', '+1 (415) 555-0199', 'primary')",
    )
    .expect("old rows");
    let output = crate::helpers::run_cli(&db.url(), &["normalize"]);
    assert!(output.status.success(), "{output:?}");
    assert_prints(&output, "normalized 2 contacts, merged 1 customers");
    assert_eq!(
        conn.number(
            "SELECT count(*) AS n FROM contact WHERE id = 2 AND linked_id = 1
                AND phone_number = '+14155550199'"
        ),
        1
    );
    assert!(identity_test_support::check_invariants(&mut conn).is_empty());
}

#[test]
fn normalize_merges_contacts_left_with_the_same_values_and_check_stays_clean() {
    let db = identity_test_support::TestStore::postgres();
    let mut conn = db.connect();
    // Stored while 0000000000 and 1111111111 were not blocked: once they are, both rows hold
    // just a@x.io.
    conn.execute(
        "INSERT INTO contact (id, email, phone_number, linked_id, link_precedence, created_at)
         OVERRIDING SYSTEM VALUE VALUES
           (1, 'a@x.io', '0000000000', NULL, 'primary', '2024-01-01T00:00:00Z'),
           (2, 'a@x.io', '1111111111', 1, 'secondary', '2024-01-02T00:00:00Z')",
    )
    .expect("old rows");
    let binary = |command: &str| crate::helpers::run_cli(&db.url(), &[command]);
    let normalized = binary("normalize");
    assert!(normalized.status.success(), "{normalized:?}");
    assert_prints(
        &normalized,
        "1 holding the same email and phone as an older one",
    );
    let check = binary("check");
    assert!(check.status.success(), "{check:?}");
    assert_eq!(
        conn.number("SELECT count(*) AS n FROM contact WHERE deleted_at IS NULL"),
        1
    );
    assert_eq!(
        conn.number("SELECT count(*) AS n FROM contact WHERE id = 2 AND email IS NULL AND phone_number IS NULL"),
        1,
        "the duplicate keeps no copy of the values"
    );
}
