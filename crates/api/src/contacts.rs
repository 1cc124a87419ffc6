//! `GET /contacts/{id}`: the customer of any contact, read-only; and
//! `GET /contacts/{id}/why/{other}`: why two contacts are one customer.

use actix_web::{web, HttpResponse};
use identity_domain::{ContactId, IdentityService, Step};
use serde::Serialize;
use utoipa::ToSchema;

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

/// One step of a chain: a contact, or what joins the contacts around it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum StepView {
    /// A contact of the customer.
    Contact {
        #[serde(rename = "contactId")]
        contact_id: i64,
    },
    /// The contacts before and after hold this email.
    SharedEmail { email: String },
    /// The contacts before and after hold this phone number.
    SharedPhone {
        #[serde(rename = "phoneNumber")]
        phone_number: String,
    },
    /// A request brought this email and this phone and joined two customers (rule 4); one
    /// of the contacts around it holds the email, the other the phone.
    Request {
        email: String,
        #[serde(rename = "phoneNumber")]
        phone_number: String,
    },
}

/// Why two contacts are one customer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WhyView {
    /// The shortest chain of evidence from the first contact to the second, contacts and
    /// links alternating.
    chain: Vec<StepView>,
}

impl From<Step> for StepView {
    fn from(step: Step) -> Self {
        match step {
            Step::Contact(id) => Self::Contact {
                contact_id: id.get(),
            },
            Step::SharedEmail(email) => Self::SharedEmail {
                email: email.as_str().to_owned(),
            },
            Step::SharedPhone(phone) => Self::SharedPhone {
                phone_number: phone.as_str().to_owned(),
            },
            Step::Request { email, phone } => Self::Request {
                email: email.as_str().to_owned(),
                phone_number: phone.as_str().to_owned(),
            },
        }
    }
}

/// Why contacts `id` and `other` are one customer: the shortest chain of evidence that joins
/// them (a shared email or phone, or a stored request that joined two customers).
#[utoipa::path(
    get,
    path = "/contacts/{id}/why/{other}",
    tag = "identity",
    params(
        ("id" = i64, Path, description = "A contact", minimum = 1),
        ("other" = i64, Path, description = "Another contact", minimum = 1),
    ),
    security(("api_key" = ["read"])),
    responses(
        (status = 200, description = "The chain", body = WhyView),
        (status = 400, description = "An id is not a positive whole number", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, description = "The two are not live contacts of one customer", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No API key, or one that is not valid", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks the read scope", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts from this client", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 500, description = "Unexpected error", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unreachable; retry", body = crate::openapi::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn why(
    _key: Authorized<ReadScope>,
    service: web::Data<IdentityService>,
    ids: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (from, to) = (contact_id(&ids.0)?, contact_id(&ids.1)?);
    let service = service.into_inner();
    let chain = run_blocking(move || service.why(from, to))
        .await??
        .ok_or(ApiError::NotOneCustomer)?;
    Ok(HttpResponse::Ok().json(WhyView {
        chain: chain.into_iter().map(StepView::from).collect(),
    }))
}
