//! The linking rules, end to end: HTTP in, PostgreSQL underneath.

use serde_json::{json, Value};

use crate::helpers::{ids, TestApp};

#[test]
fn lorraine_and_mcfly_share_a_phone_and_repeat_visits_write_nothing() {
    let app = TestApp::spawn();
    let first =
        app.identify_ok(json!({"email": "lorraine@hillvalley.edu", "phoneNumber": "123456"}));
    let lorraine = first["primaryContactId"].as_i64().expect("an id");
    let second = app.identify_ok(json!({"email": "mcfly@hillvalley.edu", "phoneNumber": "123456"}));

    let rows = app.rows();
    assert_eq!(rows.len(), 2);
    let mcfly = rows[1].id;
    let expected = json!({
        "primaryContactId": lorraine,
        "emails": ["lorraine@hillvalley.edu", "mcfly@hillvalley.edu"],
        "phoneNumbers": ["123456"],
        "secondaryContactIds": [mcfly],
    });
    assert_eq!(second, expected);
    // Rule 2: the secondary holds the request's email and phone, linked to the primary.
    assert_eq!(rows[1].email.as_deref(), Some("mcfly@hillvalley.edu"));
    assert_eq!(rows[1].phone_number.as_deref(), Some("123456"));
    assert_eq!(rows[1].linked_id, Some(lorraine));
    assert_eq!(rows[1].link_precedence, "secondary");

    // Rule 3: nothing new, no write, same answer.
    for body in [
        json!({"phoneNumber": "123456"}),
        json!({"email": "lorraine@hillvalley.edu"}),
        json!({"email": "mcfly@hillvalley.edu", "phoneNumber": null}),
        json!({"email": "mcfly@hillvalley.edu", "phoneNumber": "123456"}),
        json!({"email": "lorraine@hillvalley.edu", "phoneNumber": 123456}),
    ] {
        assert_eq!(app.identify_ok(body.clone()), expected, "{body}");
    }
    assert_eq!(app.rows(), rows, "repeat visits wrote nothing");
}

#[test]
fn george_and_biffsucks_are_merged_into_the_older_customer() {
    let app = TestApp::spawn();
    let george =
        app.identify_ok(json!({"email": "george@hillvalley.edu", "phoneNumber": "919191"}));
    let biff =
        app.identify_ok(json!({"email": "biffsucks@hillvalley.edu", "phoneNumber": "717171"}));
    let george_id = george["primaryContactId"].as_i64().expect("an id");
    let biff_id = biff["primaryContactId"].as_i64().expect("an id");
    assert_ne!(george_id, biff_id, "two customers before the merge");

    let merged =
        app.identify_ok(json!({"email": "george@hillvalley.edu", "phoneNumber": "717171"}));
    assert_eq!(
        merged,
        json!({
            "primaryContactId": george_id,
            "emails": ["george@hillvalley.edu", "biffsucks@hillvalley.edu"],
            "phoneNumbers": ["919191", "717171"],
            "secondaryContactIds": [biff_id],
        })
    );
    let rows = app.rows();
    assert_eq!(rows.len(), 2, "a merge creates no row: {rows:?}");
    assert_eq!(rows[0].link_precedence, "primary");
    assert_eq!(rows[0].linked_id, None);
    assert_eq!(rows[1].link_precedence, "secondary");
    assert_eq!(rows[1].linked_id, Some(george_id));

    // Both sides now answer the merged customer.
    assert_eq!(app.identify_ok(json!({"phoneNumber": "717171"})), merged);
    assert_eq!(
        app.identify_ok(json!({"email": "biffsucks@hillvalley.edu"})),
        merged
    );
}

