//! The set-based import: a whole batch of records in a handful of statements. Under the
//! batch's table lock it reads every customer the batch touches in one statement, takes
//! ids for the contacts it may create, lets the domain decide the whole batch in memory
//! ([`identity_domain::decide_batch`], the same rules record by record), and writes the
//! outcome in bulk: the new contacts, the re-links, the evidence, the absorbed customers'
//! pending change events, and the history and change events of every record's plan, as
//! one request at a time would have written them.

use std::collections::{BTreeMap, HashMap, HashSet};

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Text};
use identity_domain::{
    decide_batch, BatchDecision, BatchError, BatchOutcome, BatchRecord, Contact, ContactId,
    CustomerLimits, Identifier, RepositoryError,
};

use crate::history;
use crate::models::{into_contacts, link_columns, ContactRow, NewEvidenceRow, SECONDARY};
use crate::pool::{on_backend, Db};
use crate::retry::UnitError;
use crate::schema::{contact, link_evidence, outbox};
use crate::sql_types::Instant;
use crate::unlink::read_unlinked;
use crate::writes::lock_all;

/// Rows per multi-row INSERT: SQLite binds at most 32,766 parameters in one statement
/// (seven per contact), PostgreSQL 65,535.
const ROWS_PER_INSERT: usize = 4_000;

/// Inside a write transaction: decides and writes one batch. Returns what it wrote and
/// the decision (for the metrics, after commit).
pub(crate) fn import_batch(
    db: &mut Db<'_>,
    records: &[BatchRecord],
    limits: &CustomerLimits,
    cause: &str,
) -> Result<(BatchOutcome, BatchDecision), UnitError> {
    // One lock, taken first: the whole table for writers, for the batch (readers go on).
    lock_all(db)?;
    refuse_unlinked(db, records)?;
    let known = read_touched(db, records)?;
    let (ids, now) = take_ids(db, records.len())?;
    let decision = decide_batch(records, known, &mut ids.into_iter(), now, limits).map_err(
        |error| match error {
            BatchError::Inconsistent(e) => UnitError::Inconsistent(e),
            other => UnitError::Final(RepositoryError::Internal(Box::new(other))),
        },
    )?;
    write_decision(db, &decision, cause)?;
    let mut outcome = BatchOutcome::default();
    for decided in &decision.decided {
        let plan = &decided.plan;
        if plan.refused.is_some() {
            outcome.refused += 1;
        } else if plan.is_empty() {
            outcome.unchanged += 1;
        }
        outcome.created += usize::from(plan.insert.is_some());
        outcome.merged += usize::from(plan.relink.is_some() && plan.insert.is_none());
    }
    Ok((outcome, decision))
}

/// The batch was admitted with the rules of its start: a rule made since then is committed
/// by now (it waits for the table lock too, or went before it).
fn refuse_unlinked(db: &mut Db<'_>, records: &[BatchRecord]) -> Result<(), UnitError> {
    let rules: HashSet<Identifier> = read_unlinked(db)?.into_iter().collect();
    if rules.is_empty() {
        return Ok(());
    }
    let unlinked: Vec<Identifier> = records
        .iter()
        .flat_map(|r| Identifier::all_of(&r.identifiers))
        .filter(|value| rules.contains(value))
        .collect();
    if unlinked.is_empty() {
        Ok(())
    } else {
        Err(UnitError::Final(RepositoryError::Unlinked(unlinked)))
    }
}

