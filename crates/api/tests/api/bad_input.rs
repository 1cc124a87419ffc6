//! Bad input: a clear JSON problem with the right 4xx status, and nothing written.

use serde_json::json;

use crate::helpers::TestApp;

#[test]
fn neither_identifier_given_is_a_400() {
    let app = TestApp::spawn();
    for body in [
        json!({}),
        json!({"email": null, "phoneNumber": null}),
        json!({"email": "", "phoneNumber": "   "}),
        json!({"name": "Doc Brown"}),
    ] {
        let detail = app
            .identify(body.clone())
            .assert_problem(400, "missing-identifier");
        assert!(
            detail.contains("email") && detail.contains("phoneNumber"),
            "{body}: {detail}"
        );
    }
    assert!(app.rows().is_empty());
}

#[test]
fn wrong_json_types_are_400s_naming_the_field() {
    let app = TestApp::spawn();
    for (body, field) in [
        (json!({"email": ["a@x.io"]}), "email"),
        (json!({"email": {"address": "a@x.io"}}), "email"),
        (json!({"email": true}), "email"),
        (json!({"email": 42}), "email"),
        (json!({"phoneNumber": [123456]}), "phoneNumber"),
        (json!({"phoneNumber": {"n": 1}}), "phoneNumber"),
        (json!({"phoneNumber": false}), "phoneNumber"),
        (json!({"phoneNumber": -5}), "phoneNumber"),
        (json!({"phoneNumber": 12.5}), "phoneNumber"),
        (
            json!({"email": "a@x.io", "phoneNumber": true}),
            "phoneNumber",
        ),
    ] {
        let detail = app
            .identify(body.clone())
            .assert_problem(400, "invalid-body");
        assert!(detail.contains(field), "{body}: {detail}");
    }
    for body in [json!([1, 2]), json!("a@x.io"), json!(123456), json!(null)] {
        let detail = app
            .identify(body.clone())
            .assert_problem(400, "invalid-body");
        assert!(detail.contains("JSON object"), "{body}: {detail}");
    }
    assert!(app.rows().is_empty());
}

#[test]
fn malformed_json_is_a_400() {
    let app = TestApp::spawn();
    for raw in ["{\"email\":", "not json", "{\"email\": \"a@x.io\",}", ""] {
        let reply = app.post("/identify", Some("application/json"), raw);
        reply.assert_problem(400, "invalid-body");
    }
    assert!(app.rows().is_empty());
}

#[test]
fn invalid_identifiers_are_400s() {
    let app = TestApp::spawn();
    let long_email = format!("{}@hillvalley.edu", "a".repeat(300));
    for (body, field) in [
        (json!({"email": long_email}), "email"),
        (json!({"email": "not-an-address"}), "email"),
        (json!({"email": "doc brown@hillvalley.edu"}), "email"),
        (json!({"phoneNumber": "1".repeat(40)}), "phoneNumber"),
        (json!({"phoneNumber": "call me"}), "phoneNumber"),
        (
            json!({"email": "a@x.io", "phoneNumber": "12ab"}),
            "phoneNumber",
        ),
    ] {
        let detail = app
            .identify(body.clone())
            .assert_problem(400, "invalid-identifier");
        assert!(detail.contains(field), "{body}: {detail}");
    }
    assert!(app.rows().is_empty());
}

#[test]
fn an_oversized_body_is_a_413() {
    let app = TestApp::spawn();
    let padding = "x".repeat(20_000);
    let body = json!({"email": "a@x.io", "note": padding});
    app.identify(body).assert_problem(413, "payload-too-large");
    assert!(app.rows().is_empty());
}

#[test]
fn a_missing_or_wrong_content_type_is_a_415() {
    let app = TestApp::spawn();
    let body = json!({"email": "a@x.io"}).to_string();
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let reply = app.post("/identify", content_type, &body);
        let detail = reply.assert_problem(415, "unsupported-media-type");
        assert!(
            detail.contains("application/json"),
            "{content_type:?}: {detail}"
        );
    }
    assert!(app.rows().is_empty());
}

#[test]
fn unknown_routes_and_wrong_methods_answer_json() {
    let app = TestApp::spawn();
    app.get("/nowhere").assert_problem(404, "not-found");
    app.post("/contacts", Some("application/json"), "{}")
        .assert_problem(404, "not-found");
    for method in ["GET", "PUT", "DELETE"] {
        let reply = app.request(method, "/identify");
        reply.assert_problem(405, "method-not-allowed");
        assert_eq!(reply.header("allow"), Some("POST"));
    }
    let reply = app.post("/healthz", Some("application/json"), "{}");
    reply.assert_problem(405, "method-not-allowed");
    assert_eq!(reply.header("allow"), Some("GET"));
    assert!(app.rows().is_empty());
}

#[test]
fn emails_with_invisible_or_control_characters_are_400s_that_do_not_echo_them() {
    let app = TestApp::spawn();
    for email in [
        "doc\u{200B}@hillvalley.edu",
        "doc@hill\u{202E}valley.edu",
        "\u{FEFF}doc@hillvalley.edu",
        "doc\u{0007}@hillvalley.edu",
    ] {
        let detail = app
            .identify(json!({"email": email}))
            .assert_problem(400, "invalid-identifier");
        assert!(
            detail.contains("email") && detail.contains("invisible"),
            "{email:?}: {detail}"
        );
        assert!(!detail.contains("doc"), "{email:?}: {detail}");
    }
    assert!(app.rows().is_empty());
}
