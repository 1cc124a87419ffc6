//! Manual links over HTTP (admin scope): `POST /links` joins the customers of two contacts
//! by hand, `POST /links/preview` says what that would give, `GET /links` lists the links,
//! `DELETE /links/{id}` removes one and re-clusters as if it had never been made. The rules
//! are in `identity_domain::links`.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use identity_domain::{ContactId, Customer, IdentityService, Linked, ManualLink, StoredLink};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::{IntoResponses, ToSchema};

use super::call;
use crate::auth::{AdminScope, Authorized};
use crate::error::ApiError;
use crate::settings::CompatSettings;
use crate::wire::{path_id, valid_reason, ContactView, InvalidId, JsonBody, LinkView};

/// What a link did (or, previewed, would do).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LinkedView {
    /// The link made (absent in a preview).
    #[serde(skip_serializing_if = "Option::is_none")]
    link: Option<LinkView>,
    /// The customer the two contacts form.
    customer: Option<ContactView>,
}

impl LinkedView {
    fn new(link: Option<StoredLink>, customers: Vec<Customer>, compat: &CompatSettings) -> Self {
        Self {
            link: link.map(LinkView::from),
            customer: customers
                .into_iter()
                .next()
                .map(|customer| ContactView::new(customer, compat)),
        }
    }
}

/// What deleting a link did.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnlinkedByHandView {
    /// The link deleted.
    link: LinkView,
    /// The customers its two contacts belong to now, by primary id: two, or one when other
    /// evidence (a shared value, a request, another link) still holds them together.
    customers: Vec<ContactView>,
    /// Whether the two contacts are still one customer.
    still_one_customer: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LinksView {
    /// Oldest first.
    links: Vec<LinkView>,
}

/// The request body of `POST /links` and `POST /links/preview`.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct LinkRequest {
    /// Two contacts of the two customers to join: any contact of each.
    #[schema(min_items = 2, max_items = 2, example = json!([3, 7]))]
    contact_ids: Vec<i64>,
    /// Why they are one person (1 to 500 characters, one line). Required to make a link; a
    /// preview ignores it.
    #[schema(min_length = 1, max_length = 500)]
    reason: Option<String>,
}

/// Why a link (or its preview) is refused, beside a bad body: the answers both routes share.
#[derive(IntoResponses)]
#[allow(dead_code)]
enum LinkRefused {
    #[response(status = 404, description = "A contact id names no live contact")]
    NoContact,
    #[response(
        status = 409,
        description = "The two are one customer already, or joining them would pass a merge_guard limit (named)"
    )]
    Conflict,
}

/// Reads `{"contactIds": [a, b], "reason": "…"}`: two different positive ids; the reason
/// only when `reason_required`.
fn read_body(
    mut body: Map<String, Value>,
    reason_required: bool,
    created_by: &str,
) -> Result<ManualLink, ApiError> {
    let ids = match body.remove("contactIds") {
        Some(Value::Array(ids)) if ids.len() == 2 => ids,
        _ => {
            return Err(ApiError::InvalidBody(
                "give contactIds: an array of two contact ids, one of each customer to join"
                    .to_owned(),
            ))
        }
    };
    let id = |value: &Value| {
        value.as_i64().and_then(ContactId::new).ok_or_else(|| {
            ApiError::InvalidBody("contactIds must be two positive whole numbers".to_owned())
        })
    };
    let contacts = [id(&ids[0])?, id(&ids[1])?];
    if contacts[0] == contacts[1] {
        return Err(ApiError::InvalidBody(
            "contactIds names the same contact twice: give one contact of each customer".to_owned(),
        ));
    }
    let reason = if reason_required {
        valid_reason(
            body.remove("reason"),
            "give a reason: a sentence that says why the two customers are one person",
        )?
    } else {
        String::new()
    };
    Ok(ManualLink {
        contacts,
        reason,
        created_by: created_by.to_owned(),
    })
}

