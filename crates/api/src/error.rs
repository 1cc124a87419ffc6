//! Every error the HTTP API answers, and the one place where each becomes a status code and
//! an `application/problem+json` body (RFC 9457).

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use identity_domain::{InvalidRequest, LinkRefused, RepositoryError, ServiceError};
use serde::Serialize;
use thiserror::Error;
use utoipa::ToSchema;

use crate::telemetry::error_chain as chain;

#[derive(Debug, Error)]
pub enum ApiError {
    /// The body is not JSON, or not the JSON this endpoint takes.
    #[error("{0}")]
    InvalidBody(String),
    /// The JSON is fine but a value is not acceptable.
    #[error(transparent)]
    InvalidRequest(#[from] InvalidRequest),
    #[error("send the body as JSON in UTF-8, with the header Content-Type: application/json")]
    UnsupportedMediaType,
    #[error("the body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("there is no such resource")]
    NotFound,
    /// A path parameter that cannot be what the route expects.
    #[error("{0}")]
    InvalidPath(String),
    #[error("there is no contact with id {0}")]
    ContactNotFound(i64),
    #[error("the two contacts are not live contacts of one customer")]
    NotOneCustomer,
    #[error("there is no customer whose primary contact has id {0}")]
    CustomerNotFound(i64),
    #[error("there is no unlink rule with id {0}")]
    RuleNotFound(i64),
    #[error("there is no manual link with id {0}")]
    LinkNotFound(i64),
    /// No API key, or one that is not (or no longer) valid.
    #[error("send a valid API key as Authorization: Bearer <key>")]
    Unauthorized,
    /// A valid key without the route's scope.
    #[error("this API key does not have the {0} scope this route needs")]
    MissingScope(identity_domain::Scope),
    /// Too many failed attempts from this client.
    #[error(
        "too many requests with a missing or invalid API key from this client; try again later"
    )]
    TooManyAttempts { retry_after: std::time::Duration },
    #[error("{0}")]
    Forbidden(String),
    /// Served without keys, the service answers only requests addressed to a loopback name.
    #[error(
        "this service runs without API keys, so it serves only requests addressed to \
         localhost, 127.0.0.1 or [::1] (Host and Origin): use one of those names, or create \
         a key (identity-api keys create) and send it"
    )]
    NotLoopback,
    /// The request names something by an id that no longer means what it meant.
    #[error("{0}")]
    Conflict(String),
    #[error("this resource only accepts {allow}")]
    MethodNotAllowed { allow: String },
    /// The database is down or overloaded. The request was not applied, or (if the
    /// connection broke while committing) may have been: repeating it is always safe.
    #[error("the service cannot reach its database right now; try again (repeating a request is always safe)")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("an unexpected error occurred; nothing was written")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::Repository(
                e @ (RepositoryError::Unavailable(_) | RepositoryError::Contended { .. }),
            ) => Self::Unavailable(Box::new(e)),
            e @ ServiceError::NotPrimary { .. } => Self::Conflict(format!(
                "{e}; nothing was erased: erase that customer if it is the one meant"
            )),
            ServiceError::Invalid(e) => Self::InvalidRequest(e),
            ServiceError::LinkRefused(e @ LinkRefused::SameContact) => {
                Self::InvalidBody(e.to_string())
            }
            ServiceError::LinkRefused(LinkRefused::UnknownContact(id)) => {
                Self::ContactNotFound(id.get())
            }
            ServiceError::LinkRefused(e) => Self::Conflict(e.to_string()),
            e @ ServiceError::RuleExists { .. } => Self::Conflict(format!(
                "{e}: delete that rule first to make another (GET /blocked-identifiers lists them)"
            )),
            other => Self::Internal(Box::new(other)),
        }
    }
}

impl From<RepositoryError> for ApiError {
    fn from(error: RepositoryError) -> Self {
        ServiceError::from(error).into()
    }
}

