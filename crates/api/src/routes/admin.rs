//! History and erasure: `GET /contacts/{id}/history`, `DELETE /contacts/{id}`,
//! `DELETE /customers/{primaryId}`. Reading the history needs the read scope; erasure the
//! admin scope, and `admin.erasure_enabled`.

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use identity_domain::{ContactId, IdentityService, Link, Rewrite};
use serde::Serialize;
use utoipa::{IntoResponses, ToSchema};

use super::{about_contact, call};
use crate::auth::{AdminScope, Authorized, ReadScope};
use crate::error::ApiError;
use crate::wire::{contact_id, request_id, InvalidId, NoContact};

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
        InvalidId,
        NoContact,
    ))]
pub async fn history(
    _key: Authorized<ReadScope>,
    service: web::Data<IdentityService>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let events = about_contact(service, contact_id(&id)?, IdentityService::history)
        .await?
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

/// The answers both erasure routes give of their own.
#[derive(IntoResponses)]
#[allow(dead_code)]
enum Erased {
    #[response(status = 200, description = "Erased")]
    Erased(ErasureView),
    #[response(
        status = 403,
        description = "The key lacks the admin scope, or erasure is disabled"
    )]
    Disabled,
}

/// What an erasure route's id names.
#[derive(Clone, Copy)]
enum Erasable {
    Contact,
    /// A customer, by its primary's id.
    Customer,
}

/// The right to erase, taken from the request: a key with the admin scope while erasure is
/// on (else 401 or 403), the service, and the cause the history records
/// (`erasure:<request id>`).
pub struct Erasure {
    service: web::Data<IdentityService>,
    cause: String,
}

impl FromRequest for Erasure {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        ready(Self::granted(request, payload))
    }
}

impl Erasure {
    fn granted(request: &HttpRequest, payload: &mut Payload) -> Result<Self, ApiError> {
        Authorized::<AdminScope>::from_request(request, payload).into_inner()?;
        let access = request.app_data::<web::Data<ErasureAccess>>();
        let service = request.app_data::<web::Data<IdentityService>>();
        let (Some(access), Some(service)) = (access, service) else {
            return Err(ApiError::Internal(
                "erasure is mounted without its service or setting".into(),
            ));
        };
        if !access.enabled {
            return Err(ApiError::Forbidden(
                "erasure is disabled on this service (admin.erasure_enabled)".to_owned(),
            ));
        }
        Ok(Self {
            service: service.clone(),
            cause: format!("erasure:{}", request_id(request)),
        })
    }

    /// Erases what the path's `id` names.
    async fn erase(self, id: &str, what: Erasable) -> Result<HttpResponse, ApiError> {
        let id = contact_id(id)?;
        let cause = self.cause;
        let rewrite = call(self.service, move |service| match what {
            Erasable::Contact => service.erase_contact(id, &cause),
            Erasable::Customer => service.erase_customer(id, &cause),
        })
        .await?
        .ok_or(match what {
            Erasable::Contact => ApiError::ContactNotFound(id.get()),
            Erasable::Customer => ApiError::CustomerNotFound(id.get()),
        })?;
        Ok(HttpResponse::Ok().json(ErasureView::from(rewrite)))
    }
}

/// Erases one contact (a privacy request). What remains of its customer is re-clustered:
/// if the contact was the only link between two groups, they become two customers, each led
/// by its oldest contact.
#[utoipa::path(delete, path = "/contacts/{id}", tag = "admin",
    params(("id" = i64, Path, description = "The contact to erase", minimum = 1)),
    security(("api_key" = ["admin"])),
    responses(Erased, InvalidId, NoContact))]
pub async fn erase_contact(
    erasure: Erasure,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    erasure.erase(&id, Erasable::Contact).await
}

/// Erases every contact of a customer, named by its primary's id.
#[utoipa::path(delete, path = "/customers/{primaryId}", tag = "admin",
    params(("primaryId" = i64, Path, description = "The customer's primary contact id", minimum = 1)),
    security(("api_key" = ["admin"])),
    responses(
        Erased,
        InvalidId,
        NoContact,
        (status = 409, description = "The contact does not lead a customer (it was merged into another); nothing erased"),
    ))]
pub async fn erase_customer(
    erasure: Erasure,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    erasure.erase(&id, Erasable::Customer).await
}
