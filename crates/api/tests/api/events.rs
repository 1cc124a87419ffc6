//! History, erasure and change events over HTTP, and the dispatcher against a test webhook.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use identity_api::dispatcher::{sign, Dispatcher, SIGNATURE_HEADER};
use identity_test_support::{check_invariants, TestConnection};
use serde_json::{json, Value};

use crate::helpers::{agent, ids, TestApp};

const TOKEN: &str = "s3cret-admin-token";
const SECRET: &str = "webhook-signing-key";

fn erasing_app() -> TestApp {
    TestApp::spawn_with(|settings| settings.admin.erasure_enabled = true)
        .with_key(TOKEN, "identify,read,admin")
}

fn delete(app: &TestApp, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = agent().delete(format!("{}{path}", app.address));
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let mut response = request.call().expect("answers");
    let status = response.status().as_u16();
    (
        status,
        response.body_mut().read_json().unwrap_or(Value::Null),
    )
}

#[test]
fn the_history_of_the_george_biffsucks_merge_lists_both_creations_and_the_demotion() {
    let app = TestApp::spawn();
    let send = |body: Value, id: &str| {
        agent()
            .post(format!("{}/identify", app.address))
            .header("Content-Type", "application/json")
            .header("X-Request-Id", id)
            .send(body.to_string())
            .expect("answers")
            .body_mut()
            .read_json::<Value>()
            .expect("JSON")
    };
    let george = send(
        json!({"email": "george@hillvalley.edu", "phoneNumber": "919191"}),
        "r-george",
    );
    let biff = send(
        json!({"email": "biffsucks@hillvalley.edu", "phoneNumber": "717171"}),
        "r-biff",
    );
    send(
        json!({"email": "george@hillvalley.edu", "phoneNumber": "717171"}),
        "r-merge",
    );
    let george_id = george["contact"]["primaryContactId"].as_i64().expect("id");
    let biff_id = biff["contact"]["primaryContactId"].as_i64().expect("id");

    let reply = app.get(&format!("/contacts/{biff_id}/history"));
    assert_eq!(reply.status, 200, "{reply:?}");
    let events: Vec<(String, i64, String)> = reply.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap_or_default().to_owned(),
                e["contactId"].as_i64().unwrap_or_default(),
                e["cause"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let kinds: Vec<(&str, i64)> = events.iter().map(|(k, id, _)| (k.as_str(), *id)).collect();
    assert_eq!(
        kinds,
        [
            ("contact.created", george_id),
            ("contact.created", biff_id),
            ("primary.demoted", biff_id),
        ]
    );
    // Each cause is the service's own id of its request, never the caller's X-Request-Id.
    let causes: std::collections::BTreeSet<&str> =
        events.iter().map(|(_, _, c)| c.as_str()).collect();
    assert_eq!(causes.len(), 3, "{events:?}");
    for cause in causes {
        let id = cause.strip_prefix("request:").unwrap_or_default();
        assert!(
            id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{cause}"
        );
    }
    let demotion = &reply.body["events"][2];
    assert_eq!(
        demotion["before"],
        json!({"linkPrecedence": "primary", "linkedId": null})
    );
    assert_eq!(
        demotion["after"],
        json!({"linkPrecedence": "secondary", "linkedId": george_id})
    );
    app.get("/contacts/999999/history")
        .assert_problem(404, "not-found");
}

#[test]
fn a_caller_cannot_write_another_cause_into_the_history() {
    let app = TestApp::spawn();
    let mut causes = Vec::new();
    for (id, email) in [
        ("import", "doc@hillvalley.edu"),
        ("erasure:1", "marty@hillvalley.edu"),
    ] {
        let reply: Value = agent()
            .post(format!("{}/identify", app.address))
            .header("Content-Type", "application/json")
            .header("X-Request-Id", id)
            .send(json!({"email": email}).to_string())
            .expect("answers")
            .body_mut()
            .read_json()
            .expect("JSON");
        let contact = reply["contact"]["primaryContactId"].as_i64().expect("id");
        let history = app.get(&format!("/contacts/{contact}/history"));
        assert_eq!(history.status, 200, "{history:?}");
        causes.extend(
            history.body["events"]
                .as_array()
                .expect("events")
                .iter()
                .map(|e| e["cause"].as_str().unwrap_or_default().to_owned()),
        );
    }
    assert_eq!(causes.len(), 2);
    for cause in &causes {
        assert!(cause.starts_with("request:"), "{cause}");
        assert!(
            !cause.contains("import") && !cause.contains("erasure"),
            "the caller's id was stored: {cause}"
        );
    }
}

#[test]
fn erasure_needs_the_token_and_leaves_two_correct_customers_and_no_trace() {
    let disabled = TestApp::spawn();
    disabled.identify_ok(json!({"email": "doc@hillvalley.edu"}));
    let (status, body) = delete(&disabled, "/contacts/1", Some(TOKEN));
    assert_eq!(
        (status, body["type"].clone()),
        (403, json!("/problems/forbidden"))
    );

    let app = erasing_app();
    let say =
        |email: &str, phone: &str| app.identify_ok(json!({"email": email, "phoneNumber": phone}));
    say("doc@hillvalley.edu", "5550101");
    say("marty@hillvalley.edu", "5550101");
    say("marty@hillvalley.edu", "5550202");
    say("jennifer@hillvalley.edu", "5550202");
    say("biff@hillvalley.edu", "5550202");
    let rows = app.rows();
    let bridge = rows
        .iter()
        .find(|r| {
            r.phone_number.as_deref() == Some("5550202")
                && r.email.as_deref() == Some("marty@hillvalley.edu")
        })
        .expect("the bridge")
        .id;

    assert_eq!(delete(&app, &format!("/contacts/{bridge}"), None).0, 401);
    assert_eq!(
        delete(&app, &format!("/contacts/{bridge}"), Some("wrong")).0,
        401
    );
    assert_eq!(app.rows(), rows, "refused erasures change nothing");

    let (status, erased) = delete(&app, &format!("/contacts/{bridge}"), Some(TOKEN));
    assert_eq!(status, 200, "{erased}");
    assert_eq!(erased["erasedContactIds"], json!([bridge]));
    let doc = app.identify_ok(json!({"email": "doc@hillvalley.edu"}));
    let jennifer = app.identify_ok(json!({"email": "jennifer@hillvalley.edu"}));
    assert_ne!(doc["primaryContactId"], jennifer["primaryContactId"]);
    assert_eq!(
        doc["emails"],
        json!(["doc@hillvalley.edu", "marty@hillvalley.edu"])
    );
    assert_eq!(
        jennifer["emails"],
        json!(["jennifer@hillvalley.edu", "biff@hillvalley.edu"])
    );
    let mut conn = TestConnection::from(app.db.connect());
    assert!(check_invariants(&mut conn).is_empty());
    app.get(&format!("/contacts/{bridge}"))
        .assert_problem(404, "not-found");

    // Erase jennifer's whole customer: her email and phone must be nowhere afterwards.
    let (status, _) = delete(
        &app,
        &format!("/customers/{}", jennifer["primaryContactId"]),
        Some(TOKEN),
    );
    assert_eq!(status, 200);
    let rows_before = app.rows();
    let (status, conflict) = delete(
        &app,
        &format!("/customers/{}", doc["secondaryContactIds"][0]),
        Some(TOKEN),
    );
    assert_eq!(
        status, 409,
        "a secondary's id names no customer: {conflict}"
    );
    assert_eq!(conflict["type"], "/problems/conflict");
    let detail = conflict["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(&format!("primary contact is {}", doc["primaryContactId"])),
        "the answer names the customer it belongs to: {detail}"
    );
    assert_eq!(app.rows(), rows_before, "nothing erased");
    for secret in ["jennifer", "biff", "5550202"] {
        let found = conn.number(&format!(
            "SELECT (SELECT count(*) FROM contact WHERE coalesce(email, '') || coalesce(phone_number, '') LIKE '%{secret}%')
                  + (SELECT count(*) FROM contact_event WHERE coalesce(before, '') || coalesce(after, '') || cause LIKE '%{secret}%')
                  + (SELECT count(*) FROM outbox WHERE payload || coalesce(last_error, '') LIKE '%{secret}%') AS n"
        ));
        assert_eq!(found, 0, "{secret} is still in the database");
    }
    assert!(check_invariants(&mut conn).is_empty());
}

/// A webhook for the tests: records every delivery; answers 500 to the first `failures`
/// requests; notes any event that arrives while another delivery of it is in flight.
struct Receiver {
    url: String,
    received: Arc<Mutex<Vec<(Value, String, String)>>>,
    overlaps: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    fn start(failures: usize, delay: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
        let url = format!("http://{}/hook", listener.local_addr().expect("an address"));
        listener.set_nonblocking(true).expect("non-blocking");
        let received = Arc::new(Mutex::new(Vec::new()));
        let overlaps = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let in_flight = Arc::new(Mutex::new(BTreeSet::new()));
        let remaining_failures = Arc::new(AtomicUsize::new(failures));
        {
            let (received, overlaps, stop) = (received.clone(), overlaps.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Ok((stream, _)) = listener.accept() else {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    };
                    let (received, overlaps, in_flight, remaining) = (
                        received.clone(),
                        overlaps.clone(),
                        in_flight.clone(),
                        remaining_failures.clone(),
                    );
                    std::thread::spawn(move || {
                        handle(stream, &received, &overlaps, &in_flight, &remaining, delay)
                    });
                }
            });
        }
        Self {
            url,
            received,
            overlaps,
            stop,
        }
    }

    fn deliveries(&self) -> Vec<(Value, String, String)> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn handle(
    stream: std::net::TcpStream,
    received: &Mutex<Vec<(Value, String, String)>>,
    overlaps: &AtomicUsize,
    in_flight: &Mutex<BTreeSet<i64>>,
    remaining_failures: &AtomicUsize,
    delay: Duration,
) {
    let _ = stream.set_nonblocking(false);
    let mut reader = BufReader::new(stream);
    let mut length = 0;
    let mut signature = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with(&SIGNATURE_HEADER.to_ascii_lowercase()) {
            signature = line
                .split_once(':')
                .map(|(_, v)| v.trim().to_owned())
                .unwrap_or_default();
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    let text = String::from_utf8_lossy(&body).into_owned();
    let event: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let id = event["id"].as_i64().unwrap_or(-1);
    let fresh = in_flight.lock().map(|mut f| f.insert(id)).unwrap_or(true);
    if !fresh {
        overlaps.fetch_add(1, Ordering::Relaxed);
    }
    std::thread::sleep(delay);
    let fail = remaining_failures
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if !fail {
        if let Ok(mut r) = received.lock() {
            r.push((event, signature, text));
        }
    }
    if let Ok(mut f) = in_flight.lock() {
        f.remove(&id);
    }
    let status = if fail {
        "500 Internal Server Error"
    } else {
        "200 OK"
    };
    let mut stream = reader.into_inner();
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    );
}

