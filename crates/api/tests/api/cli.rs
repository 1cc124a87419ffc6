//! The operator's command line, run as the real binary: import, check, migrate, stats.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;

use identity_test_support::{check_invariants, TestConnection, TestDb, TestStore};
use serde_json::json;

use crate::helpers::{assert_prints, run_cli, TestApp};

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs `identity-api import file --rejects rejects`.
fn run_import(database_url: &str, file: &Path, rejects: &Path) -> Output {
    run_cli(
        database_url,
        &[
            "import",
            &file.to_string_lossy(),
            "--rejects",
            &rejects.to_string_lossy(),
        ],
    )
}

/// The rejects file's lines.
fn read_rejects(rejects: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(rejects)
        .expect("a rejects file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON lines"))
        .collect()
}

pub(crate) fn scratch(name: &str) -> PathBuf {
    crate::helpers::scratch_dir("cli").join(name)
}

/// The history used by the import tests, as (createdAt, email, phone), in date order.
const HISTORY: &[(&str, Option<&str>, Option<&str>)] = &[
    (
        "2019-01-05T10:00:00Z",
        Some("doc@hillvalley.edu"),
        Some("5550100"),
    ),
    (
        "2019-02-01T10:00:00Z",
        Some("marty@hillvalley.edu"),
        Some("5550199"),
    ),
    (
        "2019-03-01T10:00:00Z",
        Some("emmett@hillvalley.edu"),
        Some("5550100"),
    ),
    (
        "2019-04-01T10:00:00Z",
        Some("marty@hillvalley.edu"),
        Some("5550100"),
    ),
    ("2019-05-01T10:00:00Z", None, Some("5550199")),
    ("2019-06-01T10:00:00Z", Some("biff@hillvalley.edu"), None),
    (
        "2019-07-01T10:00:00Z",
        Some("BIFF@hillvalley.edu "),
        Some("5550142"),
    ),
];

/// Each customer as (its primary's identifiers, all its identifiers).
pub(crate) fn graph(conn: &mut TestConnection) -> BTreeSet<(String, BTreeSet<String>)> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        primary_id: i64,
        #[diesel(sql_type = diesel::sql_types::Bool)]
        is_primary: bool,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        email: Option<String>,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        phone_number: Option<String>,
    }
    let rows: Vec<Row> = conn
        .load(
            "SELECT COALESCE(linked_id, id) AS primary_id, (linked_id IS NULL) AS is_primary,
                    email, phone_number FROM contact WHERE deleted_at IS NULL",
        )
        .expect("rows");
    let mut customers: std::collections::BTreeMap<i64, (String, BTreeSet<String>)> =
        Default::default();
    for row in rows {
        let entry = customers.entry(row.primary_id).or_default();
        let values: Vec<String> = row
            .email
            .iter()
            .map(|e| format!("email:{e}"))
            .chain(row.phone_number.iter().map(|p| format!("phone:{p}")))
            .collect();
        if row.is_primary {
            entry.0 = values.join(" ");
        }
        entry.1.extend(values);
    }
    customers.into_values().collect()
}

fn write_jsonl(path: &Path, order: &[usize], bad: &[&str]) {
    let mut lines: Vec<String> = order
        .iter()
        .map(|&i| {
            let (at, email, phone) = HISTORY[i];
            json!({"createdAt": at, "email": email, "phoneNumber": phone}).to_string()
        })
        .collect();
    lines.extend(bad.iter().map(|b| (*b).to_owned()));
    std::fs::write(path, lines.join("\n") + "\n").expect("write");
}

fn write_csv(path: &Path, order: &[usize]) {
    let mut text = String::from("createdAt,email,phoneNumber\n");
    for &i in order {
        let (at, email, phone) = HISTORY[i];
        text.push_str(&format!(
            "{at},{},{}\n",
            email.unwrap_or(""),
            phone.unwrap_or("")
        ));
    }
    std::fs::write(path, text).expect("write");
}

