//! A bulk import into an empty PostgreSQL database keeps the database's statistics current
//! as it grows the table, so that the lookups' cached plans (prepared once per connection)
//! fit the table's size instead of scanning it whole.

use diesel::sql_types::BigInt;
use diesel::{QueryableByName, RunQueryDsl};
use identity_test_support::TestDb;

use crate::helpers::run_cli;

#[derive(QueryableByName)]
struct Analyses {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[test]
fn an_import_into_an_empty_database_refreshes_statistics_as_the_table_grows() {
    let db = TestDb::new();
    let dir = crate::helpers::scratch_dir("import-statistics");
    let file = dir.join("orders.csv");
    // 2,500 new customers: the import refreshes statistics after 1,000 and 2,000 contacts.
    let mut csv = String::from("email,phoneNumber,createdAt\n");
    for i in 0..2_500 {
        csv.push_str(&format!(
            "buyer{i}@shop.io,,2020-01-01T00:00:{:02}Z\n",
            i % 60
        ));
    }
    std::fs::write(&file, csv).expect("the orders file");

    let output = run_cli(
        db.url(),
        &["import", &file.to_string_lossy(), "--batch-size", "250"],
    );
    assert!(output.status.success(), "{output:?}");

    let mut conn = db.connect();
    let analyses: Analyses = diesel::sql_query(
        "SELECT analyze_count AS n FROM pg_stat_user_tables WHERE relname = 'contact'",
    )
    .get_result(&mut conn)
    .expect("the table's statistics");
    assert!(
        analyses.n >= 2,
        "the import analysed the table {} times",
        analyses.n
    );
}
