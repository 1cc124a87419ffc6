//! Logging: `tracing` to stdout, readable text or JSON, and one line per request.

use std::fmt::Write as _;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::HttpMessage;
use tracing::Instrument;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

use crate::settings::{LogFormat, LogSettings};

/// Installs the global subscriber (`RUST_LOG`, when set, has replaced `log.level`). In JSON,
/// every line carries the fields of the request span it was written in (`request_id`).
pub fn init(settings: &LogSettings) {
    install(settings, BoxMakeWriter::new(std::io::stdout));
}

/// [`init`] for a command whose standard output is data (`export`): logs go to stderr.
pub fn init_on_stderr(settings: &LogSettings) {
    install(settings, BoxMakeWriter::new(std::io::stderr));
}

fn install(settings: &LogSettings, writer: BoxMakeWriter) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(settings.level.env_filter())
        .with_writer(writer);
    let installed = match settings.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    // A second call (tests) keeps the first subscriber.
    drop(installed);
}

const REQUEST_ID: &str = "x-request-id";

/// The id this service gave the request being served: recorded, prefixed, as the cause of
/// what the request writes (`request:<id>`, `erasure:<id>`). Always the service's own, never
/// a caller's: what a caller sends (`X-Request-Id: erase.me@victim.io`) would otherwise be
/// stored, survive an erasure and be shown to support staff.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The caller's `X-Request-Id`, when it is a bounded token (1 to 64 letters, digits and
/// `-_.:`): logged beside the service's own id and sent back, never stored.
fn caller_request_id(request: &ServiceRequest) -> Option<String> {
    request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_owned)
}

/// For every request: an id of the service's own, and the caller's `X-Request-Id` when it is
/// a sane token, on a span that every log line of the request carries (`request_id`,
/// `client_request_id`); the caller's id, else ours, sent back in `X-Request-Id`; one log line
/// with method, path, status and latency; request count and latency metrics by route
/// pattern and status. Bodies (which hold personal data) and query strings are never
/// logged or used as labels.
pub async fn observe_request(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let id = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    let caller_id = caller_request_id(&request);
    let method = request.method().clone();
    let path = request.path().to_owned();
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        client_request_id = caller_id.as_deref(),
    );
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.call(request).instrument(span.clone()).await?;
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    span.in_scope(|| tracing::info!(%method, %path, status, latency_us, "request"));
    // Every label comes from a fixed set, whatever the client sends: the method is one of
    // HTTP's own or `other`, the route a pattern of ours or `unmatched`, the status one
    // this server answered.
    let labels = [
        ("method", method_label(&method).to_owned()),
        ("route", route),
        ("status", status.to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(elapsed);
    if let Ok(value) = HeaderValue::from_str(caller_id.as_deref().unwrap_or(&id)) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID), value);
    }
    Ok(response)
}

/// The `method` label: the standard methods by name, `other` for any method a client made up
/// (each would otherwise become a series of its own).
fn method_label(method: &Method) -> &'static str {
    const STANDARD: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    STANDARD
        .into_iter()
        .find(|m| *m == method.as_str())
        .unwrap_or("other")
}

/// An error and every cause below it, on one line (for logs and start-up failures).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let _ = write!(out, ": {cause}");
        source = cause.source();
    }
    out
}
