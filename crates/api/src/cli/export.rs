//! `identity-api export`: a store as a file that `identity-api import` reads back into the
//! same customers, on the same backend or the other one.
//!
//! Contacts alone do not make the customers: a request that joined two customers without
//! creating a contact is stored only as evidence, and unlink rules and manual links are
//! state too. So the
//! export holds, as JSON Lines:
//!
//! - the unlink rules first, one `{"unlinkRule": {"email" | "phoneNumber", "reason",
//!   "createdBy", "createdAt"}}` each, which the import makes before the records that follow;
//! - every live contact as a record (`email`, `phoneNumber`, `createdAt`), as past orders
//!   are imported;
//! - every stored request that joined customers (whose two values live contacts still
//!   hold) as a record of its own: imported in its turn it brings nothing new and joins the
//!   same two customers again (rule 4), and is stored as evidence again;
//! - the manual links last, one `{"manualLink": {"contacts": [{…}, {…}], "reason",
//!   "createdBy", "createdAt"}}` each, its two contacts as records: the import makes them
//!   after every record, finding each contact again by its values and date.
//!
//! The import sorts records by `createdAt`, so each contact comes back with its own date and
//! each customer with its oldest contact as primary.

use std::collections::HashSet;
use std::io::{self, Write};

use chrono::{DateTime, Utc};
use identity_domain::{
    check_link, plan_relink, Contact, ContactId, ContactRepository, CustomerLimits, Evidence,
    Exported, Identifiers, LinkPlanner, LinkRefused, ManualLink, NewUnlinkRule, RepositoryError,
    Rewrite,
};
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::routes::unlink::RuleBody;
use crate::settings::Settings;
use crate::startup::StartupError;
use crate::wire::{valid_reason, IdentifyBody};
use crate::wire_time;

/// The format of an import or export file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Comma-separated values with a header naming `email`, `phoneNumber`, `createdAt`.
    Csv,
    /// One JSON object per line, as `/identify` takes them, plus `createdAt`.
    Jsonl,
}

/// A contact as a record of an import file: what finds it again after the import.
fn record(contact: &Contact) -> Value {
    let mut record = Map::new();
    if let Some(email) = &contact.email {
        record.insert("email".to_owned(), Value::from(email.as_str()));
    }
    if let Some(phone) = &contact.phone {
        record.insert("phoneNumber".to_owned(), Value::from(phone.as_str()));
    }
    record.insert(
        "createdAt".to_owned(),
        Value::from(wire_time(contact.created_at)),
    );
    Value::Object(record)
}

/// The key of a manual link's line in an export.
const LINK: &str = "manualLink";
const LINK_QUOTED: &str = "\"manualLink\"";

/// The key of a rule's line in an export.
const RULE: &str = "unlinkRule";
const RULE_QUOTED: &str = "\"unlinkRule\"";

