//! `identity-api`: the identity reconciliation service.

use std::process::ExitCode;

use identity_api::{telemetry, Application, Settings};

fn main() -> ExitCode {
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("identity-api: {error}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&settings.log);
    let outcome = actix_web::rt::System::new().block_on(async move {
        let app = Application::build(&settings)?;
        tracing::info!(
            host = %settings.server.host,
            port = app.port(),
            "identity-api listening"
        );
        app.run_until_stopped()
            .await
            .map_err(identity_api::StartupError::Serve)
    });
    match outcome {
        Ok(()) => {
            tracing::info!("identity-api stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            let message = telemetry::error_chain(&error);
            tracing::error!(error = %message, "identity-api failed");
            eprintln!("identity-api: {message}");
            ExitCode::FAILURE
        }
    }
}
