//! `identity-api`: the identity reconciliation service, and its operator commands.

use std::process::ExitCode;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use identity_api::cli::commands::{self, ImportError, ImportOptions, ImportSummary};
use identity_api::cli::export::Format;
use identity_api::cli::export::{self, ExportError};
use identity_api::cli::keys;
use identity_api::{telemetry, Application, Settings, StartupError};
use identity_domain::{Rewrite, Scope, Scopes, StoreStats};
use identity_persistence::DeadEvent;

/// Identity reconciliation as a service: links the contacts a storefront sees into customers.
///
/// Configuration comes from config/default.toml (compiled in), config/$APP_ENV.toml,
/// IDENTITY__SECTION__KEY environment variables, DATABASE_URL and PORT.
#[derive(Debug, Parser)]
#[command(name = "identity-api", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API (the default when no command is given).
    Serve,
    /// Rewrite stored contacts to the current identifier rules and merge what they reveal.
    ///
    /// Lower-cases emails, rewrites phone numbers to E.164, drops blocked placeholders, and
    /// merges the customers that turn out to share an identifier. Run it once after upgrading
    /// from a version without normalization, or after changing identifiers.default_region or
    /// the block lists. Safe to repeat, and to run while the service serves (writers wait
    /// until it is done).
    Normalize,
    /// Apply pending database migrations, then exit.
    ///
    /// For deployments that migrate in a separate step (with database.run_migrations off for
    /// the service). Creates the database, or the SQLite file, first when allowed.
    Migrate,
    /// Import historical contacts (orders) from a CSV or JSON Lines file.
    ///
    /// Each record has email and/or phoneNumber and an optional createdAt (RFC 3339). Records
    /// are validated like /identify requests and reconciled with the same rules, oldest
    /// first, many per transaction; a record older than the primary of the customer it joins
    /// becomes that customer's primary. Bad records (including a createdAt more than 5
    /// minutes in the future) are written to the rejects file, readable by its owner only,
    /// with their line number and reason, and never stop the import. A JSON line
    /// {"unlinkRule": {...}} (from `export`) makes that unlink rule. Importing the same file
    /// again creates nothing. Safe while the service serves traffic.
    Import {
        /// The file to import, or - for standard input.
        file: PathBuf,
        /// The file's format (default: from its extension, .csv or .jsonl).
        #[arg(long, value_enum)]
        format: Option<Format>,
        /// Where to write rejected records (JSON Lines: line, reason, record).
        #[arg(long, default_value = "import-rejects.jsonl")]
        rejects: PathBuf,
        /// Records per transaction. Each batch holds the contact table's write lock while it
        /// is written (about 0.1 s for 5,000 records): /identify writers wait that long.
        #[arg(long, default_value_t = 5000)]
        batch_size: usize,
        /// Decide and write each record of a batch on its own, as before set-based batches
        /// (for measuring the two side by side; same results, slower).
        #[arg(long, hide = true)]
        per_record: bool,
    },
    /// Write the store to standard output, as a file that `import` reads back.
    ///
    /// Every live contact as a record (email, phoneNumber, createdAt), every stored request
    /// that joined two customers without creating a contact as a record too (imported, it
    /// joins them again), and, in JSON Lines, the unlink rules first (import makes them).
    /// Read from one snapshot, safe while the service serves. To move a store:
    /// `DATABASE_URL=sqlite://… identity-api export > contacts.jsonl`, then
    /// `DATABASE_URL=postgres://… identity-api import contacts.jsonl`.
    Export {
        /// The format: jsonl (the default: carries unlink rules) or csv (records only;
        /// refused when the store has unlink rules).
        #[arg(long, value_enum, default_value = "jsonl")]
        format: Format,
    },
    /// Check the contact graph's invariants on the live database; exit 1 on any violation.
    ///
    /// For use after an incident, a manual fix or an import. Reads only.
    Check,
    /// Deliver change events from the outbox to events.webhook_url, until stopped.
    ///
    /// The service runs a dispatcher itself when events.webhook_url is set; run this to
    /// deliver from a separate process instead. Any number may run at once: no event is
    /// delivered by two of them at the same time. Stopping it mid-delivery is safe (the
    /// event is delivered again later: at least once).
    Dispatch,
    /// Change events given up on (too many failed deliveries, or too old): list, retry.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// Manage the API keys every route but the probes and the docs needs.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Print figures about the store: customers, contacts, the largest customers.
    Stats {
        /// How many of the largest customers to list.
        #[arg(long, default_value_t = 10)]
        top: usize,
    },
}

