//! `POST /identify`: HTTP in, domain call, HTTP out. No rules here.

use actix_web::{web, HttpRequest, HttpResponse};
use identity_domain::{IdentifierPolicy, IdentityService};

use super::call;
use crate::auth::{Authorized, IdentifyScope};
use crate::error::ApiError;
use crate::settings::CompatSettings;
use crate::wire::{request_cause, IdentifyBody, IdentifyResponse, JsonBody};

/// Finds the customer that an email and/or phone number belong to, creating or linking
/// contacts as the rules say.
#[utoipa::path(post, path = "/identify", tag = "identity",
    request_body(content = crate::wire::IdentifyRequest, content_type = "application/json"),
    security(("api_key" = ["identify"])),
    responses(
        (status = 200, description = "The consolidated customer", body = IdentifyResponse,
         example = json!({"contact": {"primaryContactId": 1, "emails": ["lorraine@hillvalley.edu", "mcfly@hillvalley.edu"], "phoneNumbers": ["123456"], "secondaryContactIds": [23]}})),
        (status = 400, description = "Not a JSON object, a field of the wrong type, an invalid email or phone, or neither given"),
        JsonBody,
        (status = 422, description = "Every identifier given is a blocked placeholder or an unlinked value"),
        (status = 503, description = "The database is unreachable or overloaded; repeating the request is safe"),
    ))]
pub async fn identify(
    _key: Authorized<IdentifyScope>,
    service: web::Data<IdentityService>,
    policy: web::Data<IdentifierPolicy>,
    request: HttpRequest,
    compat: web::Data<CompatSettings>,
    body: web::Json<IdentifyBody>,
) -> Result<HttpResponse, ApiError> {
    let cause = request_cause(&request);
    let admitted = body.into_inner().admit(&policy)?;
    let identified = call(service, move |service| service.identify(admitted, &cause)).await?;
    if let Some(refusal) = identified.refused {
        // Ids and sizes only: identifiers are personal data and stay out of logs.
        tracing::warn!(
            customer = identified.customer.primary_id.get(),
            contacts = refusal.contacts,
            emails = refusal.emails,
            phones = refusal.phones,
            "merge guard refused to grow a customer past its limits"
        );
    }
    if identified.refused.is_some() {
        metrics::counter!("identity_merges_refused_total").increment(1);
    }
    Ok(HttpResponse::Ok().json(IdentifyResponse::of(
        identified.customer,
        identified.ignored,
        &compat,
    )))
}