impl ApiError {
    /// The status, a stable identifier of the kind of error for clients to branch on (the
    /// problem's `type` is `/problems/<kind>`), and its title: one table for every error.
    fn class(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::InvalidBody(_) => (
                StatusCode::BAD_REQUEST,
                "invalid-body",
                "The request body is not valid",
            ),
            Self::InvalidRequest(InvalidRequest::NoIdentifier) => (
                StatusCode::BAD_REQUEST,
                "missing-identifier",
                "No identifier given",
            ),
            Self::InvalidRequest(InvalidRequest::OnlyBlocked(_)) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "blocked-identifier",
                "Only placeholder identifiers given",
            ),
            Self::InvalidRequest(_) => (
                StatusCode::BAD_REQUEST,
                "invalid-identifier",
                "An identifier is not valid",
            ),
            Self::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            Self::PayloadTooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Request body too large",
            ),
            Self::NotFound
            | Self::ContactNotFound(_)
            | Self::CustomerNotFound(_)
            | Self::RuleNotFound(_)
            | Self::LinkNotFound(_)
            | Self::NotOneCustomer => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            Self::MissingScope(_) | Self::Forbidden(_) => {
                (StatusCode::FORBIDDEN, "forbidden", "Forbidden")
            }
            Self::NotLoopback => (
                StatusCode::FORBIDDEN,
                "not-loopback",
                "Not addressed to a loopback name",
            ),
            Self::TooManyAttempts { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-attempts",
                "Too many failed attempts",
            ),
            Self::InvalidPath(_) => (
                StatusCode::BAD_REQUEST,
                "invalid-path",
                "Invalid path parameter",
            ),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            Self::MethodNotAllowed { .. } => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            Self::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
            ),
            Self::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
            ),
        }
    }
}

/// RFC 9457 problem details: every error answer has this shape, with
/// `Content-Type: application/problem+json`. The one definition of the error body, for the
/// answers and for the OpenAPI document.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"type": "/problems/missing-identifier", "title": "No identifier given", "status": 400, "detail": "give an email, a phoneNumber, or both: neither was given"}))]
pub struct Problem {
    /// A stable identifier of the kind of error, to branch on: `/problems/invalid-body`,
    /// `/problems/missing-identifier`, `/problems/invalid-identifier`,
    /// `/problems/blocked-identifier`, `/problems/unsupported-media-type`,
    /// `/problems/payload-too-large`, `/problems/invalid-path`, `/problems/not-found`,
    /// `/problems/method-not-allowed`, `/problems/unauthorized`, `/problems/forbidden`,
    /// `/problems/not-loopback`, `/problems/too-many-attempts`, `/problems/conflict`,
    /// `/problems/unavailable`, `/problems/internal`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of error.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request, and what to do about it.
    pub detail: String,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.class().0
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        match self {
            Self::Internal(_) => tracing::error!(error = %chain(self), "request failed"),
            Self::Unavailable(_) => tracing::warn!(error = %chain(self), "request failed"),
            _ => {}
        }
        let (_, kind, title) = self.class();
        let problem = Problem {
            kind: format!("/problems/{kind}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: self.to_string(),
        };
        let mut response = HttpResponse::build(status);
        response.content_type("application/problem+json");
        match self {
            Self::Unavailable(_) => {
                response.insert_header((header::RETRY_AFTER, "1"));
            }
            Self::MethodNotAllowed { allow } => {
                response.insert_header((header::ALLOW, allow.as_str()));
            }
            Self::Unauthorized => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            Self::MissingScope(scope) => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    format!("Bearer error=\"insufficient_scope\", scope=\"{scope}\""),
                ));
            }
            Self::TooManyAttempts { retry_after } => {
                response.insert_header((
                    header::RETRY_AFTER,
                    retry_after.as_secs().max(1).to_string(),
                ));
            }
            _ => {}
        }
        response.json(problem)
    }
}
