//! The import at scale: 100,000 generated past orders (shared phones, extra emails,
//! cross-customer merges, email-only and phone-only orders, out of date order) give the
//! customers an independent computation finds, and a store whose invariants hold.

use identity_test_support::{check_invariants, expected_customers, orders, TestStore};

use crate::cli::{graph, scratch};
use crate::helpers::run_cli;

#[test]
fn a_hundred_thousand_orders_give_the_customers_union_find_gives() {
    let orders = orders(100_000, 24);
    let expected = expected_customers(&orders);
    assert!(
        expected.len() > 25_000 && expected.len() < 40_000,
        "about 35,000 customers: {}",
        expected.len()
    );
    let file = scratch("orders-100k.jsonl");
    let text: String = orders.iter().map(|o| o.to_jsonl() + "\n").collect();
    std::fs::write(&file, text).expect("write");

    let db = TestStore::postgres();
    let output = run_cli(
        &db.url(),
        &["import", &file.to_string_lossy(), "--batch-size", "2000"],
    );
    let printed = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{output:?}");
    assert!(
        printed.contains("0 refused") && printed.contains("0 rejected"),
        "{printed}"
    );

    let mut conn = db.connect();
    let stored = graph(&mut conn);
    assert_eq!(stored.len(), expected.len(), "customers");
    let missing: Vec<_> = expected.difference(&stored).take(3).collect();
    assert!(
        missing.is_empty(),
        "customers not as computed, e.g. {missing:?}"
    );
    assert!(check_invariants(&mut conn).is_empty());
    let check = run_cli(&db.url(), &["check"]);
    assert!(check.status.success(), "{check:?}");

    // Again: nothing new.
    let contacts = conn.number("SELECT count(*) AS n FROM contact");
    let again = run_cli(
        &db.url(),
        &["import", &file.to_string_lossy(), "--batch-size", "2000"],
    );
    assert!(again.status.success(), "{again:?}");
    assert_eq!(conn.number("SELECT count(*) AS n FROM contact"), contacts);
}