/// Events to `url`, polled every 20 ms, a delivery given 2 s, retried after at most 1 s.
fn event_settings(url: &str) -> identity_api::settings::EventSettings {
    crate::helpers::settings_from_env(&[
        ("IDENTITY__EVENTS__WEBHOOK_URL", url),
        ("IDENTITY__EVENTS__SECRET", SECRET),
        ("IDENTITY__EVENTS__POLL_INTERVAL_MS", "20"),
        ("IDENTITY__EVENTS__REQUEST_TIMEOUT_MS", "2000"),
        ("IDENTITY__EVENTS__MAX_BACKOFF_SECS", "1"),
    ])
    .events
}

/// The dispatcher of these settings' webhook.
fn dispatcher(
    outbox: &Arc<dyn identity_persistence::Outbox>,
    events: &identity_api::settings::EventSettings,
) -> Dispatcher {
    let webhook = events.webhook.as_ref().expect("a webhook");
    Dispatcher::new(Arc::clone(outbox), webhook, events)
}

fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn events_reach_the_webhook_signed_in_order_even_through_three_failures() {
    let receiver = Receiver::start(3, Duration::ZERO);
    let app = TestApp::spawn_with(|settings| {
        settings.events = event_settings(&receiver.url);
        settings.admin.erasure_enabled = true;
    })
    .with_key(TOKEN, "identify,read,admin");
    app.identify_ok(json!({"email": "george@hillvalley.edu", "phoneNumber": "919191"}));
    app.identify_ok(json!({"email": "biffsucks@hillvalley.edu", "phoneNumber": "717171"}));
    let merged =
        app.identify_ok(json!({"email": "george@hillvalley.edu", "phoneNumber": "717171"}));
    app.identify_ok(json!({"email": "lorraine@hillvalley.edu", "phoneNumber": "123456"}));
    let secondary = merged["secondaryContactIds"][0].as_i64().expect("id");
    let (status, _) = delete(&app, &format!("/contacts/{secondary}"), Some(TOKEN));
    assert_eq!(status, 200);

    let mut conn = TestConnection::from(app.db.connect());
    let total = conn.number("SELECT count(*) AS n FROM outbox");
    wait_for("every event", || {
        receiver.deliveries().len() as i64 >= total
    });
    let deliveries = receiver.deliveries();
    assert_eq!(deliveries.len() as i64, total, "each event once");
    for (_, signature, body) in &deliveries {
        assert_eq!(
            signature,
            &sign(SECRET.as_bytes(), body.as_bytes()),
            "signed"
        );
    }
    let types: Vec<&str> = deliveries
        .iter()
        .filter_map(|(e, _, _)| e["type"].as_str())
        .collect();
    for expected in [
        "customer.created",
        "customer.merged",
        "contact.erased",
        "customer.updated",
    ] {
        assert!(types.contains(&expected), "{expected} in {types:?}");
    }
    // In order per customer.
    let mut last: BTreeMap<i64, i64> = BTreeMap::new();
    for (event, _, _) in &deliveries {
        let customer = event["customerId"].as_i64().expect("customerId");
        let id = event["id"].as_i64().expect("id");
        if let Some(previous) = last.insert(customer, id) {
            assert!(
                previous < id,
                "customer {customer}: event {id} after {previous}"
            );
        }
    }
    // The receiver answers before the dispatcher records the delivery.
    wait_for("every event marked delivered", || {
        TestConnection::from(app.db.connect())
            .number("SELECT count(*) AS n FROM outbox WHERE delivered_at IS NULL")
            == 0
    });
    assert!(
        conn.number("SELECT CAST(max(attempts) AS BIGINT) AS n FROM outbox") >= 2,
        "the failures were retried"
    );
}

