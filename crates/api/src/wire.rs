//! The HTTP wire types that several routes share, and nothing else: the body `/identify`
//! takes (also the values of unlink rules, searches and import records), the customer and
//! link views, ids from paths, the request's id, reasons, and the request-body schemas and
//! shared error answers of the OpenAPI document. The routes and `openapi.rs` import from
//! here; this module imports no route, so no circle runs through it.

use actix_web::{HttpMessage, HttpRequest};
use identity_domain::contact::MAX_PHONE_NUMBER;
use identity_domain::{
    Admitted, ContactId, Customer, IdentifierPolicy, Ignored, RawPhone, StoredLink,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoResponses, ToSchema};

use crate::error::ApiError;
use crate::settings::CompatSettings;

/// An id from a path: a positive whole number written canonically (decimal digits, no sign,
/// no leading zero, no padding), else 400. Only one spelling names a record, so that an
/// irreversible route (erasure) cannot be reached by a spelling a reviewer did not expect
/// (`+41`, `042`, `%2043`).
pub(crate) fn path_id(raw: &str) -> Result<i64, ApiError> {
    let canonical =
        !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) && !raw.starts_with('0');
    canonical
        .then(|| raw.parse::<i64>().ok())
        .flatten()
        .ok_or_else(|| {
            ApiError::InvalidPath(
                "the id must be a positive whole number in decimal digits (no sign, no leading zero)"
                    .to_owned(),
            )
        })
}

/// A contact id from a path: a positive whole number, else 400.
pub(crate) fn contact_id(raw: &str) -> Result<ContactId, ApiError> {
    let id = path_id(raw)?;
    ContactId::new(id).ok_or(ApiError::ContactNotFound(id))
}

/// The 400 of every route that takes ids in its path, for its OpenAPI `responses`.
#[derive(IntoResponses)]
#[response(
    status = 400,
    description = "An id in the path is not a positive whole number"
)]
#[allow(dead_code)]
pub(crate) struct InvalidId;

/// The 404 of every route that names a contact by the id in its path.
#[derive(IntoResponses)]
#[response(status = 404, description = "No live contact has this id")]
#[allow(dead_code)]
pub(crate) struct NoContact;

/// The answers of every route that reads a JSON body, before it looks inside.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub(crate) enum JsonBody {
    #[response(status = 413, description = "Body over the size limit")]
    TooLarge,
    #[response(status = 415, description = "Content-Type is not application/json")]
    NotJson,
}

/// Longest reason accepted, in characters.
pub(crate) const MAX_REASON_LEN: usize = 500;

/// The reason of a rule or a manual link: a line of text, trimmed, of 1 to
/// [`MAX_REASON_LEN`] characters, without control characters (the database may refuse
/// some, and a reason is read in logs of the operator's own tools). `missing` is the
/// message when there is none.
pub(crate) fn valid_reason(raw: Option<Value>, missing: &str) -> Result<String, ApiError> {
    let text = match raw {
        Some(Value::String(text)) if !text.trim().is_empty() => text.trim().to_owned(),
        _ => return Err(ApiError::InvalidBody(missing.to_owned())),
    };
    if text.chars().count() > MAX_REASON_LEN {
        return Err(ApiError::InvalidBody(format!(
            "reason is longer than {MAX_REASON_LEN} characters"
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(ApiError::InvalidBody(
            "reason holds a control character (a line break, a tab, a NUL…): send one line of text"
                .to_owned(),
        ));
    }
    Ok(text)
}

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

/// A link as stored.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LinkView {
    id: i64,
    /// The two contacts it joins, ascending.
    contact_ids: [i64; 2],
    reason: String,
    /// The name of the API key that made it (`loopback` when the service ran without keys).
    created_by: String,
    created_at: String,
}

impl From<StoredLink> for LinkView {
    fn from(stored: StoredLink) -> Self {
        let mut contact_ids = stored.link.contacts.map(ContactId::get);
        contact_ids.sort_unstable();
        Self {
            id: stored.id,
            contact_ids,
            reason: stored.link.reason,
            created_by: stored.link.created_by,
            created_at: crate::wire_time(stored.created_at),
        }
    }
}

/// The request body of `/identify` (and of `/customers/search`). Its JSON Schema is written
/// out by hand (see [`RequestSchema`]) because the rules are sharper than a Rust type: a
/// blank string means "not given", and at least one identifier must be given.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct IdentifyRequest {
    email: Option<String>,
}

/// The request body of `POST /blocked-identifiers`: as [`IdentifyRequest`], plus a reason.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct RuleRequest {
    email: Option<String>,
}

/// The request body of `POST /blocked-identifiers/preview`: as [`IdentifyRequest`].
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct PreviewRequest {
    email: Option<String>,
}
