//! `identity-api`: the identity reconciliation service, and its operator commands.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use identity_api::{commands, telemetry, Application, Settings, StartupError};

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
    telemetry::init(&settings.log);
    let outcome = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings),
        Command::Normalize => commands::normalize(&settings).map(|rewrite| {
            println!(
                "normalized {} contacts, merged {} customers, erased {} contacts holding only \
                 blocked values, left {} values that are not valid under the current rules as they were",
                rewrite.values_normalized,
                rewrite.customers_merged,
                rewrite.contacts_erased,
                rewrite.values_kept
            );
        }),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let message = telemetry::error_chain(&error);
            tracing::error!(error = %message, "identity-api failed");
            eprintln!("identity-api: {message}");
            ExitCode::FAILURE
        }
    }
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