#[test]
fn two_dispatchers_never_deliver_one_event_at_the_same_time() {
    let receiver = Receiver::start(0, Duration::from_millis(30));
    let app = TestApp::spawn();
    for i in 0..40 {
        app.identify_ok(
            json!({"email": format!("c{i}@hillvalley.edu"), "phoneNumber": format!("5{i:04}7")}),
        );
    }
    let settings = event_settings(&receiver.url);
    let store =
        identity_persistence::open(&crate::helpers::test_settings(app.db.url()).store_settings())
            .expect("store");
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            dispatcher(&store.outbox, &settings)
                .spawn(Arc::clone(&stop))
                .expect("a dispatcher")
        })
        .collect();
    wait_for("40 events", || receiver.deliveries().len() >= 40);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let ids: Vec<i64> = receiver
        .deliveries()
        .iter()
        .filter_map(|(e, _, _)| e["id"].as_i64())
        .collect();
    let distinct: BTreeSet<i64> = ids.iter().copied().collect();
    assert_eq!(
        ids.len(),
        distinct.len(),
        "no event delivered twice: {ids:?}"
    );
    assert_eq!(receiver.overlaps.load(Ordering::Relaxed), 0);
}

/// A webhook that answers `/hook/<status>` with that redirect status pointing at
/// `/elsewhere`, and records the method of every request that reaches any other path.
struct Redirector {
    base: String,
    elsewhere: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Redirector {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
        let base = format!("http://{}", listener.local_addr().expect("an address"));
        listener.set_nonblocking(true).expect("non-blocking");
        let elsewhere = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (elsewhere, stop) = (elsewhere.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Ok((stream, _)) = listener.accept() else {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    };
                    let _ = stream.set_nonblocking(false);
                    let mut reader = BufReader::new(stream);
                    let mut request_line = String::new();
                    let _ = reader.read_line(&mut request_line);
                    let mut length = 0;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; length];
                    let _ = reader.read_exact(&mut body);
                    let mut parts = request_line.split_whitespace();
                    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                    let answer = match path.strip_prefix("/hook/") {
                        Some(status) => format!(
                            "HTTP/1.1 {status} Redirect\r\nlocation: /elsewhere\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        ),
                        None => {
                            if let Ok(mut e) = elsewhere.lock() {
                                e.push(format!("{method} {path}"));
                            }
                            "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                                .to_owned()
                        }
                    };
                    let _ = reader.into_inner().write_all(answer.as_bytes());
                }
            });
        }
        Self {
            base,
            elsewhere,
            stop,
        }
    }
}