#[test]
fn a_demoted_primary_takes_all_its_secondaries_straight_to_the_survivor() {
    let app = TestApp::spawn();
    let older = app.identify_ok(json!({"email": "doc@hillvalley.edu", "phoneNumber": "101"}));
    let older_id = older["primaryContactId"].as_i64().expect("an id");
    app.identify_ok(json!({"email": "marty@hillvalley.edu", "phoneNumber": "202"}));
    app.identify_ok(json!({"email": "marty@hillvalley.edu", "phoneNumber": "303"}));
    let newer = app.identify_ok(json!({"email": "jennifer@hillvalley.edu", "phoneNumber": "202"}));
    assert_eq!(ids(&newer["secondaryContactIds"]).len(), 2);

    let merged = app.identify_ok(json!({"email": "doc@hillvalley.edu", "phoneNumber": "303"}));

    let rows = app.rows();
    assert_eq!(rows.len(), 4);
    assert_eq!(merged["primaryContactId"], older_id);
    assert_eq!(
        ids(&merged["secondaryContactIds"]),
        rows[1..].iter().map(|r| r.id).collect::<Vec<_>>()
    );
    for row in &rows[1..] {
        assert_eq!(row.linked_id, Some(older_id), "no chains: {row:?}");
        assert_eq!(row.link_precedence, "secondary");
    }
    assert_eq!(
        merged["emails"],
        json!([
            "doc@hillvalley.edu",
            "marty@hillvalley.edu",
            "jennifer@hillvalley.edu"
        ])
    );
    assert_eq!(merged["phoneNumbers"], json!(["101", "202", "303"]));
}

#[test]
fn a_phone_number_as_a_json_number_is_the_same_phone_as_the_string() {
    let app = TestApp::spawn();
    let first = app.identify_ok(json!({"email": "a@x.io", "phoneNumber": 123456}));
    assert_eq!(first["phoneNumbers"], json!(["123456"]));
    let again = app.identify_ok(json!({"phoneNumber": "123456"}));
    assert_eq!(again, first);
    // JSON does not tell 123456 from 123456.0; neither does the service.
    let reply = app.post(
        "/identify",
        Some("application/json"),
        r#"{"phoneNumber": 123456.0}"#,
    );
    assert_eq!(reply.body["contact"], first);
    assert_eq!(app.rows().len(), 1);
}

#[test]
fn blank_and_null_mean_not_given_and_null_never_links() {
    let app = TestApp::spawn();
    let doc = app.identify_ok(json!({"email": "doc@hillvalley.edu", "phoneNumber": ""}));
    let marty = app.identify_ok(json!({"email": "marty@hillvalley.edu", "phoneNumber": null}));
    let biff = app.identify_ok(json!({"email": "   ", "phoneNumber": "505"}));
    assert_ne!(doc["primaryContactId"], marty["primaryContactId"]);
    assert_eq!(doc["phoneNumbers"], json!([]));
    assert_eq!(biff["emails"], json!([]));

    let rows = app.rows();
    assert_eq!(rows.len(), 3);
    assert!(
        rows.iter().all(|r| r.link_precedence == "primary"),
        "{rows:?}"
    );
    assert_eq!(rows[0].phone_number, None);
    assert_eq!(rows[2].email, None);
}

#[test]
fn a_new_phone_for_a_known_email_creates_a_secondary() {
    let app = TestApp::spawn();
    let first = app.identify_ok(json!({"email": "doc@hillvalley.edu"}));
    let second = app.identify_ok(json!({"email": "doc@hillvalley.edu", "phoneNumber": "89"}));
    assert_eq!(second["primaryContactId"], first["primaryContactId"]);
    assert_eq!(second["phoneNumbers"], json!(["89"]));
    assert_eq!(ids(&second["secondaryContactIds"]).len(), 1);
    assert_eq!(app.rows().len(), 2);
}

#[test]
fn values_are_stored_without_surrounding_white_space() {
    let app = TestApp::spawn();
    let first = app.identify_ok(json!({"email": " doc@hillvalley.edu ", "phoneNumber": " 42 "}));
    assert_eq!(first["emails"], json!(["doc@hillvalley.edu"]));
    assert_eq!(first["phoneNumbers"], json!(["42"]));
    assert_eq!(
        app.identify_ok(json!({"email": "doc@hillvalley.edu"})),
        first
    );
    assert_eq!(app.rows().len(), 1);
}

#[test]
fn spellings_of_one_email_or_phone_are_one_customer() {
    let app = TestApp::spawn();
    let first = app
        .identify_ok(json!({"email": " Doc@HillValley.EDU ", "phoneNumber": "+1 (415) 555-0100"}));
    assert_eq!(first["emails"], json!(["doc@hillvalley.edu"]));
    assert_eq!(first["phoneNumbers"], json!(["+14155550100"]));
    for body in [
        json!({"email": "doc@hillvalley.edu"}),
        json!({"email": "DOC@hillvalley.edu", "phoneNumber": "415-555-0100"}),
        json!({"phoneNumber": "14155550100"}),
        json!({"phoneNumber": 4155550100_u64}),
    ] {
        assert_eq!(app.identify_ok(body.clone()), first, "{body}");
    }
    assert_eq!(app.rows().len(), 1);
}