#[derive(Debug, Subcommand)]
enum EventsCommand {
    /// List the dead events: id, customer, type, attempts, creation, last error.
    List,
    /// Queue dead events again (due now, attempts from zero): one by id, or --all.
    Retry {
        /// The event's id.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<i64>,
        /// Every dead event.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key and print it, once, alone on the last line: it is stored only as a hash.
    Create {
        /// A name to tell keys apart (and to revoke by): e.g. the client that uses it.
        #[arg(long)]
        name: String,
        /// What the key may do: identify (POST /identify), read (GET /contacts/…), admin
        /// (erasure). Repeat for several.
        #[arg(long = "scope", required = true, value_parser = parse_scope)]
        scopes: Vec<Scope>,
    },
    /// List every key: id, name, scopes, creation, last use, state. Never a secret.
    List,
    /// Revoke a key by name or id: every replica refuses it within auth.refresh_ms.
    Revoke {
        /// The key's name, or its id.
        name_or_id: String,
    },
}

fn parse_scope(text: &str) -> Result<Scope, String> {
    text.parse::<Scope>().map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("identity-api: {error}");
            return ExitCode::from(2);
        }
    };
    let command = cli.command.unwrap_or(Command::Serve);
    if matches!(command, Command::Export { .. }) {
        telemetry::init_on_stderr(&settings.log);
    } else {
        telemetry::init(&settings.log);
    }
    match run(command, settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Startup(error)) => {
            let message = telemetry::error_chain(&error);
            tracing::error!(error = %message, "identity-api failed");
            eprintln!("identity-api: {message}");
            ExitCode::FAILURE
        }
        Err(Failure::Refused(message)) => {
            eprintln!("identity-api: {message}");
            ExitCode::FAILURE
        }
        Err(Failure::Said) => ExitCode::FAILURE,
    }
}

/// Why a command failed.
enum Failure {
    /// The store or the server: logged, and said on stderr.
    Startup(StartupError),
    /// Something the operator must fix (a file, a key): said on stderr.
    Refused(String),
    /// Already said on stdout (`check`'s violations).
    Said,
}

impl From<StartupError> for Failure {
    fn from(error: StartupError) -> Self {
        Self::Startup(error)
    }
}

impl From<ImportError> for Failure {
    fn from(error: ImportError) -> Self {
        match error {
            ImportError::Store(error) => Self::Startup(error),
            other => Self::Refused(other.to_string()),
        }
    }
}

impl From<ExportError> for Failure {
    fn from(error: ExportError) -> Self {
        match error {
            ExportError::Store(error) => Self::Startup(error),
            other => Self::Refused(other.to_string()),
        }
    }
}

/// A key command says why it failed on stderr alone, never in the log: logs go to stdout,
/// where `keys create` prints the new key.
impl From<keys::KeysError> for Failure {
    fn from(error: keys::KeysError) -> Self {
        Self::Refused(telemetry::error_chain(&error))
    }
}

/// Runs one command and says what it did.
fn run(command: Command, settings: Settings) -> Result<(), Failure> {
    match command {
        Command::Serve => serve(settings)?,
        Command::Export { format } => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let s = export::export(&settings, format, &mut out)?;
            eprintln!(
                "exported {} contacts, {} joining requests, {} unlink rules, {} manual links",
                s.contacts, s.evidence, s.rules, s.links
            );
        }
        Command::Migrate => {
            let applied = commands::migrate(&settings)?;
            if applied.is_empty() {
                println!("the schema is up to date");
            } else {
                let (count, names) = (applied.len(), applied.join(", "));
                println!("applied {count} migrations: {names}");
            }
        }
        Command::Dispatch => commands::dispatch(&settings)?,
        Command::Check => {
            let violations = commands::check(&settings)?;
            for v in &violations {
                println!("violated: invariant {}: {}", v.invariant, v.detail);
            }
            if !violations.is_empty() {
                println!("{} invariants violated", violations.len());
                return Err(Failure::Said);
            }
            println!("ok: every invariant holds");
        }
        Command::Stats { top } => print_stats(&commands::stats(&settings, top)?),
        Command::Import {
            file,
            format,
            rejects,
            batch_size,
            per_record,
        } => {
            let options = ImportOptions {
                input: file,
                format,
                rejects,
                batch_size,
                per_record,
            };
            print_import(&commands::import(&settings, &options)?);
        }
        Command::Events {
            command: EventsCommand::List,
        } => print_dead_events(&commands::dead_events(&settings)?),
        Command::Events {
            command: EventsCommand::Retry { id, all: _ },
        } => {
            let queued = commands::retry_events(&settings, id)?;
            println!("queued {queued} events again");
        }
        Command::Keys { command } => run_keys(command, &settings)?,
        Command::Normalize => print_normalized(&commands::normalize(&settings)?),
    }
    Ok(())
}

