//! Correct under concurrent requests, across replicas: two real `identity-api` processes on
//! one database, 32 clients, identifiers drawn from a small pool so that merges, new
//! secondaries and duplicates collide constantly. Afterwards every invariant of
//! docs/CONCURRENCY.md must hold.
//!
//! Randomness is seeded; the seed is printed, and `STRESS_SEED=<seed>` replays a run.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use identity_test_support::{
    check_invariants, expected_groups, stored_groups, Pair, TestConnection, TestDb, TestStore,
};
use serde_json::{json, Value};

use crate::helpers::{agent, ServerProcess};

const CLIENTS: usize = 32;

/// One request and what came back.
#[derive(Debug, Clone)]
struct Exchange {
    pair: Pair,
    status: u16,
    body: Value,
}

struct Cluster {
    /// The database the replicas write to: a test's own, or one on clusters of the test's
    /// own (`url`).
    db: Option<TestStore>,
    url: String,
    servers: Vec<ServerProcess>,
    agent: ureq::Agent,
    exchanges: Mutex<Vec<Exchange>>,
}

impl Cluster {
    fn start(db: TestStore, replicas: usize) -> Self {
        let url = db.url();
        Self::start_on(Some(db), url, &[], replicas)
    }

    /// Starts `replicas` processes on `url`, with `extra` settings.
    fn start_on(
        db: Option<TestStore>,
        url: String,
        extra: &[(&str, &str)],
        replicas: usize,
    ) -> Self {
        let common = [
            ("IDENTITY__DATABASE__POOL_SIZE", "8"),
            ("IDENTITY__SERVER__WORKERS", "2"),
            ("IDENTITY__LOG__LEVEL", "warn,identity_persistence=debug"),
            // The oracle knows no merge guard: let customers grow as large as the pool.
            ("IDENTITY__MERGE_GUARD__MAX_CONTACTS", "100000"),
            ("IDENTITY__MERGE_GUARD__MAX_EMAILS", "100000"),
            ("IDENTITY__MERGE_GUARD__MAX_PHONES", "100000"),
        ];
        let env: Vec<(&str, &str)> = common.iter().chain(extra).copied().collect();
        let servers = (0..replicas)
            .map(|_| ServerProcess::start(&url, &env))
            .collect();
        Self {
            db,
            url,
            servers,
            agent: agent(),
            exchanges: Mutex::new(Vec::new()),
        }
    }

    /// Sends `pair` to replica `replica % n` and records the exchange.
    fn identify(&self, replica: usize, pair: &Pair) -> Exchange {
        let server = &self.servers[replica % self.servers.len()];
        let body = json!({"email": pair.email, "phoneNumber": pair.phone});
        let exchange = match self
            .agent
            .post(format!("{}/identify", server.base))
            .header("Content-Type", "application/json")
            .send(body.to_string())
        {
            Ok(mut response) => Exchange {
                pair: pair.clone(),
                status: response.status().as_u16(),
                body: response.body_mut().read_json().unwrap_or(Value::Null),
            },
            // A connection the server closed: recorded as status 0.
            Err(error) => Exchange {
                pair: pair.clone(),
                status: 0,
                body: Value::String(error.to_string()),
            },
        };
        self.exchanges
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(exchange.clone());
        exchange
    }

    /// A connection to the database the replicas write to, for the checks.
    fn connect(&self) -> TestConnection {
        match &self.db {
            Some(db) => db.connect(),
            None => PgConnection::establish(&self.url)
                .map(TestConnection::from)
                .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.url)),
        }
    }

    fn exchanges(&self) -> Vec<Exchange> {
        self.exchanges
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// How many times the replicas ran a unit of work again, because it collided with a
    /// concurrent one or because its connection was lost, for the run's summary line.
    fn retries(&self) -> String {
        let count = |needle: &str| -> usize {
            self.servers
                .iter()
                .map(|s| s.log_text().matches(needle).count())
                .sum()
        };
        format!(
            "{} collisions retried, {} reconnections",
            count("unit of work collided"),
            count("connection lost during a unit of work"),
        )
    }
}

