//! The OpenAPI 3.1 document, generated from the handlers' annotations, and the schemas
//! that exist only to describe the wire format.

use identity_domain::contact::{MAX_EMAIL_LEN, MAX_PHONE_LEN, MAX_PHONE_NUMBER};

use crate::error::Problem;
use crate::routes::admin::ErasureView;
use crate::wire::{IdentifyRequest, PreviewRequest, RuleRequest, MAX_REASON_LEN};
use serde_json::{json, Value};
use utoipa::OpenApi;

/// Replaces the derived request schemas with the exact ones.
struct RequestSchema;

/// What every route's annotation would otherwise repeat, declared here once. Every error
/// answer (4xx, 5xx) is a `Problem`, as `ApiError` writes it: a handler names the status
/// and what it means, and this gives the answer its body. And the answers every route that
/// needs a key may give: 401 (no or a bad key), 403 (the key lacks the scope the
/// operation's security names), 429 (too many failed attempts), 500 and 503 (the
/// database). A handler that says more about one of them (erasure's 403, `/identify`'s
/// 503) keeps its own words.
struct CommonResponses;

impl utoipa::Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let problem = ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Problem")))
            .build();
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                // The scope of the operation's `api_key` requirement, if it needs a key.
                let scope = operation
                    .security
                    .iter()
                    .flatten()
                    .filter_map(|requirement| serde_json::to_value(requirement).ok())
                    .find_map(|requirement| requirement["api_key"][0].as_str().map(str::to_owned));
                let responses = &mut operation.responses.responses;
                if let Some(scope) = scope {
                    for (status, description) in [
                        ("401", "No API key, or one that is not valid".to_owned()),
                        ("403", format!("The key lacks the {scope} scope")),
                        (
                            "429",
                            "Too many failed attempts from this client".to_owned(),
                        ),
                        ("500", "Unexpected error".to_owned()),
                        ("503", "The database is unreachable; retry".to_owned()),
                    ] {
                        responses.entry(status.to_owned()).or_insert_with(|| {
                            ResponseBuilder::new().description(description).into()
                        });
                    }
                }
                for (status, response) in responses.iter_mut() {
                    let error = status.starts_with('4') || status.starts_with('5');
                    if let RefOr::T(response) = response {
                        if error && response.content.is_empty() {
                            response
                                .content
                                .insert("application/problem+json".to_owned(), problem.clone());
                        }
                    }
                }
            }
        }
    }
}

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
        crate::routes::identify::identify,
        crate::routes::contacts::contact,
        crate::routes::contacts::why,
        crate::routes::contacts::graph,
        crate::routes::contacts::search,
        crate::routes::unlink::create_rule,
        crate::routes::unlink::preview_rule,
        crate::routes::unlink::list_rules,
        crate::routes::unlink::delete_rule,
        crate::routes::links::create_link,
        crate::routes::links::preview_link,
        crate::routes::links::list_links,
        crate::routes::links::delete_link,
        crate::routes::admin::history,
        crate::routes::admin::erase_contact,
        crate::routes::admin::erase_customer,
        crate::routes::health::healthz,
        crate::routes::health::readyz,
        crate::routes::metrics::metrics,
    ),
    // `ErasureView` is named only inside an `IntoResponses` type, which does not register it.
    components(schemas(Problem, IdentifyRequest, RuleRequest, PreviewRequest, ErasureView)),
    modifiers(&RequestSchema, &KeySecurity, &CommonResponses),
    tags(
        (name = "identity", description = "Identify customers and read them back"),
        (name = "admin", description = "Erasure for privacy requests, unlink rules and manual links (admin scope)"),
        (name = "operations", description = "Probes and metrics")
    )
)]
pub struct ApiDoc;

/// The document this service serves: with the setting `compat.primary_contatct_id` on,
/// every schema carrying `primaryContactId` declares `primaryContatctId` beside it (the
/// original task's spelling, with the same value).
pub fn document(compat: &crate::settings::CompatSettings) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
    use utoipa::openapi::{RefOr, Schema};
    let mut document = ApiDoc::openapi();
    if !compat.primary_contatct_id {
        return document;
    }
    let Some(components) = document.components.as_mut() else {
        return document;
    };
    for schema in components.schemas.values_mut() {
        let RefOr::T(Schema::Object(object)) = schema else {
            continue;
        };
        if !object.properties.contains_key("primaryContactId") {
            continue;
        }
        let spelled = ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .description(Some(
                "`primaryContactId` as the original task's text spells it, with the same \
                 value (setting `compat.primary_contatct_id`).",
            ))
            .build();
        object
            .properties
            .insert("primaryContatctId".to_owned(), spelled.into());
        object.required.push("primaryContatctId".to_owned());
    }
    document
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every route that needs a key documents the common answers once added by
    /// `CommonResponses`, its 403 naming the route's own scope; a handler's own words win.
    #[test]
    fn routes_that_need_a_key_document_the_common_answers() {
        let document = serde_json::to_value(ApiDoc::openapi()).expect("a JSON document");
        let mut secured = 0;
        for (path, item) in document["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("operations") {
                let Some(scope) = operation["security"][0]["api_key"][0].as_str() else {
                    continue;
                };
                secured += 1;
                let responses = &operation["responses"];
                for status in ["401", "403", "429", "500", "503"] {
                    assert_eq!(
                        responses[status]["content"]["application/problem+json"]["schema"]["$ref"],
                        "#/components/schemas/Problem",
                        "{method} {path} {status}"
                    );
                }
                let forbidden = responses["403"]["description"].as_str().unwrap_or_default();
                assert!(forbidden.contains(scope), "{method} {path}: {forbidden}");
            }
        }
        assert!(secured >= 15, "{secured} routes need a key");
        let erasure = &document["paths"]["/customers/{primaryId}"]["delete"]["responses"]["403"];
        assert!(
            erasure["description"]
                .as_str()
                .is_some_and(|d| d.contains("erasure is disabled")),
            "{erasure}"
        );
    }
}
