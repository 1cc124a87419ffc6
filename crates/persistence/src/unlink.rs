//! Unlink rules in the database (the `unlink_rule` table): reading the rules that name a
//! request's values, under the write path's guard, and making one together with the
//! re-clustering it causes, in one transaction.

use diesel::prelude::*;
use identity_domain::{
    unlink_cause, AppliedRule, CustomerRewriter, Email, Identifier, Identifiers, NewUnlinkRule,
    PhoneNumber, RepositoryError, UnlinkRule,
};

use crate::pool::{on_backend, Db};
use crate::reads::read_evidence;
use crate::retry::UnitError;
use crate::schema::unlink_rule;
use crate::sql_types::Instant;
use crate::writes::{apply_rewrite, guarded_read};

const EMAIL: &str = "email";
const PHONE: &str = "phone";

/// A rule as stored.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = unlink_rule)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
struct RuleRow {
    id: i64,
    kind: String,
    value: String,
    reason: String,
    created_by: String,
    created_at: Instant,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = unlink_rule)]
struct NewRuleRow<'a> {
    kind: &'static str,
    value: &'a str,
    reason: &'a str,
    created_by: &'a str,
    created_at: Instant,
}

impl RuleRow {
    fn into_rule(self) -> Result<UnlinkRule, UnitError> {
        let identifier = identifier(&self.kind, self.value).ok_or_else(|| {
            UnitError::Final(RepositoryError::Internal(
                format!("unlink rule {} has an unknown kind", self.id).into(),
            ))
        })?;
        Ok(UnlinkRule {
            id: self.id,
            identifier,
            reason: self.reason,
            created_by: self.created_by,
            created_at: self.created_at.0,
        })
    }
}

fn identifier(kind: &str, value: String) -> Option<Identifier> {
    match kind {
        EMAIL => Some(Identifier::Email(Email::from_stored(value))),
        PHONE => Some(Identifier::Phone(PhoneNumber::from_stored(value))),
        _ => None,
    }
}

fn kind_of(identifier: &Identifier) -> &'static str {
    match identifier {
        Identifier::Email(_) => EMAIL,
        Identifier::Phone(_) => PHONE,
    }
}

/// The values of `identifiers` that a rule names. One statement of one shape whatever the
/// request holds (an absent value is compared as the empty string, which no rule holds),
/// so that it is prepared once per connection.
pub(crate) fn unlinked_among(
    db: &mut Db<'_>,
    identifiers: &Identifiers,
) -> QueryResult<Vec<Identifier>> {
    let email = identifiers.email().map_or("", |e| e.as_str());
    let phone = identifiers.phone().map_or("", |p| p.as_str());
    let query = unlink_rule::table
        .filter(
            unlink_rule::kind
                .eq(EMAIL)
                .and(unlink_rule::value.eq(email))
                .or(unlink_rule::kind
                    .eq(PHONE)
                    .and(unlink_rule::value.eq(phone))),
        )
        .select((unlink_rule::kind, unlink_rule::value));
    let rows: Vec<(String, String)> = on_backend!(db, conn => query.load(conn))?;
    Ok(rows
        .into_iter()
        .filter_map(|(kind, value)| identifier(&kind, value))
        .collect())
}

/// The values every rule names.
pub(crate) fn read_unlinked(db: &mut Db<'_>) -> Result<Vec<Identifier>, UnitError> {
    Ok(read_rules(db)?.into_iter().map(|r| r.identifier).collect())
}

/// Every rule, oldest first.
pub(crate) fn read_rules(db: &mut Db<'_>) -> Result<Vec<UnlinkRule>, UnitError> {
    let rows: Vec<RuleRow> = on_backend!(db, conn => unlink_rule::table
        .order(unlink_rule::id)
        .select(RuleRow::as_select())
        .load(conn))?;
    rows.into_iter().map(RuleRow::into_rule).collect()
}

/// Inside a write transaction: guards the customers that hold the rule's value (and the
/// value itself, as a request's unit of work does), stores the rule, and applies what
/// `rewriter` makes of those customers. `None` when a rule for the value exists.
pub(crate) fn create_rule(
    db: &mut Db<'_>,
    rule: &NewUnlinkRule,
    rewriter: &CustomerRewriter<'_>,
) -> Result<Option<AppliedRule>, UnitError> {
    let before = guarded_read(db, &rule.identifier.as_identifiers())?;
    let row = NewRuleRow {
        kind: kind_of(&rule.identifier),
        value: rule.identifier.as_str(),
        reason: &rule.reason,
        created_by: &rule.created_by,
        created_at: Instant::now(),
    };
    let stored: Option<RuleRow> = on_backend!(db, conn => diesel::insert_into(unlink_rule::table)
        .values(&row)
        .on_conflict_do_nothing()
        .returning(RuleRow::as_returning())
        .get_result(conn)
        .optional())?;
    let Some(stored) = stored else {
        return Ok(None);
    };
    let rule = stored.into_rule()?;
    let evidence = read_evidence(db, &before)?;
    let rewrite = rewriter(&before, &evidence);
    apply_rewrite(db, &rewrite, &before, &unlink_cause(rule.id))?;
    Ok(Some(AppliedRule {
        rule,
        before,
        rewrite,
    }))
}

/// Deletes rule `id`, returning it; `None` when there is none.
pub(crate) fn delete_rule(db: &mut Db<'_>, id: i64) -> Result<Option<UnlinkRule>, UnitError> {
    let rule = unlink_rule::table.find(id);
    let deleted: Option<RuleRow> = on_backend!(db, conn => diesel::delete(rule)
        .returning(RuleRow::as_returning())
        .get_result(conn)
        .optional())?;
    deleted.map(RuleRow::into_rule).transpose()
}
