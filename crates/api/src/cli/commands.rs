//! Operator commands besides serving: one function per subcommand of `identity-api`. They
//! print for people on stdout; errors come back typed.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use identity_domain::{
    reconcile::reconcile_with_priority, renormalize, BatchOutcome, BatchRecord, Contact,
    Identifier, Identifiers, IdentityService, RepositoryError, Rewrite, StoreStats, Violation,
};
use serde_json::{Map, Value};

use crate::cli::export::Format;
use crate::error::ApiError;
use crate::settings::Settings;
use crate::startup::StartupError;
use crate::wire::IdentifyBody;

/// Rewrites every stored contact to the current identifier rules (normalized values, blocked
/// values dropped) and merges the customers that turn out to be one. Safe to run while the
/// service serves traffic (writers wait while it runs), and to run again.
///
/// # Errors
/// When the store cannot be opened or the rewrite fails (then nothing was written).
pub fn normalize(settings: &Settings) -> Result<Rewrite, StartupError> {
    let policy = &settings.identifiers.policy;
    let store = identity_persistence::open(&settings.store_settings())?;
    store
        .maintenance
        .rewrite_all(
            &|contacts: &[Contact], unlinked: &[Identifier]| {
                renormalize(contacts, &policy.with_unlinked(unlinked))
            },
            "normalize",
        )
        .map_err(StartupError::Store)
}

/// The configured identifier policy, with the store's unlink rules blocked as well.
fn policy_with_rules(
    settings: &Settings,
    store: &identity_persistence::Store,
) -> Result<identity_domain::IdentifierPolicy, StartupError> {
    let unlinked: Vec<Identifier> = store
        .repository
        .find_unlink_rules()
        .map_err(StartupError::Store)?
        .into_iter()
        .map(|rule| rule.identifier)
        .collect();
    Ok(settings.identifiers.policy.with_unlinked(&unlinked))
}

/// Runs an event dispatcher in the foreground, until the process is stopped.
///
/// # Errors
/// When no webhook is configured or the store cannot be opened.
pub fn dispatch(settings: &Settings) -> Result<(), StartupError> {
    // Refused before the store is opened (which may create it).
    let Some(webhook) = &settings.events.webhook else {
        return Err(StartupError::Settings(
            crate::settings::SettingsError::Invalid {
                key: "events.webhook_url",
                problem: "must be set to dispatch events".to_owned(),
            },
        ));
    };
    let store = identity_persistence::open(&settings.store_settings())?;
    let dispatcher = crate::dispatcher::Dispatcher::new(store.outbox, webhook, &settings.events);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let thread = dispatcher.spawn(stop).map_err(StartupError::Serve)?;
    let _ = thread.join();
    Ok(())
}

/// Applies pending migrations (creating the database or file first when allowed). Returns
/// the versions applied.
///
/// # Errors
/// When the store cannot be reached or a migration fails.
pub fn migrate(settings: &Settings) -> Result<Vec<String>, StartupError> {
    let mut store = settings.store_settings();
    store.run_migrations = true;
    Ok(identity_persistence::prepare(&store)?)
}

/// The invariants' violations on the live store (empty when the graph is sound). Reads
/// only: a missing database or a schema behind the binary is an error, never created.
///
/// # Errors
/// When the store cannot be read.
pub fn check(settings: &Settings) -> Result<Vec<Violation>, StartupError> {
    let store = identity_persistence::open_read_only(&settings.store_settings())?;
    store.maintenance.check().map_err(StartupError::Store)
}

/// The change events given up on.
///
/// # Errors
/// When the store cannot be read.
pub fn dead_events(
    settings: &Settings,
) -> Result<Vec<identity_persistence::DeadEvent>, StartupError> {
    let store = identity_persistence::open_read_only(&settings.store_settings())?;
    store.outbox.dead().map_err(StartupError::Store)
}

/// Queues dead events again: `id`, or all of them. Returns how many.
///
/// # Errors
/// When the store cannot be reached.
pub fn retry_events(settings: &Settings, id: Option<i64>) -> Result<usize, StartupError> {
    let store = identity_persistence::open(&settings.store_settings())?;
    store.outbox.retry_dead(id).map_err(StartupError::Store)
}

/// Figures about the store.
///
/// # Errors
/// When the store cannot be read.
pub fn stats(settings: &Settings, top: usize) -> Result<StoreStats, StartupError> {
    let store = identity_persistence::open_read_only(&settings.store_settings())?;
    store.maintenance.stats(top).map_err(StartupError::Store)
}

