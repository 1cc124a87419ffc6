//! `identity-bench`: how fast is `/identify`, next to the database's own ceiling?
//!
//! It seeds a PostgreSQL database with customers (in SQL, not one request at a time), starts
//! nothing itself but talks to a running `identity-api` on that database, and drives it:
//! closed loop (fixed concurrency, as fast as it answers) and open loop (a fixed rate,
//! latency measured from the intended send time, so that stalls are not hidden by the load
//! generator waiting). The ceiling is `pgbench` running the minimal SQL for the same work
//! with the same concurrency. Each measurement can also be appended to a results file, which
//! `chart` draws as an SVG. `scripts/bench.sh` (`just bench`) runs it all.

mod chart;
mod import;
mod measurement;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;
use serde_json::json;

use measurement::{Ceiling, Mode, Record, Service, Workload, CONTACTS_PER_CUSTOMER};

#[derive(Debug, Parser)]
#[command(name = "identity-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Fill a database (already migrated by identity-api) with `customers` customers of two
    /// contacts each: c<i>@bench.io with phone 1555<i> (as the service normalizes it), and a
    /// secondary with a second email.
    Seed {
        /// psql connection string of the database.
        #[arg(long)]
        database: String,
        #[arg(long)]
        customers: u64,
    },
    /// Drive /identify and print one Markdown table row.
    Run {
        /// Base URL of the running service.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        #[command(flatten)]
        load: Load,
        /// Open loop at this many requests per second instead of closed loop.
        #[arg(long)]
        rate: Option<f64>,
        /// An API key to send as `Authorization: Bearer <key>` (none: the service runs
        /// without keys, on loopback).
        #[arg(long, env = "IDENTITY_API_KEY")]
        key: Option<String>,
        /// Also append the measurement to this results file (JSON Lines).
        #[arg(long)]
        results: Option<PathBuf>,
    },
    /// Run pgbench with the minimal SQL of a workload and print its transactions per second.
    Ceiling {
        #[arg(long)]
        database: String,
        #[command(flatten)]
        load: Load,
        /// Also append the measurement to this results file (JSON Lines).
        #[arg(long)]
        results: Option<PathBuf>,
    },
    /// Write generated past orders: JSON Lines for `identity-api import`, and the same rows
    /// as CSV for `COPY contact (email, phone_number, created_at, link_precedence)`.
    Orders {
        #[arg(long, default_value_t = 100_000)]
        count: usize,
        #[arg(long, default_value_t = 24)]
        seed: u64,
        #[arg(long)]
        jsonl: PathBuf,
        #[arg(long)]
        csv: PathBuf,
    },
    /// Draw the import benchmark's rates (scripts/bench-import.sh) as an SVG.
    ImportChart {
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        output: PathBuf,
    },
    /// Draw a results file as an SVG: throughput against the ceiling, and latency percentiles.
    Chart {
        /// The results file written by `run --results` and `ceiling --results`.
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        output: PathBuf,
    },
}