/// Every live contact of every customer that an email or a phone of `records` matches, in
/// one statement.
fn read_touched(db: &mut Db<'_>, records: &[BatchRecord]) -> Result<Vec<Contact>, UnitError> {
    let mut emails: Vec<&str> = records
        .iter()
        .filter_map(|r| r.identifiers.email())
        .map(|e| e.as_str())
        .collect();
    let mut phones: Vec<&str> = records
        .iter()
        .filter_map(|r| r.identifiers.phone())
        .map(|p| p.as_str())
        .collect();
    emails.sort_unstable();
    emails.dedup();
    phones.sort_unstable();
    phones.dedup();
    let rows: Vec<ContactRow> = match db {
        Db::Pg(conn) => diesel::sql_query(touched_sql("= ANY($1)", "= ANY($2)"))
            .bind::<Array<Text>, _>(&emails)
            .bind::<Array<Text>, _>(&phones)
            .load(&mut **conn)?,
        Db::Sqlite(conn) => {
            let json = |values: &[&str]| serde_json::Value::from(values.to_vec()).to_string();
            diesel::sql_query(touched_sql(
                "IN (SELECT value FROM json_each(?1))",
                "IN (SELECT value FROM json_each(?2))",
            ))
            .bind::<Text, _>(json(&emails))
            .bind::<Text, _>(json(&phones))
            .load(&mut **conn)?
        }
    };
    into_contacts(rows).map_err(UnitError::Malformed)
}

/// The statement of [`read_touched`], with each backend's way of matching a list.
fn touched_sql(email_in: &str, phone_in: &str) -> String {
    format!(
        "WITH matched AS ( \
           SELECT COALESCE(linked_id, id) AS p FROM contact \
            WHERE email {email_in} AND deleted_at IS NULL \
           UNION \
           SELECT COALESCE(linked_id, id) FROM contact \
            WHERE phone_number {phone_in} AND deleted_at IS NULL) \
         SELECT id, phone_number, email, linked_id, link_precedence, created_at FROM contact \
          WHERE deleted_at IS NULL AND id IN (SELECT p FROM matched) \
         UNION ALL \
         SELECT id, phone_number, email, linked_id, link_precedence, created_at FROM contact \
          WHERE deleted_at IS NULL AND linked_id IN (SELECT p FROM matched)"
    )
}

/// One id of [`take_ids`].
#[derive(Debug, QueryableByName)]
struct TakenId {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = crate::sql_types::Timestamptz)]
    now: Instant,
}

/// `n` ids for new contacts, ascending, and the time to give undated ones. PostgreSQL:
/// from the table's identity sequence (ids the batch does not use are left unused, as a
/// rolled-back insert leaves its id); SQLite: past the largest id ever given, which no one
/// else can take while the batch holds the file's write lock. The time is the database's
/// clock on PostgreSQL (one clock for every replica), this process's on SQLite.
fn take_ids(
    db: &mut Db<'_>,
    n: usize,
) -> Result<(Vec<ContactId>, chrono::DateTime<chrono::Utc>), UnitError> {
    let count = i64::try_from(n).unwrap_or(i64::MAX);
    let (ids, now) = match db {
        Db::Pg(conn) => {
            let taken: Vec<TakenId> = diesel::sql_query(
                "SELECT nextval(pg_get_serial_sequence('contact', 'id')) AS id, \
                        clock_timestamp() AS now \
                   FROM generate_series(1, $1)",
            )
            .bind::<BigInt, _>(count)
            .load(&mut **conn)?;
            let now = taken.first().map_or_else(chrono::Utc::now, |t| t.now.0);
            (taken.into_iter().map(|t| t.id).collect::<Vec<_>>(), now)
        }
        Db::Sqlite(conn) => {
            #[derive(QueryableByName)]
            struct Largest {
                #[diesel(sql_type = BigInt)]
                largest: i64,
            }
            let largest: Largest = diesel::sql_query(
                "SELECT max(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'contact'), 0), \
                            COALESCE((SELECT max(id) FROM contact), 0)) AS largest",
            )
            .get_result(&mut **conn)?;
            (
                (1..=count).map(|k| largest.largest + k).collect(),
                chrono::Utc::now(),
            )
        }
    };
    Ok((ids.into_iter().filter_map(ContactId::new).collect(), now))
}

/// A contact to create, with the id the batch gave it.
#[derive(Debug, Insertable)]
#[diesel(table_name = contact)]
struct NewContactRow<'a> {
    id: i64,
    email: Option<&'a str>,
    phone_number: Option<&'a str>,
    linked_id: Option<i64>,
    link_precedence: &'static str,
    created_at: Instant,
    updated_at: Instant,
}