#[test]
fn short_phone_numbers_link_like_any_other() {
    let app = TestApp::spawn();
    for phone in ["222", "1", "777"] {
        let first = app
            .identify_ok(json!({"email": format!("first-{phone}@shop.io"), "phoneNumber": phone}));
        let second = app
            .identify_ok(json!({"email": format!("second-{phone}@shop.io"), "phoneNumber": phone}));
        assert_eq!(
            second["primaryContactId"], first["primaryContactId"],
            "two orders with phone {phone} are one customer"
        );
        assert_eq!(second["phoneNumbers"], json!([phone]), "{phone}");
        assert_eq!(ids(&second["secondaryContactIds"]).len(), 1, "{phone}");
        let alone = app.identify(json!({"phoneNumber": phone}));
        assert_eq!(alone.status, 200, "{phone}: {alone:?}");
        assert!(alone.body.get("ignored").is_none(), "{phone}: {alone:?}");
    }
    assert_eq!(app.rows().len(), 6);
}

/// Each body is refused 422 as a placeholder, and nothing is stored.
#[track_caller]
fn assert_all_blocked(app: &TestApp, bodies: &[Value]) {
    for body in bodies {
        let detail = app
            .identify(body.clone())
            .assert_problem(422, "blocked-identifier");
        assert!(detail.contains("placeholder"), "{body}: {detail}");
    }
    assert!(app.rows().is_empty(), "a blocked value is never stored");
}

#[test]
fn the_default_placeholders_stay_blocked() {
    let app = TestApp::spawn();
    assert_all_blocked(
        &app,
        &[
            json!({"phoneNumber": "0000000000"}),
            json!({"phoneNumber": "111111"}),
            json!({"phoneNumber": "1234567890"}),
            json!({"phoneNumber": 0}),
            json!({"email": "test@test.com"}),
        ],
    );
}

#[test]
fn a_blocked_value_alone_is_a_422_and_next_to_a_good_one_is_ignored() {
    let app = TestApp::spawn();
    assert_all_blocked(
        &app,
        &[
            json!({"phoneNumber": "0000000000"}),
            json!({"email": "test@test.com"}),
            json!({"email": "TEST@test.com", "phoneNumber": "123-456-7890"}),
            json!({"email": "noreply@shop.io"}),
        ],
    );

    let reply = app.identify(json!({"email": "doc@hillvalley.edu", "phoneNumber": "000-000-0000"}));
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["contact"]["phoneNumbers"], json!([]));
    assert_eq!(
        reply.body["ignored"],
        json!([{"field": "phoneNumber", "value": "0000000000", "reason": "blocked"}])
    );
    let rows = app.rows();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].phone_number, None);
    // Without ignored values the answer has no "ignored" field at all.
    let plain = app.identify(json!({"email": "doc@hillvalley.edu"}));
    assert!(plain.body.get("ignored").is_none(), "{plain:?}");
}

