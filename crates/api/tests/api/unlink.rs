//! Unlink rules (`/blocked-identifiers`): a rule splits exactly the customers its value held
//! together, every replica obeys it from the next request, and deleting it lets the value
//! link again. `check` stays clean throughout.

use serde_json::{json, Value};

use crate::helpers::{
    agent, assert_check_clean, id_of, ids, into_reply, run_cli, Reply, Row, ServerProcess, TestApp,
};

const ADMIN_KEY: &str = "idk_unlink_test_admin";

fn admin_app() -> TestApp {
    TestApp::spawn().with_key(ADMIN_KEY, "identify,read,admin")
}

#[test]
fn a_rule_splits_exactly_the_customers_its_value_joined() {
    let app = admin_app();
    // A family's phone joined doc, marty and jennifer; lorraine and mcfly share a phone of
    // their own; george is alone.
    let doc =
        id_of(&app.identify_ok(json!({"email": "doc@hillvalley.edu", "phoneNumber": "555000"})));
    let marty = app.identify_ok(json!({"email": "marty@hillvalley.edu", "phoneNumber": "555000"}));
    let marty_id = ids(&marty["secondaryContactIds"])[0];
    let jennifer =
        app.identify_ok(json!({"email": "jennifer@hillvalley.edu", "phoneNumber": "555000"}));
    let jennifer_id = *ids(&jennifer["secondaryContactIds"]).last().expect("an id");
    let lorraine = id_of(
        &app.identify_ok(json!({"email": "lorraine@hillvalley.edu", "phoneNumber": "123456"})),
    );
    app.identify_ok(json!({"email": "mcfly@hillvalley.edu", "phoneNumber": "123456"}));
    let george =
        id_of(&app.identify_ok(json!({"email": "george@hillvalley.edu", "phoneNumber": "919191"})));
    let others = |rows: Vec<Row>| -> Vec<Row> {
        rows.into_iter()
            .filter(|r| ![doc, marty_id, jennifer_id].contains(&r.id))
            .collect()
    };
    let untouched = others(app.rows());
    let rows_before = app.rows();

    let preview = app.post(
        "/blocked-identifiers/preview",
        Some("application/json"),
        &json!({"phoneNumber": "555-000"}).to_string(),
    );
    assert_eq!(preview.status, 200, "{preview:?}");
    let previewed: Vec<i64> = preview.body["customers"]
        .as_array()
        .expect("customers")
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(previewed, vec![doc, marty_id, jennifer_id]);
    assert_eq!(app.rows(), rows_before, "a preview writes nothing");

    let made = app.post(
        "/blocked-identifiers",
        Some("application/json"),
        &json!({"phoneNumber": "555-000", "reason": "the family's landline"}).to_string(),
    );
    assert_eq!(made.status, 201, "{made:?}");
    let rule = &made.body["rule"];
    let rule_id = rule["id"].as_i64().expect("a rule id");
    assert_eq!(rule["phoneNumber"], "555000", "stored normalized");
    assert_eq!(rule["reason"], "the family's landline");
    assert_eq!(rule["createdBy"], "test", "the key's name");
    assert_eq!(
        made.header("location"),
        Some(format!("/blocked-identifiers/{rule_id}").as_str())
    );
    assert_eq!(made.body["customers"], preview.body["customers"]);
    for customer in made.body["customers"].as_array().expect("customers") {
        assert_eq!(customer["phoneNumbers"], json!([]), "{customer}");
        assert_eq!(customer["secondaryContactIds"], json!([]), "{customer}");
    }

    // Split: three customers, none holding the value; everyone else exactly as before.
    for id in [doc, marty_id, jennifer_id] {
        let customer = app.get(&format!("/contacts/{id}"));
        assert_eq!(customer.status, 200, "{customer:?}");
        assert_eq!(id_of(&customer.body["contact"]), id);
    }
    assert!(app
        .rows()
        .iter()
        .all(|r| r.phone_number.as_deref() != Some("555000")));
    assert_eq!(others(app.rows()), untouched);
    assert_eq!(
        id_of(&app.get(&format!("/contacts/{lorraine}")).body["contact"]),
        lorraine
    );
    assert_eq!(
        id_of(&app.get(&format!("/contacts/{george}")).body["contact"]),
        george
    );
    let history = app.get(&format!("/contacts/{marty_id}/history"));
    assert!(
        history.body["events"]
            .as_array()
            .expect("events")
            .iter()
            .any(|e| e["type"] == "primary.promoted" && e["cause"] == format!("unlink:{rule_id}")),
        "{history:?}"
    );
    assert_check_clean(&app);

    app.post(
        "/blocked-identifiers",
        Some("application/json"),
        &json!({"phoneNumber": "555000", "reason": "again"}).to_string(),
    )
    .assert_problem(409, "conflict");
    app.post(
        "/blocked-identifiers/preview",
        Some("application/json"),
        &json!({"phoneNumber": "555000"}).to_string(),
    )
    .assert_problem(409, "conflict");
    let listed = app.get("/blocked-identifiers");
    assert_eq!(listed.status, 200, "{listed:?}");
    assert_eq!(listed.body["rules"], json!([rule]));
}

