//! The OpenAPI 3.1 document, generated from the handlers' annotations, and the schemas
//! that exist only to describe the wire format.

use identity_domain::contact::{MAX_EMAIL_LEN, MAX_PHONE_LEN, MAX_PHONE_NUMBER};

use crate::error::Problem;
use crate::unlink::MAX_REASON_LEN;
use serde_json::{json, Value};
use utoipa::{OpenApi, ToSchema};

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

/// Replaces the derived request schemas with the exact ones.
struct RequestSchema;

/// The security scheme: an API key sent as a bearer token. Each route names the scope it
/// needs (`identify`, `read`, `admin`).
struct KeySecurity;

impl utoipa::Modify for KeySecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.description = Some(
            "An API key (`identity-api keys create`), as `Authorization: Bearer <key>`. The \
             scopes a route needs are listed with it: identify, read, admin."
                .to_owned(),
        );
        components.add_security_scheme("api_key", SecurityScheme::Http(bearer));
    }
}

impl utoipa::Modify for RequestSchema {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let email = json!({"type": "string", "format": "email", "maxLength": MAX_EMAIL_LEN});
        let phone_text = json!({
            "type": "string", "maxLength": MAX_PHONE_LEN,
            "pattern": "^\\s*[0-9+\\-.() ]*[0-9][0-9+\\-.() ]*\\s*$"
        });
        let phone_number = json!({"type": "integer", "minimum": 0, "maximum": MAX_PHONE_NUMBER});
        let phone = json!({"anyOf": [phone_text, phone_number]});
        let blank = |max: usize| json!({"type": "string", "pattern": "^\\s*$", "maxLength": max});
        let properties = json!({
            "email": {"description": "An email address (name@domain.tld).",
                      "anyOf": [email, blank(MAX_EMAIL_LEN), {"type": "null"}]},
            "phoneNumber": {"description": "A phone number, as a string of digits and the \
                            separators + - . ( ) and space, or as a whole number.",
                            "anyOf": [phone_text, phone_number, blank(MAX_PHONE_LEN), {"type": "null"}]}
        });
        // At least one identifier: an object that has an email, or one that has a phone.
        // `extra` adds properties (and requires them).
        let given = |extra: Value| {
            let with = |field: &str, value: &Value| {
                let mut props = properties.clone();
                props[field] = value.clone();
                let mut required = vec![json!(field)];
                if let Value::Object(extra) = &extra {
                    for (name, schema) in extra {
                        props[name] = schema.clone();
                        required.push(json!(name));
                    }
                }
                json!({"type": "object", "properties": props, "required": required})
            };
            json!([with("email", &email), with("phoneNumber", &phone)])
        };
        let reason = json!({"reason": {"type": "string", "minLength": 1,
                                       "maxLength": MAX_REASON_LEN,
                                       "description": "Why this value identifies no one."}});
        let schemas = [
            (
                "IdentifyRequest",
                json!({
                    "description": "An email, a phone number, or both. `null`, an absent field and \
                        a blank string all mean \"not given\"; at least one must be given. Unknown \
                        fields are ignored. Values are normalized (see the README).",
                    "anyOf": given(json!({})),
                    "example": {"email": "mcfly@hillvalley.edu", "phoneNumber": "123456"}
                }),
            ),
            (
                "RuleRequest",
                json!({
                    "description": "One value to unlink, an email or a phone number (normalized \
                        as `/identify` normalizes it), and why.",
                    "anyOf": given(reason),
                    "example": {"phoneNumber": "555-0000",
                                "reason": "the Hill Valley store's own number, typed at checkout"}
                }),
            ),
            (
                "PreviewRequest",
                json!({
                    "description": "One value, an email or a phone number.",
                    "anyOf": given(json!({})),
                    "example": {"phoneNumber": "555-0000"}
                }),
            ),
        ];
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        for (name, schema) in schemas {
            if let Ok(schema) = serde_json::from_value::<utoipa::openapi::Schema>(schema) {
                components.schemas.insert(name.to_owned(), schema.into());
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "identity-api",
        description = "Identity reconciliation: links the contacts a storefront sees under \
                       different emails and phone numbers into one customer.",
        license(name = "MIT")
    ),
    paths(
        crate::identify::identify,
        crate::contacts::contact,
        crate::contacts::why,
        crate::contacts::graph,
        crate::contacts::search,
        crate::unlink::create_rule,
        crate::unlink::preview_rule,
        crate::unlink::list_rules,
        crate::unlink::delete_rule,
        crate::links::create_link,
        crate::links::preview_link,
        crate::links::list_links,
        crate::links::delete_link,
        crate::admin::history,
        crate::admin::erase_contact,
        crate::admin::erase_customer,
        crate::health::healthz,
        crate::health::readyz,
        crate::metrics::metrics,
    ),
    components(schemas(Problem, IdentifyRequest, RuleRequest, PreviewRequest)),
    modifiers(&RequestSchema, &KeySecurity),
    tags(
        (name = "identity", description = "Identify customers and read them back"),
        (name = "admin", description = "Erasure for privacy requests, unlink rules and manual links (admin scope)"),
        (name = "operations", description = "Probes and metrics")
    )
)]
pub struct ApiDoc;