fn seed() -> u64 {
    std::env::var("STRESS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
}

/// A request from a small pool: groups of 5 emails and 5 phones, mostly within a group,
/// sometimes across groups, sometimes only one identifier.
fn random_pair(rng: &mut fastrand::Rng, tag: &str) -> Pair {
    const GROUPS: usize = 12;
    const PER_GROUP: usize = 5;
    let group = rng.usize(..GROUPS);
    let phone_group = if rng.f64() < 0.04 {
        rng.usize(..GROUPS)
    } else {
        group
    };
    let email = Some(format!("g{group}e{}@{tag}.io", rng.usize(..PER_GROUP)));
    // The leading 5 keeps numbers like 0000 (one repeated digit: blocked) out of the pool.
    let phone = Some(format!("5{phone_group:02}{:02}", rng.usize(..PER_GROUP)));
    match rng.u8(..10) {
        0 => Pair { email, phone: None },
        1 => Pair { email: None, phone },
        _ => Pair { email, phone },
    }
}

/// `CLIENTS` threads sending `per_client` random requests each, spread over the replicas.
fn random_load(cluster: &Arc<Cluster>, seed: u64, per_client: usize, tag: &'static str) {
    let threads: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let cluster = Arc::clone(cluster);
            thread::spawn(move || {
                let mut rng = fastrand::Rng::with_seed(seed.wrapping_add(client as u64));
                for n in 0..per_client {
                    let pair = random_pair(&mut rng, tag);
                    cluster.identify(client + n, &pair);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a client thread");
    }
}

/// The hard case: customers A and B merged from opposite sides at the same moment, by
/// (email A, phone B) on one replica and (email B, phone A) on the other, for `rounds` pairs
/// of customers at once per round.
fn opposite_merges(cluster: &Arc<Cluster>, rounds: usize) {
    for round in 0..rounds {
        let pairs = CLIENTS / 2;
        for i in 0..pairs {
            for side in ["a", "b"] {
                cluster.identify(
                    i,
                    &Pair {
                        email: Some(format!("r{round}p{i}{side}@merge.io")),
                        phone: Some(format!(
                            "9{round:02}{i:02}{}",
                            side.len() + (side == "b") as usize
                        )),
                    },
                );
            }
        }
        let barrier = Arc::new(Barrier::new(CLIENTS));
        let threads: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let cluster = Arc::clone(cluster);
                let barrier = Arc::clone(&barrier);
                thread::spawn(move || {
                    let i = client / 2;
                    let (email_side, phone_side) = if client % 2 == 0 {
                        ("a", "b")
                    } else {
                        ("b", "a")
                    };
                    let pair = Pair {
                        email: Some(format!("r{round}p{i}{email_side}@merge.io")),
                        phone: Some(format!(
                            "9{round:02}{i:02}{}",
                            phone_side.len() + (phone_side == "b") as usize
                        )),
                    };
                    barrier.wait();
                    cluster.identify(client, &pair);
                })
            })
            .collect();
        for t in threads {
            t.join().expect("a client thread");
        }
    }
}

/// N concurrent copies of one request with new data, spread over the replicas.
fn identical_copies(cluster: &Arc<Cluster>, rounds: usize) -> Vec<Pair> {
    (0..rounds)
        .map(|round| {
            let pair = Pair {
                email: Some(format!("copy{round}@twins.io")),
                phone: Some(format!("77{round:03}")),
            };
            let barrier = Arc::new(Barrier::new(CLIENTS));
            let threads: Vec<_> = (0..CLIENTS)
                .map(|client| {
                    let cluster = Arc::clone(cluster);
                    let barrier = Arc::clone(&barrier);
                    let pair = pair.clone();
                    thread::spawn(move || {
                        barrier.wait();
                        cluster.identify(client, &pair);
                    })
                })
                .collect();
            for t in threads {
                t.join().expect("a client thread");
            }
            pair
        })
        .collect()
}

#[derive(QueryableByName)]
struct Link {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    primary_id: i64,
}

/// Invariants 1–5, plus 6 for every successful exchange. Returns the violations found.
fn violations(conn: &mut TestConnection, exchanges: &[Exchange]) -> Vec<String> {
    let mut found: Vec<String> = check_invariants(conn)
        .into_iter()
        .map(|v| format!("invariant {}: {}", v.invariant, v.detail))
        .collect();

    let stored: BTreeSet<_> = stored_groups(conn).into_values().collect();
    let expected = expected_groups(exchanges.iter().map(|e| &e.pair));
    if stored != expected {
        let missing: Vec<_> = expected.difference(&stored).take(3).collect();
        let extra: Vec<_> = stored.difference(&expected).take(3).collect();
        found.push(format!(
            "invariant 5: stored customers differ from the oracle ({} vs {} customers); expected but missing {missing:?}; stored but unexpected {extra:?}",
            stored.len(),
            expected.len()
        ));
    }

    // Invariant 6: each answer names the customer the request ended up in and lists the
    // request's identifiers.
    let links: HashMap<i64, i64> = conn
        .load::<Link>(
            "SELECT id, COALESCE(linked_id, id) AS primary_id FROM contact WHERE deleted_at IS NULL",
        )
        .unwrap_or_default()
    .into_iter()
    .map(|l| (l.id, l.primary_id))
    .collect();
    let owner: HashMap<String, i64> = conn
        .load::<Owner>(
            "SELECT DISTINCT 'email:' || email AS value, COALESCE(linked_id, id) AS primary_id
               FROM contact WHERE deleted_at IS NULL AND email IS NOT NULL
             UNION
             SELECT DISTINCT 'phone:' || phone_number, COALESCE(linked_id, id)
               FROM contact WHERE deleted_at IS NULL AND phone_number IS NOT NULL",
        )
        .unwrap_or_default()
        .into_iter()
        .map(|o| (o.value, o.primary_id))
        .collect();
    for exchange in exchanges.iter().filter(|e| e.status == 200) {
        let contact = &exchange.body["contact"];
        let listed = |field: &str, value: &Option<String>| {
            value.as_ref().is_none_or(|v| {
                contact[field]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(v)))
            })
        };
        if !listed("emails", &exchange.pair.email) || !listed("phoneNumbers", &exchange.pair.phone)
        {
            found.push(format!(
                "invariant 6: {:?} answered {contact}",
                exchange.pair
            ));
        }
        // The primary answered is, by the end, in the same customer as the request's
        // identifiers (it may have been merged into an older one since).
        let answered = contact["primaryContactId"]
            .as_i64()
            .and_then(|id| links.get(&id));
        let key = match (&exchange.pair.email, &exchange.pair.phone) {
            (Some(email), _) => format!("email:{email}"),
            (None, Some(phone)) => format!("phone:{phone}"),
            (None, None) => continue,
        };
        let actual = owner.get(&key);
        if actual.is_none() || answered != actual {
            found.push(format!(
                "invariant 6: {:?} answered primary {} which is not in its customer",
                exchange.pair, contact["primaryContactId"]
            ));
        }
    }
    found
}