/// What to import and how.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// A file, or `-` for stdin.
    pub input: PathBuf,
    pub format: Option<Format>,
    /// Where bad records go (JSON lines: line, reason, record), created on the first one.
    pub rejects: PathBuf,
    pub batch_size: usize,
    /// Decide and write each record on its own, as before set-based batches (three round
    /// trips per record): kept to measure the two side by side.
    pub per_record: bool,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub records: usize,
    pub rejected: usize,
    pub created: usize,
    pub merged: usize,
    pub unchanged: usize,
    pub refused: usize,
    /// Records stored without their lowest-priority identifier: the whole record would have
    /// grown a customer past the merge guard (rule 6).
    pub dropped: usize,
    /// Unlink rules made from the file's rule lines (an export's).
    pub rules: usize,
    /// Manual links made from the file's link lines (an export's).
    pub links: usize,
    /// Link lines whose contacts are not in the store, or that the merge guard refused.
    pub links_not_made: usize,
    pub rejects_file: Option<PathBuf>,
    pub elapsed: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: io::Error },
    #[error("cannot write the rejects file {path}: {source}")]
    Rejects { path: String, source: io::Error },

    #[error("say --format csv or --format jsonl: the format of {0} cannot be told from its name")]
    UnknownFormat(String),
    #[error("the CSV header names neither email nor phoneNumber")]
    CsvHeader,
    #[error(transparent)]
    Store(#[from] StartupError),
}

/// How far past the import's start a record's `createdAt` may lie: the clocks of the
/// systems that exported the file may run a little ahead of ours. Anything later is an error
/// in the data (a date in 2999 would otherwise make its contact every customer's primary
/// forever), and the record goes to the rejects file.
const CLOCK_SKEW_ALLOWANCE: TimeDelta = TimeDelta::minutes(5);

/// The earliest `createdAt` an import takes: older dates are errors in the data (a zero
/// value, year 1), and the record goes to the rejects file.
const EARLIEST_CREATED_AT: DateTime<Utc> = DateTime::UNIX_EPOCH;

impl From<RepositoryError> for ImportError {
    fn from(error: RepositoryError) -> Self {
        Self::Store(StartupError::Store(error))
    }
}