/// What both the service and the ceiling are driven with.
#[derive(Debug, Clone, Copy, clap::Args)]
struct Load {
    #[arg(long, value_enum)]
    workload: Workload,
    /// How many customers the database was seeded with.
    #[arg(long)]
    customers: u64,
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

impl Load {
    /// How many contacts the seeded database holds.
    fn contacts(&self) -> u64 {
        self.customers * CONTACTS_PER_CUSTOMER
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Cmd::Seed {
            database,
            customers,
        } => seed(&database, customers),
        Cmd::Run {
            url,
            load,
            rate,
            key,
            results,
        } => run(&url, &load, rate, key.as_deref(), results.as_deref()),
        Cmd::Ceiling {
            database,
            load,
            results,
        } => ceiling(&database, &load, results.as_deref()),
        Cmd::Chart { input, output } => chart::write_svg(&input, &output),
        Cmd::Orders {
            count,
            seed,
            jsonl,
            csv,
        } => import::write_orders(count, seed, &jsonl, &csv),
        Cmd::ImportChart { input, output } => import::write_chart(&input, &output),
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("identity-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn psql(database: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            database,
            "-c",
            sql,
        ])
        .output()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn seed(database: &str, customers: u64) -> Result<(), String> {
    let started = Instant::now();
    psql(
        database,
        &format!(
            "TRUNCATE contact RESTART IDENTITY CASCADE;
             INSERT INTO contact (id, email, phone_number, link_precedence, created_at)
                  OVERRIDING SYSTEM VALUE
                  SELECT i, 'c' || i || '@bench.io', '1555' || lpad(i::text, 7, '0'), 'primary',
                         now() - interval '1 day' + i * interval '1 microsecond'
                    FROM generate_series(1, {customers}) AS i;
             INSERT INTO contact (id, email, phone_number, linked_id, link_precedence, created_at)
                  OVERRIDING SYSTEM VALUE
                  SELECT {customers} + i, 'd' || i || '@bench.io', '1555' || lpad(i::text, 7, '0'), i,
                         'secondary', now() - interval '1 day' + ({customers} + i) * interval '1 microsecond'
                    FROM generate_series(1, {customers}) AS i;
             SELECT setval(pg_get_serial_sequence('contact', 'id'), {customers} * 2);"
        ),
    )?;
    psql(database, "VACUUM ANALYZE contact")?;
    println!(
        "seeded {customers} customers ({} contacts) in {:.1}s",
        customers * CONTACTS_PER_CUSTOMER,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One request of a workload; `n` is unique per request.
fn request(
    workload: Workload,
    customers: u64,
    n: u64,
    rng: &mut fastrand::Rng,
) -> serde_json::Value {
    let known = |rng: &mut fastrand::Rng| rng.u64(1..=customers);
    let kind = match workload {
        Workload::Known => 0,
        Workload::New => 3,
        Workload::Mixed => match rng.u32(0..100) {
            0..80 => 0,
            80..95 => 1,
            95..99 => 3,
            _ => 2,
        },
    };
    match kind {
        // A returning customer, by email, phone or both.
        0 => {
            let i = known(rng);
            match rng.u8(0..3) {
                0 => json!({"email": format!("c{i}@bench.io")}),
                1 => json!({"phoneNumber": format!("+1555{i:07}")}),
                _ => {
                    json!({"email": format!("d{i}@bench.io"), "phoneNumber": format!("+1555{i:07}")})
                }
            }
        }
        // A new email for an existing customer.
        1 => {
            json!({"email": format!("x{n}-{}@bench.io", rng.u32(..)), "phoneNumber": format!("+1555{:07}", known(rng))})
        }
        // A merge of two existing customers.
        2 => {
            json!({"email": format!("c{}@bench.io", known(rng)), "phoneNumber": format!("+1555{:07}", known(rng))})
        }
        // A brand-new customer.
        _ => json!({"email": format!("n{n}-{}@bench.io", rng.u32(..))}),
    }
}

fn run(
    url: &str,
    load: &Load,
    rate: Option<f64>,
    key: Option<&str>,
    results: Option<&Path>,
) -> Result<(), String> {
    let authorization = key.map(|key| format!("Bearer {key}"));
    let Load {
        workload,
        customers,
        concurrency,
        seconds,
    } = *load;
    let histogram = Arc::new(Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?,
    ));
    let errors = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let deadline = Duration::from_secs(seconds);
    let started = Instant::now();
    let endpoint = format!("{url}/identify");
    let threads: Vec<_> = (0..concurrency)
        .map(|t| {
            let (histogram, errors, sent, endpoint, authorization) = (
                histogram.clone(),
                errors.clone(),
                sent.clone(),
                endpoint.clone(),
                authorization.clone(),
            );
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(30)))
                    .build()
                    .into();
                let mut rng = fastrand::Rng::with_seed(t as u64 + 1);
                let mut local = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
                    .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()));
                loop {
                    let n = sent.fetch_add(1, Ordering::Relaxed);
                    // Open loop: request n is due at n / rate; its latency counts from then.
                    let intended = match rate {
                        Some(rate) => started + Duration::from_secs_f64(n as f64 / rate),
                        None => Instant::now(),
                    };
                    if intended.duration_since(started) >= deadline {
                        break;
                    }
                    if let Some(wait) = intended.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let body = request(workload, customers, n, &mut rng).to_string();
                    let mut post = agent
                        .post(&endpoint)
                        .header("Content-Type", "application/json");
                    if let Some(authorization) = &authorization {
                        post = post.header("Authorization", authorization);
                    }
                    let ok = post.send(body.as_str()).is_ok_and(|r| r.status() == 200);
                    if !ok {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    let micros = u64::try_from(intended.elapsed().as_micros()).unwrap_or(u64::MAX);
                    let _ = local.record(micros.max(1));
                }
                if let Ok(mut h) = histogram.lock() {
                    let _ = h.add(&local);
                }
            })
        })
        .collect();
    let progress = std::thread::spawn({
        let sent = sent.clone();
        move || {
            while started.elapsed() < deadline {
                std::thread::sleep(Duration::from_secs(2).min(deadline));
                eprint!(
                    "\r{:>5.1}s  {} requests",
                    started.elapsed().as_secs_f64(),
                    sent.load(Ordering::Relaxed)
                );
            }
            eprintln!();
        }
    });
    for t in threads {
        let _ = t.join();
    }
    let _ = progress.join();
    let elapsed = started.elapsed().as_secs_f64();
    let h = histogram.lock().map_err(|e| e.to_string())?;
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let mode = rate.map_or_else(
        || format!("closed, {concurrency} clients"),
        |r| format!("open, {r:.0}/s"),
    );
    let measured = Service {
        contacts: load.contacts(),
        workload,
        concurrency,
        mode: rate.map_or(Mode::Closed, |rate| Mode::Open { rate }),
        req_s: h.len() as f64 / elapsed,
        p50_ms: ms(0.5),
        p90_ms: ms(0.9),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
        errors: errors.load(Ordering::Relaxed) as u64,
    };
    println!(
        "| {:?} | {mode} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
        workload,
        measured.req_s,
        measured.p50_ms,
        measured.p90_ms,
        measured.p99_ms,
        measured.p999_ms,
        measured.errors
    );
    match results {
        Some(path) => measurement::append(path, &Record::Service(measured)),
        None => Ok(()),
    }
}

