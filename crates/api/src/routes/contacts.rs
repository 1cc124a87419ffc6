//! Reading customers back, for support and the console (read scope; nothing is written):
//! `GET /contacts/{id}` (the customer of any contact), `POST /customers/search` (by email or
//! phone), `GET /contacts/{id}/graph` (its contacts and evidence, for a picture) and
//! `GET /contacts/{id}/why/{other}` (why two contacts are one customer).

use actix_web::{web, HttpResponse};
use identity_domain::{
    Contact, ContactId, Evidence, Graph, IdentifierPolicy, IdentityService, Joins, Step, StoredLink,
};
use serde::Serialize;
use utoipa::ToSchema;

use super::{about_contact, call};
use crate::auth::{Authorized, ReadScope};
use crate::error::ApiError;
use crate::settings::CompatSettings;
use crate::wire::{
    contact_id, ContactView, IdentifyBody, IdentifyResponse, InvalidId, JsonBody, LinkView,
    NoContact,
};

/// The consolidated customer that contact `id` (primary or secondary) belongs to, in the
/// same shape as `/identify`'s answer. Writes nothing.
#[utoipa::path(get, path = "/contacts/{id}", tag = "identity",
    params(("id" = i64, Path, description = "Any contact id of the customer (primary or secondary)", minimum = 1)),
    security(("api_key" = ["read"])),
    responses(
        (status = 200, description = "The customer", body = IdentifyResponse,
         example = json!({"contact": {"primaryContactId": 1, "emails": ["lorraine@hillvalley.edu", "mcfly@hillvalley.edu"], "phoneNumbers": ["123456"], "secondaryContactIds": [23]}})),
        InvalidId,
        NoContact,
    ))]
pub async fn contact(
    _key: Authorized<ReadScope>,
    service: web::Data<IdentityService>,
    compat: web::Data<CompatSettings>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let customer = about_contact(service, contact_id(&id)?, IdentityService::customer_of).await?;
    Ok(HttpResponse::Ok().json(IdentifyResponse::of(customer, Vec::new(), &compat)))
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
    /// Support staff joined the contacts around it by hand (`POST /links`).
    Manual {
        #[serde(rename = "linkId")]
        link_id: i64,
        #[serde(rename = "createdBy")]
        created_by: String,
        reason: String,
        /// In words: "joined by hand by <createdBy>: <reason>".
        text: String,
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
            Step::Manual {
                link_id,
                created_by,
                reason,
            } => Self::Manual {
                link_id,
                text: format!("joined by hand by {created_by}: {reason}"),
                created_by,
                reason,
            },
        }
    }
}

/// Why contacts `id` and `other` are one customer: the shortest chain of evidence that joins
/// them (a shared email or phone, or a stored request that joined two customers).
#[utoipa::path(get, path = "/contacts/{id}/why/{other}", tag = "identity",
    params(
        ("id" = i64, Path, description = "A contact", minimum = 1),
        ("other" = i64, Path, description = "Another contact", minimum = 1),
    ),
    security(("api_key" = ["read"])),
    responses(
        (status = 200, description = "The chain", body = WhyView),
        InvalidId,
        (status = 404, description = "The two are not live contacts of one customer"),
    ))]
pub async fn why(
    _key: Authorized<ReadScope>,
    service: web::Data<IdentityService>,
    ids: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (from, to) = (contact_id(&ids.0)?, contact_id(&ids.1)?);
    let chain = call(service, move |service| service.why(from, to))
        .await?
        .ok_or(ApiError::NotOneCustomer)?;
    Ok(HttpResponse::Ok().json(WhyView {
        chain: chain.into_iter().map(StepView::from).collect(),
    }))
}

/// The customers a search found.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchView {
    /// Every customer that holds the email or the phone, by primary id: none, one, or two
    /// (the email's and the phone's, when they are not one customer).
    customers: Vec<ContactView>,
}

/// Finds the customers that hold an email or a phone number (normalized as `/identify`
/// does), without writing anything. The values travel in the body, not the URL, so that
/// they stay out of access logs.
#[utoipa::path(post, path = "/customers/search", tag = "identity",
    request_body(content = crate::wire::IdentifyRequest, content_type = "application/json"),
    security(("api_key" = ["read"])),
    responses(
        (status = 200, description = "The customers found (perhaps none)", body = SearchView),
        (status = 400, description = "Not a JSON object, an invalid email or phone, or neither given"),
        JsonBody,
        (status = 422, description = "Every identifier given is a blocked placeholder"),
    ))]