#[derive(QueryableByName)]
struct Owner {
    #[diesel(sql_type = Text)]
    value: String,
    #[diesel(sql_type = BigInt)]
    primary_id: i64,
}

fn count_rows(conn: &mut TestConnection, pair: &Pair) -> i64 {
    conn.number(&format!(
        "SELECT count(*) AS n FROM contact WHERE email = '{}' AND phone_number = '{}'",
        pair.email.as_deref().unwrap_or_default(),
        pair.phone.as_deref().unwrap_or_default()
    ))
}

#[test]
fn two_replicas_and_32_clients_keep_every_invariant() {
    stress(TestStore::postgres(), 80, 4);
}

/// Two processes on one SQLite file: it works (SQLite's write lock is per file, across
/// processes), and every invariant holds.
#[test]
fn two_processes_on_one_sqlite_file_keep_every_invariant() {
    stress(TestStore::sqlite(), 30, 2);
}

fn stress(db: TestStore, per_client: usize, rounds: usize) {
    let backend = if matches!(db, TestStore::Sqlite(_)) {
        "sqlite"
    } else {
        "postgres"
    };
    stress_on(Cluster::start(db, 2), backend, per_client, rounds);
}

/// The stress run on two replicas that read on a synchronous standby
/// (`database.read_url`): every invariant holds as it does with every read on the primary.
#[test]
fn two_replicas_reading_on_a_standby_keep_every_invariant() {
    let (primary, standby) = crate::resilience::replicated_pair("stress", &[]);
    let read_url = standby.url("identity");
    let cluster = Cluster::start_on(
        None,
        primary.url("identity"),
        &[("IDENTITY__DATABASE__READ_URL", read_url.as_str())],
        2,
    );
    for server in &cluster.servers {
        crate::resilience::wait_for("reads on the standby", Duration::from_secs(20), || {
            crate::resilience::metric(&cluster.agent, &server.base, "identity_db_standby_up", "")
                == 1.0
        });
    }
    let cluster = stress_on(cluster, "postgres, reads on a standby", 40, 2);
    // The standby did serve the reads it could.
    let on_standby: f64 = cluster
        .servers
        .iter()
        .map(|server| {
            crate::resilience::metric(
                &cluster.agent,
                &server.base,
                "identity_db_reads_total",
                "target=\"standby\"",
            )
        })
        .sum();
    assert!(on_standby > 0.0, "no read went to the standby");
}

