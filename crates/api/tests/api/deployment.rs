//! `docker-compose.yml` and the `Dockerfile` cannot be run here (no container engine), so
//! they are checked against the code instead: the YAML parses, the wiring is complete, and
//! every setting the compose file passes is one the service accepts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use identity_api::Settings;
use yaml_rust2::{Yaml, YamlLoader};

fn repo_file(name: &str) -> (PathBuf, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    (path, text)
}

fn compose() -> Yaml {
    let (path, text) = repo_file("docker-compose.yml");
    let mut documents = YamlLoader::load_from_str(&text)
        .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
    assert_eq!(documents.len(), 1);
    documents.remove(0)
}

fn env_of(service: &Yaml) -> HashMap<String, String> {
    service["environment"]
        .as_hash()
        .expect("environment is a mapping")
        .iter()
        .map(|(k, v)| {
            let value = match v {
                Yaml::String(s) => s.clone(),
                Yaml::Integer(i) => i.to_string(),
                Yaml::Boolean(b) => b.to_string(),
                other => panic!("unexpected value {other:?}"),
            };
            (k.as_str().expect("string keys").to_owned(), value)
        })
        .collect()
}

#[test]
fn compose_wires_the_service_to_a_healthy_postgres() {
    let compose = compose();
    let db = &compose["services"]["db"];
    let api = &compose["services"]["api"];
    assert!(
        !db.is_badvalue() && !api.is_badvalue(),
        "services db and api"
    );

    assert!(
        db["healthcheck"]["test"].as_vec().is_some(),
        "db has a health check"
    );
    let volume = db["volumes"][0].as_str().expect("db has a volume");
    let volume_name = volume.split(':').next().expect("name:path");
    assert!(
        !compose["volumes"][volume_name].is_badvalue(),
        "{volume_name} is a named volume"
    );
    assert_eq!(
        api["depends_on"]["db"]["condition"].as_str(),
        Some("service_healthy")
    );

    let db_env = env_of(db);
    let api_env = env_of(api);
    let expected_url = format!(
        "postgres://{}:{}@db:5432/{}",
        db_env["POSTGRES_USER"], db_env["POSTGRES_PASSWORD"], db_env["POSTGRES_DB"]
    );
    assert_eq!(api_env["DATABASE_URL"], expected_url);

    // Every setting compose passes is accepted by the service, and it listens where the
    // published port points.
    let settings = Settings::load_from(Path::new("/nonexistent"), &api_env)
        .expect("the compose environment is a valid configuration");
    assert_eq!(settings.server.host, "0.0.0.0");
    // On a public address the service needs a key: compose supplies one at first start.
    assert!(!settings.listens_on_loopback());
    assert!(api_env["IDENTITY__AUTH__BOOTSTRAP_KEY"].contains("IDENTITY_API_KEY"));
    let published = api["ports"][0].as_str().expect("a published port");
    let container_port: u16 = published
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("host:container");
    assert_eq!(container_port, settings.server.port);
    let grace = api["stop_grace_period"]
        .as_str()
        .expect("a stop grace period");
    let grace_secs: u64 = grace.trim_end_matches('s').parse().expect("seconds");
    assert!(grace_secs > settings.server.shutdown_timeout.as_secs());
}

#[test]
fn the_dockerfile_builds_this_binary_and_runs_it_unprivileged() {
    let (_, dockerfile) = repo_file("Dockerfile");
    let settings = Settings::defaults().expect("defaults");
    assert!(dockerfile.contains("--bin identity-api"));
    assert!(dockerfile.contains(&format!("EXPOSE {}", settings.server.port)));
    let user = dockerfile
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER line");
    assert!(!["root", "0"].contains(&user.trim()), "runs as {user}");
    assert!(Path::new(env!("CARGO_BIN_EXE_identity-api")).exists());
}
