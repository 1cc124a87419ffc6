//! The support console in a real browser: headless Chromium driven through chromedriver
//! (WebDriver). Finds a customer, counts its drawn contacts, asks why two of them are one
//! customer, unlinks a shared phone and sees two customers, links two customers by hand
//! (the screenshot: the link drawn and named in the why-chain) and undoes it from its edge.
//!
//! Needs Chromium and its chromedriver: Debian's `chromium` and `chromium-driver` (`.ci/run`
//! installs them), or any other pair named by `CHROMIUM` and `CHROMEDRIVER`. Without them
//! the test says so and passes, except under CI (`CI` set), where it fails. Set
//! `IDENTITY_CONSOLE_SCREENSHOT=<path>` to keep the screenshot (the README's is
//! `docs/console.png`).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::helpers::{agent, TestApp};

const KEY: &str = "idk_console_test_operator";

/// The program named by `variable`, else Debian's.
fn program(variable: &str, debian: &str) -> PathBuf {
    std::env::var_os(variable).map_or_else(|| PathBuf::from(debian), PathBuf::from)
}

/// chromedriver on a free loopback port; killed when dropped.
struct Driver {
    child: Child,
    url: String,
    chromium: PathBuf,
}

impl Driver {
    /// `None` when the browser is not installed here (and this is not CI).
    fn start() -> Option<Self> {
        let (chromedriver, chromium) = (
            program("CHROMEDRIVER", "/usr/bin/chromedriver"),
            program("CHROMIUM", "/usr/bin/chromium"),
        );
        if !chromedriver.exists() || !chromium.exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run the browser test: install chromium and chromium-driver"
            );
            eprintln!(
                "skipping the browser test: {} or {} is missing \
                 (apt-get install chromium chromium-driver)",
                chromedriver.display(),
                chromium.display()
            );
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            chromium,
        };
        let started = Instant::now();
        while !agent()
            .get(format!("{}/status", driver.url))
            .call()
            .is_ok_and(|r| r.status() == 200)
        {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not come up"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(driver)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A headless Chromium session: no GPU, no sandbox (CI runs as root), no background
/// traffic, a fixed window so that screenshots are comparable.
async fn browser(driver: &Driver) -> Client {
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": driver.chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-extensions",
                "--no-first-run", "--window-size=1440,1500", "--force-device-scale-factor=1",
            ],
        },
    });
    let Value::Object(capabilities) = capabilities else {
        unreachable!("an object literal");
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a browser session")
}

/// Waits until `script` (the body of a function) returns true in the page.
async fn until(client: &Client, what: &str, script: &str) {
    let started = Instant::now();
    loop {
        let done = client
            .execute(script, vec![])
            .await
            .expect("the script runs");
        if done == Value::Bool(true) {
            return;
        }
        let status = client
            .execute(
                "return document.getElementById('status').textContent",
                vec![],
            )
            .await
            .unwrap_or_default();
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}; status line: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Picks contacts in the picture with the keyboard alone (Enter on each), as for a
/// why-chain.
async fn pick_with_keyboard(client: &Client, ids: [i64; 2]) {
    for id in ids {
        press(client, &contact_node(client, id).await, Key::Enter).await;
    }
}

/// Clicks the element with this id.
async fn click(client: &Client, id: &str) {
    let element = client
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("no #{id}: {e}"));
    element
        .click()
        .await
        .unwrap_or_else(|e| panic!("#{id} could not be clicked: {e}"));
}

/// Types `text` into the field with this id.
async fn type_into(client: &Client, id: &str, text: &str) {
    let field = client
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("no #{id}: {e}"));
    field
        .send_keys(text)
        .await
        .unwrap_or_else(|e| panic!("cannot type into #{id}: {e}"));
}

async fn count(client: &Client, selector: &str) -> usize {
    client
        .find_all(Locator::Css(selector))
        .await
        .expect("the query runs")
        .len()
}

async fn contact_node(client: &Client, id: i64) -> Element {
    client
        .find(Locator::Css(&format!("g.contact[data-contact-id='{id}']")))
        .await
        .expect("the contact is drawn")
}

