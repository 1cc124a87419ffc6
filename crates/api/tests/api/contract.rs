//! What integrators and operators read: the OpenAPI document and docs page, the read API,
//! metrics, request ids, and the promise that personal data stays out of logs.

use serde_json::{json, Value};

use crate::helpers::{agent, ids, ServerProcess, TestApp};

#[test]
fn the_openapi_document_is_valid_and_lists_every_route() {
    let app = TestApp::spawn();
    let reply = app.get("/openapi.json");
    assert_eq!(reply.status, 200);
    let text = reply.body.to_string();
    let spec = oas3::from_json(&text).expect("a valid OpenAPI 3.1 document");
    assert!(spec.openapi.starts_with("3.1"), "{}", spec.openapi);

    let paths: Vec<String> = spec.paths.unwrap_or_default().keys().cloned().collect();
    for route in [
        "/identify",
        "/contacts/{id}",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(
            paths.iter().any(|p| p == route),
            "{route} missing from {paths:?}"
        );
    }
    // Every route the server answers is documented (the docs page and the document
    // itself aside), and every documented one answers something other than 404.
    for path in &paths {
        let probe = path.replace("{id}", "1");
        let reply = if path == "/identify" {
            app.post(&probe, Some("application/json"), "{}")
        } else {
            app.get(&probe)
        };
        assert_ne!(
            reply.body["detail"], "there is no such resource",
            "{path} is documented but not served"
        );
    }
    let identify = &reply.body["paths"]["/identify"]["post"];
    for status in ["200", "400", "413", "415", "422", "500", "503"] {
        assert!(
            identify["responses"].get(status).is_some(),
            "/identify documents {status}"
        );
    }
    assert_eq!(
        identify["responses"]["400"]["content"]["application/problem+json"]["schema"]["$ref"],
        "#/components/schemas/Problem"
    );
    assert!(reply.body["components"]["schemas"]["IdentifyRequest"]["anyOf"].is_array());
}

#[test]
fn the_docs_page_ships_inside_the_binary() {
    let app = TestApp::spawn();
    let page = app.get("/docs/");
    assert_eq!(page.status, 200);
    assert!(page
        .body
        .as_str()
        .is_some_and(|html| html.contains("swagger-ui")));
    let script = app.get("/docs/swagger-ui-bundle.js");
    assert_eq!(script.status, 200);
    let redirect = agent()
        .get(format!("{}/docs", app.address))
        .call()
        .expect("answers");
    assert_eq!(redirect.status(), 200, "the redirect to /docs/ is followed");
}

#[test]
fn contacts_answers_the_customer_of_any_of_its_contacts_without_writing() {
    let app = TestApp::spawn();
    app.identify_ok(json!({"email": "lorraine@hillvalley.edu", "phoneNumber": "123456"}));
    let customer =
        app.identify_ok(json!({"email": "mcfly@hillvalley.edu", "phoneNumber": "123456"}));
    let rows = app.rows();
    for id in rows.iter().map(|r| r.id) {
        let reply = app.get(&format!("/contacts/{id}"));
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.body["contact"], customer, "contact {id}");
    }
    assert_eq!(app.rows(), rows, "reads write nothing");

    app.get("/contacts/424242").assert_problem(404, "not-found");
    for bad in ["abc", "0", "-3", "1.5", "99999999999999999999"] {
        app.get(&format!("/contacts/{bad}"))
            .assert_problem(400, "invalid-path");
    }
    let reply = app.request("PUT", "/contacts/1");
    reply.assert_problem(405, "method-not-allowed");
    app.request("DELETE", "/contacts/1")
        .assert_problem(403, "forbidden");
    // A deleted contact is unknown.
    let mut conn = app.db.connect();
    diesel::RunQueryDsl::execute(
        diesel::sql_query(format!(
            "UPDATE contact SET deleted_at = now() WHERE id = {}",
            ids(&customer["secondaryContactIds"])[0]
        )),
        &mut conn,
    )
    .expect("soft delete");
    app.get(&format!(
        "/contacts/{}",
        ids(&customer["secondaryContactIds"])[0]
    ))
    .assert_problem(404, "not-found");
}

