//! Unlink rules over HTTP (admin scope): `POST /blocked-identifiers` marks an email or a
//! phone as "does not identify anyone" and re-clusters the customers it held together,
//! `POST /blocked-identifiers/preview` says what that would do, `GET /blocked-identifiers`
//! lists the rules, `DELETE /blocked-identifiers/{id}` lets the value link again. The rules
//! themselves are in `identity_domain::unlink`.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use identity_domain::{
    Identifier, IdentifierPolicy, IdentityService, NewUnlinkRule, UnlinkRule, Unlinked,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoResponses, ToSchema};

use super::call;
use crate::auth::{AdminScope, Authorized};
use crate::error::ApiError;
use crate::settings::CompatSettings;
use crate::wire::{path_id, valid_reason, ContactView, IdentifyBody, InvalidId, JsonBody};

/// The body of both routes: one value (`email` or `phoneNumber`, any spelling `/identify`
/// accepts) and, to make a rule, a `reason` (a preview ignores it, as unknown fields).
#[derive(Debug, Deserialize)]
#[serde(from = "Map<String, Value>")]
pub struct RuleBody {
    value: IdentifyBody,
    reason: Option<Value>,
}

impl From<Map<String, Value>> for RuleBody {
    fn from(mut object: Map<String, Value>) -> Self {
        Self {
            reason: object.remove("reason"),
            value: IdentifyBody::from(object),
        }
    }
}

impl RuleBody {
    /// The one value named, normalized as `/identify` normalizes it.
    pub(crate) fn identifier(
        self,
        policy: &IdentifierPolicy,
    ) -> Result<(Identifier, Option<Value>), ApiError> {
        // Counted before admission, which would drop a placeholder and keep the other.
        if self.value.values_given() > 1 {
            return Err(ApiError::InvalidBody(
                "give one value per rule: an email or a phoneNumber, not both".to_owned(),
            ));
        }
        let identifiers = self.value.admit(policy)?.identifiers;
        match Identifier::all_of(&identifiers).as_slice() {
            [one] => Ok((one.clone(), self.reason)),
            _ => Err(ApiError::Internal(
                "an admitted request held no value or two".into(),
            )),
        }
    }
}

/// Why a rule (or its preview) is refused, beside a bad body: the answers both routes share.
#[derive(IntoResponses)]
#[allow(dead_code)]
enum RuleRefused {
    #[response(status = 409, description = "A rule for this value exists")]
    Exists,
    #[response(
        status = 422,
        description = "The value is a configured placeholder already"
    )]
    Placeholder,
}

/// A rule.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuleView {
    id: i64,
    /// The email the rule unlinks (or `phoneNumber`).
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    /// The phone number the rule unlinks (or `email`).
    #[serde(skip_serializing_if = "Option::is_none")]
    phone_number: Option<String>,
    reason: String,
    /// The name of the API key that made it (`loopback` when the service ran without keys).
    created_by: String,
    created_at: String,
}

impl From<UnlinkRule> for RuleView {
    fn from(rule: UnlinkRule) -> Self {
        let (email, phone_number) = match rule.identifier {
            Identifier::Email(email) => (Some(email.as_str().to_owned()), None),
            Identifier::Phone(phone) => (None, Some(phone.as_str().to_owned())),
        };
        Self {
            id: rule.id,
            email,
            phone_number,
            reason: rule.reason,
            created_by: rule.created_by,
            created_at: crate::wire_time(rule.created_at),
        }
    }
}

/// What a rule did (or, previewed, would do).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnlinkedView {
    /// The rule made (absent in a preview).
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<RuleView>,
    /// The customers that the contacts which held the value form, by primary id.
    customers: Vec<ContactView>,
    /// Contacts erased: left with no value, or with exactly an older contact's values.
    erased_contact_ids: Vec<i64>,
}