/// Focuses `element` (as Tab would) and presses `key` on it: the keyboard alone.
async fn press(client: &Client, element: &Element, key: Key) {
    client
        .execute(
            "arguments[0].focus()",
            vec![serde_json::to_value(element).expect("an element")],
        )
        .await
        .expect("focused");
    element.send_keys(&key.to_string()).await.expect("pressed");
}

/// One customer of five contacts whose picture has every kind of edge: lorraine and mcfly
/// share a phone, mcfly's two orders an email, george and biff a phone, and a request
/// that brought george's email with mcfly's second phone joined the two customers.
fn seed(app: &TestApp) -> [i64; 5] {
    let orders = [
        ("lorraine@hillvalley.edu", "123456"),
        ("mcfly@hillvalley.edu", "123456"),
        ("mcfly@hillvalley.edu", "555000"),
        ("george@hillvalley.edu", "919191"),
        ("biff@hillvalley.edu", "919191"),
    ];
    for (email, phone) in orders {
        app.identify_ok(json!({"email": email, "phoneNumber": phone}));
    }
    let joined =
        app.identify_ok(json!({"email": "george@hillvalley.edu", "phoneNumber": "555000"}));
    let mut ids = vec![joined["primaryContactId"].as_i64().expect("an id")];
    ids.extend(crate::helpers::ids(&joined["secondaryContactIds"]));
    ids.try_into().expect("five contacts, one customer")
}

#[test]
fn the_console_finds_draws_explains_and_unlinks_in_a_real_browser() {
    let Some(driver) = Driver::start() else {
        return;
    };
    let app = TestApp::spawn().with_key(KEY, "identify,read,admin");
    let [lorraine, _mcfly, mcfly_555, george, biff] = seed(&app);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let shot = runtime.block_on(async {
        let client = browser(&driver).await;
        let outcome = drive(&client, &app, lorraine, biff).await;
        let _ = client.close().await;
        outcome
    });

    assert_eq!(&shot[..8], b"\x89PNG\r\n\x1a\n", "a PNG screenshot");
    // A relative path is the workspace's (cargo runs tests in the crate's directory).
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path = std::env::var_os("IDENTITY_CONSOLE_SCREENSHOT").map_or_else(
        || Path::new(env!("CARGO_TARGET_TMPDIR")).join("console.png"),
        |path| workspace.join(path),
    );
    std::fs::write(&path, &shot).expect("the screenshot is written");

    // What the page showed is what the store holds: two customers, mcfly's second order
    // without the phone.
    let george_now = app.get(&format!("/contacts/{george}"));
    assert_eq!(george_now.body["contact"]["primaryContactId"], george);
    assert_eq!(
        george_now.body["contact"]["secondaryContactIds"],
        json!([biff])
    );
    assert_eq!(
        app.get("/links").body["links"],
        json!([]),
        "the link was undone"
    );
    let lorraine_now = app.get(&format!("/contacts/{mcfly_555}"));
    assert_eq!(lorraine_now.body["contact"]["primaryContactId"], lorraine);
    assert_eq!(
        lorraine_now.body["contact"]["phoneNumbers"],
        json!(["123456"])
    );
}