#[test]
fn metrics_count_requests_contacts_and_merges() {
    let app = TestApp::spawn();
    app.identify_ok(json!({"email": "george@hillvalley.edu", "phoneNumber": "919191"}));
    app.identify_ok(json!({"email": "biffsucks@hillvalley.edu", "phoneNumber": "717171"}));
    app.identify_ok(json!({"email": "george@hillvalley.edu", "phoneNumber": "717171"}));
    app.identify_ok(json!({"email": "george@hillvalley.edu", "phoneNumber": "616161"}));
    app.get("/contacts/nope");
    let reply = app.get("/metrics");
    assert_eq!(reply.status, 200);
    assert!(reply.content_type.starts_with("text/plain"));
    let text = reply.body.as_str().unwrap_or_default().to_owned();
    let value = |prefix: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
    };
    // The recorder is shared by every server in this test process: counts only grow.
    assert!(value(r#"http_requests_total{method="POST",route="/identify",status="200"}"#) >= 4.0);
    assert!(
        value(r#"http_requests_total{method="GET",route="/contacts/{id}",status="400"}"#) >= 1.0
    );
    assert!(value(r#"identity_contacts_created_total{precedence="primary"}"#) >= 2.0);
    assert!(value(r#"identity_contacts_created_total{precedence="secondary"}"#) >= 1.0);
    assert!(value("identity_merges_total") >= 1.0);
    assert!(value("identity_db_pool_max_connections") >= 1.0);
    assert!(text.contains("identity_db_pool_acquire_seconds_bucket"));
    assert!(text.contains(r#"http_request_duration_seconds_bucket{method="POST",route="/identify",status="200",le="0.005"}"#));
    for secret in ["george@hillvalley.edu", "919191"] {
        assert!(!text.contains(secret), "metrics never carry identifiers");
    }
}

#[test]
fn every_answer_carries_a_request_id_honouring_the_callers() {
    let app = TestApp::spawn();
    let generated = app.get("/healthz");
    let id = generated.header("x-request-id").unwrap_or_default();
    assert_eq!(id.len(), 32, "{id}");
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    let other = app.get("/healthz");
    assert_ne!(other.header("x-request-id"), Some(id));

    // The X-Request-Id answered to a request that sent `given`.
    let answered = |path: &str, given: &str| {
        let response = agent()
            .get(format!("{}{path}", app.address))
            .header("X-Request-Id", given)
            .call()
            .expect("answers");
        let id = response.headers().get("x-request-id");
        id.map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    assert_eq!(
        answered("/nowhere", "order-4711").as_deref(),
        Some("order-4711")
    );
    assert_ne!(answered("/healthz", "a b").as_deref(), Some("a b"));
}

#[test]
fn personal_data_never_reaches_the_logs_even_at_debug_level() {
    let db = identity_test_support::TestStore::sqlite();
    let server = ServerProcess::start(
        &db.url(),
        &[
            ("IDENTITY__LOG__LEVEL", "debug"),
            ("IDENTITY__LOG__FORMAT", "json"),
            // A production block list (the defaults no longer block whole domains), so
            // that a refused value's way through the log is checked too.
            (
                "IDENTITY__IDENTIFIERS__BLOCKED_EMAIL_PATTERNS",
                "*@example.org",
            ),
        ],
    );
    let send = |body: Value| {
        agent()
            .post(format!("{}/identify", server.base))
            .header("Content-Type", "application/json")
            .header("X-Request-Id", "pii-check-1")
            .send(body.to_string())
            .map(|r| r.status().as_u16())
            .expect("answers")
    };
    assert_eq!(send(json!({"email": "Secret.Person@Example.ORG"})), 422);
    assert_eq!(
        send(json!({"email": "secret.person@hidden.io", "phoneNumber": "+44 20 7946 0018"})),
        200
    );
    assert_eq!(
        send(json!({"email": "secret.person@hidden.io", "phoneNumber": "+44 20 7946 0999"})),
        200
    );
    assert_eq!(send(json!({"email": "not an email"})), 400);
    let log = server.log_text();
    assert!(
        log.contains(r#""client_request_id":"pii-check-1""#),
        "request ids are logged:\n{log}"
    );
    for secret in ["secret", "Secret", "hidden", "7946", "0018", "not an email"] {
        assert!(
            !log.contains(secret),
            "{secret:?} leaked into the log:\n{log}"
        );
    }
}

#[test]
fn metric_labels_hold_no_method_a_client_invented() {
    use std::io::{Read, Write};

    let app = TestApp::spawn();
    let address = app.address.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).expect("a connection");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("a timeout");
    stream
        .write_all(
            b"FOOBAR /identify HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .expect("sent");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");

    let text = app
        .get("/metrics")
        .body
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!text.contains("FOOBAR"), "{text}");
    assert!(
        text.contains(r#"http_requests_total{method="other",route="/identify",status="405"}"#),
        "{text}"
    );
}