pub async fn search(
    _key: Authorized<ReadScope>,
    service: web::Data<IdentityService>,
    policy: web::Data<IdentifierPolicy>,
    compat: web::Data<CompatSettings>,
    body: web::Json<IdentifyBody>,
) -> Result<HttpResponse, ApiError> {
    let identifiers = body.into_inner().admit(&policy)?.identifiers;
    let customers = call(service, move |service| service.search(&identifiers)).await?;
    Ok(HttpResponse::Ok().json(SearchView {
        customers: customers
            .into_iter()
            .map(|customer| ContactView::new(customer, &compat))
            .collect(),
    }))
}

/// One contact as stored.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContactNodeView {
    id: i64,
    email: Option<String>,
    phone_number: Option<String>,
    /// `primary` or `secondary`.
    link_precedence: &'static str,
    /// The primary a secondary links to; null for the primary.
    linked_id: Option<i64>,
    created_at: String,
}

impl From<Contact> for ContactNodeView {
    fn from(contact: Contact) -> Self {
        Self {
            id: contact.id.get(),
            email: contact.email.map(|e| e.as_str().to_owned()),
            phone_number: contact.phone.map(|p| p.as_str().to_owned()),
            link_precedence: contact.link.precedence(),
            linked_id: contact.link.linked_id().map(ContactId::get),
            created_at: crate::wire_time(contact.created_at),
        }
    }
}

/// A stored request that joined two customers without creating a contact: its email
/// belonged to one, its phone to the other.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EvidenceView {
    id: i64,
    email: String,
    phone_number: String,
    /// When the request came.
    created_at: String,
}

impl EvidenceView {
    /// The stored request `evidence` holds; `None` for a manual link.
    fn of_request(evidence: &Evidence) -> Option<Self> {
        match &evidence.joins {
            Joins::Request { email, phone } => Some(Self {
                id: evidence.id,
                email: email.as_str().to_owned(),
                phone_number: phone.as_str().to_owned(),
                created_at: crate::wire_time(evidence.created_at),
            }),
            Joins::Manual(_) => None,
        }
    }
}

/// A customer's graph: every contact, and the evidence that joined parts of it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GraphView {
    primary_contact_id: i64,
    /// `primaryContactId` as the original task's text spells it: only with the setting
    /// `compat.primary_contatct_id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    primary_contatct_id: Option<i64>,
    /// Oldest first.
    contacts: Vec<ContactNodeView>,
    /// The stored requests that joined parts of it.
    evidence: Vec<EvidenceView>,
    /// The links support staff made by hand between its contacts.
    links: Vec<LinkView>,
}

/// The graph of the customer of any contact: its contacts with their values and links, and
/// the stored requests that joined parts of it.
#[utoipa::path(get, path = "/contacts/{id}/graph", tag = "identity",
    params(("id" = i64, Path, description = "Any contact id of the customer", minimum = 1)),
    security(("api_key" = ["read"])),
    responses(
        (status = 200, description = "The customer's graph", body = GraphView),
        InvalidId,
        NoContact,
    ))]
pub async fn graph(
    _key: Authorized<ReadScope>,
    service: web::Data<IdentityService>,
    compat: web::Data<CompatSettings>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = contact_id(&id)?;
    let Graph { contacts, evidence } = about_contact(service, id, IdentityService::graph).await?;
    let primary = contacts.first().map_or(id, Contact::primary_id).get();
    Ok(HttpResponse::Ok().json(GraphView {
        primary_contact_id: primary,
        primary_contatct_id: compat.primary_contatct_id(primary),
        contacts: contacts.into_iter().map(ContactNodeView::from).collect(),
        evidence: evidence
            .iter()
            .filter_map(EvidenceView::of_request)
            .collect(),
        links: evidence
            .into_iter()
            .filter_map(|e| match e.joins {
                Joins::Manual(link) => Some(LinkView::from(StoredLink {
                    id: e.id,
                    link,
                    created_at: e.created_at,
                })),
                Joins::Request { .. } => None,
            })
            .collect(),
    }))
}
