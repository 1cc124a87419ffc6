//! `GET /contacts/{id}`: the customer of any contact, read-only.

use actix_web::{web, HttpResponse};
use identity_domain::{ContactId, IdentityService};

use crate::auth::{Authorized, ReadScope};
use crate::error::ApiError;
use crate::identify::IdentifyResponse;
use crate::run_blocking;

/// A contact id from a path: a positive whole number, else 400.
pub(crate) fn contact_id(raw: &str) -> Result<ContactId, ApiError> {
    raw.trim()
        .parse::<i64>()
        .ok()
        .and_then(ContactId::new)
        .ok_or_else(|| ApiError::InvalidPath("the id must be a positive whole number".to_owned()))
}

/// The consolidated customer that contact `id` (primary or secondary) belongs to, in the
/// same shape as `/identify`'s answer. Writes nothing.
#[utoipa::path(
    get,
    path = "/contacts/{id}",
    tag = "identity",
    params(("id" = i64, Path, description = "Any contact id of the customer (primary or secondary)", minimum = 1)),
    security(("api_key" = ["read"])),
    responses(
        (status = 200, description = "The customer", body = IdentifyResponse,
         example = json!({"contact": {"primaryContactId": 1, "emails": ["lorraine@hillvalley.edu", "mcfly@hillvalley.edu"], "phoneNumbers": ["123456"], "secondaryContactIds": [23]}})),
        (status = 400, description = "The id is not a positive whole number", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No live contact has this id", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No API key, or one that is not valid", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks the read scope", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts from this client", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 500, description = "Unexpected error", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unreachable; retry", body = crate::openapi::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn contact(
    _key: Authorized<ReadScope>,
    service: web::Data<IdentityService>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = contact_id(&id)?;
    let service = service.into_inner();
    let customer = run_blocking(move || service.customer_of(id))
        .await??
        .ok_or(ApiError::ContactNotFound(id.get()))?;
    Ok(HttpResponse::Ok().json(IdentifyResponse::of(customer, Vec::new())))
}
