//! `POST /identify`: HTTP in, domain call, HTTP out. No rules here.

use actix_web::{web, HttpResponse};
use identity_domain::{Customer, Email, Identifiers, IdentityService, InvalidRequest, PhoneNumber};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::run_blocking;

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
    /// `null`, absent and blank all mean "not given".
    fn into_identifiers(self) -> Result<Identifiers, ApiError> {
        let email = match self.email {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Email::parse(&s)?,
            Some(other) => {
                return Err(ApiError::InvalidBody(format!(
                    "email must be a string or null, not {}",
                    json_type(&other)
                )))
            }
        };
        let phone = match self.phone_number {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => PhoneNumber::parse(&s)?,
            Some(Value::Number(n)) => match n.as_u64() {
                Some(n) => Some(PhoneNumber::from_number(n)?),
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
        Identifiers::new(email, phone).map_err(|e: InvalidRequest| e.into())
    }
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

#[derive(Debug, Serialize)]
pub struct IdentifyResponse {
    contact: ContactView,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ContactView {
    primary_contact_id: i64,
    emails: Vec<String>,
    phone_numbers: Vec<String>,
    secondary_contact_ids: Vec<i64>,
}

impl From<Customer> for IdentifyResponse {
    fn from(customer: Customer) -> Self {
        Self {
            contact: ContactView {
                primary_contact_id: customer.primary_id.get(),
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
            },
        }
    }
}

pub async fn identify(
    service: web::Data<IdentityService>,
    body: web::Json<IdentifyBody>,
) -> Result<HttpResponse, ApiError> {
    let identifiers = body.into_inner().into_identifiers()?;
    let service = service.into_inner();
    let customer = run_blocking(move || service.identify(&identifiers)).await??;
    Ok(HttpResponse::Ok().json(IdentifyResponse::from(customer)))
}
