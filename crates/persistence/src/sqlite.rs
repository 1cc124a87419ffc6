//! What only SQLite needs: the session settings of a connection. (Its write transactions
//! begin with `BEGIN IMMEDIATE`, see `writes::write_transaction`, and need no other guard.)

/// Settings for every pooled connection: a busy timeout first, so that a writer (and the
/// switch to WAL itself) waits for the lock instead of failing; WAL so readers never block
/// the writer; foreign keys enforced; and erased values overwritten on disk, not left in
/// free pages. A read-only store's connections refuse every write (`query_only`).
pub(crate) fn session_sql(busy_timeout_ms: u128, read_only: bool) -> String {
    format!(
        "PRAGMA busy_timeout = {busy_timeout_ms}; PRAGMA journal_mode = WAL; \
         PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON; \
         PRAGMA query_only = {};",
        if read_only { "ON" } else { "OFF" }
    )
}

#[cfg(test)]
mod tests {
    use diesel::prelude::*;
    use diesel::sql_types::{Nullable, Text};
    use diesel::sqlite::Sqlite;
    use identity_test_support::TestSqlite;

    use crate::queries::CustomersMatching;

    /// Every branch of the lookup searches an index; none scans the table.
    #[test]
    fn lookups_use_indexes() {
        #[derive(QueryableByName)]
        struct PlanLine {
            #[diesel(sql_type = Text)]
            detail: String,
        }
        let db = TestSqlite::new();
        let mut conn = SqliteConnection::establish(&db.path().to_string_lossy()).expect("opens");
        let lookup = CustomersMatching {
            email: Some("a@x.io"),
            phone: Some("1"),
        };
        let sql = diesel::debug_query::<Sqlite, _>(&lookup).to_string();
        let sql = sql.split(" -- binds").next().unwrap_or_default();
        let plan: Vec<String> = diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}"))
            .bind::<Nullable<Text>, _>(Some("a@x.io"))
            .bind::<Nullable<Text>, _>(Some("1"))
            .load::<PlanLine>(&mut conn)
            .expect("explain")
            .into_iter()
            .map(|l| l.detail)
            .collect();
        let plan = plan.join("\n");
        for index in [
            "contact_email_idx",
            "contact_phone_number_idx",
            "contact_linked_id_idx",
        ] {
            assert!(plan.contains(index), "{plan}");
        }
        assert!(
            !plan.lines().any(|l| l.starts_with("SCAN contact")),
            "{plan}"
        );
    }
}