/// Joins the customers of two contacts by hand, as a request that brought a value of each
/// would: the older primary leads, the other customer's contacts link to it; history (cause
/// `link:<id>`) and change events record it. Within the merge guard.
#[utoipa::path(post, path = "/links", tag = "admin",
    request_body(content = LinkRequest, content_type = "application/json"),
    security(("api_key" = ["admin"])),
    responses(
        (status = 201, description = "The link, and the customer the two form now", body = LinkedView),
        (status = 400, description = "Not two different contact ids, or no reason"),
        LinkRefused,
        JsonBody,
    ))]
pub async fn create_link(
    key: Authorized<AdminScope>,
    service: web::Data<IdentityService>,
    compat: web::Data<CompatSettings>,
    body: web::Json<Map<String, Value>>,
) -> Result<HttpResponse, ApiError> {
    let link = read_body(body.into_inner(), true, key.caller.name())?;
    let Linked { link, customers } = call(service, move |service| service.link(&link)).await?;
    tracing::info!(
        link = link.id,
        by = %link.link.created_by,
        "manual link made"
    );
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/links/{}", link.id)))
        .json(LinkedView::new(Some(link), customers, &compat)))
}

/// What linking the two contacts' customers would give now. Writes nothing.
#[utoipa::path(post, path = "/links/preview", tag = "admin",
    request_body(content = LinkRequest, content_type = "application/json"),
    security(("api_key" = ["admin"])),
    responses(
        (status = 200, description = "The customer that would result", body = LinkedView),
        (status = 400, description = "Not two different contact ids"),
        LinkRefused,
        JsonBody,
    ))]
pub async fn preview_link(
    key: Authorized<AdminScope>,
    service: web::Data<IdentityService>,
    compat: web::Data<CompatSettings>,
    body: web::Json<Map<String, Value>>,
) -> Result<HttpResponse, ApiError> {
    let link = read_body(body.into_inner(), false, key.caller.name())?;
    let Linked { customers, .. } =
        call(service, move |service| service.preview_link(&link)).await?;
    Ok(HttpResponse::Ok().json(LinkedView::new(None, customers, &compat)))
}

/// Every manual link, oldest first.
#[utoipa::path(get, path = "/links", tag = "admin",
    security(("api_key" = ["admin"])),
    responses(
        (status = 200, description = "The links", body = LinksView),
    ))]
pub async fn list_links(
    _key: Authorized<AdminScope>,
    service: web::Data<IdentityService>,
) -> Result<HttpResponse, ApiError> {
    let links = call(service, IdentityService::links).await?;
    Ok(HttpResponse::Ok().json(LinksView {
        links: links.into_iter().map(LinkView::from).collect(),
    }))
}

/// Deletes a link and re-clusters its customer as if it had never been made: the two
/// customers come apart unless other evidence still holds them together (the answer says
/// which). History (cause `link:<id>`) and change events record it.
#[utoipa::path(delete, path = "/links/{id}", tag = "admin",
    params(("id" = i64, Path, description = "The link's id", minimum = 1)),
    security(("api_key" = ["admin"])),
    responses(
        (status = 200, description = "Deleted; the customers its contacts belong to now", body = UnlinkedByHandView),
        InvalidId,
        (status = 404, description = "No link has this id"),
    ))]
pub async fn delete_link(
    key: Authorized<AdminScope>,
    service: web::Data<IdentityService>,
    compat: web::Data<CompatSettings>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&id)?;
    let Linked { link, customers } = call(service, move |service| service.delete_link(id))
        .await?
        .ok_or(ApiError::LinkNotFound(id))?;
    tracing::info!(link = link.id, by = %key.caller.name(), "manual link deleted");
    let [a, b] = link.link.contacts;
    let holds = |c: &Customer, id: ContactId| c.primary_id == id || c.secondary_ids.contains(&id);
    let still_one_customer = customers.iter().any(|c| holds(c, a) && holds(c, b));
    Ok(HttpResponse::Ok().json(UnlinkedByHandView {
        link: link.into(),
        customers: customers
            .into_iter()
            .map(|customer| ContactView::new(customer, &compat))
            .collect(),
        still_one_customer,
    }))
}