fn run_keys(command: KeysCommand, settings: &Settings) -> Result<(), keys::KeysError> {
    match command {
        KeysCommand::Create { name, scopes } => {
            let (key, secret) = keys::create(settings, &name, &Scopes::new(scopes)?)?;
            println!(
                "created key {} ({}) with scopes {}",
                key.id, key.name, key.scopes
            );
            println!("send it as Authorization: Bearer <key>; it is shown only now:");
            println!("{secret}");
        }
        KeysCommand::List => {
            let all = keys::list(settings)?;
            if all.is_empty() {
                println!("no keys: the service serves without keys on loopback only");
            }
            for key in &all {
                println!("{}", keys::describe(key));
            }
        }
        KeysCommand::Revoke { name_or_id } => {
            let key = keys::revoke(settings, &name_or_id)?;
            println!("revoked key {} ({})", key.id, key.name);
        }
    }
    Ok(())
}

fn print_stats(stats: &StoreStats) {
    println!("customers: {}", stats.customers);
    println!(
        "contacts: {} live, {} deleted",
        stats.contacts, stats.deleted_contacts
    );
    println!("contacts per customer:");
    for (bucket, customers) in &stats.contacts_per_customer {
        println!("  {bucket:>6}: {customers} customers");
    }
    println!("largest customers (primary id: contacts, emails, phones):");
    for c in &stats.largest {
        println!(
            "  {}: {}, {}, {}",
            c.primary, c.contacts, c.emails, c.phones
        );
    }
}

fn print_import(s: &ImportSummary) {
    let rate = s.records as f64 / s.elapsed.as_secs_f64().max(0.001);
    println!(
        "imported {} records in {:.1}s ({rate:.0}/s): {} contacts created, {} merges, \
         {} unchanged, {} refused by the merge guard, {} stored without an identifier \
         the merge guard left out, {} rejected, {} unlink rules made, \
         {} manual links made",
        s.records,
        s.elapsed.as_secs_f64(),
        s.created,
        s.merged,
        s.unchanged,
        s.refused,
        s.dropped,
        s.rejected,
        s.rules,
        s.links
    );
    if s.links_not_made > 0 {
        println!(
            "{} manual links of the file were not made: their contacts are not \
             in the store, or the merge guard refused them (see the log)",
            s.links_not_made
        );
    }
    if let Some(path) = &s.rejects_file {
        println!("rejected records are in {}", path.display());
    }
}

fn print_dead_events(dead: &[DeadEvent]) {
    if dead.is_empty() {
        println!("no dead events");
    }
    for event in dead {
        println!(
            "{}\tcustomer {}\t{}\t{} attempts\tcreated {}\t{}",
            event.id,
            event.customer_id,
            event.kind,
            event.attempts,
            event
                .created_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            event.last_error.as_deref().unwrap_or("")
        );
    }
}

fn print_normalized(rewrite: &Rewrite) {
    println!(
        "normalized {} contacts, merged {} customers, removed {} contacts ({} holding only \
         blocked values, {} holding the same email and phone as an older one), left {} \
         values that are not valid under the current rules as they were",
        rewrite.values_normalized,
        rewrite.customers_merged,
        rewrite.contacts_erased,
        rewrite.contacts_erased - rewrite.duplicates_removed,
        rewrite.duplicates_removed,
        rewrite.values_kept
    );
}

fn serve(settings: Settings) -> Result<(), StartupError> {
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(&settings)?;
        tracing::info!(
            host = %settings.server.host,
            port = app.port(),
            "identity-api listening"
        );
        app.run_until_stopped().await.map_err(StartupError::Serve)?;
        tracing::info!("identity-api stopped");
        Ok(())
    })
}
