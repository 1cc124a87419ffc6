//! Either backend behind one type, so that a test can run unchanged on both.

use diesel::connection::SimpleConnection;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sqlite::Sqlite;
use diesel::QueryableByName;

use crate::database::TestDb;
use crate::sqlite::TestSqlite;

/// A fresh, migrated database of either backend.
pub enum TestStore {
    Postgres(TestDb),
    Sqlite(TestSqlite),
}

impl TestStore {
    pub fn postgres() -> Self {
        Self::Postgres(TestDb::new())
    }

    pub fn sqlite() -> Self {
        Self::Sqlite(TestSqlite::new())
    }

    /// Another fresh database, of this one's backend.
    pub fn another(&self) -> Self {
        match self {
            Self::Postgres(_) => Self::postgres(),
            Self::Sqlite(_) => Self::sqlite(),
        }
    }

    pub fn url(&self) -> String {
        match self {
            Self::Postgres(db) => db.url().to_owned(),
            Self::Sqlite(db) => db.url(),
        }
    }

    /// A new connection for looking at (or tampering with) the data directly.
    ///
    /// # Panics
    /// When the database cannot be opened.
    pub fn connect(&self) -> TestConnection {
        match self {
            Self::Postgres(db) => TestConnection::Postgres(db.connect()),
            Self::Sqlite(db) => TestConnection::Sqlite(
                SqliteConnection::establish(&db.path().to_string_lossy())
                    .unwrap_or_else(|e| panic!("cannot open {}: {e}", db.path().display())),
            ),
        }
    }
}

/// A raw connection to either backend, for SQL both understand.
pub enum TestConnection {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

impl From<PgConnection> for TestConnection {
    fn from(conn: PgConnection) -> Self {
        Self::Postgres(conn)
    }
}

impl TestConnection {
    /// Runs statements that return nothing.
    ///
    /// # Errors
    /// The database's refusal.
    pub fn execute(&mut self, sql: &str) -> QueryResult<()> {
        match self {
            Self::Postgres(conn) => conn.batch_execute(sql),
            Self::Sqlite(conn) => conn.batch_execute(sql),
        }
    }

    /// Runs a query without parameters.
    ///
    /// # Errors
    /// The database's refusal.
    pub fn load<T>(&mut self, sql: &str) -> QueryResult<Vec<T>>
    where
        T: QueryableByName<Pg> + QueryableByName<Sqlite> + 'static,
    {
        match self {
            Self::Postgres(conn) => diesel::sql_query(sql).load(conn),
            Self::Sqlite(conn) => diesel::sql_query(sql).load(conn),
        }
    }

    /// The one integer a query returns, in a column named `n`.
    ///
    /// # Panics
    /// When the query fails or returns no row.
    pub fn number(&mut self, sql: &str) -> i64 {
        #[derive(QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        self.load::<N>(sql)
            .unwrap_or_else(|e| panic!("`{sql}` failed: {e}"))
            .first()
            .map(|row| row.n)
            .unwrap_or_else(|| panic!("`{sql}` returned no row"))
    }
}
