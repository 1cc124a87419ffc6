//! Building and running the server: database set-up, routes, middleware, listener.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Server, ServerHandle, ServiceRequest, ServiceResponse};
use actix_web::error::JsonPayloadError;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::from_fn;
use actix_web::middleware::Next;
use actix_web::{web, App, HttpMessage, HttpRequest, HttpResponse, HttpServer, ResponseError};
use identity_domain::{IdentifierPolicy, IdentityService};
use identity_persistence::PersistenceError;
use secrecy::ExposeSecret;
use thiserror::Error;
use utoipa_swagger_ui::SwaggerUi;

use crate::auth::{hash_key, Gate, GateSettings};
use crate::dispatcher::Dispatcher;
use crate::error::ApiError;
use crate::routes::admin::{erase_contact, erase_customer, history, ErasureAccess};
use crate::routes::contacts::{contact, graph, search, why};
use crate::routes::health::{healthz, readyz, ReadinessCheck};
use crate::routes::identify::identify;
use crate::routes::links::{create_link, delete_link, list_links, preview_link};
use crate::routes::metrics::{metrics, PoolProbe};
use crate::routes::unlink::{create_rule, delete_rule, list_rules, preview_rule};
use crate::settings::{CompatSettings, Settings};
use crate::telemetry::observe_request;

#[derive(Debug, Error)]
pub enum StartupError {
    #[error("database: {0}")]
    Database(#[from] PersistenceError),
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
    #[error("the server failed: {0}")]
    Serve(std::io::Error),
    #[error(transparent)]
    Settings(#[from] crate::settings::SettingsError),
    #[error("the store refused the operation")]
    Store(#[source] identity_domain::RepositoryError),
    #[error("no API key exists and server.host {host} is not a loopback address, so anyone who reaches the port could read every customer: create a key first (identity-api keys create --name <name> --scope identify), or set IDENTITY__AUTH__BOOTSTRAP_KEY, or listen on 127.0.0.1")]
    NoKeys { host: String },
}

/// A built server, bound to its port, not yet running.
pub struct Application {
    server: Server,
    port: u16,
    dispatcher: Option<Dispatcher>,
    gate: Arc<Gate>,
    outbox: Arc<dyn identity_persistence::Outbox>,
    events: crate::settings::EventSettings,
}

impl Application {
    /// Prepares the database (creates it and applies migrations, as configured), builds the
    /// pool and binds the listener.
    ///
    /// # Errors
    /// When the database cannot be prepared or the address cannot be bound.
    pub fn build(settings: &Settings) -> Result<Self, StartupError> {
        let store = identity_persistence::open(&settings.store_settings())?;
        tracing::info!(database = %store.url, "store open");
        let dispatcher =
            settings.events.webhook.as_ref().map(|webhook| {
                Dispatcher::new(Arc::clone(&store.outbox), webhook, &settings.events)
            });
        let gate = open_gate(settings, &store.keys)?;
        let service = IdentityService::new(store.repository, settings.merge_guard)
            .with_priority(settings.identifiers.priority);
        let policy = settings.identifiers.policy.clone();
        // Ready when the database answers and the keys are loaded (they could not be if the
        // database was down at start-up: the probe loads them then, rather than wait for
        // the next refresh, so that ready means able to serve).
        let ready: ReadinessCheck = {
            let (database, gate) = (store.readiness, Arc::clone(&gate));
            Arc::new(move || {
                database()?;
                if gate.has_keys().is_none() {
                    gate.refresh()?;
                }
                Ok(())
            })
        };

        let address = format!("{}:{}", settings.server.host, settings.server.port);
        let listener = TcpListener::bind(&address).map_err(|source| StartupError::Bind {
            address: address.clone(),
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Bind { address, source })?
            .port();

        let max_body = settings.server.max_body_bytes;
        let state = AppState {
            service: web::Data::new(service),
            policy: web::Data::new(policy),
            ready: web::Data::new(ready),
            pool: web::Data::new(store.pool_stats),
            erasure: web::Data::new(ErasureAccess {
                enabled: settings.admin.erasure_enabled,
            }),
            gate: web::Data::from(Arc::clone(&gate)),
            compat: web::Data::new(settings.compat),
        };
        crate::routes::metrics::handle();
        let deadline = settings.database.deadline;
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(move |request, next| {
                    crate::with_db_deadline(deadline, request, next)
                }))
                .wrap(from_fn(utf8_bodies_only))
                .wrap(from_fn(security_headers))
                .wrap(from_fn(observe_request))
                .configure(routes(state.clone(), max_body))
        })
        .shutdown_timeout(settings.server.shutdown_timeout.as_secs());
        if let Some(workers) = settings.server.workers {
            server = server.workers(workers.get());
        }
        let server = server
            .listen(listener)
            .map_err(|source| StartupError::Bind {
                address: format!("{}:{port}", settings.server.host),
                source,
            })?
            .run();
        Ok(Self {
            server,
            port,
            dispatcher,
            gate,
            outbox: store.outbox,
            events: settings.events.clone(),
        })
    }

    /// The port actually bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle to stop the server from elsewhere (tests).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM or SIGINT, then lets in-flight requests finish (up to
    /// `server.shutdown_timeout_secs`).
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let stop = Arc::new(AtomicBool::new(false));
        let dispatching = match self.dispatcher {
            Some(dispatcher) => Some(dispatcher.spawn(Arc::clone(&stop))?),
            None => None,
        };
        let refreshing = self.gate.spawn_refresher(Arc::clone(&stop))?;
        let pruning = Dispatcher::spawn_janitor(self.outbox, &self.events, Arc::clone(&stop))?;
        let served = self.server.await;
        stop.store(true, Ordering::Relaxed);
        if let Some(thread) = dispatching {
            let _ = thread.join();
        }
        let _ = refreshing.join();
        let _ = pruning.join();
        served
    }
}

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub service: web::Data<IdentityService>,
    pub policy: web::Data<IdentifierPolicy>,
    pub ready: web::Data<ReadinessCheck>,
    pub pool: web::Data<PoolProbe>,
    pub erasure: web::Data<ErasureAccess>,
    pub gate: web::Data<Gate>,
    pub compat: web::Data<CompatSettings>,
}

