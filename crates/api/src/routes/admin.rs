//! History and erasure: `GET /contacts/{id}/history`, `DELETE /contacts/{id}`,
//! `DELETE /customers/{primaryId}`. Reading the history needs the read scope; erasure the
//! admin scope, and `admin.erasure_enabled`.

use actix_web::{web, HttpRequest, HttpResponse};
use identity_domain::{ContactId, IdentifyError, IdentityService, Link, Rewrite};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::{AdminScope, Authorized, ReadScope};
use crate::error::ApiError;
use crate::error::Problem;
use crate::run_blocking;
use crate::wire::{contact_id, request_id};

/// Whether erasure is on (`admin.erasure_enabled`).
#[derive(Clone, Copy)]
pub struct ErasureAccess {
    pub enabled: bool,
}

/// One event of a customer's history.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEventView {
    id: i64,
    /// `contact.created`, `contact.linked`, `primary.demoted`, `primary.promoted`,
    /// `contact.normalized`, `contact.unlinked` (an unlink rule took a value off),
    /// `contact.erased`.
    #[serde(rename = "type")]
    kind: &'static str,
    contact_id: i64,
    /// The customer (its primary's id) the event belonged to when it happened.
    customer_id: i64,
    /// What caused it: `request:<request id>` (a request to `/identify`),
    /// `erasure:<request id>`, `import`, `normalize`, `unlink:<rule id>` or `link:<link id>`. The request id is
    /// the service's own (in its logs beside the caller's `X-Request-Id`), never a caller's.
    cause: String,
    /// The contact's link before the event (absent for a creation).
    before: Option<LinkStateView>,
    /// The contact's link after the event (absent for an erasure).
    after: Option<LinkStateView>,
    occurred_at: String,
}

/// Where a contact hung in its customer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LinkStateView {
    /// `primary` or `secondary`.
    link_precedence: &'static str,
    /// The primary a secondary links to; null for a primary.
    linked_id: Option<i64>,
}

impl From<Link> for LinkStateView {
    fn from(link: Link) -> Self {
        Self {
            link_precedence: link.precedence(),
            linked_id: link.linked_id().map(ContactId::get),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryView {
    events: Vec<HistoryEventView>,
}

/// The history of the customer of any contact, oldest first. Holds ids only.
#[utoipa::path(get, path = "/contacts/{id}/history", tag = "identity",
    params(("id" = i64, Path, description = "Any contact id of the customer", minimum = 1)),
    security(("api_key" = ["read"])),
    responses(
        (status = 200, description = "The customer's history", body = HistoryView),
        (status = 400, description = "The id is not a positive whole number", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No live contact has this id", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn history(
    _key: Authorized<ReadScope>,
    service: web::Data<IdentityService>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = contact_id(&id)?;
    let service = service.into_inner();
    let events = run_blocking(move || service.history(id))
        .await??
        .ok_or(ApiError::ContactNotFound(id.get()))?;
    let events = events
        .into_iter()
        .map(|e| HistoryEventView {
            id: e.id,
            kind: e.kind.as_str(),
            contact_id: e.contact_id,
            customer_id: e.customer_id,
            cause: e.cause,
            before: e.before.map(LinkStateView::from),
            after: e.after.map(LinkStateView::from),
            occurred_at: crate::wire_time(e.occurred_at),
        })
        .collect();
    Ok(HttpResponse::Ok().json(HistoryView { events }))
}

/// What an erasure did.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErasureView {
    /// The contacts erased: their values blanked, their rows deleted.
    erased_contact_ids: Vec<i64>,
    /// The customers (primary ids) that the rest of the contacts now form.
    customer_ids: Vec<i64>,
}

impl From<Rewrite> for ErasureView {
    fn from(rewrite: Rewrite) -> Self {
        let erased_contact_ids = rewrite
            .changes
            .iter()
            .filter(|c| c.erased)
            .map(|c| c.id.get())
            .collect();
        let mut customer_ids: Vec<i64> = rewrite
            .changes
            .iter()
            .filter(|c| !c.erased)
            .map(|c| match c.link {
                Link::Primary => c.id.get(),
                Link::Secondary(p) => p.get(),
            })
            .collect();
        customer_ids.sort_unstable();
        customer_ids.dedup();
        Self {
            erased_contact_ids,
            customer_ids,
        }
    }
}

fn ensure_enabled(access: &ErasureAccess) -> Result<(), ApiError> {
    if access.enabled {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "erasure is disabled on this service (admin.erasure_enabled)".to_owned(),
        ))
    }
}

/// Erases one contact (a privacy request). What remains of its customer is re-clustered:
/// if the contact was the only link between two groups, they become two customers, each led
/// by its oldest contact.
#[utoipa::path(delete, path = "/contacts/{id}", tag = "admin",
    params(("id" = i64, Path, description = "The contact to erase", minimum = 1)),
    security(("api_key" = ["admin"])),
    responses(
        (status = 200, description = "Erased", body = ErasureView),
        (status = 400, description = "The id is not a positive whole number", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks the admin scope, or erasure is disabled", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No live contact has this id", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn erase_contact(
    _key: Authorized<AdminScope>,
    service: web::Data<IdentityService>,
    access: web::Data<ErasureAccess>,
    request: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    erase(
        service,
        &access,
        &request,
        &id,
        ApiError::ContactNotFound,
        |s, id, cause| s.erase_contact(id, cause),
    )
    .await
}

/// The erasure endpoints' shared part: authorize, parse the id, erase, answer.
async fn erase(
    service: web::Data<IdentityService>,
    access: &ErasureAccess,
    request: &HttpRequest,
    id: &str,
    not_found: fn(i64) -> ApiError,
    operation: fn(&IdentityService, ContactId, &str) -> Result<Option<Rewrite>, IdentifyError>,
) -> Result<HttpResponse, ApiError> {
    ensure_enabled(access)?;
    let id = contact_id(id)?;
    let cause = format!("erasure:{}", request_id(request));
    let service = service.into_inner();
    let rewrite = run_blocking(move || operation(&service, id, &cause))
        .await??
        .ok_or(not_found(id.get()))?;
    Ok(HttpResponse::Ok().json(ErasureView::from(rewrite)))
}

/// Erases every contact of a customer, named by its primary's id.
#[utoipa::path(delete, path = "/customers/{primaryId}", tag = "admin",
    params(("primaryId" = i64, Path, description = "The customer's primary contact id", minimum = 1)),
    security(("api_key" = ["admin"])),
    responses(
        (status = 200, description = "Erased", body = ErasureView),
        (status = 400, description = "The id is not a positive whole number", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks the admin scope, or erasure is disabled", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No live contact has this id", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The contact does not lead a customer (it was merged into another); nothing erased", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn erase_customer(
    _key: Authorized<AdminScope>,
    service: web::Data<IdentityService>,
    access: web::Data<ErasureAccess>,
    request: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    erase(
        service,
        &access,
        &request,
        &id,
        ApiError::CustomerNotFound,
        |s, id, cause| s.erase_customer(id, cause),
    )
    .await
}
