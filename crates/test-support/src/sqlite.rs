//! A fresh SQLite database file per test, removed when the test ends.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use identity_persistence::DatabaseUrl;

/// A migrated SQLite file of its own for one test. Deleted (with its WAL files) on drop.
pub struct TestSqlite {
    path: PathBuf,
}

impl TestSqlite {
    /// # Panics
    /// When the file cannot be created or migrated.
    pub fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "identity-test-{}-{}.db",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        remove_files(&path);
        identity_persistence::run_migrations(&DatabaseUrl::Sqlite(path.clone()))
            .unwrap_or_else(|e| panic!("cannot migrate {}: {e:?}", path.display()));
        Self { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn url(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }
}

impl Default for TestSqlite {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestSqlite {
    fn drop(&mut self) {
        remove_files(&self.path);
    }
}

fn remove_files(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
}
