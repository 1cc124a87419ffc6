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

/// How `initdb` makes every cluster here: superuser `postgres`, trusted, not synced, UTF-8.
const INITDB: [&str; 6] = ["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"];

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
        run(tool(&bindir, "initdb", as_root)
            .arg("-D")
            .arg(&data)
            .args(INITDB))?;
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

/// A PostgreSQL cluster of a test's own, on a TCP port of its own, for what no shared server
/// may be put through: frozen (SIGSTOP), stopped hard, or paired with a streaming standby
/// and failed over. Its directory is under `target/test-clusters`; it is stopped and
/// removed when dropped.
pub struct PrivateCluster {
    bindir: PathBuf,
    as_root: bool,
    dir: PathBuf,
    port: u16,
}

impl PrivateCluster {
    /// A new primary, up and accepting connections on 127.0.0.1, allowing replication.
    /// `settings` are extra `-c name=value` server settings.
    ///
    /// # Panics
    /// When the server binaries are missing or the cluster cannot be started.
    pub fn primary(name: &str, settings: &[&str]) -> Self {
        let cluster = Self::new(name);
        cluster
            .run(
                cluster
                    .tool("initdb")
                    .arg("-D")
                    .arg(cluster.data())
                    .args(INITDB),
            )
            .expect("initdb");
        cluster.start(settings);
        cluster
    }

    /// A streaming standby of `primary` (`pg_basebackup -R`), up, under the application
    /// name `name` (for `synchronous_standby_names`).
    ///
    /// # Panics
    /// As [`PrivateCluster::primary`].
    pub fn standby_of(primary: &Self, name: &str, settings: &[&str]) -> Self {
        let cluster = Self::new(name);
        cluster
            .run(
                cluster
                    .tool("pg_basebackup")
                    .args(["-h", "127.0.0.1", "-p", &primary.port.to_string()])
                    .args(["-U", "postgres", "-X", "stream", "-R", "--no-sync", "-D"])
                    .arg(cluster.data()),
            )
            .expect("pg_basebackup");
        // The primary_conninfo pg_basebackup wrote, with this standby's name.
        let auto = cluster.data().join("postgresql.auto.conf");
        let conf = fs::read_to_string(&auto).expect("postgresql.auto.conf");
        let conf = conf.replace(
            "primary_conninfo = '",
            &format!("primary_conninfo = 'application_name={name} "),
        );
        fs::write(&auto, conf).expect("postgresql.auto.conf");
        cluster.start(settings);
        cluster
    }

    fn new(name: &str) -> Self {
        let bindir = find_bindir().expect(HOW_TO);
        let as_root = fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/test-clusters")
            .join(format!("{name}-{}-{port}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("the cluster's directory");
        let dir = dir.canonicalize().expect("the cluster's directory");
        if as_root {
            run(Command::new("chown").args(["-R", "postgres"]).arg(&dir)).expect("chown");
        }
        Self {
            bindir,
            as_root,
            dir,
            port,
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn tool(&self, name: &str) -> Command {
        tool(&self.bindir, name, self.as_root)
    }

    fn run(&self, command: &mut Command) -> Result<(), String> {
        run(command)
    }

    fn start(&self, settings: &[&str]) {
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off \
             -c max_connections=100 -c wal_level=replica -c max_wal_senders=5 \
             -c hot_standby=on -c wal_receiver_status_interval=1s",
            self.port,
            self.dir.display()
        );
        for setting in settings {
            options.push_str(" -c ");
            options.push_str(setting);
        }
        self.run(
            self.tool("pg_ctl")
                .args(["start", "-w", "-t", "60", "-D"])
                .arg(self.data())
                .arg("-l")
                .arg(self.dir.join("postgres.log"))
                .args(["-o", &options]),
        )
        .expect("pg_ctl start");
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:<port>/<database>`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Runs one SQL command with `psql` on `database` and returns its unaligned output.
    ///
    /// # Panics
    /// When psql fails.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let output = self
            .tool("psql")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args([
                "-U",
                "postgres",
                "-d",
                database,
                "-XAtq",
                "-v",
                "ON_ERROR_STOP=1",
            ])
            .args(["-c", sql])
            .output()
            .expect("psql runs");
        assert!(
            output.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// The postmaster and every process it started.
    fn processes(&self) -> Vec<u32> {
        let Some(postmaster) = fs::read_to_string(self.data().join("postmaster.pid"))
            .ok()
            .and_then(|pid| {
                pid.lines()
                    .next()
                    .and_then(|l| l.trim().parse::<u32>().ok())
            })
        else {
            return Vec::new();
        };
        let mut pids = vec![postmaster];
        for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            // /proc/<pid>/stat: "pid (comm) state ppid …"; comm may hold spaces.
            let parent = fs::read_to_string(entry.path().join("stat"))
                .ok()
                .and_then(|stat| {
                    let rest = stat.rsplit_once(')')?.1.to_owned();
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                });
            if parent == Some(postmaster) {
                pids.push(pid);
            }
        }
        pids
    }

    fn signal(&self, signal: &str) {
        let pids: Vec<String> = self.processes().iter().map(u32::to_string).collect();
        if !pids.is_empty() {
            // A process may have exited meanwhile: that is no failure.
            let _ = Command::new("kill")
                .arg(signal)
                .args(&pids)
                .stderr(std::process::Stdio::null())
                .status();
        }
    }

    /// Freezes the server (SIGSTOP to every one of its processes): its kernel still accepts
    /// connections and acknowledges packets, but nothing answers.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Lets a frozen server run again (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    /// Stops the server at once, as a crash would (`pg_ctl stop -m immediate`).
    pub fn crash(&self) {
        self.thaw();
        let _ = self.run(
            self.tool("pg_ctl")
                .args(["stop", "-m", "immediate", "-D"])
                .arg(self.data()),
        );
    }

    /// Stops the server cleanly (`pg_ctl stop -m fast`).
    pub fn stop(&self) {
        let _ = self.run(
            self.tool("pg_ctl")
                .args(["stop", "-m", "fast", "-D"])
                .arg(self.data()),
        );
    }

    /// Starts a stopped server again, with the settings it first had plus `settings`.
    pub fn restart(&self, settings: &[&str]) {
        self.start(settings);
    }

    /// Promotes a standby to primary, waiting until it accepts writes.
    ///
    /// # Panics
    /// When `pg_ctl promote` fails.
    pub fn promote(&self) {
        self.run(
            self.tool("pg_ctl")
                .args(["promote", "-w", "-t", "60", "-D"])
                .arg(self.data()),
        )
        .expect("pg_ctl promote");
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        self.crash();
        let _ = fs::remove_dir_all(&self.dir);
    }
}
