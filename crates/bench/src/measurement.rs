//! What a benchmark measures, and the results file that keeps it: one JSON line per
//! measurement, appended by `run` and `ceiling` (`--results`), read by `chart`.
//!
//! ```text
//! {"kind":"ceiling","contacts":10000,"workload":"known","tps":37414.2}
//! {"kind":"service","contacts":10000,"workload":"known","concurrency":16,"mode":"closed","req_s":2613.4,"p50_ms":1.9,"p90_ms":16.41,"p99_ms":43.23,"p999_ms":86.33,"errors":0}
//! {"kind":"service","contacts":10000,"workload":"known","concurrency":16,"mode":"open","rate":1306.0,"req_s":1305.8,"p50_ms":0.73,"p90_ms":1.01,"p99_ms":5.42,"p999_ms":23.09,"errors":0}
//! ```

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

/// The seed gives each customer a primary and one secondary contact.
pub const CONTACTS_PER_CUSTOMER: u64 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Existing customers, nothing new: the read path.
    Known,
    /// Brand-new customers.
    New,
    /// 80% known, 15% a new email for an existing customer, 4% new customers, 1% merges.
    Mixed,
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Known => "known",
            Self::New => "new",
            Self::Mixed => "mixed",
        })
    }
}

/// One line of the results file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Record {
    Ceiling(Ceiling),
    Service(Service),
}

/// pgbench running the minimal SQL of a workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ceiling {
    pub contacts: u64,
    pub workload: Workload,
    /// Transactions per second.
    pub tps: f64,
}

/// The service driven over HTTP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub contacts: u64,
    pub workload: Workload,
    /// Client threads.
    pub concurrency: usize,
    #[serde(flatten)]
    pub mode: Mode,
    /// Requests answered per second (answered with an error or not).
    pub req_s: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    /// Requests that failed or were not answered with 200.
    pub errors: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum Mode {
    /// Each client sends its next request when the last one is answered.
    Closed,
    /// Requests due at a fixed rate per second; latency counts from the time each was due.
    Open { rate: f64 },
}

/// Append one record to the results file, creating it if need be.
pub fn append(path: &Path, record: &Record) -> Result<(), String> {
    let line = serde_json::to_string(record).map_err(|e| e.to_string())?;
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut file| writeln!(file, "{line}"))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Every record of a results file, in the order they were measured.
pub fn read(path: &Path) -> Result<Vec<Record>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line)
                .map_err(|e| format!("{}, line {}: {e}", path.display(), i + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_as_written() {
        let path = std::env::temp_dir().join(format!(
            "identity-bench-measurement-{}.jsonl",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        let records = [
            Record::Ceiling(Ceiling {
                contacts: 10_000,
                workload: Workload::Mixed,
                tps: 20_439.5,
            }),
            Record::Service(Service {
                contacts: 10_000,
                workload: Workload::Mixed,
                concurrency: 16,
                mode: Mode::Open { rate: 838.0 },
                req_s: 837.9,
                p50_ms: 0.86,
                p90_ms: 2.77,
                p99_ms: 4.68,
                p999_ms: 8.89,
                errors: 0,
            }),
        ];
        for record in &records {
            append(&path, record).expect("append");
        }
        let text = std::fs::read_to_string(&path).expect("results file");
        assert!(
            text.contains(r#""kind":"service","contacts":10000,"workload":"mixed""#),
            "{text}"
        );
        assert!(text.contains(r#""mode":"open","rate":838.0"#), "{text}");
        assert_eq!(read(&path).expect("read"), records);
        let _ = std::fs::remove_file(&path);
    }
}