impl Drop for Redirector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn a_webhook_that_redirects_gets_no_delivery_and_its_target_nothing() {
    let redirector = Redirector::start();
    let app = TestApp::spawn();
    let statuses = [301, 302, 303, 307, 308];
    for i in 0..statuses.len() {
        app.identify_ok(json!({"email": format!("r{i}@hillvalley.edu")}));
    }
    let store =
        identity_persistence::open(&crate::helpers::test_settings(app.db.url()).store_settings())
            .expect("store");
    for status in statuses {
        let mut settings = event_settings(&format!("{}/hook/{status}", redirector.base));
        if let Some(webhook) = settings.webhook.as_mut() {
            webhook.batch_size = std::num::NonZeroUsize::MIN;
        }
        let handled = dispatcher(&store.outbox, &settings).run_once();
        assert_eq!(handled, 1, "one event tried against {status}");
    }
    let mut conn = TestConnection::from(app.db.connect());
    assert_eq!(
        conn.number("SELECT count(*) AS n FROM outbox WHERE delivered_at IS NOT NULL"),
        0,
        "an event answered with a redirect is not delivered"
    );
    assert_eq!(
        conn.number(
            "SELECT count(*) AS n FROM outbox WHERE attempts = 1 AND last_error IS NOT NULL"
        ),
        statuses.len() as i64,
        "each redirect is a failed attempt, to be retried"
    );
    let elsewhere = redirector
        .elsewhere
        .lock()
        .map(|e| e.clone())
        .unwrap_or_default();
    assert!(
        elsewhere.is_empty(),
        "the redirect target was called: {elsewhere:?}"
    );
}