/// The operator's session, start to end; returns the screenshot of the customer view.
async fn drive(client: &Client, app: &TestApp, lorraine: i64, biff: i64) -> Vec<u8> {
    client
        .goto(&format!("{}/console", app.address))
        .await
        .expect("the page loads");

    // The key, once per browser session.
    let key = client
        .wait()
        .for_element(Locator::Id("key"))
        .await
        .expect("the key form");
    key.send_keys(KEY).await.expect("typed");
    key.send_keys(&Key::Enter.to_string())
        .await
        .expect("submitted");

    // Find by email, in another spelling than the one stored.
    until(
        client,
        "the search form",
        "return !document.getElementById('search-form').hidden",
    )
    .await;
    client
        .find(Locator::Id("search-kind"))
        .await
        .expect("the kind")
        .select_by_value("email")
        .await
        .expect("selected");
    type_into(client, "search-value", " Biff@HillValley.edu ").await;
    type_into(client, "search-value", &Key::Enter.to_string()).await;

    // Every contact drawn, with the edges of the shared values and the joining request.
    until(
        client,
        "the customer's picture",
        "return document.querySelectorAll('#graph g.contact[data-contact-id]').length === 5",
    )
    .await;
    assert_eq!(count(client, "#graph g.contact.primary").await, 1);
    let primary_class = contact_node(client, lorraine)
        .await
        .attr("class")
        .await
        .expect("read")
        .unwrap_or_default();
    assert!(
        primary_class.contains("primary"),
        "the oldest contact is drawn as the primary: {primary_class}"
    );
    for hub in [
        "g.value.phone[data-value='123456']",
        "g.value.email[data-value='mcfly@hillvalley.edu']",
        "g.value.phone[data-value='919191']",
        "g.value.phone[data-value='555000']",
        "g.value.email[data-value='george@hillvalley.edu']",
    ] {
        assert_eq!(count(client, hub).await, 1, "{hub}");
    }
    assert_eq!(count(client, "#graph line.edge.evidence").await, 1);
    until(
        client,
        "the history",
        "return document.querySelectorAll('#history li.event').length >= 6",
    )
    .await;

    // Why are lorraine and biff one customer? Picked with the keyboard only.
    pick_with_keyboard(client, [lorraine, biff]).await;
    until(
        client,
        "the chain",
        "return (document.querySelector('#why p.chain') || {}).textContent?.includes('request') === true",
    )
    .await;
    assert_eq!(count(client, "#graph line.edge.evidence.why").await, 1);
    assert!(count(client, "#graph g.contact.why").await >= 4);

    // The arrow keys move the focus from node to node (lorraine may sit at an edge of the
    // picture: at least one direction leads somewhere).
    let from = format!("g.contact[data-contact-id='{lorraine}']");
    let mut moved = false;
    for arrow in [Key::Left, Key::Right, Key::Up, Key::Down] {
        let node = client
            .find(Locator::Css(&from))
            .await
            .expect("lorraine is drawn");
        press(client, &node, arrow).await;
        let now = client
            .execute(
                &format!(
                    "const a = document.activeElement; \
                     return a.closest('#graph') !== null && !a.matches(\"{from}\") \
                     && (a.matches('g.contact') || a.matches('g.value'))"
                ),
                vec![],
            )
            .await
            .expect("the script runs");
        if now == Value::Bool(true) {
            moved = true;
            break;
        }
    }
    assert!(moved, "no arrow key moved the focus off lorraine");

    // Unlink mcfly's second phone, the value the joining request brought.
    client
        .find(Locator::Css("g.value.phone[data-value='555000']"))
        .await
        .expect("the hub")
        .click()
        .await
        .expect("selected");
    client
        .wait()
        .for_element(Locator::Id("unlink-button"))
        .await
        .expect("the unlink action")
        .click()
        .await
        .expect("clicked");
    until(
        client,
        "the confirmation",
        "return document.getElementById('unlink-dialog').open && \
         document.getElementById('unlink-count').textContent.includes('2 customers')",
    )
    .await;
    type_into(
        client,
        "unlink-reason",
        "the store's own number, typed at checkout",
    )
    .await;
    click(client, "unlink-confirm").await;
    until(
        client,
        "two customers",
        "return document.querySelectorAll('#results-list button[data-customer-id]').length === 2 \
         && document.getElementById('status').textContent.includes('Unlinked')",
    )
    .await;
    // The customer of the contact picked last (biff) is drawn again, without the value.
    until(
        client,
        "biff's customer redrawn",
        &format!(
            "return document.querySelectorAll('#graph g.contact[data-contact-id]').length === 2 \
             && document.querySelector(\"#graph g.contact[data-contact-id='{biff}']\") !== null \
             && document.querySelector(\"#graph g.value[data-value='555000']\") === null"
        ),
    )
    .await;
    let shot = link_by_hand_and_undo(client, lorraine, biff).await;
    shot
}

