//! The write path, inside one transaction: begin (each backend its way), guard what is about
//! to change, read it again (`reads.rs`), and write a plan or a rewrite with its history and
//! change events. Why the guards keep the graph right is argued in docs/CONCURRENCY.md.

use diesel::prelude::*;
use identity_domain::{Contact, ContactChange, Identifiers, LinkTo, Plan, Rewrite};

use crate::history;
use crate::models::{into_contacts, link_columns, ContactRow, NewEvidenceRow, PRIMARY, SECONDARY};
use crate::pool::{on_backend, Db};
use crate::postgres::{self, LockCustomerOf, LockMatching};
use crate::queries::InsertContact;
use crate::reads::{read_customer_of, read_customers};
use crate::retry::UnitError;
use crate::schema::{contact, link_evidence, manual_link, outbox};
use crate::sql_types::Instant;

/// What a write transaction holds once its guard returns.
#[derive(Debug)]
enum Guard {
    /// The whole store: no other write can run until commit (SQLite's write lock, taken by
    /// `BEGIN IMMEDIATE`).
    Store,
    /// The row locks of these primaries (ascending), plus the request's identifiers.
    Primaries(Vec<i64>),
}

/// Runs `work` in one write transaction: PostgreSQL's READ COMMITTED, whose guards are the
/// locks each unit takes; SQLite's `BEGIN IMMEDIATE`, which takes the file's write lock at
/// once, so no other writer (in this process or another) interleaves.
pub(crate) fn write_transaction<T>(
    db: &mut Db<'_>,
    work: impl FnOnce(&mut Db<'_>) -> Result<T, UnitError>,
) -> Result<T, UnitError> {
    match db {
        Db::Pg(conn) => conn.transaction(|conn| work(&mut Db::Pg(conn))),
        Db::Sqlite(conn) => conn.immediate_transaction(|conn| work(&mut Db::Sqlite(conn))),
    }
}

/// Inside a write transaction: keeps every other writer out until commit, for operations
/// on the whole table.
pub(crate) fn lock_all(db: &mut Db<'_>) -> QueryResult<()> {
    match db {
        Db::Pg(conn) => postgres::lock_all(conn),
        // BEGIN IMMEDIATE already keeps every other writer out.
        Db::Sqlite(_) => Ok(()),
    }
}

/// Inside a write transaction: guards what `identifiers` match and reads it.
pub(crate) fn guarded_read(
    db: &mut Db<'_>,
    identifiers: &Identifiers,
) -> Result<Vec<Contact>, UnitError> {
    let guard = match db {
        Db::Pg(conn) => {
            let mut keys = Vec::with_capacity(2);
            if let Some(email) = identifiers.email() {
                keys.push(format!("email:{}", email.as_str()));
            }
            if let Some(phone) = identifiers.phone() {
                keys.push(format!("phone:{}", phone.as_str()));
            }
            let lock = LockMatching {
                keys: &keys,
                email: identifiers.email().map(|e| e.as_str()),
                phone: identifiers.phone().map(|p| p.as_str()),
            };
            Guard::Primaries(lock.load(&mut **conn)?)
        }
        Db::Sqlite(_) => Guard::Store,
    };
    let rows = read_customers(db, identifiers)?;
    ensure_guarded(&guard, &rows)?;
    into_contacts(rows).map_err(UnitError::Malformed)
}

/// Inside a write transaction: guards the customer of live contact `id` and reads it.
pub(crate) fn guarded_read_customer_of(
    db: &mut Db<'_>,
    id: i64,
) -> Result<Vec<Contact>, UnitError> {
    let guard = match db {
        Db::Pg(conn) => Guard::Primaries(LockCustomerOf { id }.load(&mut **conn)?),
        Db::Sqlite(_) => Guard::Store,
    };
    let rows = read_customer_of(db, id)?;
    ensure_guarded(&guard, &rows)?;
    into_contacts(rows).map_err(UnitError::Malformed)
}

/// Whether the guard covers what was read: every primary among `rows` must be one the guard
/// locked (a concurrent merge may have moved the customer meanwhile: then run again).
fn ensure_guarded(guard: &Guard, rows: &[ContactRow]) -> Result<(), UnitError> {
    match guard {
        Guard::Store => Ok(()),
        Guard::Primaries(locked) => rows
            .iter()
            .filter(|row| row.link_precedence == PRIMARY)
            .all(|row| locked.binary_search(&row.id).is_ok())
            .then_some(())
            .ok_or(UnitError::Moved),
    }
}

/// Inside a write transaction: applies a plan decided on guarded data (`current`) for a
/// request with `identifiers`, with its history and change events, and the request itself
/// as evidence when it joined customers without creating a contact. Returns the customers
/// after the write, as the plan says they are (nothing is read back).
pub(crate) fn write_plan(
    db: &mut Db<'_>,
    plan: &Plan,
    identifiers: &Identifiers,
    current: Vec<Contact>,
    cause: &str,
) -> Result<Vec<Contact>, UnitError> {
    let inserted = match &plan.insert {
        Some(new) => {
            let (precedence, linked_id) = link_columns(new.link);
            let query = InsertContact {
                email: new.email.as_ref().map(|e| e.as_str()),
                phone: new.phone.as_ref().map(|p| p.as_str()),
                linked_id,
                link_precedence: precedence,
                created_at: new.created_at.map(Instant).or_else(|| match db {
                    // PostgreSQL stamps the row with its own clock (one clock for every
                    // replica); SQLite's has only milliseconds, so this process's clock,
                    // the one every process on the file shares, stamps it.
                    Db::Pg(_) => None,
                    Db::Sqlite(_) => Some(Instant::now()),
                }),
            };
            let (id, created_at): (i64, Instant) = on_backend!(db, conn => query.get_result(conn))?;
            let id = identity_domain::ContactId::new(id).ok_or(UnitError::Moved)?;
            Some((id, created_at.0))
        }
        None => None,
    };
    if let Some(relink) = &plan.relink {
        let primary = match (relink.to, inserted) {
            (LinkTo::Existing(id), _) => id,
            (LinkTo::Inserted, Some((id, _))) => id,
            (LinkTo::Inserted, None) => return Err(UnitError::Moved),
        };
        let ids: Vec<i64> = relink.contacts.iter().map(|id| id.get()).collect();
        let mut changed = 0;
        for chunk in ids.chunks(ID_CHUNK) {
            let query = diesel::update(
                contact::table
                    .filter(contact::id.eq_any(chunk))
                    .filter(contact::deleted_at.is_null()),
            )
            .set((
                contact::linked_id.eq(primary.get()),
                contact::link_precedence.eq(SECONDARY),
                contact::updated_at.eq(Instant::now()),
            ));
            changed += on_backend!(db, conn => query.execute(conn))?;
        }
        if changed != ids.len() {
            return Err(UnitError::Moved);
        }
        // The absorbed customers' undelivered events join the survivor's queue, ahead of
        // the merge's own event: delivered in order per customer across the merge.
        let absorbed: Vec<i64> = current
            .iter()
            .filter(|c| c.is_primary() && relink.contacts.binary_search(&c.id).is_ok())
            .map(|c| c.id.get())
            .collect();
        if !absorbed.is_empty() {
            on_backend!(db, conn => diesel::update(
                outbox::table
                    .filter(outbox::customer_id.eq_any(&absorbed))
                    .filter(outbox::delivered_at.is_null())
                    .filter(outbox::dead_at.is_null()),
            )
            .set(outbox::customer_id.eq(primary.get()))
            .execute(conn))?;
        }
        if let (None, Some(email), Some(phone)) =
            (&plan.insert, identifiers.email(), identifiers.phone())
        {
            let row = NewEvidenceRow {
                email: email.as_str(),
                phone_number: phone.as_str(),
                created_at: Instant::now(),
            };
            on_backend!(db, conn => diesel::insert_into(link_evidence::table)
                .values(&row)
                .execute(conn))?;
        }
    }
    let (events, outbox) = history::of_plan(plan, inserted.map(|(id, _)| id), &current, cause);
    history::record(db, events, outbox)?;
    Ok(plan.applied_to(current, inserted))
}

/// Ids per statement when a list of ids is bound: SQLite binds each id as a parameter
/// (at most 32,766 in one statement); PostgreSQL binds one array.
const ID_CHUNK: usize = 10_000;

/// Inside a write transaction: applies a rewrite of contacts read as `before`, with its
/// history and change events, and deletes the evidence it names and the manual links of the
/// contacts it erases.
pub(crate) fn apply_rewrite(
    db: &mut Db<'_>,
    rewrite: &Rewrite,
    before: &[Contact],
    cause: &str,
) -> Result<(), UnitError> {
    let now = Instant::now();
    for change in &rewrite.changes {
        apply_change(db, change, now)?;
    }
    for chunk in rewrite.evidence_erased.chunks(ID_CHUNK) {
        on_backend!(db, conn => diesel::delete(
            link_evidence::table.filter(link_evidence::id.eq_any(chunk)),
        )
        .execute(conn))?;
    }
    // A manual link goes with either of its contacts (invariant 9).
    let erased: Vec<i64> = rewrite
        .changes
        .iter()
        .filter(|c| c.erased)
        .map(|c| c.id.get())
        .collect();
    delete_links_of(db, &erased)?;
    let (events, outbox) =
        history::of_changes(&rewrite.changes, rewrite.value_change, before, cause);
    history::record(db, events, outbox)?;
    Ok(())
}

/// Brings one contact to the state `change` describes.
fn apply_change(db: &mut Db<'_>, change: &ContactChange, now: Instant) -> QueryResult<usize> {
    let (precedence, linked_id) = link_columns(change.link);
    let query = diesel::update(contact::table.find(change.id.get())).set((
        contact::email.eq(change.email.as_ref().map(|e| e.as_str())),
        contact::phone_number.eq(change.phone.as_ref().map(|p| p.as_str())),
        contact::link_precedence.eq(precedence),
        contact::linked_id.eq(linked_id),
        contact::updated_at.eq(now),
        contact::deleted_at.eq(change.erased.then_some(now)),
    ));
    on_backend!(db, conn => query.execute(conn))
}

/// Deletes the links that name any of the contacts `ids` (a rewrite erased them).
pub(crate) fn delete_links_of(db: &mut Db<'_>, ids: &[i64]) -> QueryResult<()> {
    for chunk in ids.chunks(ID_CHUNK) {
        on_backend!(db, conn => diesel::delete(
            manual_link::table.filter(
                manual_link::contact_a
                    .eq_any(chunk)
                    .or(manual_link::contact_b.eq_any(chunk)),
            ),
        )
        .execute(conn))?;
    }
    Ok(())
}
