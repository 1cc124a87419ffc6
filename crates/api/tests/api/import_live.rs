//! An import against live traffic on the same identifiers: one lock order for every writer,
//! so neither side deadlocks, nothing is answered 503, and the graph is the one the records
//! and the requests together describe.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use diesel::sql_types::BigInt;
use diesel::{QueryableByName, RunQueryDsl};
use identity_test_support::{
    check_invariants, expected_groups, stored_groups, Pair, TestConnection, TestDb,
};
use serde_json::json;

use crate::helpers::{ServerProcess, TestApp};

#[derive(QueryableByName)]
struct Deadlocks {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Deadlocks PostgreSQL has detected in the current database so far.
fn deadlocks(db: &TestDb) -> i64 {
    diesel::sql_query(
        "SELECT deadlocks AS n FROM pg_stat_database WHERE datname = current_database()",
    )
    .get_result::<Deadlocks>(&mut db.connect())
    .map(|d| d.n)
    .expect("the database's statistics")
}

/// A few hundred identifiers, shared by the import and the requests.
fn pair(rng: &mut fastrand::Rng) -> Pair {
    let email = (rng.u8(0..4) > 0).then(|| format!("buyer{}@shop.io", rng.u16(0..150)));
    let phone = (email.is_none() || rng.bool()).then(|| format!("555{:04}", rng.u16(0..150)));
    Pair { email, phone }
}

#[test]
fn an_import_and_32_clients_on_the_same_identifiers_never_deadlock() {
    let seed = std::env::var("STRESS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    println!("import-under-traffic seed: {seed} (replay with STRESS_SEED={seed})");
    let mut rng = fastrand::Rng::with_seed(seed);
    let records: Vec<Pair> = (0..5_000).map(|_| pair(&mut rng)).collect();

    let unlimited = |settings: &mut identity_api::Settings| {
        settings.merge_guard.max_contacts = 1_000_000;
        settings.merge_guard.max_emails = 1_000_000;
        settings.merge_guard.max_phones = 1_000_000;
        settings.database.pool_size = std::num::NonZeroU32::new(16).expect("positive");
    };
    let app = Arc::new(TestApp::spawn_on(TestDb::new(), unlimited));
    let dir = crate::helpers::scratch_dir("import-live");
    let file = dir.join("orders.csv");
    let mut csv = String::from("email,phoneNumber\n");
    for r in &records {
        csv.push_str(&format!(
            "{},{}\n",
            r.email.as_deref().unwrap_or_default(),
            r.phone.as_deref().unwrap_or_default()
        ));
    }
    std::fs::write(&file, csv).expect("the orders file");

    let deadlocks_before = deadlocks(&app.db);
    let done = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..32)
        .map(|c| {
            let (app, done, sent) = (Arc::clone(&app), Arc::clone(&done), Arc::clone(&sent));
            std::thread::spawn(move || {
                let mut rng = fastrand::Rng::with_seed(seed ^ (c + 1));
                let mut answers = Vec::new();
                while !done.load(Ordering::Relaxed) {
                    let pair = pair(&mut rng);
                    let reply =
                        app.identify(json!({"email": pair.email, "phoneNumber": pair.phone}));
                    answers.push((pair, reply.status));
                }
                if let Ok(mut sent) = sent.lock() {
                    sent.extend(answers);
                }
            })
        })
        .collect();

    let output = Command::new(ServerProcess::BINARY)
        .args(["import", &file.to_string_lossy(), "--batch-size", "250"])
        .env("DATABASE_URL", app.db.url())
        .env("IDENTITY_CONFIG_DIR", "/nonexistent")
        .env("IDENTITY__LOG__LEVEL", "warn")
        .env("IDENTITY__MERGE_GUARD__MAX_CONTACTS", "1000000")
        .env("IDENTITY__MERGE_GUARD__MAX_EMAILS", "1000000")
        .env("IDENTITY__MERGE_GUARD__MAX_PHONES", "1000000")
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs");
    done.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().expect("a client thread");
    }
    assert!(
        output.status.success(),
        "seed {seed}: the import failed: {output:?}"
    );
    // Statistics reach pg_stat_database when a backend reports them (at the latest when it
    // goes idle for a second): wait for that.
    std::thread::sleep(std::time::Duration::from_millis(1_500));
    assert_eq!(
        deadlocks(&app.db) - deadlocks_before,
        0,
        "seed {seed}: PostgreSQL detected deadlocks between the import and the requests"
    );

    let sent = sent.lock().expect("the answers").clone();
    assert!(
        sent.len() > 100,
        "seed {seed}: the clients ran alongside the import"
    );
    let failed: Vec<_> = sent
        .iter()
        .filter(|(_, status)| *status != 200)
        .take(5)
        .collect();
    assert!(failed.is_empty(), "seed {seed}: only 200s: {failed:?}");

    let mut conn = TestConnection::from(app.db.connect());
    assert!(check_invariants(&mut conn).is_empty(), "seed {seed}");
    let stored: BTreeSet<_> = stored_groups(&mut conn).into_values().collect();
    let all = records.iter().chain(sent.iter().map(|(pair, _)| pair));
    assert!(
        stored == expected_groups(all),
        "seed {seed}: the graph is not the oracle's"
    );
}