/// From biff's customer: finds lorraine's, previews, links the two with a reason, sees the
/// link drawn and named in the why-chain (the screenshot), then undoes it from its edge.
async fn link_by_hand_and_undo(client: &Client, lorraine: i64, biff: i64) -> Vec<u8> {
    click(client, "link-open").await;
    type_into(client, "link-query", "lorraine@hillvalley.edu").await;
    type_into(client, "link-query", &Key::Enter.to_string()).await;
    client
        .wait()
        .for_element(Locator::Css(&format!(
            "#link-found button[data-link-candidate='{lorraine}']"
        )))
        .await
        .expect("lorraine's customer is found")
        .click()
        .await
        .expect("chosen");
    until(
        client,
        "the preview",
        "return document.getElementById('link-preview').textContent.includes('one customer') \
         && !document.getElementById('link-confirm').disabled",
    )
    .await;
    type_into(
        client,
        "link-reason",
        "biff wrote in: lorraine's orders are his",
    )
    .await;
    click(client, "link-confirm").await;
    until(
        client,
        "the joined customer with its link drawn",
        "return document.querySelectorAll('#graph g.manual-link').length === 1 \
         && document.querySelectorAll('#graph g.contact[data-contact-id]').length === 5",
    )
    .await;
    // The why-chain between the two sides names the link.
    pick_with_keyboard(client, [lorraine, biff]).await;
    until(
        client,
        "the chain through the link",
        "return (document.querySelector('#why p.chain') || {}).textContent?.includes('joined by hand by test') === true \
         && document.querySelectorAll('#graph g.manual-link.why').length === 1",
    )
    .await;
    let shot = client.screenshot().await.expect("a screenshot");

    // Undo from the edge, with the keyboard.
    let edge = client
        .find(Locator::Css("#graph g.manual-link"))
        .await
        .expect("the link's edge");
    press(client, &edge, Key::Enter).await;
    client.accept_alert().await.expect("confirmed");
    until(
        client,
        "the customers apart again",
        "return document.getElementById('status').textContent.includes('Undid link') \
         && document.querySelectorAll('#graph g.manual-link').length === 0 \
         && document.querySelectorAll('#results-list button[data-customer-id]').length === 2",
    )
    .await;
    shot
}

#[test]
fn the_console_is_served_from_the_binary_under_a_strict_policy() {
    let app = TestApp::spawn();
    // Every module in the console's folder is served (a module left out of the binary would
    // break the page only in a browser).
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/console");
    let mut assets = vec![
        ("/console".to_owned(), "text/html"),
        ("/console/console.css".to_owned(), "text/css"),
    ];
    for entry in std::fs::read_dir(&folder).expect("the console's folder") {
        let name = entry
            .expect("an entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".js") {
            assets.push((format!("/console/{name}"), "text/javascript"));
        }
    }
    assert!(assets.len() > 10, "{assets:?}");
    for (path, content_type) in &assets {
        let path = path.as_str();
        let reply = app.get(path);
        assert_eq!(reply.status, 200, "{path}");
        assert!(reply.content_type.starts_with(content_type), "{reply:?}");
        let policy = reply.header("content-security-policy").unwrap_or_default();
        assert!(policy.contains("script-src 'self'"), "{policy}");
        assert!(!policy.contains("unsafe-inline"), "{policy}");
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
    }
    let page = app.get("/console");
    let html = page.body.as_str().unwrap_or_default();
    assert!(
        !html.contains("<script>") && !html.contains("style="),
        "no inline code"
    );
    assert!(
        html.contains(r#"<script type="module" src="/console/main.js">"#),
        "the modules start at main.js"
    );
    app.request("POST", "/console")
        .assert_problem(405, "method-not-allowed");
}

/// The console's logic (the model, the layout, why-chain highlighting, the selection, the
/// words) passes its unit tests under Node's built-in runner, without a browser. Skipped
/// without Node, except under CI.
#[test]
fn the_console_logic_passes_its_node_tests() {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console");
    let output = match std::process::Command::new("node")
        .arg("--test")
        .arg(&tests)
        .output()
    {
        Ok(output) => output,
        Err(error) if std::env::var_os("CI").is_none() => {
            eprintln!("skipped: node cannot run ({error}); install Node.js 20 or later");
            return;
        }
        Err(error) => panic!("node cannot run under CI: {error}"),
    };
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{report}");
    assert!(report.contains("# fail 0"), "{report}");
    assert!(!report.contains("# pass 0"), "no test ran: {report}");
}
