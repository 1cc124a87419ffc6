//! Manual links (`/links`): support joins two customers by hand, previews it, lists and
//! deletes links; the why-chain and the graph name them; bad bodies and other scopes are
//! refused without writing; the merge guard applies. `check` stays clean throughout.

use serde_json::{json, Value};

use crate::helpers::{agent, assert_check_clean, id_of, into_reply, run_cli, TestApp};

const ADMIN_KEY: &str = "idk_links_test_admin_0123456789abcdef";
const READ_KEY: &str = "idk_links_test_read_0123456789abcdef";

/// A service with an admin key, and doc's id: its first customer (phone 5550100).
fn with_doc() -> (TestApp, i64) {
    let app = TestApp::spawn().with_key(ADMIN_KEY, "identify,read,admin");
    let doc = app.identify_ok(json!({"email": "doc@hillvalley.edu", "phoneNumber": "5550100"}));
    (app, id_of(&doc))
}

fn post(app: &TestApp, path: &str, body: &Value) -> crate::helpers::Reply {
    app.post(path, Some("application/json"), &body.to_string())
}

#[test]
fn support_links_two_customers_previews_lists_and_deletes_the_link() {
    let app = TestApp::spawn_with(|s| s.merge_guard.max_emails = 3)
        .with_key(ADMIN_KEY, "identify,read,admin");
    let home = app.identify_ok(json!({"email": "jen@home.io", "phoneNumber": "5550001"}));
    let home_id = id_of(&home);
    let work = app.identify_ok(json!({"email": "jennifer@work.io"}));
    let work_id = id_of(&work);
    let rows_before = app.rows();

    let preview = post(
        &app,
        "/links/preview",
        &json!({"contactIds": [work_id, home_id]}),
    );
    assert_eq!(preview.status, 200, "{preview:?}");
    assert_eq!(
        id_of(&preview.body["customer"]),
        home_id,
        "the older primary leads"
    );
    assert_eq!(app.rows(), rows_before, "a preview writes nothing");

    let made = post(
        &app,
        "/links",
        &json!({"contactIds": [work_id, home_id], "reason": "she wrote in from her work address"}),
    );
    assert_eq!(made.status, 201, "{made:?}");
    let link = &made.body["link"];
    let link_id = link["id"].as_i64().expect("a link id");
    assert_eq!(link["contactIds"], json!([home_id, work_id]));
    assert_eq!(link["createdBy"], "test");
    assert_eq!(link["reason"], "she wrote in from her work address");
    assert!(link["createdAt"].is_string());
    assert_eq!(
        made.header("location"),
        Some(format!("/links/{link_id}").as_str())
    );
    assert_eq!(made.body["customer"], preview.body["customer"]);
    assert_eq!(
        made.body["customer"]["emails"],
        json!(["jen@home.io", "jennifer@work.io"])
    );
    let listed = app.get("/links");
    assert_eq!(listed.body["links"], json!([link.clone()]));
    assert_check_clean(&app);

    // The why-chain names it, the graph draws it, the history records it.
    let why = app.get(&format!("/contacts/{work_id}/why/{home_id}"));
    assert_eq!(why.status, 200, "{why:?}");
    assert_eq!(why.body["chain"][1]["kind"], "manual");
    assert_eq!(
        why.body["chain"][1]["text"],
        "joined by hand by test: she wrote in from her work address"
    );
    let graph = app.get(&format!("/contacts/{home_id}/graph"));
    assert_eq!(graph.body["links"][0]["id"], link_id);
    let history = app.get(&format!("/contacts/{work_id}/history"));
    assert!(history.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .any(|e| e["cause"] == format!("link:{link_id}") && e["type"] == "primary.demoted"));

    // Over the merge guard: a third customer with two more emails would make 4 > 3.
    let big = app.identify_ok(json!({"email": "a@big.io", "phoneNumber": "5550009"}));
    app.identify_ok(json!({"email": "b@big.io", "phoneNumber": "5550009"}));
    let refused = post(
        &app,
        "/links",
        &json!({"contactIds": [id_of(&big), home_id], "reason": "one household"}),
    );
    let detail = refused.assert_problem(409, "conflict");
    assert!(detail.contains("merge_guard.max_emails"), "{detail}");

    // Deleted: the customers are as before the link, and the answer says so.
    let deleted = app.request("DELETE", &format!("/links/{link_id}"));
    assert_eq!(deleted.status, 200, "{deleted:?}");
    assert_eq!(deleted.body["stillOneCustomer"], false);
    assert_eq!(deleted.body["customers"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        app.get(&format!("/contacts/{work_id}")).body["contact"],
        work
    );
    assert_eq!(
        app.get(&format!("/contacts/{home_id}")).body["contact"],
        home
    );
    assert_eq!(app.get("/links").body["links"], json!([]));
    app.request("DELETE", &format!("/links/{link_id}"))
        .assert_problem(404, "not-found");
    assert_check_clean(&app);
}

/// What joined the customer while the link stood goes, when the link is deleted, with the
/// side whose values it shares, as if the link had never been made.
#[test]
fn deleting_a_link_re_clusters_what_came_since_by_its_values() {
    let (app, doc) = with_doc();
    let marty =
        id_of(&app.identify_ok(json!({"email": "marty@hillvalley.edu", "phoneNumber": "5550199"})));
    let made = post(
        &app,
        "/links",
        &json!({"contactIds": [doc, marty], "reason": "same lab"}),
    );
    assert_eq!(made.status, 201, "{made:?}");
    // An order with a new email and marty's phone joins the linked customer (led by doc).
    let joined =
        app.identify_ok(json!({"email": "mcfly@hillvalley.edu", "phoneNumber": "5550199"}));
    assert_eq!(id_of(&joined), doc);
    let link_id = made.body["link"]["id"].as_i64().expect("an id");
    let deleted = app.request("DELETE", &format!("/links/{link_id}"));
    assert_eq!(deleted.status, 200, "{deleted:?}");
    assert_eq!(deleted.body["stillOneCustomer"], false);
    let martys = app.get(&format!("/contacts/{marty}")).body["contact"].clone();
    assert_eq!(id_of(&martys), marty);
    assert_eq!(
        martys["emails"],
        json!(["marty@hillvalley.edu", "mcfly@hillvalley.edu"])
    );
    assert_eq!(
        app.get(&format!("/contacts/{doc}")).body["contact"]["secondaryContactIds"],
        json!([])
    );
    assert_check_clean(&app);
}

#[test]
fn bad_link_bodies_and_other_scopes_are_refused_and_write_nothing() {
    let (app, doc) = with_doc();
    let marty = app.identify_ok(json!({"email": "marty@hillvalley.edu", "phoneNumber": "5550100"}));
    let marty = crate::helpers::ids(&marty["secondaryContactIds"])[0];
    let biff = id_of(&app.identify_ok(json!({"email": "biff@hillvalley.edu"})));
    let rows = app.rows();
    for (body, status) in [
        (json!({"contactIds": [doc, doc], "reason": "twice"}), 400),
        (json!({"contactIds": [doc], "reason": "one"}), 400),
        (
            json!({"contactIds": [doc, biff, marty], "reason": "three"}),
            400,
        ),
        (
            json!({"contactIds": [doc, "biff"], "reason": "a string"}),
            400,
        ),
        (json!({"contactIds": [doc, -4], "reason": "negative"}), 400),
        (json!({"contactIds": [doc, biff]}), 400),
        (json!({"contactIds": [doc, biff], "reason": "  "}), 400),
        (
            json!({"contactIds": [doc, biff], "reason": "two\nlines"}),
            400,
        ),
        (json!({"contactIds": [doc, biff], "reason": 7}), 400),
        (
            json!({"contactIds": [doc, 999_999], "reason": "unknown"}),
            404,
        ),
        (
            json!({"contactIds": [doc, marty], "reason": "one customer already"}),
            409,
        ),
        (json!([doc, biff]), 400),
    ] {
        let reply = post(&app, "/links", &body);
        assert_eq!(reply.status, status, "{body}: {reply:?}");
        assert_eq!(
            reply.content_type, "application/problem+json",
            "{body}: {reply:?}"
        );
    }
    assert_eq!(app.rows(), rows, "nothing was written");
    assert_eq!(app.get("/links").body["links"], json!([]));

    // A key without the admin scope may not link, preview, list or delete.
    let settings = crate::helpers::test_settings(app.db.url());
    let store = identity_persistence::open(&settings.store_settings()).expect("the store");
    store
        .keys
        .create(
            "reader",
            &identity_api::auth::hash_key(READ_KEY),
            &identity_domain::Scopes::parse_list("identify,read").expect("scopes"),
        )
        .expect("a key");
    std::thread::sleep(std::time::Duration::from_millis(2_500));
    let as_reader = |method: &str, path: &str, body: Option<&Value>| {
        let request = agent();
        let url = format!("{}{path}", app.address);
        let auth = format!("Bearer {READ_KEY}");
        into_reply(match (method, body) {
            ("POST", Some(body)) => request
                .post(&url)
                .header("Authorization", &auth)
                .header("Content-Type", "application/json")
                .send(body.to_string()),
            ("DELETE", _) => request.delete(&url).header("Authorization", &auth).call(),
            _ => request.get(&url).header("Authorization", &auth).call(),
        })
    };
    let body = json!({"contactIds": [doc, biff], "reason": "not mine to say"});
    for (method, path, body) in [
        ("POST", "/links", Some(&body)),
        ("POST", "/links/preview", Some(&body)),
        ("GET", "/links", None),
        ("DELETE", "/links/1", None),
    ] {
        as_reader(method, path, body).assert_problem(403, "forbidden");
    }
    assert_eq!(app.rows(), rows);
}

/// The same routes on the embedded default (SQLite), over HTTP: link, preview, list, a bad
/// body, delete.
#[test]
fn links_work_the_same_on_sqlite() {
    let db = identity_test_support::TestSqlite::new();
    let server = crate::helpers::ServerProcess::start(&db.url(), &[]);
    let call = |method: &str, path: &str, body: Option<Value>| {
        let url = format!("{}{path}", server.base);
        into_reply(match body {
            Some(body) => agent()
                .post(&url)
                .header("Content-Type", "application/json")
                .send(body.to_string()),
            None if method == "DELETE" => agent().delete(&url).call(),
            None => agent().get(&url).call(),
        })
    };
    let identify = |body: Value| call("POST", "/identify", Some(body)).body["contact"].clone();
    let home = identify(json!({"email": "jen@home.io", "phoneNumber": "5550001"}));
    let work = identify(json!({"email": "jennifer@work.io"}));
    let ids = json!([id_of(&work), id_of(&home)]);
    let preview = call("POST", "/links/preview", Some(json!({"contactIds": ids})));
    assert_eq!(preview.status, 200, "{preview:?}");
    call("POST", "/links", Some(json!({"contactIds": ids}))).assert_problem(400, "invalid-body");
    let made = call(
        "POST",
        "/links",
        Some(json!({"contactIds": ids, "reason": "work address"})),
    );
    assert_eq!(made.status, 201, "{made:?}");
    assert_eq!(made.body["customer"], preview.body["customer"]);
    assert_eq!(id_of(&made.body["customer"]), id_of(&home));
    let link_id = made.body["link"]["id"].as_i64().expect("an id");
    assert_eq!(call("GET", "/links", None).body["links"][0]["id"], link_id);
    let deleted = call("DELETE", &format!("/links/{link_id}"), None);
    assert_eq!(deleted.status, 200, "{deleted:?}");
    assert_eq!(
        call("GET", &format!("/contacts/{}", id_of(&work)), None).body["contact"],
        work
    );
    let check = run_cli(&db.url(), &["check"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}