/// Imports historical contacts: every good record is reconciled with the same rules as
/// `/identify`, a record older than the primary it joins becoming that customer's primary;
/// in batches of `batch_size` records per transaction, in `createdAt` order (undated
/// records last, in file order). Bad records go to the rejects file and never stop the
/// import. Running the same file again creates nothing.
///
/// # Errors
/// When the file or the store cannot be used; bad records are not errors.
pub fn import(settings: &Settings, options: &ImportOptions) -> Result<ImportSummary, ImportError> {
    let started = Instant::now();
    let store =
        identity_persistence::open(&settings.store_settings()).map_err(StartupError::from)?;
    let format = import_format(options)?;
    let mut lines = Lines::open(&options.input)?;
    let mut rejects = Rejects::new(options.rejects.clone());
    let mut file = read_input(settings, &store, format, &mut lines, &mut rejects)?;
    warn_of_unknown_fields(&file.unknown_fields);
    let rejects_file = rejects.finish()?;
    // Oldest first: the primary of each customer is its oldest contact from the start.
    file.records
        .sort_by_key(|r| (r.seen_at.is_none(), r.seen_at));
    let mut summary = ImportSummary {
        records: file.records.len() + rejects.count,
        rejected: rejects.count,
        rules: file.rules_made,
        rejects_file,
        ..ImportSummary::default()
    };
    write_records(settings, &store, &file.records, options, &mut summary)?;
    let links = crate::cli::export::make_links(
        store.repository.as_ref(),
        &settings.merge_guard,
        &file.link_lines,
    )?;
    summary.links = links.made;
    summary.links_not_made = links.not_made;
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// The format `--format` names, or else the file's extension.
fn import_format(options: &ImportOptions) -> Result<Format, ImportError> {
    options
        .format
        .or_else(
            || match options.input.extension().and_then(|e| e.to_str()) {
                Some("csv") => Some(Format::Csv),
                Some("jsonl" | "ndjson" | "json") => Some(Format::Jsonl),
                _ => None,
            },
        )
        .ok_or_else(|| ImportError::UnknownFormat(options.input.display().to_string()))
}

/// The input file (or stdin), line by line, as bytes: a line that is not UTF-8, not JSON,
/// or not one CSV record is rejected alone, with its number, and never takes the lines
/// after it along.
struct Lines {
    split: io::Split<Box<dyn BufRead>>,
    path: String,
    /// The number of the line read last.
    number: u64,
}

impl Lines {
    fn open(input: &Path) -> Result<Self, ImportError> {
        let path = input.display().to_string();
        let reader: Box<dyn BufRead> = if input == Path::new("-") {
            Box::new(BufReader::new(io::stdin()))
        } else {
            let file = File::open(input).map_err(|source| ImportError::Read {
                path: path.clone(),
                source,
            })?;
            Box::new(BufReader::new(file))
        };
        Ok(Self {
            split: reader.split(b'\n'),
            path,
            number: 0,
        })
    }

    /// The next line: its text, or (`Err`) what could be read of a line that is not UTF-8.
    fn next(&mut self) -> Result<Option<Result<String, String>>, ImportError> {
        let Some(bytes) = self.split.next() else {
            return Ok(None);
        };
        self.number += 1;
        let mut bytes = bytes.map_err(|source| ImportError::Read {
            path: self.path.clone(),
            source,
        })?;
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        Ok(Some(String::from_utf8(bytes).map_err(|e| {
            String::from_utf8_lossy(e.as_bytes()).into_owned()
        })))
    }
}

/// What the input holds besides its rejected lines.
struct ImportFile {
    /// The records that passed validation, each with its `createdAt`.
    records: Vec<BatchRecord>,
    /// Manual links (an export's): made after every record.
    link_lines: Vec<crate::cli::export::LinkRecord>,
    /// Unlink rules made from the file's rule lines.
    rules_made: usize,
    /// Field names the import does not read.
    unknown_fields: BTreeSet<String>,
}

/// Reads every line: records are validated and kept, unlink rules (an export's) made as they
/// are read, before any record is written, so that the records after a rule are read with
/// it; bad lines go to `rejects`.
fn read_input(
    settings: &Settings,
    store: &identity_persistence::Store,
    format: Format,
    lines: &mut Lines,
    rejects: &mut Rejects,
) -> Result<ImportFile, ImportError> {
    // Values that unlink rules name are placeholders to the import too. A rule made while
    // it runs stops it before the batch that holds the value is written.
    let mut policy = policy_with_rules(settings, store)?;
    // Rule and link lines are read with the configured identifier rules (a value is not
    // refused for having a rule already: then making it again changes nothing).
    let rules_policy = &settings.identifiers.policy;
    let service = IdentityService::new(store.repository.clone(), settings.merge_guard);
    let latest = Utc::now() + CLOCK_SKEW_ALLOWANCE;
    let mut file = ImportFile {
        records: Vec::new(),
        link_lines: Vec::new(),
        rules_made: 0,
        unknown_fields: BTreeSet::new(),
    };
    let csv_headers = match format {
        Format::Jsonl => None,
        Format::Csv => Some(csv_header(lines)?),
    };
    if let Some(headers) = &csv_headers {
        file.unknown_fields
            .extend(headers.iter().filter(|h| !is_import_field(h)).cloned());
    }
    while let Some(line) = lines.next()? {
        let number = lines.number;
        let line = match line {
            Ok(line) if line.trim().is_empty() => continue,
            Ok(line) => line,
            Err(lossy) => {
                rejects.add(number, "not UTF-8 text", &lossy);
                continue;
            }
        };
        if csv_headers.is_none() {
            if let Some(rule) = crate::cli::export::rule_line(&line, rules_policy) {
                match rule {
                    Ok(rule) => {
                        file.rules_made += usize::from(make_rule(&service, &rule)?);
                        // Read again even when the rule existed: others may have been made
                        // meanwhile.
                        policy = policy_with_rules(settings, store)?;
                    }
                    Err(reason) => rejects.add(number, &reason, &line),
                }
                continue;
            }
            if let Some(link) = crate::cli::export::link_line(&line, rules_policy) {
                match link {
                    Ok(link) => file.link_lines.push(link),
                    Err(reason) => rejects.add(number, &reason, &line),
                }
                continue;
            }
        }
        let record = record_fields(&line, csv_headers.as_deref()).and_then(|body| {
            file.unknown_fields
                .extend(body.keys().filter(|k| !is_import_field(k)).cloned());
            admit_record(&policy, latest, body)
        });
        match record {
            Ok(record) => file.records.push(record),
            Err(reason) => rejects.add(number, &reason, &line),
        }
    }
    Ok(file)
}

/// The fields a record may have.
fn is_import_field(name: &str) -> bool {
    matches!(name, "email" | "phoneNumber" | "createdAt")
}

/// A CSV file's first line: its field names, one of them email or phoneNumber.
fn csv_header(lines: &mut Lines) -> Result<Vec<String>, ImportError> {
    let Some(Ok(header)) = lines.next()? else {
        return Err(ImportError::CsvHeader);
    };
    let headers = csv_fields(&header).map_err(|_| ImportError::CsvHeader)?;
    if !headers.iter().any(|h| h == "email" || h == "phoneNumber") {
        return Err(ImportError::CsvHeader);
    }
    Ok(headers)
}

/// One line's fields by name: a JSON object, or a CSV record under `headers`.
fn record_fields(line: &str, headers: Option<&[String]>) -> Result<Map<String, Value>, String> {
    match headers {
        None => serde_json::from_str::<Map<String, Value>>(line)
            .map_err(|e| format!("not a JSON object: {e}")),
        Some(headers) => Ok(headers
            .iter()
            .zip(csv_fields(line)?)
            .map(|(h, v)| (h.clone(), Value::String(v)))
            .collect()),
    }
}

/// Says which fields the import did not read: field names only (never values), at most a
/// few, shortened, and escaped (a name is whatever the file says, terminal escape sequences
/// included).
fn warn_of_unknown_fields(unknown_fields: &BTreeSet<String>) {
    if unknown_fields.is_empty() {
        return;
    }
    let names: Vec<String> = unknown_fields
        .iter()
        .take(10)
        .map(|n| {
            let short: String = n.chars().take(40).collect();
            short.escape_debug().to_string()
        })
        .collect();
    let more = unknown_fields.len().saturating_sub(names.len());
    let message = format!(
        "unknown fields ignored: {}{} (the import reads email, phoneNumber and createdAt)",
        names.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    );
    tracing::warn!("{message}");
    eprintln!("identity-api: warning: {message}");
}

/// Writes the records in batches of `options.batch_size`, counting what each did in
/// `summary`.
fn write_records(
    settings: &Settings,
    store: &identity_persistence::Store,
    records: &[BatchRecord],
    options: &ImportOptions,
    summary: &mut ImportSummary,
) -> Result<(), ImportError> {
    let mut progress = Progress::new(records.len());
    // Statistics are refreshed each time the import has doubled what it created, so that
    // the database plans its lookups for the table as it grows (a plan made while the
    // table was nearly empty would scan it whole).
    let mut refresh_at = 1_000;
    for batch in records.chunks(options.batch_size.max(1)) {
        let outcome = if options.per_record {
            write_each_record(settings, store, batch)
        } else {
            store.maintenance.import_batch(
                batch,
                &settings.merge_guard,
                settings.identifiers.priority,
                "import",
            )
        }?;
        summary.created += outcome.created;
        summary.merged += outcome.merged;
        summary.unchanged += outcome.unchanged;
        summary.refused += outcome.refused;
        summary.dropped += outcome.dropped;
        if summary.created >= refresh_at {
            store.maintenance.refresh_statistics()?;
            refresh_at = summary.created.saturating_mul(2);
        }
        progress.advance(batch.len());
    }
    progress.finish();
    Ok(())
}

/// One batch decided and written record by record (`--per-record`), as `/identify` does.
fn write_each_record(
    settings: &Settings,
    store: &identity_persistence::Store,
    batch: &[BatchRecord],
) -> Result<BatchOutcome, RepositoryError> {
    let requests: Vec<Identifiers> = batch.iter().map(|r| r.identifiers.clone()).collect();
    // Which records left an identifier out, as last decided (a unit of work that collides
    // runs again and decides again).
    let dropped = RefCell::new(vec![false; batch.len()]);
    let decide = |i: usize, current: &[Contact]| {
        let record = &batch[i];
        reconcile_with_priority(
            &record.identifiers,
            record.seen_at,
            current,
            &settings.merge_guard,
            settings.identifiers.priority,
        )
        .map(|(plan, left_out)| {
            dropped.borrow_mut()[i] = left_out.is_some();
            plan
        })
    };
    let mut outcome = store
        .maintenance
        .apply_batch(&requests, &decide, "import")?;
    outcome.dropped = dropped.borrow().iter().filter(|d| **d).count();
    Ok(outcome)
}

/// Makes an unlink rule read from an import file, applying it to the store as
/// `POST /blocked-identifiers` does. `false` when the value has a rule already (importing
/// the same file again makes nothing).
fn make_rule(
    service: &identity_domain::IdentityService,
    rule: &identity_domain::NewUnlinkRule,
) -> Result<bool, identity_domain::RepositoryError> {
    match service.unlink(rule) {
        Ok(_) => Ok(true),
        Err(identity_domain::ServiceError::RuleExists { .. }) => Ok(false),
        Err(identity_domain::ServiceError::Repository(error)) => Err(error),
        Err(other) => Err(identity_domain::RepositoryError::Internal(Box::new(other))),
    }
}

/// The fields of one CSV line (quotes and commas as RFC 4180 has them, on one line).
///
/// # Errors
/// The reason the line is not one CSV record (an unbalanced quote).
fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    if line.matches('"').count() % 2 == 1 {
        return Err("not a CSV record: a quote is not closed on its line".to_owned());
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(line.as_bytes());
    match reader.records().next() {
        Some(Ok(record)) => Ok(record.iter().map(str::to_owned).collect()),
        Some(Err(e)) => Err(format!("not a CSV record: {e}")),
        None => Ok(Vec::new()),
    }
}

/// Validates one record exactly as `/identify` validates a request, plus `createdAt` (a date
/// no later than `latest`).
fn admit_record(
    policy: &identity_domain::IdentifierPolicy,
    latest: DateTime<Utc>,
    mut body: Map<String, Value>,
) -> Result<BatchRecord, String> {
    let created_at = match body.remove("createdAt") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(
            DateTime::parse_from_rfc3339(s.trim())
                .map_err(|e| format!("createdAt is not an RFC 3339 date-time: {e}"))?
                .with_timezone(&Utc),
        ),
        Some(_) => return Err("createdAt must be an RFC 3339 date-time string".to_owned()),
    };
    if created_at.is_some_and(|at| at < EARLIEST_CREATED_AT) {
        return Err(
            "createdAt is before 1970-01-01: no order is that old (a date of year 1 would make \
             its contact the primary of every customer it touches)"
                .to_owned(),
        );
    }
    if created_at.is_some_and(|at| at > latest) {
        return Err(format!(
            "createdAt is in the future (more than {} minutes after the import started)",
            CLOCK_SKEW_ALLOWANCE.num_minutes()
        ));
    }
    let admitted = IdentifyBody::from(body)
        .admit(policy)
        .map_err(|e: ApiError| e.to_string())?;
    Ok(BatchRecord {
        identifiers: admitted.identifiers,
        seen_at: created_at,
    })
}