fn new_row(contact: &Contact, now: Instant) -> NewContactRow<'_> {
    let (precedence, linked_id) = link_columns(contact.link);
    NewContactRow {
        id: contact.id.get(),
        email: contact.email.as_ref().map(|e| e.as_str()),
        phone_number: contact.phone.as_ref().map(|p| p.as_str()),
        linked_id,
        link_precedence: precedence,
        created_at: Instant(contact.created_at),
        updated_at: now,
    }
}

/// Writes a decided batch: contacts (primaries first, so that every link points at a row
/// that exists), re-links, absorbed customers' pending events, evidence, then every
/// record's history and change events in record order.
fn write_decision(db: &mut Db<'_>, decision: &BatchDecision, cause: &str) -> Result<(), UnitError> {
    let now = Instant::now();
    let (primaries, secondaries): (Vec<&Contact>, Vec<&Contact>) =
        decision.inserts.iter().partition(|c| c.is_primary());
    for group in [primaries, secondaries] {
        let rows: Vec<NewContactRow<'_>> = group.into_iter().map(|c| new_row(c, now)).collect();
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            on_backend!(db, conn => diesel::insert_into(contact::table)
                .values(chunk)
                .execute(conn))?;
        }
    }

    let mut relinks: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for contact in &decision.relinked {
        relinks
            .entry(contact.primary_id().get())
            .or_default()
            .push(contact.id.get());
    }
    for (primary, ids) in &relinks {
        let query = diesel::update(
            contact::table
                .filter(contact::id.eq_any(ids))
                .filter(contact::deleted_at.is_null()),
        )
        .set((
            contact::linked_id.eq(*primary),
            contact::link_precedence.eq(SECONDARY),
            contact::updated_at.eq(now),
        ));
        let changed = on_backend!(db, conn => query.execute(conn))?;
        if changed != ids.len() {
            return Err(UnitError::Moved);
        }
    }

    // The absorbed customers' undelivered events join the survivor's queue, ahead of the
    // merge's own event (written below): delivered in order per customer across the merge.
    let survivor_of: HashMap<i64, i64> = decision
        .absorbed
        .iter()
        .map(|(absorbed, survivor)| (absorbed.get(), survivor.get()))
        .collect();
    let mut by_survivor: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for (absorbed, survivor) in &survivor_of {
        by_survivor.entry(*survivor).or_default().push(*absorbed);
    }
    for (survivor, absorbed) in &by_survivor {
        on_backend!(db, conn => diesel::update(
            outbox::table
                .filter(outbox::customer_id.eq_any(absorbed))
                .filter(outbox::delivered_at.is_null())
                .filter(outbox::dead_at.is_null()),
        )
        .set(outbox::customer_id.eq(*survivor))
        .execute(conn))?;
    }

    let evidence: Vec<NewEvidenceRow<'_>> = decision
        .evidence
        .iter()
        .map(|(email, phone)| NewEvidenceRow {
            email: email.as_str(),
            phone_number: phone.as_str(),
            created_at: now,
        })
        .collect();
    for chunk in evidence.chunks(ROWS_PER_INSERT) {
        on_backend!(db, conn => diesel::insert_into(link_evidence::table)
            .values(chunk)
            .execute(conn))?;
    }

    let mut events = Vec::new();
    let mut outbox = Vec::new();
    for decided in decision.decided.iter().filter(|d| !d.plan.is_empty()) {
        let (e, o) = history::of_plan(
            &decided.plan,
            decided.inserted.map(|(id, _)| id),
            &decided.current,
            cause,
        );
        events.extend(e);
        outbox.extend(o);
    }
    // A customer the batch created and then absorbed: its events follow it too.
    for row in &mut outbox {
        if let Some(survivor) = survivor_of.get(&row.customer_id) {
            row.customer_id = *survivor;
        }
    }
    while !events.is_empty() || !outbox.is_empty() {
        let rest_events = events.split_off(events.len().min(ROWS_PER_INSERT));
        let rest_outbox = outbox.split_off(outbox.len().min(ROWS_PER_INSERT));
        history::record(db, events, outbox)?;
        events = rest_events;
        outbox = rest_outbox;
    }
    Ok(())
}
