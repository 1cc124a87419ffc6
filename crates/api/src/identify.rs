//! `POST /identify`: HTTP in, domain call, HTTP out. No rules here.

use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use identity_domain::contact::MAX_PHONE_NUMBER;
use identity_domain::{Admitted, Customer, IdentifierPolicy, IdentityService, Ignored, RawPhone};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::auth::{Authorized, IdentifyScope};
use crate::error::ApiError;
use crate::error::Problem;
use crate::run_blocking;
use crate::settings::CompatSettings;

/// The request body: a JSON object (anything else is refused by the extractor). Fields are
/// taken as raw JSON so that a wrong type gets a message naming the field; unknown fields are
/// ignored (storefronts send whole orders).
#[derive(Debug, Deserialize)]
#[serde(from = "Map<String, Value>")]
pub struct IdentifyBody {
    email: Option<Value>,
    phone_number: Option<Value>,
}

impl From<Map<String, Value>> for IdentifyBody {
    fn from(mut object: Map<String, Value>) -> Self {
        Self {
            email: object.remove("email"),
            phone_number: object.remove("phoneNumber"),
        }
    }
}

impl IdentifyBody {
    /// How many of `email` and `phoneNumber` are given (neither null, absent nor blank).
    pub(crate) fn values_given(&self) -> usize {
        let given = |value: &Option<Value>| match value {
            None | Some(Value::Null) => false,
            Some(Value::String(s)) => !s.trim().is_empty(),
            Some(_) => true,
        };
        usize::from(given(&self.email)) + usize::from(given(&self.phone_number))
    }

    /// Checks the JSON types, then lets the domain normalize, validate and screen the values.
    /// `null`, absent and blank all mean "not given".
    pub(crate) fn admit(self, policy: &IdentifierPolicy) -> Result<Admitted, ApiError> {
        let email = match self.email {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(other) => {
                return Err(ApiError::InvalidBody(format!(
                    "email must be a string or null, not {}",
                    json_type(&other)
                )))
            }
        };
        let phone = match self.phone_number {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(RawPhone::Text(s)),
            Some(Value::Number(n)) => match whole_number(&n) {
                Some(n) => Some(RawPhone::Number(n)),
                None => {
                    return Err(ApiError::InvalidBody(
                        "phoneNumber as a number must be a whole number of at least 0; send other forms as a string"
                            .to_owned(),
                    ))
                }
            },
            Some(other) => {
                return Err(ApiError::InvalidBody(format!(
                    "phoneNumber must be a string, a number or null, not {}",
                    json_type(&other)
                )))
            }
        };
        Ok(policy.admit(email.as_deref(), phone)?)
    }
}

/// The service's id of the request (set by the telemetry middleware; never a caller's).
pub(crate) fn request_id(request: &HttpRequest) -> String {
    request
        .extensions()
        .get::<crate::telemetry::RequestId>()
        .map_or_else(|| "unknown".to_owned(), |id| id.0.clone())
}

/// The history's cause for what a request writes: `request:<the service's request id>`.
pub(crate) fn request_cause(request: &HttpRequest) -> String {
    format!("request:{}", request_id(request))
}

/// A JSON number that is a whole number of at least 0: `123456`, and also `123456.0` (JSON
/// does not tell the two apart, and JSON Schema's `integer` accepts both).
fn whole_number(n: &serde_json::Number) -> Option<u64> {
    n.as_u64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= MAX_PHONE_NUMBER as f64)
            .map(|f| f as u64)
    })
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The consolidated customer.
#[derive(Debug, Serialize, ToSchema)]
pub struct IdentifyResponse {
    contact: ContactView,
    /// Values of the request that were not used (blocked placeholders, values the merge
    /// guard refused to store); absent when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(nullable = false)]
    ignored: Vec<IgnoredView>,
}

impl IdentifyResponse {
    pub fn of(customer: Customer, ignored: Vec<Ignored>, compat: &CompatSettings) -> Self {
        Self {
            contact: ContactView::new(customer, compat),
            ignored: ignored.into_iter().map(IgnoredView::from).collect(),
        }
    }
}

/// A value of the request that was set aside.
#[derive(Debug, Serialize, ToSchema)]
struct IgnoredView {
    /// `email` or `phoneNumber`.
    field: &'static str,
    /// The normalized value.
    value: String,
    /// Why: `blocked` (a placeholder that never identifies a customer, or a value an
    /// operator unlinked) or `merge_guard` (storing it would have grown a customer past the
    /// merge guard's limits, so nothing of the request was stored).
    reason: &'static str,
}

impl From<Ignored> for IgnoredView {
    fn from(ignored: Ignored) -> Self {
        Self {
            field: ignored.field,
            value: ignored.value,
            reason: ignored.reason,
        }
    }
}

/// One customer: its primary contact, every email and phone it is known by (the primary's
/// first, then in the order they were first seen), and its other contacts.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ContactView {
    primary_contact_id: i64,
    /// `primaryContactId` as the original task's text spells it, with the same value: only
    /// with the setting `compat.primary_contatct_id` (the OpenAPI document then declares it).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    primary_contatct_id: Option<i64>,
    emails: Vec<String>,
    phone_numbers: Vec<String>,
    secondary_contact_ids: Vec<i64>,
}

impl ContactView {
    pub(crate) fn new(customer: Customer, compat: &CompatSettings) -> Self {
        Self {
            primary_contact_id: customer.primary_id.get(),
            primary_contatct_id: compat.primary_contatct_id(customer.primary_id.get()),
            emails: customer
                .emails
                .iter()
                .map(|e| e.as_str().to_owned())
                .collect(),
            phone_numbers: customer
                .phone_numbers
                .iter()
                .map(|p| p.as_str().to_owned())
                .collect(),
            secondary_contact_ids: customer.secondary_ids.iter().map(|id| id.get()).collect(),
        }
    }
}

/// Finds the customer that an email and/or phone number belong to, creating or linking
/// contacts as the rules say.
#[utoipa::path(
    post,
    path = "/identify",
    tag = "identity",
    request_body(content = crate::openapi::IdentifyRequest, content_type = "application/json"),
    security(("api_key" = ["identify"])),
    responses(
        (status = 200, description = "The consolidated customer", body = IdentifyResponse,
         example = json!({"contact": {"primaryContactId": 1, "emails": ["lorraine@hillvalley.edu", "mcfly@hillvalley.edu"], "phoneNumbers": ["123456"], "secondaryContactIds": [23]}})),
        (status = 400, description = "Not a JSON object, a field of the wrong type, an invalid email or phone, or neither given", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over the size limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Content-Type is not application/json", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Every identifier given is a blocked placeholder or an unlinked value", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unreachable or overloaded; repeating the request is safe", body = Problem, content_type = "application/problem+json"),
    )
)]
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
    let service = service.into_inner();
    let identified = run_blocking(move || service.identify(admitted, &cause)).await??;
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