#[test]
fn a_rule_needs_one_valid_value_a_reason_and_the_admin_scope() {
    let app = admin_app();
    let post = |body: Value| {
        app.post(
            "/blocked-identifiers",
            Some("application/json"),
            &body.to_string(),
        )
    };
    post(json!({"phoneNumber": "555000"})).assert_problem(400, "invalid-body");
    post(json!({"phoneNumber": "555000", "reason": "  "})).assert_problem(400, "invalid-body");
    post(json!({"email": "a@x.io", "phoneNumber": "555000", "reason": "both"}))
        .assert_problem(400, "invalid-body");
    post(json!({"email": "not an email", "reason": "bad"}))
        .assert_problem(400, "invalid-identifier");
    post(json!({"reason": "nothing"})).assert_problem(400, "missing-identifier");
    // Counted before the placeholder phone is set aside: never a rule for the email alone.
    post(json!({"email": "a@x.io", "phoneNumber": "0000000000", "reason": "both"}))
        .assert_problem(400, "invalid-body");
    post(json!({"phoneNumber": "555000", "reason": "a\u{0}b"})).assert_problem(400, "invalid-body");
    post(json!({"phoneNumber": "555000", "reason": "x".repeat(501)}))
        .assert_problem(400, "invalid-body");
    assert_eq!(
        app.get("/blocked-identifiers").body["rules"],
        json!([]),
        "nothing was made"
    );
    app.request("DELETE", "/blocked-identifiers/999")
        .assert_problem(404, "not-found");

    let reader = TestApp::spawn().with_key("idk_unlink_test_reader", "identify,read");
    reader
        .post(
            "/blocked-identifiers",
            Some("application/json"),
            &json!({"phoneNumber": "555000", "reason": "no scope"}).to_string(),
        )
        .assert_problem(403, "forbidden");
    reader
        .get("/blocked-identifiers")
        .assert_problem(403, "forbidden");
}

/// `/identify` on a second replica (another process on the same database) that was serving
/// before the rule was made.
fn identify_on(replica: &ServerProcess, body: Value) -> Reply {
    into_reply(
        agent()
            .post(format!("{}/identify", replica.base))
            .header("Authorization", format!("Bearer {ADMIN_KEY}"))
            .header("Content-Type", "application/json")
            .send(body.to_string()),
    )
}

#[test]
fn every_replica_obeys_a_rule_at_once_and_deleting_it_lets_the_value_link_again() {
    let app = admin_app();
    let replica = ServerProcess::start(app.db.url(), &[("IDENTITY__LOG__LEVEL", "warn")]);
    let warm = identify_on(&replica, json!({"email": "doc@hillvalley.edu"}));
    assert_eq!(warm.status, 200, "{warm:?}");

    let made = app.post(
        "/blocked-identifiers",
        Some("application/json"),
        &json!({"phoneNumber": "555000", "reason": "the store's own number"}).to_string(),
    );
    assert_eq!(made.status, 201, "{made:?}");
    assert_eq!(made.body["customers"], json!([]), "no contact held it yet");
    let rule_id = made.body["rule"]["id"].as_i64().expect("a rule id");

    // Marty, then Jennifer, each bringing the store's number, on the other replica.
    let marty_then_jennifer = || {
        ["marty@hillvalley.edu", "jennifer@hillvalley.edu"]
            .map(|email| identify_on(&replica, json!({"email": email, "phoneNumber": "555000"})))
    };
    let [marty, jennifer] = marty_then_jennifer();
    assert_eq!(marty.status, 200, "{marty:?}");
    assert_eq!(marty.body["contact"]["phoneNumbers"], json!([]));
    assert_eq!(
        marty.body["ignored"],
        json!([{"field": "phoneNumber", "value": "555000", "reason": "blocked"}])
    );
    assert_ne!(
        jennifer.body["contact"]["primaryContactId"], marty.body["contact"]["primaryContactId"],
        "the value joins no one"
    );
    identify_on(&replica, json!({"phoneNumber": "555000"}))
        .assert_problem(422, "blocked-identifier");
    assert!(app
        .rows()
        .iter()
        .all(|r| r.phone_number.as_deref() != Some("555000")));
    assert_check_clean(&app);

    let deleted = app.request("DELETE", &format!("/blocked-identifiers/{rule_id}"));
    assert_eq!(deleted.status, 204, "{deleted:?}");
    app.request("DELETE", &format!("/blocked-identifiers/{rule_id}"))
        .assert_problem(404, "not-found");
    let [marty, jennifer] = marty_then_jennifer();
    assert_eq!(marty.body["contact"]["phoneNumbers"], json!(["555000"]));
    assert!(marty.body.get("ignored").is_none(), "{marty:?}");
    assert_eq!(
        jennifer.body["contact"]["primaryContactId"], marty.body["contact"]["primaryContactId"],
        "the value links again"
    );
    assert_check_clean(&app);
}

#[test]
fn the_import_treats_an_unlinked_value_as_a_placeholder() {
    let app = admin_app();
    let made = app.post(
        "/blocked-identifiers",
        Some("application/json"),
        &json!({"email": "orders@hillvalley.edu", "reason": "the store's own address"}).to_string(),
    );
    assert_eq!(made.status, 201, "{made:?}");
    let dir = crate::helpers::scratch_dir("unlink");
    let file = dir.join("orders.jsonl");
    std::fs::write(
        &file,
        "{\"email\": \"orders@hillvalley.edu\", \"phoneNumber\": \"111222\"}\n\
         {\"email\": \"orders@hillvalley.edu\", \"phoneNumber\": \"333444\"}\n",
    )
    .expect("written");
    let output = run_cli(app.db.url(), &["import", &file.to_string_lossy()]);
    assert!(output.status.success(), "{output:?}");
    let rows = app.rows();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows
        .iter()
        .all(|r| r.email.is_none() && r.linked_id.is_none()));
}