#[test]
fn imports_out_of_order_give_the_graph_of_requests_sent_in_date_order() {
    let app = TestApp::spawn();
    for (_, email, phone) in HISTORY {
        app.identify_ok(json!({"email": email, "phoneNumber": phone}));
    }
    let expected = graph(&mut TestConnection::from(app.db.connect()));

    let shuffled = [6, 3, 0, 5, 2, 4, 1];
    let jsonl = scratch("history.jsonl");
    write_jsonl(&jsonl, &shuffled, &[]);
    let csv = scratch("history.csv");
    write_csv(&csv, &shuffled);
    for (file, db) in [(&jsonl, TestStore::postgres()), (&csv, TestStore::sqlite())] {
        let output = run_cli(&db.url(), &["import", &file.to_string_lossy()]);
        assert!(output.status.success(), "{output:?}");
        let mut conn = db.connect();
        assert_eq!(graph(&mut conn), expected, "{}", file.display());
        assert!(check_invariants(&mut conn).is_empty());
    }
}

#[test]
fn an_older_record_in_a_later_import_becomes_the_primary() {
    let db = TestStore::sqlite();
    let first = scratch("later.jsonl");
    write_jsonl(&first, &[1, 3], &[]);
    assert!(run_cli(&db.url(), &["import", &first.to_string_lossy()])
        .status
        .success());
    let older = scratch("older.jsonl");
    std::fs::write(
        &older,
        json!({"createdAt": "2018-12-24T00:00:00Z", "email": "clara@hillvalley.edu", "phoneNumber": "5550199"}).to_string() + "\n",
    )
    .expect("write");
    assert!(run_cli(&db.url(), &["import", &older.to_string_lossy()])
        .status
        .success());
    let mut conn = db.connect();
    assert_eq!(
        conn.number(
            "SELECT count(*) AS n FROM contact WHERE email = 'clara@hillvalley.edu'
                AND link_precedence = 'primary'"
        ),
        1
    );
    assert!(check_invariants(&mut conn).is_empty());
}

#[test]
fn bad_records_are_rejected_with_their_line_and_the_rest_is_imported_once() {
    let db = TestStore::postgres();
    let file = scratch("mixed.jsonl");
    write_jsonl(
        &file,
        &[0, 1, 2],
        &[
            r#"{"email": "not an email"}"#,
            "this is not json",
            r#"{"phoneNumber": "0000000000"}"#,
            r#"{"email": "ok@hillvalley.edu", "createdAt": "yesterday"}"#,
            r#"{}"#,
        ],
    );
    let rejects = scratch("mixed-rejects.jsonl");
    let output = run_import(&db.url(), &file, &rejects);
    let text = stdout(&output);
    assert!(output.status.success(), "{output:?}");
    assert!(text.contains("imported 8 records"), "{text}");
    assert!(text.contains("3 contacts created"), "{text}");
    assert!(text.contains("5 rejected"), "{text}");
    let rejected = read_rejects(&rejects);
    let lines: Vec<u64> = rejected.iter().filter_map(|r| r["line"].as_u64()).collect();
    assert_eq!(lines, [4, 5, 6, 7, 8]);
    assert!(rejected[0]["reason"]
        .as_str()
        .is_some_and(|r| r.contains("email")));
    assert!(rejected[2]["reason"]
        .as_str()
        .is_some_and(|r| r.contains("placeholder")));
    assert!(rejected[3]["reason"]
        .as_str()
        .is_some_and(|r| r.contains("createdAt")));

    let mut conn = db.connect();
    let before = graph(&mut conn);
    let again = run_import(&db.url(), &file, &rejects);
    assert_prints(&again, "0 contacts created");
    assert_eq!(graph(&mut conn), before, "a second import changes nothing");
    assert_eq!(conn.number("SELECT count(*) AS n FROM contact"), 3);
}

#[test]
fn check_finds_a_planted_violation_and_stats_describe_the_store() {
    let db = TestStore::sqlite();
    let app_file = scratch("check.jsonl");
    write_jsonl(&app_file, &[0, 1, 2, 3], &[]);
    assert!(run_cli(&db.url(), &["import", &app_file.to_string_lossy()])
        .status
        .success());

    let clean = run_cli(&db.url(), &["check"]);
    assert!(clean.status.success(), "{clean:?}");
    assert!(stdout(&clean).contains("every invariant holds"));

    let stats = stdout(&run_cli(&db.url(), &["stats", "--top", "3"]));
    assert!(stats.contains("customers: 1"), "{stats}");
    assert!(stats.contains("contacts: 3 live"), "{stats}");

    // A secondary pointing at another secondary: a chain (invariant 1).
    db.connect()
        .execute(
            "UPDATE contact SET linked_id = (SELECT max(id) FROM contact)
              WHERE id = (SELECT min(id) FROM contact WHERE link_precedence = 'secondary')",
        )
        .expect("planted");
    let broken = run_cli(&db.url(), &["check"]);
    assert_eq!(broken.status.code(), Some(1), "{broken:?}");
    assert_prints(&broken, "violated: invariant 1");
}

