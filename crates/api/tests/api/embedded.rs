//! The zero set-up default: the binary started with no database setting at all keeps its
//! data in `./data/identity.db` (SQLite), answers the documented sequences, and keeps them
//! across a restart.

use serde_json::{json, Value};

use crate::helpers::{agent, ServerProcess};

fn identify(server: &ServerProcess, body: Value) -> Value {
    let mut response = agent()
        .post(format!("{}/identify", server.base))
        .header("Content-Type", "application/json")
        .send(body.to_string())
        .expect("the server answers");
    assert_eq!(response.status(), 200, "{body}");
    let reply: Value = response.body_mut().read_json().expect("JSON");
    reply["contact"].clone()
}

#[test]
fn the_embedded_default_answers_the_documented_sequences_and_survives_a_restart() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("embedded-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a working directory");

    let mut server = ServerProcess::start_embedded(&dir, &[]);
    let lorraine = identify(
        &server,
        json!({"email": "lorraine@hillvalley.edu", "phoneNumber": "123456"}),
    );
    let lorraine_id = lorraine["primaryContactId"].as_i64().expect("an id");
    let mcfly = identify(
        &server,
        json!({"email": "mcfly@hillvalley.edu", "phoneNumber": "123456"}),
    );
    assert_eq!(mcfly["primaryContactId"], lorraine_id);
    assert_eq!(
        mcfly["emails"],
        json!(["lorraine@hillvalley.edu", "mcfly@hillvalley.edu"])
    );
    assert_eq!(mcfly["phoneNumbers"], json!(["123456"]));
    assert_eq!(
        mcfly["secondaryContactIds"].as_array().map(Vec::len),
        Some(1)
    );
    for body in [
        json!({"phoneNumber": "123456"}),
        json!({"email": "lorraine@hillvalley.edu"}),
        json!({"email": "mcfly@hillvalley.edu", "phoneNumber": null}),
    ] {
        assert_eq!(identify(&server, body), mcfly);
    }

    let george = identify(
        &server,
        json!({"email": "george@hillvalley.edu", "phoneNumber": "919191"}),
    );
    let biff = identify(
        &server,
        json!({"email": "biffsucks@hillvalley.edu", "phoneNumber": "717171"}),
    );
    let merged = identify(
        &server,
        json!({"email": "george@hillvalley.edu", "phoneNumber": "717171"}),
    );
    assert_eq!(
        merged,
        json!({
            "primaryContactId": george["primaryContactId"],
            "emails": ["george@hillvalley.edu", "biffsucks@hillvalley.edu"],
            "phoneNumbers": ["919191", "717171"],
            "secondaryContactIds": [biff["primaryContactId"]],
        })
    );
    assert!(dir.join("data/identity.db").exists(), "the default file");

    server.stop();
    let server = ServerProcess::start_embedded(&dir, &[]);
    assert_eq!(identify(&server, json!({"phoneNumber": "123456"})), mcfly);
    assert_eq!(identify(&server, json!({"phoneNumber": 717171})), merged);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
