//! The OpenAPI 3.1 document, generated from the handlers' annotations, and the schemas
//! that exist only to describe the wire format.

use identity_domain::contact::{MAX_EMAIL_LEN, MAX_PHONE_LEN, MAX_PHONE_NUMBER};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::{OpenApi, ToSchema};

/// RFC 9457 problem details: every error answer has this shape, with
/// `Content-Type: application/problem+json`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"type": "/problems/missing-identifier", "title": "No identifier given", "status": 400, "detail": "give an email, a phoneNumber, or both: neither was given"}))]
pub struct Problem {
    /// A stable identifier of the kind of error, to branch on: `/problems/invalid-body`,
    /// `/problems/missing-identifier`, `/problems/invalid-identifier`,
    /// `/problems/blocked-identifier`, `/problems/unsupported-media-type`,
    /// `/problems/payload-too-large`, `/problems/invalid-path`, `/problems/not-found`,
    /// `/problems/method-not-allowed`, `/problems/unauthorized`, `/problems/forbidden`,
    /// `/problems/too-many-attempts`, `/problems/conflict`, `/problems/unavailable`,
    /// `/problems/internal`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of error.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request, and what to do about it.
    pub detail: String,
}

/// The request body of `/identify`. Its JSON Schema is written out by hand (see
/// [`RequestSchema`]) because the rules are sharper than a Rust type: a blank string means
/// "not given", and at least one identifier must be given.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct IdentifyRequest {
    email: Option<String>,
}

/// Replaces the derived `IdentifyRequest` schema with the exact one.
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
        let blank = |max: usize| json!({"type": "string", "pattern": "^\\s*$", "maxLength": max});
        let properties = json!({
            "email": {"description": "An email address (name@domain.tld).",
                      "anyOf": [email, blank(MAX_EMAIL_LEN), {"type": "null"}]},
            "phoneNumber": {"description": "A phone number, as a string of digits and the \
                            separators + - . ( ) and space, or as a whole number.",
                            "anyOf": [phone_text, phone_number, blank(MAX_PHONE_LEN), {"type": "null"}]}
        });
        // At least one identifier: an object that has an email, or one that has a phone.
        let with = |field: &str, given: Value| {
            let mut props = properties.clone();
            props[field] = given;
            json!({"type": "object", "properties": props, "required": [field]})
        };
        let schema = json!({
            "description": "An email, a phone number, or both. `null`, an absent field and a \
                blank string all mean \"not given\"; at least one must be given. Unknown \
                fields are ignored. Values are normalized (see the README).",
            "anyOf": [
                with("email", email.clone()),
                with("phoneNumber", json!({"anyOf": [phone_text, phone_number]})),
            ],
            "example": {"email": "mcfly@hillvalley.edu", "phoneNumber": "123456"}
        });
        if let (Some(components), Ok(schema)) = (
            openapi.components.as_mut(),
            serde_json::from_value::<utoipa::openapi::Schema>(schema),
        ) {
            components
                .schemas
                .insert("IdentifyRequest".to_owned(), schema.into());
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
        crate::admin::history,
        crate::admin::erase_contact,
        crate::admin::erase_customer,
        crate::health::healthz,
        crate::health::readyz,
        crate::metrics::metrics,
    ),
    components(schemas(Problem, IdentifyRequest)),
    modifiers(&RequestSchema, &KeySecurity),
    tags(
        (name = "identity", description = "Identify customers and read them back"),
        (name = "admin", description = "Erasure for privacy requests, and unlink rules (admin scope)"),
        (name = "operations", description = "Probes and metrics")
    )
)]
pub struct ApiDoc;