/// What an export wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportSummary {
    pub rules: usize,
    pub contacts: usize,
    /// Requests that joined customers without a contact.
    pub evidence: usize,
    pub links: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("CSV holds records only, and this store has {rules} unlink rules and {links} manual links: export with --format jsonl to carry them")]
    StateInCsv { rules: usize, links: usize },
    #[error("cannot write the export: {0}")]
    Write(#[source] io::Error),
    #[error(transparent)]
    Store(#[from] StartupError),
}

/// Writes every live contact, the stored requests that joined customers, and (JSON Lines
/// only) the unlink rules to `out`, streaming, from one snapshot of the store.
///
/// # Errors
/// When the store cannot be read or `out` written; [`ExportError::StateInCsv`] before
/// writing anything when the store has unlink rules or manual links and the format is CSV.
pub fn export(
    settings: &Settings,
    format: Format,
    out: &mut dyn Write,
) -> Result<ExportSummary, ExportError> {
    let store = identity_persistence::open_read_only(&settings.store_settings())
        .map_err(StartupError::from)?;
    if format == Format::Csv {
        let rules = store
            .repository
            .find_unlink_rules()
            .map_err(StartupError::Store)?
            .len();
        let links = store
            .repository
            .find_links()
            .map_err(StartupError::Store)?
            .len();
        if rules + links > 0 {
            return Err(ExportError::StateInCsv { rules, links });
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
                return self.write_state(&json!({ RULE: fields }));
            }
            Exported::Contact(contact) => {
                summary.contacts += 1;
                (
                    contact.email.as_ref(),
                    contact.phone.as_ref(),
                    contact.created_at,
                )
            }
            Exported::Request {
                email,
                phone,
                created_at,
            } => {
                summary.evidence += 1;
                (Some(email), Some(phone), *created_at)
            }
            Exported::Link { link, contacts } => {
                summary.links += 1;
                let line = json!({ LINK: {
                    "contacts": contacts.iter().map(record).collect::<Vec<_>>(),
                    "reason": link.link.reason,
                    "createdBy": link.link.created_by,
                    "createdAt": wire_time(link.created_at),
                }});
                return self.write_state(&line);
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

    /// A line of what is not a record (a rule, a link): JSON Lines only.
    fn write_state(&mut self, line: &Value) -> io::Result<()> {
        match self {
            Self::Csv(_) => Err(io::Error::other(
                "unlink rules and manual links cannot be written as CSV",
            )),
            Self::Jsonl(out) => writeln!(out, "{line}"),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Csv(csv) => csv.flush(),
            Self::Jsonl(out) => out.flush(),
        }
    }
}

/// When `line` is a JSON object whose only key is `key` (`quoted`: the key in quotes), what
/// `read` makes of the fields it holds, or why that is not a good `what`. `None` for every
/// other line.
fn read_entry<T>(
    line: &str,
    (key, quoted, what): (&str, &str, &str),
    read: impl FnOnce(Map<String, Value>) -> Result<T, String>,
) -> Option<Result<T, String>> {
    // A cheap look first: records are many, rules and links few.
    if !line.contains(quoted) {
        return None;
    }
    let Ok(mut object) = serde_json::from_str::<Map<String, Value>>(line) else {
        return None;
    };
    if object.len() != 1 {
        return None;
    }
    Some(match object.remove(key) {
        Some(Value::Object(fields)) => read(fields).map_err(|e| format!("not {what}: {e}")),
        _ => Err(format!("{key} must be a JSON object")),
    })
}

/// When `line` is a rule's line of an export (a JSON object whose only key is
/// `unlinkRule`), the rule it holds, admitted with `policy` (the configured identifier
/// rules, without the store's unlink rules: a rule's own value is not refused for having a
/// rule); or the reason it is not a good one. `None` for every other line.
pub(crate) fn rule_line(
    line: &str,
    policy: &identity_domain::IdentifierPolicy,
) -> Option<Result<NewUnlinkRule, String>> {
    read_entry(line, (RULE, RULE_QUOTED, "an unlink rule"), |fields| {
        read_rule(fields, policy).map_err(|e| e.to_string())
    })
}

/// Who made an exported rule or link: its `createdBy`, else `import`.
fn created_by(fields: &mut Map<String, Value>) -> String {
    match fields.remove("createdBy") {
        Some(Value::String(by)) if !by.trim().is_empty() => by,
        _ => "import".to_owned(),
    }
}

/// The unlink rule a rule's line holds.
fn read_rule(
    mut fields: Map<String, Value>,
    policy: &identity_domain::IdentifierPolicy,
) -> Result<NewUnlinkRule, ApiError> {
    let created_by = created_by(&mut fields);
    fields.remove("createdAt");
    let (identifier, raw_reason) = RuleBody::from(fields).identifier(policy)?;
    let reason = valid_reason(
        raw_reason,
        "give a reason: a sentence that says why this value identifies no one",
    )?;
    Ok(NewUnlinkRule {
        identifier,
        reason,
        created_by,
    })
}

/// A manual link read from an import file: its two contacts by their values and dates.
#[derive(Debug, Clone)]
pub(crate) struct LinkRecord {
    contacts: [(Identifiers, Option<DateTime<Utc>>); 2],
    reason: String,
    created_by: String,
}

/// When `line` is a link's line of an export (a JSON object whose only key is
/// `manualLink`), the link it holds, its contacts' values admitted with `policy`; or the
/// reason it is not a good one. `None` for every other line.
pub(crate) fn link_line(
    line: &str,
    policy: &identity_domain::IdentifierPolicy,
) -> Option<Result<LinkRecord, String>> {
    read_entry(line, (LINK, LINK_QUOTED, "a manual link"), |fields| {
        read_link(fields, policy)
    })
}

/// The manual link a link's line holds.
fn read_link(
    mut fields: Map<String, Value>,
    policy: &identity_domain::IdentifierPolicy,
) -> Result<LinkRecord, String> {
    let contact = |value: &Value| -> Result<(Identifiers, Option<DateTime<Utc>>), String> {
        let Value::Object(mut body) = value.clone() else {
            return Err("a link's contact must be a JSON object".to_owned());
        };
        let created_at = match body.remove("createdAt") {
            Some(Value::String(at)) => Some(
                DateTime::parse_from_rfc3339(&at)
                    .map_err(|e| format!("a link's contact's createdAt: {e}"))?
                    .with_timezone(&Utc),
            ),
            _ => None,
        };
        let admitted = IdentifyBody::from(body)
            .admit(policy)
            .map_err(|e| format!("a link's contact: {e}"))?;
        Ok((admitted.identifiers, created_at))
    };
    let Some(Value::Array(contacts)) = fields.remove("contacts") else {
        return Err("a link names its two contacts under \"contacts\"".to_owned());
    };
    let [a, b] = contacts.as_slice() else {
        return Err("a link names exactly two contacts".to_owned());
    };
    let reason = valid_reason(
        fields.remove("reason"),
        "give a reason: a sentence that says why the two customers are one person",
    )
    .map_err(|e| e.to_string())?;
    let created_by = created_by(&mut fields);
    Ok(LinkRecord {
        contacts: [contact(a)?, contact(b)?],
        reason,
        created_by,
    })
}

/// What making an import file's links did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LinksMade {
    pub made: usize,
    /// Links that exist already (an import run again).
    pub existing: usize,
    /// Links whose contacts are not in the store, or that the merge guard refused.
    pub not_made: usize,
}

/// Makes the links of an import file, after its records: each contact found again by its
/// values (the one with the same date, else the oldest with the same values, else any
/// contact of the customer holding them), a link that exists already left alone. A link
/// between contacts of one customer is made all the same: it keeps them together should
/// what else joins them go. The merge guard applies as to any link.
///
/// # Errors
/// When the store fails.
pub(crate) fn make_links(
    repository: &dyn ContactRepository,
    limits: &CustomerLimits,
    links: &[LinkRecord],
) -> Result<LinksMade, RepositoryError> {
    struct Planner<'a>(&'a CustomerLimits);
    impl LinkPlanner for Planner<'_> {
        fn check(&self, contacts: &[Contact], link: &ManualLink) -> Result<(), LinkRefused> {
            match check_link(contacts, link, self.0) {
                Err(LinkRefused::OneCustomer(..)) => Ok(()),
                other => other,
            }
        }
        fn plan(&self, contacts: &[Contact], evidence: &[Evidence]) -> Rewrite {
            plan_relink(contacts, evidence)
        }
    }
    let mut done = LinksMade::default();
    if links.is_empty() {
        return Ok(done);
    }
    let mut existing: HashSet<[ContactId; 2]> = repository
        .find_links()?
        .into_iter()
        .map(|stored| stored.link.contacts)
        .collect();
    for record in links {
        let [a, b] = &record.contacts;
        let (Some(a), Some(b)) = (find_contact(repository, a)?, find_contact(repository, b)?)
        else {
            done.not_made += 1;
            continue;
        };
        let mut contacts = [a, b];
        contacts.sort_unstable();
        if contacts[0] == contacts[1] || existing.contains(&contacts) {
            done.existing += 1;
            continue;
        }
        let link = ManualLink {
            contacts,
            reason: record.reason.clone(),
            created_by: record.created_by.clone(),
        };
        match repository.create_link(&link, &Planner(limits)) {
            Ok(_) => {
                existing.insert(contacts);
                done.made += 1;
            }
            Err(RepositoryError::LinkRefused(refused)) => {
                tracing::warn!(reason = %refused, "a manual link of the file was not made");
                done.not_made += 1;
            }
            Err(other) => return Err(other),
        }
    }
    Ok(done)
}

/// The live contact that holds `values` (created at `created_at`, when one does), else the
/// oldest contact of the customers that hold them.
fn find_contact(
    repository: &dyn ContactRepository,
    (values, created_at): &(Identifiers, Option<DateTime<Utc>>),
) -> Result<Option<ContactId>, RepositoryError> {
    let found = repository.find_customers(values)?;
    let same =
        |c: &&Contact| c.email.as_ref() == values.email() && c.phone.as_ref() == values.phone();
    let by_age = |c: &&Contact| c.age_key();
    Ok(found
        .iter()
        .filter(same)
        .find(|c| Some(c.created_at) == *created_at)
        .or_else(|| found.iter().filter(same).min_by_key(by_age))
        .or_else(|| {
            found
                .iter()
                .filter(|c| {
                    (c.email.is_some() && c.email.as_ref() == values.email())
                        || (c.phone.is_some() && c.phone.as_ref() == values.phone())
                })
                .min_by_key(by_age)
        })
        .map(|c| c.id))
}