/// The routes of the service, with JSON errors for bad bodies, unknown routes and wrong
/// methods. Public so that tests can mount them on a service of their own.
pub fn routes(state: AppState, max_body_bytes: usize) -> impl FnOnce(&mut web::ServiceConfig) {
    use actix_web::http::Method;

    use crate::routes::Endpoint;

    move |cfg: &mut web::ServiceConfig| {
        let document = crate::openapi::document(state.compat.get_ref());
        let json = web::JsonConfig::default()
            .limit(max_body_bytes)
            .error_handler(json_error);
        cfg.app_data(state.service)
            .app_data(state.policy)
            .app_data(state.ready)
            .app_data(state.pool)
            .app_data(state.erasure)
            .app_data(state.gate)
            .app_data(state.compat)
            .app_data(json)
            .service(
                Endpoint::at("/contacts/{id}")
                    .on(Method::GET, contact)
                    .on(Method::DELETE, erase_contact),
            )
            .service(Endpoint::at("/contacts/{id}/why/{other}").on(Method::GET, why))
            .service(Endpoint::at("/contacts/{id}/graph").on(Method::GET, graph))
            .service(Endpoint::at("/customers/search").on(Method::POST, search))
            .service(
                Endpoint::at("/blocked-identifiers")
                    .on(Method::GET, list_rules)
                    .on(Method::POST, create_rule),
            )
            .service(Endpoint::at("/blocked-identifiers/preview").on(Method::POST, preview_rule))
            .service(Endpoint::at("/blocked-identifiers/{id}").on(Method::DELETE, delete_rule))
            .service(
                Endpoint::at("/links")
                    .on(Method::GET, list_links)
                    .on(Method::POST, create_link),
            )
            .service(Endpoint::at("/links/preview").on(Method::POST, preview_link))
            .service(Endpoint::at("/links/{id}").on(Method::DELETE, delete_link))
            .configure(crate::console::routes)
            .service(Endpoint::at("/contacts/{id}/history").on(Method::GET, history))
            .service(Endpoint::at("/customers/{primaryId}").on(Method::DELETE, erase_customer))
            .service(Endpoint::at("/metrics").on(Method::GET, metrics))
            .service(web::resource("/docs").route(web::get().to(|| async {
                HttpResponse::PermanentRedirect()
                    .insert_header((actix_web::http::header::LOCATION, "/docs/"))
                    .finish()
            })))
            .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", document))
            .service(Endpoint::at("/identify").on(Method::POST, identify))
            .service(Endpoint::at("/healthz").on(Method::GET, healthz))
            .service(Endpoint::at("/readyz").on(Method::GET, readyz))
            .default_service(web::to(not_found));
    }
}