/// The review's case: george and biffsucks joined by george@ with biffsucks' phone (no row
/// created), biff sharing biffsucks' phone. Erasing biff keeps george's customer whole;
/// erasing the whole customer leaves no copy of the joining request either.
#[test]
fn an_erasure_does_not_undo_a_merge() {
    let app = erasing_app();
    let george =
        app.identify_ok(json!({"email": "george@hillvalley.edu", "phoneNumber": "919191"}));
    app.identify_ok(json!({"email": "biffsucks@hillvalley.edu", "phoneNumber": "717171"}));
    let biff = app.identify_ok(json!({"email": "biff@hillvalley.edu", "phoneNumber": "717171"}));
    let merged =
        app.identify_ok(json!({"email": "george@hillvalley.edu", "phoneNumber": "717171"}));
    assert_eq!(app.rows().len(), 3, "the merge created no row");
    let george_id = george["primaryContactId"].as_i64().expect("id");
    let biff_id = *ids(&biff["secondaryContactIds"]).last().expect("biff");
    assert_eq!(merged["primaryContactId"].as_i64(), Some(george_id));

    let (status, _) = delete(&app, &format!("/contacts/{biff_id}"), Some(TOKEN));
    assert_eq!(status, 200);
    let biffsucks = app.get("/contacts/2");
    assert_eq!(biffsucks.status, 200, "{biffsucks:?}");
    assert_eq!(
        biffsucks.body["contact"]["primaryContactId"].as_i64(),
        Some(george_id),
        "biffsucks is still in george's customer: {biffsucks:?}"
    );
    assert_eq!(
        biffsucks.body["contact"]["emails"],
        json!(["george@hillvalley.edu", "biffsucks@hillvalley.edu"])
    );

    let (status, _) = delete(&app, &format!("/customers/{george_id}"), Some(TOKEN));
    assert_eq!(status, 200);
    let mut conn = TestConnection::from(app.db.connect());
    assert_eq!(conn.number("SELECT count(*) AS n FROM link_evidence"), 0);
    assert!(check_invariants(&mut conn).is_empty());
}

