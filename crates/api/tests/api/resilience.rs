//! Keeps serving when the database hangs: a server of the test's own, frozen with SIGSTOP
//! while connections are open and busy, must cost every request at most the deadline (503
//! with `Retry-After`), and the service must serve again by itself once the server runs.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use identity_test_support::PrivateCluster;
use serde_json::json;

use crate::helpers::{agent, into_reply, Reply, ServerProcess};

/// `database.deadline_ms` in these tests.
const DEADLINE: Duration = Duration::from_secs(3);
/// What a client may see on top of the deadline: the watchdog's tick, the way back.
const SLACK: Duration = Duration::from_millis(900);

/// One request of a client and what came back.
#[derive(Debug)]
struct Exchange {
    sent: Instant,
    took: Duration,
    reply: Reply,
}

fn post(agent: &ureq::Agent, base: &str, body: &serde_json::Value) -> Exchange {
    let sent = Instant::now();
    let reply = into_reply(
        agent
            .post(format!("{base}/identify"))
            .header("Content-Type", "application/json")
            .send(body.to_string()),
    );
    Exchange {
        sent,
        took: sent.elapsed(),
        reply,
    }
}

/// How long after `since` a new customer was first answered 200, trying a new one every
/// 20 ms for at most `within`; `None` if none was.
fn first_write_after(
    agent: &ureq::Agent,
    base: &str,
    since: Instant,
    within: Duration,
    domain: &str,
) -> Option<Duration> {
    while since.elapsed() < within {
        let email = format!("probe{}@{domain}.test", since.elapsed().as_micros());
        if post(agent, base, &json!({ "email": email })).reply.status == 200 {
            return Some(since.elapsed());
        }
        thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Stops the client threads and takes what they recorded.
fn stop_clients<T>(
    stop: &AtomicBool,
    clients: Vec<thread::JoinHandle<()>>,
    recorded: &Mutex<Vec<T>>,
) -> Vec<T> {
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().expect("a client thread");
    }
    std::mem::take(&mut *recorded.lock().expect("not poisoned"))
}

fn get(agent: &ureq::Agent, base: &str, path: &str) -> Exchange {
    let sent = Instant::now();
    let reply = into_reply(agent.get(format!("{base}{path}")).call());
    Exchange {
        sent,
        took: sent.elapsed(),
        reply,
    }
}

/// Connections the service holds checked out now, from its metrics.
fn in_use(agent: &ureq::Agent, base: &str) -> Option<f64> {
    let text = agent
        .get(format!("{base}/metrics"))
        .call()
        .ok()?
        .body_mut()
        .read_to_string()
        .ok()?;
    text.lines()
        .find(|l| l.starts_with("identity_db_pool_connections{state=\"in_use\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[track_caller]
fn assert_unavailable_in_time(exchange: &Exchange, what: &str) {
    assert!(
        exchange.took <= DEADLINE + SLACK,
        "{what} took {:?}, more than the deadline {DEADLINE:?}: {:?}",
        exchange.took,
        exchange.reply
    );
    if exchange.reply.status != 200 {
        exchange.reply.assert_problem(503, "unavailable");
        assert!(
            exchange.reply.header("Retry-After").is_some(),
            "{what}: {:?}",
            exchange.reply
        );
    }
}

#[test]
fn a_frozen_database_costs_a_request_at_most_the_deadline_and_serving_resumes_by_itself() {
    let cluster = PrivateCluster::primary("frozen", &[]);
    let deadline_ms = DEADLINE.as_millis().to_string();
    let server = ServerProcess::start(
        &cluster.url("identity"),
        &[
            ("IDENTITY__DATABASE__DEADLINE_MS", &deadline_ms),
            ("IDENTITY__DATABASE__POOL_SIZE", "8"),
            ("IDENTITY__SERVER__WORKERS", "2"),
            ("IDENTITY__LOG__LEVEL", "warn"),
        ],
    );
    let base = server.base.clone();
    let http = agent();
    let seeded: Vec<serde_json::Value> = (0..20)
        .map(|i| json!({"email": format!("seed{i}@frozen.test"), "phoneNumber": format!("5550{i:03}")}))
        .collect();
    for body in &seeded {
        assert_eq!(post(&http, &base, body).reply.status, 200);
    }

    // 16 clients keep every connection busy: returning customers and new ones.
    let stop = Arc::new(AtomicBool::new(false));
    let exchanges = Arc::new(Mutex::new(Vec::new()));
    let counter = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..16)
        .map(|client| {
            let (stop, exchanges, counter, base, seeded) = (
                Arc::clone(&stop),
                Arc::clone(&exchanges),
                Arc::clone(&counter),
                base.clone(),
                seeded.clone(),
            );
            thread::spawn(move || {
                let http = agent();
                while !stop.load(Ordering::Relaxed) {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let body = if n % 2 == 0 {
                        seeded[n % seeded.len()].clone()
                    } else {
                        json!({"email": format!("new{client}-{n}@frozen.test")})
                    };
                    let exchange = post(&http, &base, &body);
                    exchanges.lock().expect("not poisoned").push(exchange);
                }
            })
        })
        .collect();

    thread::sleep(Duration::from_millis(1500));
    cluster.freeze();
    let frozen = Instant::now();
    // While frozen: the readiness probe says so in time, and every connection that waited
    // is given back (dropped), not left hanging.
    thread::sleep(Duration::from_millis(300));
    let probe = get(&http, &base, "/readyz");
    assert_eq!(probe.reply.status, 503, "{probe:?}");
    assert_unavailable_in_time(&probe, "/readyz");
    // An operator command keeps the same bound, and says why it gave up.
    let started = Instant::now();
    let command = std::process::Command::new(ServerProcess::BINARY)
        .arg("stats")
        .env("DATABASE_URL", cluster.url("identity"))
        .env("IDENTITY_CONFIG_DIR", "/nonexistent")
        .env("IDENTITY__DATABASE__DEADLINE_MS", &deadline_ms)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("the binary runs");
    let command_took = started.elapsed();
    let stderr = String::from_utf8_lossy(&command.stderr);
    assert!(!command.status.success(), "{stderr}");
    assert!(
        command_took <= DEADLINE + SLACK,
        "stats took {command_took:?}: {stderr}"
    );
    println!("identity-api stats on the frozen server: {command_took:?}, {stderr}");
    thread::sleep((DEADLINE * 2).saturating_sub(frozen.elapsed()));
    let held = in_use(&http, &base);
    let during: Vec<Exchange> = (0..2).map(|_| get(&http, &base, "/contacts/1")).collect();
    cluster.thaw();
    let thawed = Instant::now();

    // Serving again by itself: a new customer is answered 200.
    let recovered = first_write_after(&http, &base, thawed, Duration::from_secs(10), "frozen");
    let exchanges = stop_clients(&stop, clients, &exchanges);
    let hit: Vec<&Exchange> = exchanges
        .iter()
        .filter(|e| e.sent + e.took > frozen && e.sent < thawed)
        .collect();
    let unavailable = hit.iter().filter(|e| e.reply.status == 503).count();
    let slowest = hit.iter().map(|e| e.took).max().unwrap_or_default();
    println!(
        "frozen for {:?}: {} requests met the frozen server, {unavailable} answered 503, \
         the slowest in {slowest:?}; serving again {recovered:?} after the thaw; \
         connections in use after 2 deadlines: {held:?}",
        thawed - frozen,
        hit.len(),
    );
    for exchange in &hit {
        assert_unavailable_in_time(exchange, "a request while frozen");
    }
    for exchange in &during {
        assert_unavailable_in_time(exchange, "a read while frozen");
    }
    assert!(
        unavailable >= 16,
        "only {unavailable} requests were answered 503"
    );
    assert_eq!(held, Some(0.0), "connections still held by waiting threads");
    let recovered = recovered.expect("serving again within 10 s of the thaw");
    assert!(
        recovered <= Duration::from_secs(5),
        "serving again only after {recovered:?}"
    );
    for exchange in exchanges
        .iter()
        .filter(|e| e.sent > thawed + Duration::from_secs(5))
    {
        assert_eq!(exchange.reply.status, 200, "{exchange:?}");
    }
    assert!(get(&http, &base, "/readyz").reply.status == 200);
}

/// A primary and its synchronous streaming standby, each a server of the test's own.
/// `standby_settings` are extra server settings of the standby.
pub(crate) fn replicated_pair(
    name: &str,
    standby_settings: &[&str],
) -> (PrivateCluster, PrivateCluster) {
    let primary = PrivateCluster::primary(&format!("{name}-primary"), &[]);
    let standby = PrivateCluster::standby_of(&primary, "standby1", standby_settings);
    primary.psql(
        "postgres",
        "ALTER SYSTEM SET synchronous_standby_names = 'standby1'",
    );
    primary.psql("postgres", "SELECT pg_reload_conf()");
    let started = Instant::now();
    while primary.psql(
        "postgres",
        "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'",
    ) != "1"
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the standby never became synchronous"
        );
        thread::sleep(Duration::from_millis(50));
    }
    (primary, standby)
}

/// libpq's multi-host URL of a pair: the one that accepts writes.
fn multi_host_url(a: &PrivateCluster, b: &PrivateCluster, database: &str) -> String {
    format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/{database}?target_session_attrs=read-write",
        a.port(),
        b.port()
    )
}