/// The access gate over the store's keys: stores the bootstrap key when none exists yet,
/// and refuses to serve a non-loopback address without any key.
fn open_gate(
    settings: &Settings,
    keys: &Arc<dyn identity_domain::KeyRepository>,
) -> Result<Arc<Gate>, StartupError> {
    let loopback = settings.listens_on_loopback();
    let auth = &settings.auth;
    let gate_settings = GateSettings {
        open_without_keys: loopback,
        refresh: auth.refresh,
        max_failures_per_minute: auth.max_failures_per_minute,
        bootstrap: auth
            .bootstrap_key
            .as_ref()
            .map(|key| (hash_key(key.expose_secret()), auth.bootstrap_scopes.clone())),
    };
    let gate = Gate::new(Arc::clone(keys), gate_settings);
    if gate.has_keys() == Some(false) {
        if !loopback {
            return Err(StartupError::NoKeys {
                host: settings.server.host.clone(),
            });
        }
        if gate.is_open() {
            tracing::warn!(
                host = %settings.server.host,
                "no API key exists: serving without keys, on this loopback address only \
                 (create one with `identity-api keys create` to require keys)"
            );
        } else {
            tracing::warn!(
                "every API key is revoked: every request is refused until a key is created"
            );
        }
    }
    Ok(gate)
}

/// The API documentation's page shares the console's origin: only its own script, no
/// framing. (Swagger UI sets inline styles, and draws icons as data: images.)
const DOCS_CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
    frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// Headers every answer carries unless its handler set its own: never sniffed into another
/// type, never stored by a cache (answers hold personal data); and the documentation's
/// content security policy.
async fn security_headers(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let docs = request.path() == "/docs" || request.path().starts_with("/docs/");
    let mut response = next.call(request).await?;
    let headers = response.headers_mut();
    let mut default = |name: HeaderName, value: &'static str| {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    };
    default(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    default(header::CACHE_CONTROL, "no-store");
    if docs {
        default(
            header::CONTENT_SECURITY_POLICY,
            DOCS_CONTENT_SECURITY_POLICY,
        );
        default(header::REFERRER_POLICY, "no-referrer");
    }
    Ok(response)
}

/// Bodies are read as UTF-8 JSON (RFC 8259): a body declared in another character set
/// (`charset=utf-16`) is answered 415 rather than read as something it is not.
async fn utf8_bodies_only(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let foreign = request
        .mime_type()
        .ok()
        .flatten()
        .and_then(|m| {
            m.get_param(actix_web::mime::CHARSET)
                .map(|c| c.as_str().to_ascii_lowercase())
        })
        .is_some_and(|charset| charset != "utf-8" && charset != "utf8");
    if foreign {
        let response = ApiError::UnsupportedMediaType.error_response();
        return Ok(request.into_response(response).map_into_right_body());
    }
    Ok(next.call(request).await?.map_into_left_body())
}

fn json_error(error: JsonPayloadError, _request: &HttpRequest) -> actix_web::Error {
    let api_error = match error {
        JsonPayloadError::ContentType => ApiError::UnsupportedMediaType,
        JsonPayloadError::Overflow { limit }
        | JsonPayloadError::OverflowKnownLength { limit, .. } => {
            ApiError::PayloadTooLarge { limit }
        }
        JsonPayloadError::Deserialize(e) if e.is_data() => ApiError::InvalidBody(
            "the body must be a JSON object with \"email\" and/or \"phoneNumber\"".to_owned(),
        ),
        JsonPayloadError::Deserialize(e) => {
            ApiError::InvalidBody(format!("the body is not valid JSON: {e}"))
        }
        other => ApiError::InvalidBody(format!("the body could not be read: {other}")),
    };
    api_error.into()
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}