/// Runs the stress load on `cluster` and checks every invariant; returns the cluster.
fn stress_on(cluster: Cluster, backend: &str, per_client: usize, rounds: usize) -> Arc<Cluster> {
    let seed = seed();
    println!("stress seed ({backend}): {seed} (replay with STRESS_SEED={seed})");
    let started = Instant::now();
    let cluster = Arc::new(cluster);

    random_load(&cluster, seed, per_client, "pool");
    opposite_merges(&cluster, rounds);
    let copies = identical_copies(&cluster, rounds);

    let exchanges = cluster.exchanges();
    let elapsed = started.elapsed();

    // Every problem is reported, not just the first, so a failure says which invariants broke.
    let mut problems = Vec::new();
    let failed: Vec<_> = exchanges.iter().filter(|e| e.status != 200).collect();
    if !failed.is_empty() {
        problems.push(format!(
            "invariant 7: {} of {} requests failed, e.g. {:?}",
            failed.len(),
            exchanges.len(),
            &failed[..failed.len().min(3)]
        ));
    }
    let mut conn = cluster.connect();
    for pair in &copies {
        let rows = count_rows(&mut conn, pair);
        if rows != 1 {
            problems.push(format!(
                "invariant 4: {CLIENTS} copies of {pair:?} made {rows} rows"
            ));
        }
    }
    problems.extend(violations(&mut conn, &exchanges));
    assert!(problems.is_empty(), "seed {seed}: {problems:#?}");
    println!(
        "stress ({backend}): {} requests, 2 replicas, {CLIENTS} clients, {:.1}s, {}",
        exchanges.len(),
        elapsed.as_secs_f64(),
        cluster.retries(),
    );
    cluster
}

#[test]
fn cutting_every_connection_mid_run_leaves_nothing_half_written() {
    let seed = seed();
    println!("chaos seed: {seed} (replay with STRESS_SEED={seed})");
    let cluster = Arc::new(Cluster::start(TestStore::postgres(), 2));
    let admin_url = TestDb::admin_url();
    let Some(TestStore::Postgres(db)) = &cluster.db else {
        unreachable!("the chaos test runs on PostgreSQL")
    };
    let name = db.name().to_owned();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let killer = thread::spawn({
        let stop = Arc::clone(&stop);
        move || {
            let mut admin = PgConnection::establish(&admin_url).expect("admin connection");
            let mut cuts = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                thread::sleep(Duration::from_millis(150));
                admin
                    .batch_execute(&format!(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                          WHERE datname = '{name}' AND pid <> pg_backend_pid()"
                    ))
                    .expect("terminate backends");
                cuts += 1;
            }
            cuts
        }
    });
    random_load(&cluster, seed, 50, "chaos");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let cuts = killer.join().expect("the killer thread");

    let exchanges = cluster.exchanges();
    let server_errors: Vec<_> = exchanges
        .iter()
        .filter(|e| e.status != 200 && e.status != 503)
        .take(5)
        .collect();
    assert!(
        server_errors.is_empty(),
        "seed {seed}: only 200 or 503 allowed: {server_errors:?}"
    );
    let unavailable: Vec<Pair> = exchanges
        .iter()
        .filter(|e| e.status == 503)
        .map(|e| e.pair.clone())
        .collect();

    // What failed either wrote nothing or everything: sending it again completes the
    // graph, which must then be exactly the oracle's.
    for pair in &unavailable {
        let again = cluster.identify(0, pair);
        assert_eq!(
            again.status, 200,
            "seed {seed}: replay of {pair:?}: {again:?}"
        );
    }
    let mut conn = cluster.connect();
    let found = violations(&mut conn, &cluster.exchanges());
    assert!(found.is_empty(), "seed {seed}: {found:#?}");
    println!(
        "chaos: {} requests, {cuts} cuts of every connection, {} answered 503, {}",
        exchanges.len(),
        unavailable.len(),
        cluster.retries(),
    );
}