impl UnlinkedView {
    fn new(unlinked: Unlinked, compat: &CompatSettings) -> Self {
        Self {
            rule: unlinked.rule.map(RuleView::from),
            customers: unlinked
                .customers
                .into_iter()
                .map(|customer| ContactView::new(customer, compat))
                .collect(),
            erased_contact_ids: unlinked.erased.iter().map(|id| id.get()).collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RulesView {
    /// Oldest first.
    rules: Vec<RuleView>,
}

/// Marks an email or a phone number as "does not identify anyone": no contact keeps it, the
/// customers it alone held together are split (history and change events record it), and
/// `/identify` sets it aside from the next request on, on every replica.
#[utoipa::path(post, path = "/blocked-identifiers", tag = "admin",
    request_body(content = crate::wire::RuleRequest, content_type = "application/json"),
    security(("api_key" = ["admin"])),
    responses(
        (status = 201, description = "The rule, and the customers that resulted", body = UnlinkedView),
        (status = 400, description = "Not one valid email or phone, or no reason"),
        RuleRefused,
        JsonBody,
    ))]
pub async fn create_rule(
    key: Authorized<AdminScope>,
    service: web::Data<IdentityService>,
    policy: web::Data<IdentifierPolicy>,
    compat: web::Data<CompatSettings>,
    body: web::Json<RuleBody>,
) -> Result<HttpResponse, ApiError> {
    let (identifier, raw_reason) = body.into_inner().identifier(&policy)?;
    let rule = NewUnlinkRule {
        identifier,
        reason: valid_reason(
            raw_reason,
            "give a reason: a sentence that says why this value identifies no one",
        )?,
        created_by: key.caller.name().to_owned(),
    };
    let unlinked = call(service, move |service| service.unlink(&rule)).await?;
    if let Some(rule) = &unlinked.rule {
        // The rule's id, kind and author; never its value.
        tracing::info!(
            rule = rule.id,
            field = rule.identifier.field(),
            by = %rule.created_by,
            customers = unlinked.customers.len(),
            erased = unlinked.erased.len(),
            "unlink rule made"
        );
    }
    let location = unlinked
        .rule
        .as_ref()
        .map(|rule| format!("/blocked-identifiers/{}", rule.id));
    let mut response = HttpResponse::Created();
    if let Some(location) = location {
        response.insert_header((header::LOCATION, location));
    }
    Ok(response.json(UnlinkedView::new(unlinked, &compat)))
}

/// What making a rule for this value would do now: the customers that would result.
/// Writes nothing.
#[utoipa::path(post, path = "/blocked-identifiers/preview", tag = "admin",
    request_body(content = crate::wire::PreviewRequest, content_type = "application/json"),
    security(("api_key" = ["admin"])),
    responses(
        (status = 200, description = "The customers that would result", body = UnlinkedView),
        (status = 400, description = "Not one valid email or phone"),
        RuleRefused,
        JsonBody,
    ))]
pub async fn preview_rule(
    _key: Authorized<AdminScope>,
    service: web::Data<IdentityService>,
    policy: web::Data<IdentifierPolicy>,
    compat: web::Data<CompatSettings>,
    body: web::Json<RuleBody>,
) -> Result<HttpResponse, ApiError> {
    let (identifier, _) = body.into_inner().identifier(&policy)?;
    let preview = call(service, move |service| service.preview_unlink(&identifier)).await?;
    Ok(HttpResponse::Ok().json(UnlinkedView::new(preview, &compat)))
}

/// Every unlink rule, oldest first.
#[utoipa::path(get, path = "/blocked-identifiers", tag = "admin",
    security(("api_key" = ["admin"])),
    responses(
        (status = 200, description = "The rules", body = RulesView),
    ))]
pub async fn list_rules(
    _key: Authorized<AdminScope>,
    service: web::Data<IdentityService>,
) -> Result<HttpResponse, ApiError> {
    let rules = call(service, IdentityService::unlink_rules).await?;
    Ok(HttpResponse::Ok().json(RulesView {
        rules: rules.into_iter().map(RuleView::from).collect(),
    }))
}

/// Deletes a rule: its value links again from the next request. What the rule changed is
/// not restored (see the README).
#[utoipa::path(delete, path = "/blocked-identifiers/{id}", tag = "admin",
    params(("id" = i64, Path, description = "The rule's id", minimum = 1)),
    security(("api_key" = ["admin"])),
    responses(
        (status = 204, description = "Deleted"),
        InvalidId,
        (status = 404, description = "No rule has this id"),
    ))]
pub async fn delete_rule(
    key: Authorized<AdminScope>,
    service: web::Data<IdentityService>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&id)?;
    let deleted = call(service, move |service| service.delete_unlink_rule(id))
        .await?
        .ok_or(ApiError::RuleNotFound(id))?;
    tracing::info!(
        rule = deleted.id,
        field = deleted.identifier.field(),
        by = %key.caller.name(),
        "unlink rule deleted"
    );
    Ok(HttpResponse::NoContent().finish())
}
