//! Access control over HTTP: every route × (no key, unknown key, revoked key, wrong scope,
//! right scope); refusals reveal nothing and write nothing; repeated failures are slowed
//! down; a service on a non-loopback address refuses to start without a key.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use identity_api::auth::generate_key;
use identity_domain::{KeyRepository, Scopes};
use identity_test_support::TestDb;
use serde_json::{json, Value};

use crate::helpers::{agent, into_reply, run_cli, test_settings, Reply, ServerProcess, TestApp};

/// Stores a new key with `scopes` (e.g. `identify,read`) in the app's database; returns its
/// secret.
fn add_key(keys: &Arc<dyn KeyRepository>, name: &str, scopes: &str) -> String {
    let new = generate_key().expect("randomness");
    keys.create(
        name,
        &new.hash,
        &Scopes::parse_list(scopes).expect("valid scopes"),
    )
    .expect("the key is stored");
    new.secret
}

fn key_store(db: &TestDb) -> Arc<dyn KeyRepository> {
    let settings = test_settings(db.url());
    identity_persistence::open(&settings.store_settings())
        .expect("the store opens")
        .keys
}

fn call(app: &TestApp, method: &str, path: &str, key: Option<&str>, body: Option<Value>) -> Reply {
    let mut request = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{}{path}", app.address));
    if let Some(key) = key {
        request = request.header("Authorization", format!("Bearer {key}"));
    }
    into_reply(match body {
        Some(body) => agent().run(
            request
                .header("Content-Type", "application/json")
                .body(body.to_string())
                .expect("a request"),
        ),
        None => agent().run(request.body(()).expect("a request")),
    })
}

/// Waits until the replica's key refresh has seen a change.
fn eventually(mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "the change was not seen within 5 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn every_route_needs_a_key_with_its_scope() {
    let db = TestDb::new();
    let keys = key_store(&db);
    let everything = add_key(&keys, "everything", "identify,read,admin");
    let identify_only = add_key(&keys, "storefront", "identify");
    let read_only = add_key(&keys, "support", "read");
    let revoked = add_key(&keys, "old", "identify,read,admin");
    let app = TestApp::spawn_on(db, |settings| {
        settings.admin.erasure_enabled = true;
        settings.auth.refresh = Duration::from_millis(100);
    });
    keys.revoke("old")
        .expect("revoked")
        .expect("the key exists");

    // Data to read and erase, written with a good key.
    let [george, biff] = [
        json!({"email": "george@hillvalley.edu", "phoneNumber": "919191"}),
        json!({"email": "biffsucks@hillvalley.edu", "phoneNumber": "717171"}),
    ]
    .map(|body| call(&app, "POST", "/identify", Some(&everything), Some(body)));
    assert_eq!(george.status, 200, "{george:?}");
    let george_id = george.body["contact"]["primaryContactId"]
        .as_i64()
        .expect("an id");
    let biff_id = biff.body["contact"]["primaryContactId"]
        .as_i64()
        .expect("an id");
    eventually(|| call(&app, "GET", "/contacts/1", Some(&revoked), None).status == 401);

    let new_customer = json!({"email": "marty@hillvalley.edu", "phoneNumber": "555010"});
    let routes: Vec<(&str, String, Option<Value>, &str)> = vec![
        (
            "POST",
            "/identify".to_owned(),
            Some(new_customer.clone()),
            "identify",
        ),
        ("GET", format!("/contacts/{george_id}"), None, "read"),
        (
            "GET",
            format!("/contacts/{george_id}/history"),
            None,
            "read",
        ),
        (
            "GET",
            format!("/contacts/{george_id}/why/{george_id}"),
            None,
            "read",
        ),
        ("DELETE", format!("/contacts/{george_id}"), None, "admin"),
        ("DELETE", format!("/customers/{biff_id}"), None, "admin"),
    ];
    let wrong_scope = |scope: &str| match scope {
        "identify" => &read_only,
        _ => &identify_only,
    };
    let rows = app.rows();
    for (method, path, body, scope) in &routes {
        for (case, key, status) in [
            ("no key", None, 401),
            (
                "unknown key",
                Some("idk_0000000000000000000000000000000000000000000000000000000000000000"),
                401,
            ),
            ("revoked key", Some(revoked.as_str()), 401),
            ("wrong scope", Some(wrong_scope(scope).as_str()), 403),
        ] {
            let reply = call(&app, method, path, key, body.clone());
            assert_eq!(reply.status, status, "{method} {path}, {case}: {reply:?}");
            assert!(
                reply.content_type.starts_with("application/problem+json"),
                "{reply:?}"
            );
            let text = reply.body.to_string();
            for personal in ["george", "biffsucks", "919191", "717171", "marty", "555010"] {
                assert!(
                    !text.contains(personal),
                    "{method} {path}, {case} reveals {personal}: {text}"
                );
            }
            if status == 401 {
                assert_eq!(
                    reply.header("www-authenticate"),
                    Some("Bearer"),
                    "{reply:?}"
                );
            } else {
                assert!(text.contains(scope), "a 403 names the scope needed: {text}");
            }
        }
        assert_eq!(
            app.rows(),
            rows,
            "{method} {path}: refused requests write nothing"
        );
    }

    // The right scope works on every route (the erasures last).
    for (method, path, body, scope) in &routes {
        let key = match *scope {
            "identify" => &identify_only,
            "read" => &read_only,
            _ => &everything,
        };
        let reply = call(&app, method, path, Some(key), body.clone());
        assert_eq!(
            reply.status, 200,
            "{method} {path} with the {scope} scope: {reply:?}"
        );
    }

    // Probes, docs, the OpenAPI document and metrics need no key.
    for path in ["/healthz", "/readyz", "/openapi.json", "/metrics", "/docs/"] {
        assert_eq!(call(&app, "GET", path, None, None).status, 200, "{path}");
    }
    let document = call(&app, "GET", "/openapi.json", None, None).body;
    assert_eq!(
        document["components"]["securitySchemes"]["api_key"]["scheme"],
        "bearer"
    );
    assert_eq!(
        document["paths"]["/identify"]["post"]["security"],
        json!([{"api_key": ["identify"]}])
    );
    assert_eq!(
        document["paths"]["/contacts/{id}"]["delete"]["security"],
        json!([{"api_key": ["admin"]}])
    );

    // Keys are used without a database round trip per request, and their use is recorded.
    eventually(|| {
        keys.list()
            .expect("keys")
            .iter()
            .find(|k| k.name == "storefront")
            .is_some_and(|k| k.last_used_at.is_some())
    });
}

