//! `identity-api export` and `import`: a store moved to the other backend keeps its
//! customers, their primaries, the joins made by requests alone, its unlink rules and its
//! manual links.

use identity_test_support::{check_invariants, TestStore};
use serde_json::json;

use crate::cli::{graph, scratch};
use crate::helpers::{run_cli, TestApp};

#[test]
fn a_sqlite_store_moved_to_postgres_keeps_its_customers_joins_rules_and_links() {
    let sqlite = TestStore::sqlite();
    let app = TestApp::spawn_with(|s| s.database.url = crate::helpers::database_url(&sqlite.url()));
    // Two customers joined by a request that created no contact (stored as evidence only).
    app.identify_ok(json!({"email": "george@hillvalley.edu", "phoneNumber": "919191"}));
    app.identify_ok(json!({"email": "biffsucks@hillvalley.edu", "phoneNumber": "717171"}));
    app.identify_ok(json!({"email": "biff@hillvalley.edu", "phoneNumber": "717171"}));
    let joined =
        app.identify_ok(json!({"email": "george@hillvalley.edu", "phoneNumber": "717171"}));
    assert_eq!(
        joined["secondaryContactIds"].as_array().map(Vec::len),
        Some(2)
    );
    // A customer grown by shared values, an email-only and a phone-only one.
    app.identify_ok(json!({"email": "lorraine@hillvalley.edu", "phoneNumber": "123456"}));
    app.identify_ok(json!({"email": "mcfly@hillvalley.edu", "phoneNumber": "123456"}));
    app.identify_ok(json!({"email": "mcfly@hillvalley.edu", "phoneNumber": "5550100"}));
    let clara = app.identify_ok(json!({"email": "clara@hillvalley.edu"}));
    let phone_only = app.identify_ok(json!({"phoneNumber": "5550199"}));
    // Support knows these two are one person: a manual link, state of its own.
    let linked = app.post(
        "/links",
        Some("application/json"),
        &json!({"contactIds": [clara["primaryContactId"], phone_only["primaryContactId"]],
                "reason": "she called from her landline"})
        .to_string(),
    );
    assert_eq!(linked.status, 201, "{linked:?}");
    // Three customers held together by a family's landline, split by an unlink rule.
    for email in [
        "doc@hillvalley.edu",
        "marty@hillvalley.edu",
        "jennifer@hillvalley.edu",
    ] {
        app.identify_ok(json!({"email": email, "phoneNumber": "555000"}));
    }
    let made = app.post(
        "/blocked-identifiers",
        Some("application/json"),
        &json!({"phoneNumber": "555-000", "reason": "the family's landline"}).to_string(),
    );
    assert_eq!(made.status, 201, "{made:?}");
    drop(app);
    let expected = graph(&mut sqlite.connect());
    assert_eq!(expected.len(), 6, "{expected:?}");

    // CSV holds records only: it refuses a store with rules, before writing anything.
    let csv = run_cli(&sqlite.url(), &["export", "--format", "csv"]);
    assert!(!csv.status.success(), "{csv:?}");
    assert!(
        String::from_utf8_lossy(&csv.stderr).contains("--format jsonl"),
        "{csv:?}"
    );

    let exported = run_cli(&sqlite.url(), &["export"]);
    assert!(exported.status.success(), "{exported:?}");
    let text = String::from_utf8(exported.stdout).expect("UTF-8");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines[0]["unlinkRule"]["phoneNumber"], "555000", "{text}");
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.get("unlinkRule").is_some())
            .count(),
        1,
        "{text}"
    );
    assert!(
        !text.contains("555000\",\"createdAt"),
        "no contact holds the unlinked value"
    );
    let file = scratch("moved.jsonl");
    std::fs::write(&file, &text).expect("write");

    let postgres = TestStore::postgres();
    let imported = run_cli(&postgres.url(), &["import", &file.to_string_lossy()]);
    assert!(imported.status.success(), "{imported:?}");
    let mut conn = postgres.connect();
    assert_eq!(graph(&mut conn), expected, "same customers, same primaries");
    assert!(check_invariants(&mut conn).is_empty());
    assert_eq!(
        conn.number("SELECT count(*) AS n FROM unlink_rule WHERE value = '555000'"),
        1
    );
    assert_eq!(
        conn.number("SELECT count(*) AS n FROM link_evidence"),
        1,
        "the join is evidence again"
    );
    assert_eq!(
        conn.number(
            "SELECT count(*) AS n FROM manual_link WHERE reason = 'she called from her landline'"
        ),
        1,
        "the manual link is made again"
    );
    let contacts = conn.number("SELECT count(*) AS n FROM contact");

    // Importing the same file again creates nothing.
    let again = run_cli(&postgres.url(), &["import", &file.to_string_lossy()]);
    assert!(again.status.success(), "{again:?}");
    assert_eq!(conn.number("SELECT count(*) AS n FROM contact"), contacts);
    assert_eq!(conn.number("SELECT count(*) AS n FROM unlink_rule"), 1);
    assert_eq!(conn.number("SELECT count(*) AS n FROM manual_link"), 1);
    assert_eq!(graph(&mut conn), expected);

    // And back: PostgreSQL's export imports into SQLite as the same customers.
    let back = run_cli(&postgres.url(), &["export"]);
    assert!(back.status.success(), "{back:?}");
    let file = scratch("back.jsonl");
    std::fs::write(&file, &back.stdout).expect("write");
    let sqlite_again = TestStore::sqlite();
    let imported = run_cli(&sqlite_again.url(), &["import", &file.to_string_lossy()]);
    assert!(imported.status.success(), "{imported:?}");
    assert_eq!(graph(&mut sqlite_again.connect()), expected);
}
