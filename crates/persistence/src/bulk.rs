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
    CustomerLimits, Identifier, IdentifierPriority, Outcome, RepositoryError,
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
    (limits, priority): (&CustomerLimits, IdentifierPriority),
    cause: &str,
) -> Result<(BatchOutcome, BatchDecision), UnitError> {
    // One lock, taken first: the whole table for writers, for the batch (readers go on).
    lock_all(db)?;
    refuse_unlinked(db, records)?;
    let known = read_touched(db, records)?;
    let (ids, now) = take_ids(db, records.len())?;
    let first_unused = ids.first().map(|id| id.get());
    let decision = decide_batch(records, known, &mut ids.into_iter(), now, limits, priority)
        .map_err(|error| match error {
            BatchError::Inconsistent(e) => UnitError::Inconsistent(e),
            other => UnitError::Final(RepositoryError::Internal(Box::new(other))),
        })?;
    if let Some(first) = first_unused {
        let used = i64::try_from(decision.inserts.len()).unwrap_or(i64::MAX);
        return_ids(db, first + used)?;
    }
    write_decision(db, &decision, cause)?;
    let mut outcome = BatchOutcome::default();
    for decided in &decision.decided {
        outcome.dropped += usize::from(decided.dropped.is_some());
        match decided.plan.outcome() {
            Outcome::Unchanged => outcome.unchanged += 1,
            Outcome::Refused(_) => outcome.refused += 1,
            Outcome::Written { created, merged } => {
                outcome.created += usize::from(created);
                // A merge that also created a contact (rule 5) counts as a creation.
                outcome.merged += usize::from(merged && !created);
            }
        }
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
        // Joined with the unnested lists rather than `= ANY($1)`: the planner then does not
        // estimate each of thousands of values on its own.
        Db::Pg(conn) => diesel::sql_query(touched_sql(
            "IN (SELECT unnest($1::text[]))",
            "IN (SELECT unnest($2::text[]))",
        ))
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

/// The first id [`take_ids`] took, and the database's clock.
#[derive(Debug, QueryableByName)]
struct TakenIds {
    #[diesel(sql_type = BigInt)]
    first: i64,
    #[diesel(sql_type = crate::sql_types::Timestamptz)]
    now: Instant,
}

/// The contact table's identity sequence, on PostgreSQL.
const SEQUENCE: &str = "pg_get_serial_sequence('contact', 'id')";

/// `n` ids for new contacts, ascending, and the time to give undated ones. The batch holds
/// the table lock, so no one else takes an id meanwhile: PostgreSQL's sequence is moved
/// past `n` ids at once (and back to the first unused one by [`return_ids`]); SQLite's ids
/// follow the largest ever given. The time is the database's clock on PostgreSQL (one clock
/// for every replica), this process's on SQLite.
fn take_ids(
    db: &mut Db<'_>,
    n: usize,
) -> Result<(Vec<ContactId>, chrono::DateTime<chrono::Utc>), UnitError> {
    let count = i64::try_from(n).unwrap_or(i64::MAX);
    let (first, now) = match db {
        Db::Pg(conn) => {
            let taken: TakenIds = diesel::sql_query(format!(
                "SELECT setval({SEQUENCE}, nextval({SEQUENCE}) + $1 - 1) - $1 + 1 AS first, \
                        clock_timestamp() AS now"
            ))
            .bind::<BigInt, _>(count.max(1))
            .get_result(&mut **conn)?;
            (taken.first, taken.now.0)
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
            (largest.largest + 1, chrono::Utc::now())
        }
    };
    Ok((
        (0..count)
            .filter_map(|k| ContactId::new(first + k))
            .collect(),
        now,
    ))
}

/// Gives back the ids [`take_ids`] took and the batch did not use: the sequence goes on
/// from the first unused one (PostgreSQL; SQLite's follow the largest id by themselves).
fn return_ids(db: &mut Db<'_>, first_unused: i64) -> QueryResult<()> {
    match db {
        Db::Pg(conn) => diesel::sql_query(format!("SELECT setval({SEQUENCE}, $1, false)"))
            .bind::<BigInt, _>(first_unused)
            .execute(&mut **conn)
            .map(drop),
        Db::Sqlite(_) => Ok(()),
    }
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

/// The rows of one group of [`write_decision`] in one PostgreSQL statement: each column
/// bound as an array and unnested.
fn insert_unnested(conn: &mut diesel::PgConnection, rows: &[NewContactRow<'_>]) -> QueryResult<()> {
    use diesel::sql_types::Nullable;
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let emails: Vec<Option<&str>> = rows.iter().map(|r| r.email).collect();
    let phones: Vec<Option<&str>> = rows.iter().map(|r| r.phone_number).collect();
    let linked: Vec<Option<i64>> = rows.iter().map(|r| r.linked_id).collect();
    let precedence: Vec<&str> = rows.iter().map(|r| r.link_precedence).collect();
    let created: Vec<Instant> = rows.iter().map(|r| r.created_at).collect();
    let updated = rows.first().map_or_else(Instant::now, |r| r.updated_at);
    diesel::sql_query(
        "INSERT INTO contact (id, email, phone_number, linked_id, link_precedence, created_at, \
                              updated_at) \
         SELECT id, email, phone_number, linked_id, link_precedence, created_at, $7 \
           FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::text[], \
                       $6::timestamptz[]) \
             AS t(id, email, phone_number, linked_id, link_precedence, created_at)",
    )
    .bind::<Array<BigInt>, _>(&ids)
    .bind::<Array<Nullable<Text>>, _>(&emails)
    .bind::<Array<Nullable<Text>>, _>(&phones)
    .bind::<Array<Nullable<BigInt>>, _>(&linked)
    .bind::<Array<Text>, _>(&precedence)
    .bind::<Array<crate::sql_types::Timestamptz>, _>(&created)
    .bind::<crate::sql_types::Timestamptz, _>(updated)
    .execute(conn)
    .map(drop)
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
        match db {
            // One statement of arrays, whatever the number of rows.
            Db::Pg(conn) if !rows.is_empty() => insert_unnested(conn, &rows)?,
            Db::Pg(_) => {}
            Db::Sqlite(conn) => {
                for chunk in rows.chunks(ROWS_PER_INSERT) {
                    diesel::insert_into(contact::table)
                        .values(chunk)
                        .execute(&mut **conn)?;
                }
            }
        }
    }

    relink(db, &decision.relinked, now)?;
    // The absorbed customers' undelivered events join the survivor's queue, ahead of the
    // merge's own event (written below): delivered in order per customer across the merge.
    let survivor_of: HashMap<i64, i64> = decision
        .absorbed
        .iter()
        .map(|(absorbed, survivor)| (absorbed.get(), survivor.get()))
        .collect();
    move_events(db, &survivor_of)?;

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

/// Brings contacts that existed before the batch to the link it gave them (each straight
/// to its primary): on PostgreSQL in one statement, on SQLite one per primary.
fn relink(db: &mut Db<'_>, relinked: &[Contact], now: Instant) -> Result<(), UnitError> {
    if relinked.is_empty() {
        return Ok(());
    }
    let changed = match db {
        Db::Pg(conn) => {
            let (ids, primaries): (Vec<i64>, Vec<i64>) = relinked
                .iter()
                .map(|c| (c.id.get(), c.primary_id().get()))
                .unzip();
            diesel::sql_query(
                "UPDATE contact c SET linked_id = m.primary_id, link_precedence = 'secondary', \
                        updated_at = $3 \
                   FROM unnest($1::bigint[], $2::bigint[]) AS m(id, primary_id) \
                  WHERE c.id = m.id AND c.deleted_at IS NULL",
            )
            .bind::<Array<BigInt>, _>(&ids)
            .bind::<Array<BigInt>, _>(&primaries)
            .bind::<crate::sql_types::Timestamptz, _>(now)
            .execute(&mut **conn)?
        }
        Db::Sqlite(conn) => {
            let mut by_primary: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
            for contact in relinked {
                by_primary
                    .entry(contact.primary_id().get())
                    .or_default()
                    .push(contact.id.get());
            }
            let mut changed = 0;
            for (primary, ids) in &by_primary {
                changed += diesel::update(
                    contact::table
                        .filter(contact::id.eq_any(ids))
                        .filter(contact::deleted_at.is_null()),
                )
                .set((
                    contact::linked_id.eq(*primary),
                    contact::link_precedence.eq(SECONDARY),
                    contact::updated_at.eq(now),
                ))
                .execute(&mut **conn)?;
            }
            changed
        }
    };
    if changed == relinked.len() {
        Ok(())
    } else {
        Err(UnitError::Moved)
    }
}

/// Moves the undelivered change events of each absorbed customer to the customer that
/// absorbed it (`survivor_of`): on PostgreSQL in one statement, on SQLite one per survivor.
fn move_events(db: &mut Db<'_>, survivor_of: &HashMap<i64, i64>) -> QueryResult<()> {
    if survivor_of.is_empty() {
        return Ok(());
    }
    match db {
        Db::Pg(conn) => {
            let (absorbed, survivors): (Vec<i64>, Vec<i64>) = survivor_of.iter().unzip();
            // `= ANY($1)` as well, so that the pending-events index finds the rows.
            diesel::sql_query(
                "UPDATE outbox o SET customer_id = m.survivor \
                   FROM unnest($1::bigint[], $2::bigint[]) AS m(absorbed, survivor) \
                  WHERE o.customer_id = m.absorbed AND o.customer_id = ANY($1) \
                    AND o.delivered_at IS NULL AND o.dead_at IS NULL",
            )
            .bind::<Array<BigInt>, _>(&absorbed)
            .bind::<Array<BigInt>, _>(&survivors)
            .execute(&mut **conn)
            .map(drop)
        }
        Db::Sqlite(conn) => {
            let mut by_survivor: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
            for (absorbed, survivor) in survivor_of {
                by_survivor.entry(*survivor).or_default().push(*absorbed);
            }
            for (survivor, absorbed) in &by_survivor {
                diesel::update(
                    outbox::table
                        .filter(outbox::customer_id.eq_any(absorbed))
                        .filter(outbox::delivered_at.is_null())
                        .filter(outbox::dead_at.is_null()),
                )
                .set(outbox::customer_id.eq(*survivor))
                .execute(&mut **conn)?;
            }
            Ok(())
        }
    }
}