#[test]
fn a_client_that_keeps_guessing_is_answered_429_and_a_good_key_still_works() {
    let db = TestDb::new();
    let keys = key_store(&db);
    let good = add_key(&keys, "storefront", "identify");
    let app = TestApp::spawn_on(db, |settings| {
        settings.auth.max_failures_per_minute = std::num::NonZeroU32::new(3).expect("positive");
    });
    let body = json!({"email": "doc@hillvalley.edu"});
    let mut statuses = Vec::new();
    for guess in 0..5 {
        let key = format!("idk_{guess:064}");
        statuses.push(call(&app, "POST", "/identify", Some(&key), Some(body.clone())).status);
    }
    assert_eq!(statuses[..3], [401, 401, 401], "{statuses:?}");
    assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");
    let refused = call(&app, "POST", "/identify", None, Some(body.clone()));
    assert_eq!(refused.status, 429, "{refused:?}");
    let retry_after: u64 = refused
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert!(app.rows().is_empty(), "nothing was written");
    // A valid key from the same address (a proxy, a NAT) is not locked out.
    let served = call(&app, "POST", "/identify", Some(&good), Some(body.clone()));
    assert_eq!(served.status, 200, "{served:?}");
    let metrics = call(&app, "GET", "/metrics", None, None).body.to_string();
    assert!(
        metrics.contains("identity_auth_failures_total"),
        "{metrics}"
    );
    assert!(!metrics.contains("idk_"), "no key material in metrics");
}

#[test]
fn a_service_on_a_public_address_refuses_to_start_without_a_key() {
    let db = TestDb::new();
    let output = Command::new(ServerProcess::BINARY)
        .env("DATABASE_URL", db.url())
        .env("IDENTITY_CONFIG_DIR", "/nonexistent")
        .env("IDENTITY__SERVER__HOST", "0.0.0.0")
        .env("PORT", "0")
        .env("IDENTITY__LOG__LEVEL", "error")
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = stderr.lines().last().unwrap_or_default();
    assert!(line.contains("no API key exists"), "{stderr}");
    assert!(line.contains("identity-api keys create"), "{stderr}");

    // With a key, the same address serves (and asks for it).
    let keys = key_store(&db);
    let key = add_key(&keys, "storefront", "identify");
    let mut server = ServerProcess::start(db.url(), &[("IDENTITY__SERVER__HOST", "0.0.0.0")]);
    let url = format!("{}/identify", server.base);
    let refused = agent()
        .post(&url)
        .header("Content-Type", "application/json")
        .send(r#"{"email":"doc@hillvalley.edu"}"#)
        .expect("answers");
    assert_eq!(refused.status().as_u16(), 401);
    let accepted = agent()
        .post(&url)
        .header("Content-Type", "application/json")
        .header("Authorization", format!("Bearer {key}"))
        .send(r#"{"email":"doc@hillvalley.edu"}"#)
        .expect("answers");
    assert_eq!(accepted.status().as_u16(), 200);
    server.stop();
}

#[test]
fn keys_are_managed_from_the_command_line_and_never_shown_twice() {
    let db = TestDb::new();
    let run = |args: &[&str]| {
        let output = run_cli(db.url(), args);
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (ok, created, _) = run(&[
        "keys",
        "create",
        "--name",
        "storefront",
        "--scope",
        "identify",
        "--scope",
        "read",
    ]);
    assert!(ok, "{created}");
    let secret = created.lines().last().expect("the key").to_owned();
    assert!(
        secret.starts_with("idk_") && secret.len() == 68,
        "{created}"
    );

    let (ok, listed, _) = run(&["keys", "list"]);
    assert!(ok);
    assert!(
        listed.contains("storefront") && listed.contains("identify,read"),
        "{listed}"
    );
    assert!(listed.contains("active"), "{listed}");
    assert!(
        !listed.contains(&secret[4..20]),
        "list shows no secret: {listed}"
    );

    let (ok, _, stderr) = run(&["keys", "create", "--name", "storefront", "--scope", "read"]);
    assert!(!ok && stderr.contains("exists already"), "{stderr}");
    let (ok, _, stderr) = run(&["keys", "create", "--name", "x", "--scope", "root"]);
    assert!(!ok && stderr.contains("root"), "{stderr}");

    // The stored hash is not the secret.
    let keys = key_store(&db);
    assert!(keys
        .active()
        .expect("keys")
        .iter()
        .all(|k| !k.hash.contains(&secret[4..])));

    let (ok, revoked, _) = run(&["keys", "revoke", "storefront"]);
    assert!(ok, "{revoked}");
    let (_, listed, _) = run(&["keys", "list"]);
    assert!(listed.contains("revoked"), "{listed}");
    assert!(keys.active().expect("keys").is_empty());
    let (ok, _, stderr) = run(&["keys", "revoke", "nobody"]);
    assert!(!ok && stderr.contains("no key"), "{stderr}");
}
