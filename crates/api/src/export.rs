//! `identity-api export`: a store as a file that `identity-api import` reads back into the
//! same customers, on the same backend or the other one.
//!
//! Contacts alone do not make the customers: a request that joined two customers without
//! creating a contact is stored only as evidence, and unlink rules are state too. So the
//! export holds, as JSON Lines:
//!
//! - the unlink rules first, one `{"unlinkRule": {"email" | "phoneNumber", "reason",
//!   "createdBy", "createdAt"}}` each, which the import makes before the records that follow;
//! - every live contact as a record (`email`, `phoneNumber`, `createdAt`), as past orders
//!   are imported;
//! - every stored request that joined customers (whose two values live contacts still
//!   hold) as a record of its own: imported in its turn it brings nothing new and joins the
//!   same two customers again (rule 4), and is stored as evidence again.
//!
//! The import sorts records by `createdAt`, so each contact comes back with its own date and
//! each customer with its oldest contact as primary.

use std::io::{self, Write};

use identity_domain::{Exported, Identifier, NewUnlinkRule};
use serde_json::{json, Map, Value};

use crate::commands::Format;
use crate::error::ApiError;
use crate::settings::Settings;
use crate::startup::StartupError;
use crate::unlink::{reason, RuleBody};
use crate::wire_time;

/// The key of a rule's line in an export.
const RULE: &str = "unlinkRule";
const RULE_QUOTED: &str = "\"unlinkRule\"";

/// What an export wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportSummary {
    pub rules: usize,
    pub contacts: usize,
    pub evidence: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("CSV holds records only, and this store has {0} unlink rules: export with --format jsonl to carry them")]
    RulesInCsv(usize),
    #[error("cannot write the export: {0}")]
    Write(#[source] io::Error),
    #[error(transparent)]
    Store(#[from] StartupError),
}

/// Writes every live contact, the stored requests that joined customers, and (JSON Lines
/// only) the unlink rules to `out`, streaming, from one snapshot of the store.
///
/// # Errors
/// When the store cannot be read or `out` written; [`ExportError::RulesInCsv`] before
/// writing anything when the store has unlink rules and the format is CSV.
pub fn export(
    settings: &Settings,
    format: Format,
    out: &mut dyn Write,
) -> Result<ExportSummary, ExportError> {
    let store = identity_persistence::open_read_only(
        &settings.store_settings().map_err(StartupError::from)?,
    )
    .map_err(StartupError::from)?;
    if format == Format::Csv {
        let rules = store
            .repository
            .find_unlink_rules()
            .map_err(StartupError::Store)?
            .len();
        if rules > 0 {
            return Err(ExportError::RulesInCsv(rules));
        }
    }
    let mut summary = ExportSummary::default();
    let mut output = match format {
        Format::Csv => {
            let mut csv = csv::Writer::from_writer(out);
            csv.write_record(["email", "phoneNumber", "createdAt"])
                .map_err(|e| ExportError::Write(e.into()))?;
            Output::Csv(Box::new(csv))
        }
        Format::Jsonl => Output::Jsonl(out),
    };
    let mut write_error = None;
    let mut sink = |item: Exported| -> io::Result<()> {
        output
            .write(&item, &mut summary)
            .inspect_err(|e| write_error = Some(io::Error::new(e.kind(), e.to_string())))
    };
    let read = store.maintenance.export(&mut sink);
    if let Some(error) = write_error {
        return Err(ExportError::Write(error));
    }
    read.map_err(StartupError::Store)?;
    output.flush().map_err(ExportError::Write)?;
    Ok(summary)
}

/// Where an export goes, in its format.
enum Output<'a> {
    Csv(Box<csv::Writer<&'a mut dyn Write>>),
    Jsonl(&'a mut dyn Write),
}

impl Output<'_> {
    fn write(&mut self, item: &Exported, summary: &mut ExportSummary) -> io::Result<()> {
        let (email, phone, created_at) = match item {
            Exported::Rule(rule) => {
                summary.rules += 1;
                let mut fields = Map::new();
                fields.insert(
                    rule.identifier.field().to_owned(),
                    Value::from(rule.identifier.as_str()),
                );
                fields.insert("reason".to_owned(), Value::from(rule.reason.as_str()));
                fields.insert(
                    "createdBy".to_owned(),
                    Value::from(rule.created_by.as_str()),
                );
                fields.insert(
                    "createdAt".to_owned(),
                    Value::from(wire_time(rule.created_at)),
                );
                return match self {
                    Self::Csv(_) => Err(io::Error::other("unlink rules cannot be written as CSV")),
                    Self::Jsonl(out) => writeln!(out, "{}", json!({ RULE: fields })),
                };
            }
            Exported::Contact(contact) => {
                summary.contacts += 1;
                (
                    contact.email.as_ref(),
                    contact.phone.as_ref(),
                    contact.created_at,
                )
            }
            Exported::Evidence(evidence) => {
                summary.evidence += 1;
                (
                    Some(&evidence.email),
                    Some(&evidence.phone),
                    evidence.created_at,
                )
            }
        };
        let email = email.map(|e| e.as_str());
        let phone = phone.map(|p| p.as_str());
        let created_at = wire_time(created_at);
        match self {
            Self::Csv(csv) => csv
                .write_record([email.unwrap_or(""), phone.unwrap_or(""), &created_at])
                .map_err(io::Error::from),
            Self::Jsonl(out) => {
                let mut record = Map::new();
                if let Some(email) = email {
                    record.insert("email".to_owned(), Value::from(email));
                }
                if let Some(phone) = phone {
                    record.insert("phoneNumber".to_owned(), Value::from(phone));
                }
                record.insert("createdAt".to_owned(), Value::from(created_at));
                writeln!(out, "{}", Value::Object(record))
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Csv(csv) => csv.flush(),
            Self::Jsonl(out) => out.flush(),
        }
    }
}

/// When `line` is a rule's line of an export (a JSON object whose only key is
/// `unlinkRule`), the rule it holds, admitted with `policy` (the configured identifier
/// rules, without the store's unlink rules: a rule's own value is not refused for having a
/// rule); or the reason it is not a good one. `None` for every other line.
pub(crate) fn rule_line(
    line: &str,
    policy: &identity_domain::IdentifierPolicy,
) -> Option<Result<NewUnlinkRule, String>> {
    // A cheap look first: records are many, rules few.
    if !line.contains(RULE_QUOTED) {
        return None;
    }
    let Ok(mut object) = serde_json::from_str::<Map<String, Value>>(line) else {
        return None;
    };
    if object.len() != 1 {
        return None;
    }
    let Some(Value::Object(mut fields)) = object.remove(RULE) else {
        return Some(Err(format!("{RULE} must be a JSON object")));
    };
    let created_by = match fields.remove("createdBy") {
        Some(Value::String(by)) if !by.trim().is_empty() => by,
        _ => "import".to_owned(),
    };
    fields.remove("createdAt");
    let admitted = RuleBody::from(fields)
        .identifier(policy)
        .and_then(|(identifier, raw_reason)| Ok((identifier, reason(raw_reason)?)));
    Some(
        admitted
            .map(|(identifier, reason): (Identifier, String)| NewUnlinkRule {
                identifier,
                reason,
                created_by,
            })
            .map_err(|e: ApiError| format!("not an unlink rule: {e}")),
    )
}
