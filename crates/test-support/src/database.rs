//! A fresh database per test, cloned from a migrated template.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Text;

use crate::cluster;

const PREFIX: &str = "identity_test_";

/// A database of its own for one test, with every migration applied. Dropped (with any
/// connection still open to it) when this guard drops.
pub struct TestDb {
    name: String,
    url: String,
}

struct Server {
    /// URL of the server's maintenance database, for CREATE/DROP DATABASE.
    admin_url: String,
    template: String,
    /// CREATE DATABASE … TEMPLATE fails while another CREATE copies the same template.
    creating: Mutex<()>,
}

impl TestDb {
    /// # Panics
    /// When no PostgreSQL can be found or started (the message says how to get one), or the
    /// server refuses to create the database.
    pub fn new() -> Self {
        Self::create(true)
    }

    /// A database of its own with nothing in it, not even the schema (for tests of
    /// migrating).
    pub fn empty() -> Self {
        Self::create(false)
    }

    fn create(migrated: bool) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let server = server();
        let name = format!(
            "{PREFIX}{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        if migrated {
            let _one_at_a_time = server.creating.lock().unwrap_or_else(|e| e.into_inner());
            admin(
                server,
                &format!("CREATE DATABASE {name} TEMPLATE {}", server.template),
            );
        } else {
            admin(server, &format!("CREATE DATABASE {name}"));
        }
        let url = with_database(&server.admin_url, &name);
        Self { name, url }
    }

    /// Name of this test's database.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// URL of this test's database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A new connection to this test's database.
    ///
    /// # Panics
    /// When the database cannot be reached.
    pub fn connect(&self) -> PgConnection {
        PgConnection::establish(&self.url)
            .unwrap_or_else(|e| panic!("cannot connect to test database {}: {e}", self.name))
    }

    /// The connection URL of the server's maintenance database (for tests that need to act
    /// on the server, such as cutting connections).
    pub fn admin_url() -> String {
        server().admin_url.clone()
    }
}

impl Default for TestDb {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut conn) = PgConnection::establish(&server().admin_url) {
            let _ = conn.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
    match SERVER.get_or_init(prepare_server) {
        Ok(server) => server,
        Err(message) => panic!("{message}"),
    }
}

fn prepare_server() -> Result<Server, String> {
    let admin_url = match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => cluster::start_throwaway()?,
    };
    let mut conn = PgConnection::establish(&admin_url)
        .map_err(|e| format!("cannot connect to PostgreSQL at TEST_DATABASE_URL: {e}"))?;
    sweep_leftovers(&mut conn, &admin_url);

    let template = format!("{PREFIX}template_{}", std::process::id());
    // Separate statements: several in one batch would run in a transaction, which
    // DROP/CREATE DATABASE refuse.
    for sql in [
        format!("DROP DATABASE IF EXISTS {template} WITH (FORCE)"),
        format!("CREATE DATABASE {template}"),
    ] {
        conn.batch_execute(&sql)
            .map_err(|e| format!("cannot create the template database: {e}"))?;
    }
    identity_persistence::run_migrations(&identity_persistence::DatabaseUrl::Postgres(
        with_database(&admin_url, &template),
    ))
    .map_err(|e| format!("cannot migrate the template database: {e:?}"))?;
    Ok(Server {
        admin_url,
        template,
        creating: Mutex::new(()),
    })
}

/// Drops the databases of test processes that died before their guards ran. Only on a
/// server of this machine, where a process id says whether its owner still runs.
fn sweep_leftovers(conn: &mut PgConnection, admin_url: &str) {
    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = Text)]
        datname: String,
    }
    let local = ["@localhost", "@127.0.0.1", "@[::1]", "@%2F", "host=/"]
        .iter()
        .any(|marker| admin_url.contains(marker));
    if !local {
        return;
    }
    let Ok(names) = diesel::sql_query(format!(
        "SELECT datname FROM pg_database WHERE datname LIKE '{PREFIX}%'"
    ))
    .load::<Name>(conn) else {
        return;
    };
    for Name { datname } in names {
        let owner = datname
            .trim_start_matches(PREFIX)
            .trim_start_matches("template_")
            .split('_')
            .next()
            .and_then(|pid| pid.parse::<u32>().ok());
        let alive = owner.is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS {datname} WITH (FORCE)"));
        }
    }
}

fn admin(server: &Server, sql: &str) {
    let mut conn = PgConnection::establish(&server.admin_url)
        .unwrap_or_else(|e| panic!("cannot connect to PostgreSQL: {e}"));
    conn.batch_execute(sql)
        .unwrap_or_else(|e| panic!("`{sql}` failed: {e}"));
}

/// `url` with its database name replaced by `name`.
pub(crate) fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{name}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_or_adds_the_database_name() {
        assert_eq!(
            with_database("postgres://u@h:5432/postgres", "t1"),
            "postgres://u@h:5432/t1"
        );
        assert_eq!(with_database("postgres://u@h", "t1"), "postgres://u@h/t1");
        assert_eq!(
            with_database("postgres://u@%2Ftmp%2Fpg/postgres?sslmode=disable", "t1"),
            "postgres://u@%2Ftmp%2Fpg/t1?sslmode=disable"
        );
    }
}