/// A webhook that keeps refusing an event: after events.max_attempts the event is given up
/// on, the customer's later events go out, an operator lists it and queues it again.
#[test]
fn an_event_that_keeps_failing_is_given_up_on_and_holds_nothing_back() {
    let receiver = Receiver::start(3, Duration::ZERO);
    let app = TestApp::spawn_with(|settings| {
        settings.events = event_settings(&receiver.url);
        settings.events.max_attempts = std::num::NonZeroU32::new(3).expect("positive");
    });
    app.identify_ok(json!({"email": "george@hillvalley.edu", "phoneNumber": "919191"}));
    wait_for("the first event given up on", || {
        TestConnection::from(app.db.connect())
            .number("SELECT count(*) AS n FROM outbox WHERE dead_at IS NOT NULL")
            == 1
    });
    app.identify_ok(json!({"email": "george@x.io", "phoneNumber": "919191"}));
    wait_for("the later event delivered", || {
        receiver.deliveries().len() == 1
    });
    assert_eq!(receiver.deliveries()[0].0["type"], "customer.updated");

    let cli = |args: &[&str]| {
        let output = crate::helpers::run_cli(app.db.url(), args);
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let listed = cli(&["events", "list"]);
    assert!(
        listed.contains("customer.created") && listed.contains("3 attempts"),
        "{listed}"
    );
    assert!(listed.contains("the webhook answered 500"), "{listed}");
    assert!(cli(&["events", "retry", "--all"]).contains("queued 1 events"));
    wait_for("the retried event delivered", || {
        receiver.deliveries().len() == 2
    });
    assert_eq!(receiver.deliveries()[1].0["type"], "customer.created");
}

/// A merge absorbs a customer whose events are not delivered yet: they go out before the
/// merge's own event, under the customer that absorbed them.
#[test]
fn an_absorbed_customers_pending_events_go_out_before_the_merge() {
    let app = TestApp::spawn();
    let george =
        app.identify_ok(json!({"email": "george@hillvalley.edu", "phoneNumber": "919191"}));
    app.identify_ok(json!({"email": "biffsucks@hillvalley.edu", "phoneNumber": "717171"}));
    app.identify_ok(json!({"email": "george@hillvalley.edu", "phoneNumber": "717171"}));
    let george_id = george["primaryContactId"].as_i64().expect("id");
    let mut conn = TestConnection::from(app.db.connect());
    assert_eq!(
        conn.number(&format!(
            "SELECT count(*) AS n FROM outbox WHERE customer_id <> {george_id}"
        )),
        0,
        "every pending event is in the survivor's queue"
    );
    assert_eq!(
        conn.number("SELECT max(id) AS n FROM outbox"),
        conn.number("SELECT id AS n FROM outbox WHERE kind = 'customer.merged'"),
        "the merge's event comes last"
    );
}

/// Delivered and dead events are deleted after events.retention_hours; undelivered ones are
/// given up on after events.max_age_hours: with no webhook the outbox stays bounded.
#[test]
fn the_outbox_is_pruned_after_its_retention() {
    let db = identity_test_support::TestDb::new();
    let store =
        identity_persistence::open(&crate::helpers::test_settings(db.url()).store_settings())
            .expect("the store opens");
    let mut conn = TestConnection::from(db.connect());
    conn.execute(
        "INSERT INTO outbox (customer_id, kind, payload, created_at, delivered_at) VALUES
           (1, 'customer.created', '{}', now() - interval '10 days', now() - interval '10 days'),
           (2, 'customer.created', '{}', now() - interval '4 days', NULL),
           (3, 'customer.created', '{}', now() - interval '1 hour', NULL)",
    )
    .expect("old events");
    let (given_up, deleted) = store
        .outbox
        .expire(
            Duration::from_secs(72 * 3600),
            Duration::from_secs(168 * 3600),
        )
        .expect("expired");
    assert_eq!((given_up, deleted), (1, 1));
    assert_eq!(
        conn.number(
            "SELECT count(*) AS n FROM outbox WHERE dead_at IS NOT NULL AND customer_id = 2"
        ),
        1
    );
    assert_eq!(conn.number("SELECT count(*) AS n FROM outbox"), 2);
}
