//! A throwaway PostgreSQL cluster for tests, for machines with the server binaries installed
//! but no server running for us. It lives under `target/test-postgres`, listens on a Unix
//! socket only, trades durability for speed, and stays up between runs.

use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const HOW_TO: &str = "Tests need PostgreSQL. Either set TEST_DATABASE_URL to a server where \
they may create databases (e.g. TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres), or install \
the PostgreSQL server binaries (Debian: apt-get install postgresql) so the tests can start a \
throwaway cluster themselves, or run `just db`.";

/// Starts (or reuses) the cluster and returns the URL of its `postgres` database.
pub(crate) fn start_throwaway() -> Result<String, String> {
    let bindir = find_bindir().ok_or_else(|| HOW_TO.to_owned())?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-postgres");
    fs::create_dir_all(&root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    let root = root
        .canonicalize()
        .map_err(|e| format!("cannot resolve {}: {e}", root.display()))?;

    // Test binaries may run at once (nextest): one of them sets the cluster up.
    let lock = File::create(root.join("setup.lock"))
        .map_err(|e| format!("cannot create the cluster's lock file: {e}"))?;
    lock.lock()
        .map_err(|e| format!("cannot lock the cluster's lock file: {e}"))?;

    let data = root.join("data");
    let as_root = fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if as_root {
        // initdb refuses to run as root: the cluster belongs to the `postgres` user.
        run(Command::new("chown").args(["-R", "postgres"]).arg(&root))?;
    }
    if !data.join("PG_VERSION").exists() {
        run(tool(&bindir, "initdb", as_root).arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        ]))?;
    }
    let running = tool(&bindir, "pg_ctl", as_root)
        .arg("status")
        .arg("-D")
        .arg(&data)
        .output()
        .is_ok_and(|out| out.status.success());
    if !running {
        let options = format!(
            "-k {} -c listen_addresses='' -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=300",
            root.display()
        );
        run(tool(&bindir, "pg_ctl", as_root)
            .args(["start", "-w", "-t", "60", "-D"])
            .arg(&data)
            .arg("-l")
            .arg(root.join("postgres.log"))
            .args(["-o", &options]))?;
    }
    let socket_dir = root.display().to_string().replace('/', "%2F");
    Ok(format!("postgres://postgres@{socket_dir}/postgres"))
}

fn tool(bindir: &Path, name: &str, as_root: bool) -> Command {
    let program = bindir.join(name);
    if as_root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn run(command: &mut Command) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// The directory holding `initdb` and `pg_ctl`: Debian's versioned directories first
/// (newest), then `PATH`.
fn find_bindir() -> Option<PathBuf> {
    let mut debian: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists() && bin.join("pg_ctl").exists())
        .collect();
    debian.sort_by_key(|bin| {
        bin.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
    });
    if let Some(newest) = debian.pop() {
        return Some(newest);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|dir| dir.join("initdb").exists() && dir.join("pg_ctl").exists())
    })
}