#[test]
fn a_failover_under_load_loses_no_acknowledged_write_and_needs_no_restart() {
    let (primary, standby) = replicated_pair("failover", &[]);
    let url = multi_host_url(&primary, &standby, "identity");
    let deadline_ms = DEADLINE.as_millis().to_string();
    let server = ServerProcess::start(
        &url,
        &[
            ("IDENTITY__DATABASE__DEADLINE_MS", &deadline_ms),
            ("IDENTITY__DATABASE__POOL_SIZE", "8"),
            ("IDENTITY__SERVER__WORKERS", "2"),
            ("IDENTITY__LOG__LEVEL", "warn"),
        ],
    );
    let base = server.base.clone();

    // 16 clients write new customers, each also joining the previous one by phone (a new
    // secondary) now and then; every 200 is a write the service acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let exchanges = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..16)
        .map(|client| {
            let (stop, exchanges, base) = (Arc::clone(&stop), Arc::clone(&exchanges), base.clone());
            thread::spawn(move || {
                let http = agent();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let email = format!("c{client}-{n}@failover.test");
                    let body =
                        json!({"email": email, "phoneNumber": format!("7{client:02}{:06}", n / 3)});
                    let exchange = post(&http, &base, &body);
                    exchanges
                        .lock()
                        .expect("not poisoned")
                        .push((email, exchange));
                }
            })
        })
        .collect();

    thread::sleep(Duration::from_millis(2000));
    primary.crash();
    let crashed = Instant::now();
    standby.promote();
    let promoted = Instant::now();
    // Served again: the first write acknowledged after the promotion.
    let http = agent();
    let served = first_write_after(&http, &base, promoted, Duration::from_secs(20), "failover");
    thread::sleep(Duration::from_millis(1000));
    let exchanges = stop_clients(&stop, clients, &exchanges);
    let acknowledged: Vec<&String> = exchanges
        .iter()
        .filter(|(_, e)| e.reply.status == 200)
        .map(|(email, _)| email)
        .collect();
    let unavailable = exchanges
        .iter()
        .filter(|(_, e)| e.reply.status == 503)
        .count();
    for (_, exchange) in exchanges.iter() {
        match exchange.reply.status {
            200 => {}
            503 => {
                exchange.reply.assert_problem(503, "unavailable");
                assert!(
                    exchange.reply.header("Retry-After").is_some(),
                    "{exchange:?}"
                );
            }
            _ => panic!("neither 200 nor 503: {exchange:?}"),
        }
    }
    let stored: std::collections::HashSet<String> = standby
        .psql(
            "identity",
            "SELECT email FROM contact WHERE email IS NOT NULL",
        )
        .lines()
        .map(str::to_owned)
        .collect();
    let lost: Vec<&&String> = acknowledged
        .iter()
        .filter(|e| !stored.contains(**e))
        .collect();
    println!(
        "failover: {} writes acknowledged, {} lost, {unavailable} answered 503; promoted {:?} \
         after the crash, serving again {served:?} after the promotion",
        acknowledged.len(),
        lost.len(),
        promoted - crashed,
    );
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    assert!(
        acknowledged.len() > 100,
        "too little load: {}",
        acknowledged.len()
    );
    let served = served.expect("serving again within 20 s of the promotion");
    assert!(
        served <= Duration::from_secs(5),
        "serving again only after {served:?}"
    );
    let check = std::process::Command::new(ServerProcess::BINARY)
        .arg("check")
        .env("DATABASE_URL", &url)
        .env("IDENTITY_CONFIG_DIR", "/nonexistent")
        .env("IDENTITY__LOG__LEVEL", "warn")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("the binary runs");
    assert!(
        check.status.success(),
        "identity-api check: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

/// A metric's value in a `/metrics` text (the sum over its label sets matching `labels`).
pub(crate) fn metric(agent: &ureq::Agent, base: &str, name: &str, labels: &str) -> f64 {
    let text = agent
        .get(format!("{base}/metrics"))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .unwrap_or_default();
    text.lines()
        .filter(|l| {
            l.strip_prefix(name).is_some_and(|rest| {
                rest.starts_with(' ') || rest.starts_with(&format!("{{{labels}"))
            })
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Transactions committed in the `identity` database of a server so far. A backend reports
/// its counts about once a second while busy and up to 10 s after it went idle, so the
/// service's connections are ended first (a backend reports when it exits; the pool
/// replaces them).
fn commits(cluster: &PrivateCluster) -> i64 {
    cluster.psql(
        "postgres",
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = 'identity' AND pid <> pg_backend_pid()",
    );
    thread::sleep(Duration::from_millis(300));
    cluster
        .psql(
            "postgres",
            "SELECT xact_commit FROM pg_stat_database WHERE datname = 'identity'",
        )
        .parse()
        .expect("a count")
}

#[track_caller]
pub(crate) fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        thread::sleep(Duration::from_millis(50));
    }
    started.elapsed()
}

#[test]
fn reads_from_a_synchronous_standby_are_never_older_than_an_answer_given() {
    // The primary at PostgreSQL's defaults (synchronous_commit = on) plus a synchronous
    // standby: the service itself makes its commits wait for the standby to apply them.
    // The standby applies each commit 30 ms after the primary made it: a read there right
    // after an answer would see the state before it, were commits not waiting for the
    // apply (without remote_apply this test fails).
    let (primary, standby) = replicated_pair("replica", &["recovery_min_apply_delay=30ms"]);
    let env = [
        ("IDENTITY__DATABASE__READ_URL", standby.url("identity")),
        ("IDENTITY__DATABASE__POOL_SIZE", "6".to_owned()),
        ("IDENTITY__SERVER__WORKERS", "2".to_owned()),
        ("IDENTITY__LOG__LEVEL", "warn".to_owned()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let servers = [
        ServerProcess::start(&primary.url("identity"), &env),
        ServerProcess::start(&primary.url("identity"), &env),
    ];
    let http = agent();
    for server in &servers {
        wait_for("reads on the standby", Duration::from_secs(20), || {
            metric(&http, &server.base, "identity_db_standby_up", "") == 1.0
        });
    }

    // Hundreds of merges, each followed at once, on the other process, by a read of the
    // absorbed customer's email: the answer is never the customer before the merge.
    let stale = Arc::new(Mutex::new(Vec::new()));
    let bases: Vec<String> = servers.iter().map(|s| s.base.clone()).collect();
    let workers: Vec<_> = (0..4)
        .map(|worker| {
            let (bases, stale) = (bases.clone(), Arc::clone(&stale));
            thread::spawn(move || {
                let http = agent();
                for i in 0..60 {
                    let (writer, reader) = (&bases[i % 2], &bases[(i + 1) % 2]);
                    let old = json!({"email": format!("old{worker}-{i}@replica.test"), "phoneNumber": format!("31{worker}{i:04}")});
                    let new = json!({"email": format!("new{worker}-{i}@replica.test"), "phoneNumber": format!("32{worker}{i:04}")});
                    let survivor = post(&http, writer, &old).reply.body["contact"]["primaryContactId"].clone();
                    post(&http, writer, &new);
                    let merged = post(&http, writer, &json!({"email": old["email"], "phoneNumber": new["phoneNumber"]}));
                    assert_eq!(merged.reply.status, 200, "{merged:?}");
                    assert_eq!(merged.reply.body["contact"]["primaryContactId"], survivor);
                    let read = post(&http, reader, &json!({"email": new["email"]}));
                    assert_eq!(read.reply.status, 200, "{read:?}");
                    if read.reply.body["contact"]["primaryContactId"] != survivor {
                        stale.lock().expect("not poisoned").push(read.reply.body.clone());
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("a worker");
    }
    let stale = stale.lock().expect("not poisoned");
    assert!(
        stale.is_empty(),
        "{} reads answered the customer before its merge: {:?}",
        stale.len(),
        stale.first()
    );
    let standby_reads: f64 = servers
        .iter()
        .map(|s| {
            metric(
                &http,
                &s.base,
                "identity_db_reads_total",
                "target=\"standby\"",
            )
        })
        .sum();
    assert!(
        standby_reads >= 240.0,
        "only {standby_reads} reads on the standby"
    );

    // Returning customers: the standby runs most of the database's transactions.
    let returning: Vec<serde_json::Value> = (0..40)
        .map(|i| json!({"email": format!("old{}-{i}@replica.test", i % 4)}))
        .collect();
    let (on_primary, on_standby) = (commits(&primary), commits(&standby));
    // Ending the standby's connections made each process's next read there fail (it ran
    // on the primary) and the standby be set aside until its next check.
    for base in &bases {
        assert_eq!(post(&http, base, &returning[0]).reply.status, 200);
        wait_for(
            "reads on the standby again",
            Duration::from_secs(10),
            || metric(&http, base, "identity_db_standby_up", "") == 1.0,
        );
    }
    let clients: Vec<_> = (0..8)
        .map(|client| {
            let (base, returning) = (bases[client % 2].clone(), returning.clone());
            thread::spawn(move || {
                let http = agent();
                for n in 0..200 {
                    let reply =
                        post(&http, &base, &returning[(client * 7 + n) % returning.len()]).reply;
                    assert_eq!(reply.status, 200, "{reply:?}");
                }
            })
        })
        .collect();
    for client in clients {
        client.join().expect("a client");
    }
    let primary_xacts = commits(&primary) - on_primary;
    let standby_xacts = commits(&standby) - on_standby;
    let share = standby_xacts as f64 / (primary_xacts + standby_xacts).max(1) as f64;
    println!(
        "returning customers: {standby_xacts} transactions on the standby, {primary_xacts} on \
         the primary ({:.1}% on the standby)",
        share * 100.0
    );
    assert!(
        share >= 0.8,
        "only {:.1}% of transactions on the standby",
        share * 100.0
    );

    // A standby that goes away is skipped: reads fall back to the primary, and go back to
    // the standby once it is back.
    let fallbacks_before = metric(&http, &bases[0], "identity_db_read_fallbacks_total", "");
    standby.stop();
    let known = &returning[0];
    let down_for = Instant::now();
    for _ in 0..10 {
        let reply = post(&http, &bases[0], known).reply;
        assert_eq!(reply.status, 200, "{reply:?}");
    }
    assert!(
        metric(&http, &bases[0], "identity_db_read_fallbacks_total", "") >= fallbacks_before + 10.0,
        "reads did not fall back to the primary"
    );
    assert!(
        down_for.elapsed() < DEADLINE * 2,
        "falling back took {:?}",
        down_for.elapsed()
    );
    standby.restart(&[]);
    let back = wait_for(
        "reads on the standby again",
        Duration::from_secs(20),
        || metric(&http, &bases[0], "identity_db_standby_up", "") == 1.0,
    );
    let standby_reads = metric(
        &http,
        &bases[0],
        "identity_db_reads_total",
        "target=\"standby\"",
    );
    assert_eq!(post(&http, &bases[0], known).reply.status, 200);
    assert!(
        metric(
            &http,
            &bases[0],
            "identity_db_reads_total",
            "target=\"standby\""
        ) > standby_reads
    );
    println!("reads back on the standby {back:?} after it restarted");
    assert!(servers[0]
        .log_text()
        .contains("the standby cannot serve reads"));
}

#[test]
fn a_read_url_without_a_synchronous_standby_is_refused_at_start_up() {
    let primary = PrivateCluster::primary("nosync", &[]);
    let output = std::process::Command::new(ServerProcess::BINARY)
        .env("DATABASE_URL", primary.url("identity"))
        .env("IDENTITY__DATABASE__READ_URL", primary.url("identity"))
        .env("IDENTITY_CONFIG_DIR", "/nonexistent")
        .env("PORT", "0")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("synchronous_standby_names"), "{stderr}");
}
