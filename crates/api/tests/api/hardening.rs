//! What an outside attack found, each closed and held closed: read-only commands that
//! wrote, credentials in logs, and the smaller holes (issue 21). Each test fails on the
//! code before its fix.

use std::collections::BTreeSet;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use identity_test_support::TestDb;

use crate::helpers::{run_cli, run_cli_with, ServerProcess};

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn scratch(name: &str) -> std::path::PathBuf {
    crate::helpers::scratch_dir("hardening").join(name)
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

const READ_ONLY: &[&[&str]] = &[
    &["check"],
    &["stats"],
    &["events", "list"],
    &["keys", "list"],
];

#[test]
fn read_only_commands_never_create_a_database() {
    let missing = format!("identity_test_{}_mistyped", std::process::id());
    for args in READ_ONLY {
        let output = run_cli(&url_of(&missing), args);
        assert!(!output.status.success(), "{args:?}: {}", text(&output));
        assert!(
            text(&output).contains("does not exist")
                && text(&output).contains("identity-api migrate"),
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
        assert!(
            text(&output).contains("identity-api migrate"),
            "{}",
            text(&output)
        );
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
        assert!(
            text(&output).contains("identity-api migrate"),
            "{}",
            text(&output)
        );
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
    let create_key = ["keys", "create", "--name", "ops", "--scope", "read"];
    let no_creation = [("IDENTITY__DATABASE__CREATE_IF_MISSING", "false")];
    let output = run_cli_with(Some(&url_of(&missing)), &create_key, &no_creation);
    assert!(!output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("does not exist"),
        "{}",
        text(&output)
    );
    assert!(!database_exists(&missing));

    let file = scratch("nowhere.db");
    let sqlite = format!("sqlite://{}", file.display());
    let output = run_cli_with(Some(&sqlite), &create_key, &no_creation);
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
    for logged in [
        std::fs::read_to_string(&log).unwrap_or_default(),
        server.log_text(),
    ] {
        assert!(logged.contains("event dispatcher started"), "{logged}");
        assert!(logged.contains("127.0.0.1:9/identity"), "{logged}");
        for secret in ["hookuser", "hunter2", "t0psecret"] {
            assert!(!logged.contains(secret), "{secret} logged: {logged}");
        }
    }
}

/// Sends one raw HTTP/1.1 request (headers as given, `Host` included) and returns the status
/// and the whole answer.
fn raw(base: &str, request: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let address = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a timeout");
    stream.write_all(request.as_bytes()).expect("sends");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, answer)
}

#[test]
fn a_keyless_service_serves_only_requests_addressed_to_a_loopback_name() {
    let db = TestDb::new();
    let server = ServerProcess::start(db.url(), &[]);
    let port = server
        .base
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_owned();
    let body = r#"{"phoneNumber":"5550100","reason":"rebinding"}"#;
    let post = |host: &str, origin: Option<&str>| {
        let origin = origin.map_or_else(String::new, |o| format!("Origin: {o}\r\n"));
        raw(
            &server.base,
            &format!(
                "POST /blocked-identifiers HTTP/1.1\r\nHost: {host}\r\n{origin}Content-Type: \
                 application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        )
    };
    let get = |host: &str| {
        raw(
            &server.base,
            &format!("GET /contacts/1 HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        )
    };
    // A page at a name the attacker resolves to 127.0.0.1, in the developer's browser.
    let attacker = format!("rebind.attacker.test:{port}");
    let (status, answer) = get(&attacker);
    assert_eq!(status, 403, "{answer}");
    assert!(answer.contains("/problems/not-loopback"), "{answer}");
    let (status, answer) = post(&attacker, Some(&format!("http://{attacker}")));
    assert_eq!(status, 403, "{answer}");
    // Addressed to localhost but sent by a page elsewhere.
    let (status, answer) = post(&format!("127.0.0.1:{port}"), Some("http://evil.test"));
    assert_eq!(status, 403, "{answer}");
    let (status, answer) = post(&format!("localhost:{port}"), Some("null"));
    assert_eq!(status, 403, "{answer}");
    let mut conn = db.connect();
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let rules = diesel::sql_query("SELECT count(*) AS n FROM unlink_rule")
        .get_result::<Count>(&mut conn)
        .expect("rules");
    assert_eq!(rules.n, 0, "a refused request wrote a rule");
    // The loopback names, with or without the console's own origin, are served.
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "[::1]".to_owned(),
    ] {
        assert_eq!(get(&host).0, 404, "{host}: an unknown contact, but served");
    }
    let (status, answer) = post(
        &format!("localhost:{port}"),
        Some(&format!("http://localhost:{port}")),
    );
    assert_eq!(status, 201, "{answer}");
}

#[test]
fn answers_carry_nosniff_and_no_store_and_the_docs_a_content_security_policy() {
    let db = TestDb::new();
    let server = ServerProcess::start(db.url(), &[]);
    let head = |path: &str| {
        raw(
            &server.base,
            &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
        )
        .1
        .to_ascii_lowercase()
    };
    for path in ["/contacts/1", "/healthz", "/openapi.json", "/nowhere"] {
        let answer = head(path);
        assert!(
            answer.contains("x-content-type-options: nosniff"),
            "{path}: {answer}"
        );
        assert!(
            answer.contains("cache-control: no-store"),
            "{path}: {answer}"
        );
    }
    let docs = head("/docs/");
    assert!(docs.contains("content-security-policy:"), "{docs}");
    assert!(docs.contains("frame-ancestors 'none'"), "{docs}");
}

#[test]
fn bearer_is_case_insensitive_and_other_charsets_are_refused() {
    let db = TestDb::new();
    let key = "idk_hardening_case_0123456789abcdef";
    let app = crate::helpers::TestApp::spawn_on(db, |_| {}).with_key(key, "identify,read");
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let answer = crate::helpers::agent()
            .get(format!("{}/contacts/1", app.address))
            .header("Authorization", format!("{scheme} {key}"))
            .call()
            .expect("answers");
        assert_eq!(answer.status(), 404, "{scheme}: the key was taken");
    }
    let identify_in = |charset: &str| {
        crate::helpers::into_reply(
            crate::helpers::agent()
                .post(format!("{}/identify", app.address))
                .header("Authorization", format!("Bearer {key}"))
                .header(
                    "Content-Type",
                    format!("application/json; charset={charset}"),
                )
                .send(r#"{"email":"utf16@hillvalley.edu"}"#),
        )
    };
    identify_in("utf-16").assert_problem(415, "unsupported-media-type");
    assert!(app.rows().is_empty(), "nothing was written");
    let reply = identify_in("UTF-8");
    assert_eq!(reply.status, 200, "{reply:?}");
}

#[test]
fn only_canonical_ids_reach_the_erasure_routes() {
    let app = crate::helpers::TestApp::spawn_with(|s| s.admin.erasure_enabled = true);
    let customer = app.identify_ok(serde_json::json!({"email": "keep.me@hillvalley.edu"}));
    let id = customer["primaryContactId"].as_i64().expect("an id");
    for path in [
        format!("/customers/+{id}"),
        format!("/customers/0{id}"),
        format!("/customers/%20{id}"),
        format!("/customers/{id}%20"),
        format!("/contacts/+{id}"),
        format!("/contacts/00{id}"),
    ] {
        let reply = app.request("DELETE", &path);
        assert_eq!(reply.status, 400, "{path}: {reply:?}");
    }
    assert_eq!(app.rows().len(), 1, "nothing was erased");
    assert_eq!(app.get(&format!("/contacts/{id}")).status, 200);
}

#[test]
fn the_history_stores_the_services_own_request_id_never_the_callers() {
    let app = crate::helpers::TestApp::spawn();
    // Sends a new customer with this X-Request-Id: the id answered, and the cause its
    // contact's history records.
    let identify_as = |given: &str, email: &str| {
        let answer = crate::helpers::into_reply(
            crate::helpers::agent()
                .post(format!("{}/identify", app.address))
                .header("Content-Type", "application/json")
                .header("X-Request-Id", given)
                .send(serde_json::json!({ "email": email }).to_string()),
        );
        let answered = answer.header("x-request-id").map(str::to_owned);
        let id = answer.body["contact"]["primaryContactId"]
            .as_i64()
            .expect("an id");
        let history = app.get(&format!("/contacts/{id}/history"));
        assert_eq!(history.status, 200, "{history:?}");
        let cause = history.body["events"][0]["cause"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        (answered, cause)
    };
    let (answered, cause) = identify_as("erase.me@victim.io", "someone@hillvalley.edu");
    assert_ne!(
        answered.as_deref(),
        Some("erase.me@victim.io"),
        "not a bounded token: not echoed"
    );
    assert!(cause.starts_with("request:"), "{cause}");
    assert!(!cause.contains("victim"), "{cause}");
    // A bounded token is echoed (for the caller's correlation) but still not stored.
    let (answered, cause) = identify_as("order-4711", "other@hillvalley.edu");
    assert_eq!(answered.as_deref(), Some("order-4711"));
    assert!(!cause.contains("order-4711"), "{cause}");
}

#[test]
fn an_unlink_split_tells_every_customer_whose_membership_changed() {
    let app = crate::helpers::TestApp::spawn().with_key(
        "idk_hardening_unlink_0123456789abcdef",
        "identify,read,admin",
    );
    let mom =
        app.identify_ok(serde_json::json!({"email": "mom@family.io", "phoneNumber": "5550001"}));
    let mom = mom["primaryContactId"].as_i64().expect("an id");
    let kid =
        app.identify_ok(serde_json::json!({"email": "kid@family.io", "phoneNumber": "5550100"}));
    let kid = kid["primaryContactId"].as_i64().expect("an id");
    // An order with mom's email and the family phone joins the two, creating no contact.
    let joined =
        app.identify_ok(serde_json::json!({"email": "mom@family.io", "phoneNumber": "5550100"}));
    assert_eq!(joined["secondaryContactIds"], serde_json::json!([kid]));
    let made = app.post(
        "/blocked-identifiers",
        Some("application/json"),
        r#"{"phoneNumber":"5550100","reason":"the family phone"}"#,
    );
    assert_eq!(made.status, 201, "{made:?}");
    let rule = made.body["rule"]["id"].as_i64().expect("a rule id");
    #[derive(QueryableByName, Debug)]
    struct Event {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        customer_id: i64,
    }
    let mut conn = app.db.connect();
    let updated: BTreeSet<i64> = diesel::sql_query(
        "SELECT customer_id FROM outbox WHERE kind = 'customer.updated' AND payload::jsonb ->> 'reason' = $1",
    )
    .bind::<diesel::sql_types::Text, _>(format!("unlink:{rule}"))
    .load::<Event>(&mut conn)
    .expect("the outbox")
    .into_iter()
    .map(|e| e.customer_id)
    .collect();
    assert_eq!(
        updated,
        BTreeSet::from([mom, kid]),
        "both customers changed"
    );
}

#[test]
fn sqlite_files_are_private_and_an_erasure_leaves_nothing_in_the_wal() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("private-sqlite");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a working directory");
    let server =
        ServerProcess::start_embedded(&dir, &[("IDENTITY__ADMIN__ERASURE_ENABLED", "true")]);
    let agent = crate::helpers::agent();
    let mut id = 0;
    for email in ["filler@hillvalley.edu", "erase.me.please@hillvalley.edu"] {
        let mut answer = agent
            .post(format!("{}/identify", server.base))
            .header("Content-Type", "application/json")
            .send(format!(r#"{{"email":"{email}"}}"#))
            .expect("answers");
        let body: serde_json::Value = answer.body_mut().read_json().expect("JSON");
        id = body["contact"]["primaryContactId"].as_i64().expect("an id");
    }
    let data = dir.join("data");
    let mode = |path: &std::path::Path| {
        std::fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or_default()
    };
    assert_eq!(mode(&data), 0o700, "the directory");
    for file in ["identity.db", "identity.db-wal", "identity.db-shm"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    let erased = agent
        .delete(format!("{}/contacts/{id}", server.base))
        .call()
        .expect("answers");
    assert_eq!(erased.status(), 200);
    // While the service still runs: neither the database nor its write-ahead log holds it.
    let needle = b"erase.me.please";
    for file in ["identity.db", "identity.db-wal"] {
        let bytes = std::fs::read(data.join(file)).unwrap_or_default();
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "the erased email is still in {file}"
        );
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_rejects_file_is_made_new_and_import_refuses_dates_before_1970() {
    use std::os::unix::fs::PermissionsExt;
    let db = TestDb::new();
    let file = scratch("hostile.jsonl");
    std::fs::write(
        &file,
        concat!(
            r#"{"email": "ancient@hillvalley.edu", "createdAt": "0001-01-01T00:00:00Z"}"#,
            "\n",
            r#"{"email": "modern@hillvalley.edu", "createdAt": "2020-01-01T00:00:00Z", "#,
            r#""\u001b[31mred\u001b[0m": 1}"#,
            "\n",
            "not json\n",
        ),
    )
    .expect("the file");
    // The rejects path is a symbolic link to a file of someone else's.
    let victim = scratch("victim.txt");
    std::fs::write(&victim, "precious\n").expect("the victim");
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).expect("mode");
    let rejects = scratch("hostile-rejects.jsonl");
    let _ = std::fs::remove_file(&rejects);
    std::os::unix::fs::symlink(&victim, &rejects).expect("a link");
    let output = run_cli(
        db.url(),
        &[
            "import",
            &file.to_string_lossy(),
            "--rejects",
            &rejects.to_string_lossy(),
        ],
    );
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(
        std::fs::read_to_string(&victim).expect("the victim"),
        "precious\n",
        "the link was followed"
    );
    let meta = std::fs::symlink_metadata(&rejects).expect("the rejects file");
    assert!(meta.is_file(), "a file of its own, not the link");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let rejected = std::fs::read_to_string(&rejects).expect("the rejects");
    assert!(rejected.contains("before 1970"), "{rejected}");
    assert!(
        text(&output).contains("1 contacts created"),
        "{}",
        text(&output)
    );
    // The unknown field is named, escaped: no raw escape character reaches the terminal.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown fields"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
    assert!(stderr.contains("\\u{1b}[31mred"), "{stderr:?}");
}

/// The relations of this database (tables, their TOAST and indexes) with a page that holds
/// `needle`, read through `pageinspect`.
fn relations_holding(conn: &mut PgConnection, needle: &str) -> Vec<String> {
    #[derive(QueryableByName)]
    struct Relation {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
    }
    diesel::sql_query("CREATE EXTENSION IF NOT EXISTS pageinspect")
        .execute(conn)
        .expect("pageinspect (PostgreSQL's contrib)");
    diesel::sql_query(
        "SELECT DISTINCT c.relname::text AS name FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         CROSS JOIN LATERAL generate_series(0, (pg_relation_size(c.oid) / 8192)::int - 1) AS b \
         WHERE n.nspname IN ('public', 'pg_toast') AND c.relkind IN ('r', 'i', 't') \
           AND position(convert_to($1, 'UTF8') IN get_raw_page(c.oid::regclass::text, b)) > 0 \
         ORDER BY 1",
    )
    .bind::<diesel::sql_types::Text, _>(needle)
    .load::<Relation>(conn)
    .expect("pages")
    .into_iter()
    .map(|r| r.name)
    .collect()
}

#[test]
fn after_an_erasure_and_the_readmes_vacuum_full_the_value_is_in_no_page() {
    let app = crate::helpers::TestApp::spawn_with(|s| s.admin.erasure_enabled = true);
    let secret = "erase.me.please@hillvalley.edu";
    // The secret email in a contact, in an index, and in the evidence of a joining request.
    app.identify_ok(serde_json::json!({"email": secret, "phoneNumber": "5550111"}));
    app.identify_ok(serde_json::json!({"email": "other@hillvalley.edu", "phoneNumber": "5550222"}));
    let joined = app.identify_ok(serde_json::json!({"email": secret, "phoneNumber": "5550222"}));
    let primary = joined["primaryContactId"].as_i64().expect("an id");
    let mut conn = app.db.connect();
    assert!(
        !relations_holding(&mut conn, secret).is_empty(),
        "the value is stored"
    );
    let erased = app.request("DELETE", &format!("/customers/{primary}"));
    assert_eq!(erased.status, 200, "{erased:?}");
    assert!(
        !relations_holding(&mut conn, secret).is_empty(),
        "an erasure alone leaves the old row versions on disk (as the README says)"
    );
    // The README's commands. VACUUM FULL keeps a row version that a transaction begun
    // before the erasure may still see (an autovacuum ANALYZE, a long report): once none
    // is left, it is gone. So, as the README says: repeat it until it is (bounded here).
    let started = Instant::now();
    let mut holding = Vec::new();
    while started.elapsed() < Duration::from_secs(60) {
        diesel::sql_query("VACUUM FULL contact, contact_event, outbox, link_evidence")
            .execute(&mut conn)
            .expect("vacuum full");
        holding = relations_holding(&mut conn, secret);
        if holding.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(holding, Vec::<String>::new(), "the value is in no page");
}

#[test]
fn a_contact_that_loses_a_value_and_changes_link_records_both() {
    let app = crate::helpers::TestApp::spawn().with_key(
        "idk_hardening_history_0123456789abcdef",
        "identify,read,admin",
    );
    app.identify_ok(serde_json::json!({"email": "doc@hillvalley.edu", "phoneNumber": "5550100"}));
    let marty = app.identify_ok(
        serde_json::json!({"email": "marty@hillvalley.edu", "phoneNumber": "5550100"}),
    );
    let marty = crate::helpers::ids(&marty["secondaryContactIds"])[0];
    let made = app.post(
        "/blocked-identifiers",
        Some("application/json"),
        r#"{"phoneNumber":"5550100","reason":"the lab's phone"}"#,
    );
    assert_eq!(made.status, 201, "{made:?}");
    let rule = made.body["rule"]["id"].as_i64().expect("a rule id");
    let history = app.get(&format!("/contacts/{marty}/history"));
    assert_eq!(history.status, 200, "{history:?}");
    let by_rule: Vec<(String, i64)> = history.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["cause"] == format!("unlink:{rule}"))
        .map(|e| {
            (
                e["type"].as_str().unwrap_or_default().to_owned(),
                e["contactId"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        by_rule,
        [
            ("contact.unlinked".to_owned(), marty),
            ("primary.promoted".to_owned(), marty)
        ],
        "{history:?}"
    );
}