#[test]
fn the_merge_guard_allows_a_merge_at_the_limit_and_refuses_one_past_it() {
    let app = TestApp::spawn_with(|settings| {
        settings.merge_guard.max_contacts = 3;
    });
    let george =
        app.identify_ok(json!({"email": "george@hillvalley.edu", "phoneNumber": "919191"}));
    app.identify_ok(json!({"email": "biffsucks@hillvalley.edu", "phoneNumber": "717171"}));
    let biff2 = app.identify_ok(json!({"email": "biff2@hillvalley.edu", "phoneNumber": "616161"}));
    // Merging george (1 contact) with biffsucks (1) makes 2: fine. Adding a third (1) makes 3:
    // exactly the limit, fine.
    app.identify_ok(json!({"email": "george@hillvalley.edu", "phoneNumber": "717171"}));
    let at_limit =
        app.identify_ok(json!({"email": "biff2@hillvalley.edu", "phoneNumber": "919191"}));
    assert_eq!(at_limit["primaryContactId"], george["primaryContactId"]);
    assert_eq!(ids(&at_limit["secondaryContactIds"]).len(), 2);

    let lone = app.identify_ok(json!({"email": "lone@hillvalley.edu", "phoneNumber": "515151"}));
    let rows_before = app.rows();
    // One past: george's customer (3) + lone (1) = 4 > 3. Nothing is written, and the
    // answer is the customer the email matches, saying which value was not stored.
    let reply = app.identify(json!({"email": "lone@hillvalley.edu", "phoneNumber": "919191"}));
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["contact"], lone);
    assert_eq!(
        reply.body["ignored"],
        json!([{"field": "phoneNumber", "value": "919191", "reason": "merge_guard"}])
    );
    let refused =
        app.identify_ok(json!({"email": "biff2@hillvalley.edu", "phoneNumber": "515151"}));
    assert_eq!(refused["primaryContactId"], george["primaryContactId"]);
    assert_eq!(app.rows(), rows_before, "a refused merge writes nothing");
    assert_ne!(biff2["primaryContactId"], lone["primaryContactId"]);
    // A new email with the phone of the full customer: the phone is dropped (email comes
    // first), and the email lands on a customer of its own; no two customers share a value.
    let reply = app.identify(json!({"email": "lodger@hillvalley.edu", "phoneNumber": "919191"}));
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(
        reply.body["contact"]["emails"],
        json!(["lodger@hillvalley.edu"])
    );
    assert_eq!(reply.body["contact"]["phoneNumbers"], json!([]));
    assert_eq!(
        reply.body["ignored"],
        json!([{"field": "phoneNumber", "value": "919191", "reason": "merge_guard"}])
    );
    assert_eq!(app.rows().len(), rows_before.len() + 1);
}

/// George, biffsucks and lorraine: three customers, by primary id.
fn three_customers(app: &TestApp) -> [i64; 3] {
    [
        ("george@hillvalley.edu", "919191"),
        ("biffsucks@hillvalley.edu", "717171"),
        ("lorraine@hillvalley.edu", "123456"),
    ]
    .map(|(email, phone)| {
        app.identify_ok(json!({"email": email, "phoneNumber": phone}))["primaryContactId"]
            .as_i64()
            .expect("id")
    })
}

#[test]
fn why_two_contacts_are_one_customer_names_the_request_that_joined_them() {
    let app = TestApp::spawn();
    let [george, biffsucks, lorraine] = three_customers(&app);
    app.get(&format!("/contacts/{biffsucks}/why/{george}"))
        .assert_problem(404, "not-found");

    app.identify_ok(json!({"email": "george@hillvalley.edu", "phoneNumber": "717171"}));
    let reply = app.get(&format!("/contacts/{biffsucks}/why/{george}"));
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(
        reply.body["chain"],
        json!([
            {"kind": "contact", "contactId": biffsucks},
            {"kind": "request", "email": "george@hillvalley.edu", "phoneNumber": "717171"},
            {"kind": "contact", "contactId": george},
        ])
    );
    app.get(&format!("/contacts/{george}/why/{lorraine}"))
        .assert_problem(404, "not-found");
    app.get(&format!("/contacts/{george}/why/x"))
        .assert_problem(400, "invalid-path");
}