/// The minimal SQL for a workload, as a pgbench script.
fn script(workload: Workload, customers: u64) -> String {
    // The one statement that reads a customer's whole cluster by email or phone: what the
    // service runs for a returning customer.
    let read = "WITH matched AS (
    SELECT COALESCE(linked_id, id) AS primary_id FROM contact WHERE email = 'c' || :i || '@bench.io' AND deleted_at IS NULL
    UNION
    SELECT COALESCE(linked_id, id) FROM contact WHERE phone_number = '1555' || lpad(:i::text, 7, '0') AND deleted_at IS NULL)
SELECT id, phone_number, email, linked_id, link_precedence, created_at FROM contact WHERE id IN (SELECT primary_id FROM matched) AND deleted_at IS NULL
UNION ALL
SELECT id, phone_number, email, linked_id, link_precedence, created_at FROM contact WHERE linked_id IN (SELECT primary_id FROM matched) AND deleted_at IS NULL;";
    let insert_secondary = "INSERT INTO contact (email, phone_number, linked_id, link_precedence) VALUES ('y' || :n || '@bench.io', '1555' || lpad(:i::text, 7, '0'), :i, 'secondary');";
    let insert_primary = "INSERT INTO contact (email, link_precedence) VALUES ('z' || :n || '@bench.io', 'primary');";
    match workload {
        Workload::Known => format!("\\set i random(1, {customers})\n{}\n", read.replace('\n', " ")),
        // A new customer: the same minimal work as the service's, in one transaction: look
        // the identifiers up, find nothing, insert a primary.
        Workload::New => format!(
            "\\set n random(1, 1000000000)\nBEGIN;\n{}\n{insert_primary}\nCOMMIT;\n",
            read.replace('\n', " ")
                .replace("'c' || :i || '@bench.io'", "'z' || :n || '@bench.io'")
                .replace("'1555' || lpad(:i::text, 7, '0')", "'2555' || lpad(:n::text, 9, '0')")
        ),
        Workload::Mixed => format!(
            "\\set i random(1, {customers})\n\\set n random(1, 1000000000)\n\\set k random(1, 100)\n{}\n\\if :k > 80 AND :k <= 95\n{insert_secondary}\n\\elif :k > 95\n{insert_primary}\n\\endif\n",
            read.replace('\n', " ")
        ),
    }
}

fn ceiling(database: &str, load: &Load, results: Option<&Path>) -> Result<(), String> {
    let path = std::env::temp_dir().join(format!("identity-bench-{:?}.sql", load.workload));
    std::fs::write(&path, script(load.workload, load.customers)).map_err(|e| e.to_string())?;
    let out = Command::new("pgbench")
        .args(["-n", "-M", "prepared", "-f"])
        .arg(&path)
        .args([
            "-c",
            &load.concurrency.to_string(),
            "-j",
            "2",
            "-T",
            &load.seconds.to_string(),
            database,
        ])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run pgbench: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let tps = text
        .lines()
        .find(|l| l.starts_with("tps"))
        .and_then(|l| l.split_whitespace().nth(2))
        .ok_or_else(|| format!("pgbench said: {text}"))?;
    println!("{tps}");
    let Some(path) = results else {
        return Ok(());
    };
    let tps = tps
        .parse()
        .map_err(|e| format!("pgbench's tps {tps:?}: {e}"))?;
    measurement::append(
        path,
        &Record::Ceiling(Ceiling {
            contacts: load.contacts(),
            workload: load.workload,
            tps,
        }),
    )
}