#[test]
fn migrate_applies_the_schema_once() {
    let db = TestDb::empty();
    let first = run_cli(db.url(), &["migrate"]);
    assert!(first.status.success(), "{first:?}");
    let on_disk = std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../migrations/postgres"
    ))
    .expect("the migrations")
    .count();
    assert_prints(&first, &format!("applied {on_disk} migrations"));
    let second = run_cli(db.url(), &["migrate"]);
    assert_prints(&second, "up to date");
}

#[test]
fn records_dated_in_the_future_are_rejected_and_a_little_clock_skew_is_not() {
    let db = TestStore::sqlite();
    let file = scratch("future.jsonl");
    let skewed = (chrono::Utc::now() + chrono::TimeDelta::minutes(1)).to_rfc3339();
    write_jsonl(
        &file,
        &[0],
        &[
            json!({"createdAt": "2999-01-01T00:00:00Z", "email": "from@future.io"})
                .to_string()
                .as_str(),
            json!({"createdAt": skewed, "email": "skewed@hillvalley.edu"})
                .to_string()
                .as_str(),
        ],
    );
    let rejects = scratch("future-rejects.jsonl");
    let output = run_import(&db.url(), &file, &rejects);
    assert!(output.status.success(), "{output:?}");
    assert_prints(&output, "1 rejected");
    let rejected = read_rejects(&rejects);
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0]["line"], 2);
    let reason = rejected[0]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("createdAt") && reason.contains("future"),
        "{reason}"
    );
    let mut conn = db.connect();
    assert_eq!(
        conn.number("SELECT count(*) AS n FROM contact WHERE email = 'from@future.io'"),
        0
    );
    assert_eq!(
        conn.number("SELECT count(*) AS n FROM contact WHERE email = 'skewed@hillvalley.edu'"),
        1
    );
}

