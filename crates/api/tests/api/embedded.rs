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
    let dir = crate::helpers::scratch_dir("embedded");

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

/// SQLite overwrites what it deletes (`secure_delete`): after an erasure and a checkpoint,
/// the erased email is nowhere in the database file.
#[test]
fn an_erased_email_leaves_no_bytes_in_the_sqlite_file() {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;

    let dir = crate::helpers::scratch_dir("embedded-erasure");
    let mut server =
        ServerProcess::start_embedded(&dir, &[("IDENTITY__ADMIN__ERASURE_ENABLED", "true")]);
    for n in 0..50 {
        identify(
            &server,
            json!({"email": format!("filler{n}@hillvalley.edu")}),
        );
    }
    let secret = identify(&server, json!({"email": "erase.me.please@hillvalley.edu"}));
    let id = secret["primaryContactId"].as_i64().expect("an id");
    let erased = agent()
        .delete(format!("{}/contacts/{id}", server.base))
        .call()
        .expect("the server answers");
    assert_eq!(erased.status(), 200);
    server.stop();

    let file = dir.join("data/identity.db");
    let mut conn = diesel::SqliteConnection::establish(&file.to_string_lossy()).expect("opens");
    conn.batch_execute("PRAGMA wal_checkpoint(TRUNCATE)")
        .expect("checkpoint");
    drop(conn);
    let bytes = std::fs::read(&file).expect("the database file");
    let needle = b"erase.me.please";
    assert!(
        !bytes.windows(needle.len()).any(|w| w == needle),
        "the erased email is still in the file's bytes"
    );
}