#[test]
fn the_graph_and_the_search_read_a_customer_without_writing() {
    let app = TestApp::spawn();
    let [george, biffsucks, lorraine] = three_customers(&app);
    app.identify_ok(json!({"email": "george@hillvalley.edu", "phoneNumber": "717171"}));
    let rows = app.rows();

    let graph = app.get(&format!("/contacts/{biffsucks}/graph"));
    assert_eq!(graph.status, 200, "{graph:?}");
    assert_eq!(graph.body["primaryContactId"], george);
    let contacts = graph.body["contacts"].as_array().expect("contacts");
    let ids: Vec<i64> = contacts.iter().filter_map(|c| c["id"].as_i64()).collect();
    assert_eq!(ids, vec![george, biffsucks], "oldest first");
    assert_eq!(contacts[1]["linkPrecedence"], "secondary");
    assert_eq!(contacts[1]["linkedId"], george);
    assert_eq!(contacts[1]["phoneNumber"], "717171");
    let evidence = graph.body["evidence"].as_array().expect("evidence");
    assert_eq!(evidence.len(), 1, "{evidence:?}");
    assert_eq!(evidence[0]["email"], "george@hillvalley.edu");
    assert_eq!(evidence[0]["phoneNumber"], "717171");
    assert!(evidence[0]["createdAt"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    app.get("/contacts/999/graph")
        .assert_problem(404, "not-found");

    let search = |body: serde_json::Value| {
        let reply = app.post(
            "/customers/search",
            Some("application/json"),
            &body.to_string(),
        );
        assert_eq!(reply.status, 200, "{reply:?}");
        reply.body["customers"]
            .as_array()
            .expect("customers")
            .iter()
            .filter_map(|c| c["primaryContactId"].as_i64())
            .collect::<Vec<i64>>()
    };
    assert_eq!(search(json!({"phoneNumber": "71-71-71"})), vec![george]);
    assert_eq!(
        search(json!({"email": "LORRAINE@hillvalley.edu", "phoneNumber": 919191})),
        vec![george, lorraine],
        "the email's customer and the phone's, not merged"
    );
    assert_eq!(
        search(json!({"email": "nobody@hillvalley.edu"})),
        Vec::<i64>::new()
    );
    app.post("/customers/search", Some("application/json"), "{}")
        .assert_problem(400, "missing-identifier");
    assert_eq!(app.rows(), rows, "reading writes nothing");
}

#[test]
fn the_task_spelling_of_the_primary_id_is_there_only_when_asked_for() {
    let on = TestApp::spawn_with(|s| s.compat.primary_contatct_id = true);
    let answer = on.identify_ok(json!({"email": "doc@hillvalley.edu", "phoneNumber": "5551212"}));
    let primary = answer["primaryContactId"].clone();
    assert!(primary.is_i64(), "{answer}");
    assert_eq!(answer["primaryContatctId"], primary, "{answer}");
    let second =
        on.identify_ok(json!({"email": "emmett@hillvalley.edu", "phoneNumber": "5551212"}));
    let secondary = ids(&second["secondaryContactIds"])[0];
    let read = on.get(&format!("/contacts/{secondary}"));
    assert_eq!(read.status, 200, "{read:?}");
    assert_eq!(
        read.body["contact"]["primaryContactId"], primary,
        "{read:?}"
    );
    assert_eq!(
        read.body["contact"]["primaryContatctId"], primary,
        "{read:?}"
    );
    // Whether the OpenAPI document declares the misspelt field.
    let declared = |app: &TestApp| {
        app.get("/openapi.json").body["components"]["schemas"]["ContactView"]["properties"]
            .get("primaryContatctId")
            .is_some()
    };
    assert!(declared(&on), "declared when on");

    let off = TestApp::spawn();
    let answer = off.identify_ok(json!({"email": "doc@hillvalley.edu"}));
    assert!(answer.get("primaryContatctId").is_none(), "{answer}");
    let id = answer["primaryContactId"].as_i64().expect("an id");
    let read = off.get(&format!("/contacts/{id}"));
    assert!(
        read.body["contact"].get("primaryContatctId").is_none(),
        "{read:?}"
    );
    assert!(!declared(&off), "not declared when off");
}

#[test]
fn example_domains_link_by_default_and_exact_placeholders_stay_blocked() {
    let app = TestApp::spawn();
    let alice = app.identify(json!({"email": "alice@example.com"}));
    assert_eq!(alice.status, 200, "{alice:?}");
    assert_eq!(
        alice.body["contact"]["emails"],
        json!(["alice@example.com"])
    );
    assert!(alice.body.get("ignored").is_none(), "{alice:?}");
    let again = app.identify_ok(json!({"email": "alice@example.com", "phoneNumber": "5550100"}));
    assert_eq!(
        again["primaryContactId"], alice.body["contact"]["primaryContactId"],
        "an example.com address links like any other"
    );
    app.identify(json!({"email": "test@test.com"}))
        .assert_problem(422, "blocked-identifier");
    app.identify(json!({"phoneNumber": "1234567890"}))
        .assert_problem(422, "blocked-identifier");
    assert_eq!(app.rows().len(), 2);
}

#[test]
fn a_production_block_list_can_still_refuse_a_whole_domain() {
    let app = TestApp::spawn_with(|s| {
        s.identifiers = crate::helpers::settings_from_env(&[(
            "IDENTITY__IDENTIFIERS__BLOCKED_EMAIL_PATTERNS",
            "noreply@*,no-reply@*,donotreply@*,*@example.com",
        )])
        .identifiers;
    });
    app.identify(json!({"email": "alice@example.com"}))
        .assert_problem(422, "blocked-identifier");
}