/// The rejects file, created on the first bad record.
struct Rejects {
    path: PathBuf,
    lines: Vec<String>,
    count: usize,
}

impl Rejects {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            lines: Vec::new(),
            count: 0,
        }
    }

    fn add(&mut self, line: u64, reason: &str, record: &str) {
        self.count += 1;
        self.lines.push(
            serde_json::json!({"line": line, "reason": reason, "record": record}).to_string(),
        );
    }

    fn finish(&mut self) -> Result<Option<PathBuf>, ImportError> {
        if self.lines.is_empty() {
            return Ok(None);
        }
        let path = self.path.clone();
        let error = |source| ImportError::Rejects {
            path: path.display().to_string(),
            source,
        };
        // The rejected records hold emails and phone numbers: for the owner's eyes only. They
        // go to a file made new beside the target (never one that exists, whose mode it
        // would keep), which then replaces the target: a symbolic link there is replaced,
        // not followed, so no other file is ever written.
        let name = path.file_name().map_or_else(
            || "rejects".to_owned(),
            |n| n.to_string_lossy().into_owned(),
        );
        let staging = path.with_file_name(format!(".{name}.{}.new", std::process::id()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&staging).map_err(error)?;
        let written = self
            .lines
            .iter()
            .try_for_each(|line| writeln!(file, "{line}"))
            .and_then(|()| file.sync_all())
            .and_then(|()| std::fs::rename(&staging, &path));
        if let Err(source) = written {
            let _ = std::fs::remove_file(&staging);
            return Err(error(source));
        }
        Ok(Some(path))
    }
}

/// A progress bar with rate and ETA on a terminal; a plain line every few seconds otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total: usize,
    done: usize,
    started: Instant,
    last_line: Instant,
}

impl Progress {
    fn new(total: usize) -> Self {
        let bar = io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} records  {per_sec}  eta {eta}",
            ) {
                bar.set_style(style);
            }
            bar
        });
        Self {
            bar,
            total,
            done: 0,
            started: Instant::now(),
            last_line: Instant::now(),
        }
    }

    fn advance(&mut self, records: usize) {
        self.done += records;
        match &self.bar {
            Some(bar) => bar.inc(records as u64),
            None if self.last_line.elapsed() >= Duration::from_secs(5) => {
                self.last_line = Instant::now();
                eprintln!(
                    "imported {}/{} records ({:.0}/s)",
                    self.done,
                    self.total,
                    self.done as f64 / self.started.elapsed().as_secs_f64().max(0.001)
                );
            }
            None => {}
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