#[cfg(unix)]
#[test]
fn the_rejects_file_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;

    let db = TestStore::sqlite();
    let file = scratch("private.jsonl");
    write_jsonl(&file, &[0], &[r#"{"email": "not an email"}"#]);
    let rejects = scratch("private-rejects.jsonl");
    let _ = std::fs::remove_file(&rejects);
    let output = run_import(&db.url(), &file, &rejects);
    assert!(output.status.success(), "{output:?}");
    let mode = std::fs::metadata(&rejects)
        .expect("a rejects file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "mode {:o}", mode & 0o777);
}

#[test]
fn a_bad_line_is_rejected_alone_and_unknown_columns_are_named() {
    let db = TestStore::sqlite();
    // Imports `file`; returns what it printed, what it warned, and its rejects file.
    let import = |file: &Path, rejects_name: &str| {
        let rejects = scratch(rejects_name);
        let output = run_import(&db.url(), file, &rejects);
        assert!(output.status.success(), "{output:?}");
        let printed = stdout(&output);
        assert!(
            printed.contains("2 contacts created") && printed.contains("1 rejected"),
            "{printed}"
        );
        (
            String::from_utf8_lossy(&output.stderr).into_owned(),
            std::fs::read_to_string(&rejects).expect("the rejects file"),
        )
    };

    // JSON Lines with a line that is not UTF-8 in the middle.
    let jsonl = scratch("bad-bytes.jsonl");
    let mut bytes = b"{\"email\":\"doc@hillvalley.edu\"}\n".to_vec();
    bytes.extend_from_slice(b"{\"email\":\"m\xe9rty@hillvalley.edu\"}\n");
    bytes.extend_from_slice(b"{\"email\":\"jennifer@hillvalley.edu\",\"loyaltyTier\":\"gold\"}\n");
    std::fs::write(&jsonl, bytes).expect("the file");
    let (warned, rejected) = import(&jsonl, "bad-bytes-rejects.jsonl");
    assert!(
        rejected.contains("\"line\":2") && rejected.contains("not UTF-8"),
        "{rejected}"
    );
    assert!(
        warned.contains("unknown fields ignored: loyaltyTier"),
        "{warned}"
    );
    assert!(
        !warned.contains("gold"),
        "values are never printed: {warned}"
    );

    // CSV with an unbalanced quote: only its own line is rejected.
    let csv = scratch("bad-quote.csv");
    std::fs::write(
        &csv,
        "email,phoneNumber,store\n\
         \"emmett@hillvalley.edu,5550100,north\n\
         lorraine@hillvalley.edu,5550101,south\n\
         george@hillvalley.edu,5550102,east\n",
    )
    .expect("the file");
    let (warned, rejected) = import(&csv, "bad-quote-rejects.jsonl");
    assert!(
        rejected.contains("\"line\":2") && rejected.contains("quote"),
        "{rejected}"
    );
    assert!(warned.contains("unknown fields ignored: store"), "{warned}");
}

#[test]
fn sqlite_keeps_microseconds_so_the_older_of_two_close_records_is_the_primary() {
    let db = TestStore::sqlite();
    let import = |name: &str, line: &str| {
        let file = scratch(name);
        std::fs::write(&file, format!("{line}\n")).expect("the file");
        let output = run_cli(&db.url(), &["import", &file.to_string_lossy()]);
        assert!(output.status.success(), "{output:?}");
    };
    // The newer record first, then one 300 µs older: within one millisecond.
    import(
        "close-newer.jsonl",
        r#"{"email":"b@hillvalley.edu","phoneNumber":"5550111","createdAt":"2020-01-01T00:00:00.000400Z"}"#,
    );
    import(
        "close-older.jsonl",
        r#"{"email":"a@hillvalley.edu","phoneNumber":"5550111","createdAt":"2020-01-01T00:00:00.000100Z"}"#,
    );
    let mut conn = db.connect();
    assert_eq!(
        conn.number(
            "SELECT count(*) AS n FROM contact WHERE email = 'a@hillvalley.edu'
                AND link_precedence = 'primary'"
        ),
        1,
        "the older record leads the customer"
    );
    assert!(check_invariants(&mut conn).is_empty());
}

/// Rule 6's priority in the import, set-based and record by record alike: a record whose
/// phone belongs to a customer already at the merge guard's size is stored without the
/// phone, as a customer of its own, and the summary counts it.
#[test]
fn the_import_leaves_out_the_identifier_in_the_merge_guard_s_way_and_counts_it() {
    for per_record in [false, true] {
        let db = TestStore::postgres();
        let file = scratch(&format!("guard-{per_record}.jsonl"));
        std::fs::write(
            &file,
            concat!(
                r#"{"email": "mom@family.io", "phoneNumber": "5550100", "createdAt": "2020-01-01T00:00:00Z"}"#,
                "\n",
                r#"{"email": "dad@family.io", "phoneNumber": "5550100", "createdAt": "2020-01-02T00:00:00Z"}"#,
                "\n",
                r#"{"email": "lodger@family.io", "phoneNumber": "5550100", "createdAt": "2020-01-03T00:00:00Z"}"#,
                "\n",
            ),
        )
        .expect("the file");
        let mut args = vec![
            "import".to_owned(),
            file.to_string_lossy().into_owned(),
            "--rejects".to_owned(),
            scratch(&format!("guard-{per_record}-rejects.jsonl"))
                .to_string_lossy()
                .into_owned(),
        ];
        if per_record {
            args.push("--per-record".to_owned());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = crate::helpers::run_cli_with(
            Some(&db.url()),
            &args,
            &[("IDENTITY__MERGE_GUARD__MAX_CONTACTS", "2")],
        );
        let text = stdout(&output);
        assert!(output.status.success(), "{output:?}");
        assert!(
            text.contains("1 stored without an identifier the merge guard left out"),
            "per record {per_record}: {text}"
        );
        assert!(
            text.contains("3 contacts created"),
            "per record {per_record}: {text}"
        );
        let mut conn = db.connect();
        let customers = graph(&mut conn);
        assert!(
            customers.contains(&(
                "email:lodger@family.io".to_owned(),
                BTreeSet::from(["email:lodger@family.io".to_owned()])
            )),
            "per record {per_record}: {customers:?}"
        );
        assert!(check_invariants(&mut conn).is_empty());
    }
}
