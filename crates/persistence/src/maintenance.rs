//! Operations on the whole store, for operators (`identity-api normalize`, `import`,
//! `check`, `stats`): never on a request's path.

use std::collections::HashSet;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use identity_domain::{
    BatchOutcome, BatchRecord, ContactId, ContactMaintenance, CustomerLimits, CustomerSize,
    DecideEach, Email, ExportSink, Exported, Identifier, IdentifierPriority, Identifiers,
    PhoneNumber, RepositoryError, Rewrite, Rewriter, StoreStats, Violation,
};

use crate::bulk::import_batch;
use crate::deadline;
use crate::invariants::{stats, INVARIANT_CHECKS};
use crate::links::read_all_links;
use crate::models::{into_contacts, ContactRow, PRIMARY};
use crate::pool::{on_backend, Db};
use crate::queries::LargestCustomers;
use crate::reads::{read_all, read_customers};
use crate::repository::{record_committed, SqlStore};
use crate::retry::UnitError;
use crate::schema::contact;
use crate::sql_types::Instant;
use crate::unlink::{read_rules, read_unlinked};
use crate::writes::{apply_rewrite, lock_all, write_plan, write_transaction};

impl ContactMaintenance for SqlStore {
    fn rewrite_all<'f>(
        &self,
        rewriter: &'f Rewriter<'f>,
        cause: &str,
    ) -> Result<Rewrite, RepositoryError> {
        // Not run again when it collides: it waited for every other writer already. Takes
        // long on a large table: no statement time limit, no client-side deadline.
        deadline::lifted(|| {
            self.retry.once(&self.pool, |db| {
                write_transaction(db, |db| {
                    lock_all(db)?;
                    let contacts = read_all(db)?;
                    let rewrite = rewriter(&contacts, &read_unlinked(db)?);
                    apply_rewrite(db, &rewrite, &contacts, cause)?;
                    Ok(rewrite)
                })
            })
        })
    }

    fn apply_batch<'f>(
        &self,
        requests: &[Identifiers],
        decide: &'f DecideEach<'f>,
        cause: &str,
    ) -> Result<BatchOutcome, RepositoryError> {
        // Waits up to 30 s for the table lock: no client-side deadline.
        let (outcome, plans) = deadline::lifted(|| {
            self.retry.run(&self.pool, |db| {
                write_transaction(db, |db| {
                    // One lock, taken first: the whole table for writers, for the batch. A
                    // batch guarding record by record would take identifier locks while holding
                    // row locks of earlier records (the opposite of /identify's order), and the
                    // two could deadlock. Readers go on; writers wait for the batch's commit.
                    lock_all(db)?;
                    // The batch was admitted with the rules of its start: one made since then
                    // is committed by now (it waits for the lock too, or went before it).
                    let rules: HashSet<Identifier> = read_unlinked(db)?.into_iter().collect();
                    let unlinked: Vec<Identifier> = requests
                        .iter()
                        .flat_map(Identifier::all_of)
                        .filter(|value| rules.contains(value))
                        .collect();
                    if !unlinked.is_empty() {
                        return Err(UnitError::Final(RepositoryError::Unlinked(unlinked)));
                    }
                    let mut outcome = BatchOutcome::default();
                    let mut plans = Vec::with_capacity(requests.len());
                    for (index, identifiers) in requests.iter().enumerate() {
                        let current = into_contacts(read_customers(db, identifiers)?)
                            .map_err(UnitError::Malformed)?;
                        let plan = decide(index, &current).map_err(UnitError::Inconsistent)?;
                        if plan.refused.is_some() {
                            outcome.refused += 1;
                        } else if plan.is_empty() {
                            outcome.unchanged += 1;
                        }
                        outcome.created += usize::from(plan.insert.is_some());
                        outcome.merged +=
                            usize::from(plan.relink.is_some() && plan.insert.is_none());
                        if !plan.is_empty() {
                            write_plan(db, &plan, identifiers, current, cause)?;
                        }
                        plans.push(plan);
                    }
                    Ok((outcome, plans))
                })
            })
        })?;
        plans.iter().for_each(record_committed);
        Ok(outcome)
    }

    fn import_batch(
        &self,
        records: &[BatchRecord],
        limits: &CustomerLimits,
        priority: IdentifierPriority,
        cause: &str,
    ) -> Result<BatchOutcome, RepositoryError> {
        // Waits up to 30 s for the table lock, as `apply_batch`: no client-side deadline.
        let (outcome, decision) = deadline::lifted(|| {
            self.retry.run(&self.pool, |db| {
                write_transaction(db, |db| {
                    import_batch(db, records, (limits, priority), cause)
                })
            })
        })?;
        decision
            .decided
            .iter()
            .for_each(|decided| record_committed(&decided.plan));
        Ok(outcome)
    }

    fn refresh_statistics(&self) -> Result<(), RepositoryError> {
        self.retry.once(&self.pool, |db| match db {
            // New statistics also make every connection plan its cached statements again.
            Db::Pg(conn) => Ok(conn.batch_execute("ANALYZE contact")?),
            // SQLite plans by its indexes without statistics, and re-prepares a statement
            // by itself when the schema or its statistics change.
            Db::Sqlite(_) => Ok(()),
        })
    }

    fn check(&self) -> Result<Vec<Violation>, RepositoryError> {
        self.retry.once(&self.pool, |db| {
            let mut violations = Vec::new();
            for check in INVARIANT_CHECKS {
                let query = diesel::sql_query(check.sql);
                let items: Vec<ItemRow> = on_backend!(db, conn => query.clone().load(conn))?;
                if !items.is_empty() {
                    let shown: Vec<&str> = items.iter().take(20).map(|i| i.item.as_str()).collect();
                    let more = items.len().saturating_sub(shown.len());
                    let tail = if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    };
                    violations.push(Violation {
                        invariant: check.invariant.to_owned(),
                        detail: format!("{} {}{tail}", check.items, shown.join(", ")),
                    });
                }
            }
            Ok(violations)
        })
    }

    fn stats(&self, top: usize) -> Result<StoreStats, RepositoryError> {
        self.retry.once(&self.pool, |db| Ok(read_stats(db, top)?))
    }

    fn export<'f>(&self, sink: &'f mut ExportSink<'f>) -> Result<(), RepositoryError> {
        // Run again on another connection only when the first broke before anything was
        // handed on: a second run would hand on the same items twice.
        let mut handed_on = false;
        self.retry.once(&self.pool, |db| {
            if handed_on {
                return Err(UnitError::Final(RepositoryError::Unavailable(
                    "the connection broke during the export".into(),
                )));
            }
            snapshot(db, |db| {
                export_all(db, &mut |item| {
                    handed_on = true;
                    sink(item)
                })
            })
        })
    }
}

/// Runs `work` in one read-only snapshot of the store.
fn snapshot<T>(
    db: &mut Db<'_>,
    work: impl FnOnce(&mut Db<'_>) -> Result<T, UnitError>,
) -> Result<T, UnitError> {
    match db {
        Db::Pg(conn) => conn
            .build_transaction()
            .repeatable_read()
            .read_only()
            .run(|conn| work(&mut Db::Pg(conn))),
        // A read transaction in WAL mode sees the file as of its first read.
        Db::Sqlite(conn) => conn.transaction(|conn| work(&mut Db::Sqlite(conn))),
    }
}

/// Contacts read per statement by an export.
const EXPORT_PAGE: i64 = 10_000;

/// The rules, the live contacts page by page, and the evidence whose values live contacts
/// hold, to `sink`.
fn export_all(
    db: &mut Db<'_>,
    sink: &mut dyn FnMut(Exported) -> std::io::Result<()>,
) -> Result<(), UnitError> {
    let give = |sink: &mut dyn FnMut(Exported) -> std::io::Result<()>, item| {
        sink(item).map_err(|e| UnitError::Final(RepositoryError::Internal(Box::new(e))))
    };
    for rule in read_rules(db)? {
        give(sink, Exported::Rule(rule))?;
    }
    let mut after = 0_i64;
    loop {
        let rows = on_backend!(db, conn => contact::table
            .filter(contact::deleted_at.is_null())
            .filter(contact::id.gt(after))
            .order(contact::id.asc())
            .limit(EXPORT_PAGE)
            .select(ContactRow::as_select())
            .load(conn))?;
        let Some(last) = rows.last().map(|row| row.id) else {
            break;
        };
        after = last;
        for contact in into_contacts(rows).map_err(UnitError::Malformed)? {
            give(sink, Exported::Contact(contact))?;
        }
    }
    let rows: Vec<EvidenceRow> = match db {
        Db::Pg(conn) => diesel::sql_query(held_evidence("GREATEST")).load(&mut **conn)?,
        Db::Sqlite(conn) => diesel::sql_query(held_evidence("max")).load(&mut **conn)?,
    };
    for row in rows {
        give(
            sink,
            Exported::Request {
                email: Email::from_stored(row.email),
                phone: PhoneNumber::from_stored(row.phone_number),
                created_at: row.created_at.0,
            },
        )?;
    }
    let links = read_all_links(db)?;
    let ids: Vec<i64> = links
        .iter()
        .flat_map(|l| l.link.contacts)
        .map(|id| id.get())
        .collect();
    let mut contacts = std::collections::HashMap::new();
    for chunk in ids.chunks(EXPORT_PAGE as usize) {
        let rows = on_backend!(db, conn => contact::table
            .filter(contact::id.eq_any(chunk))
            .filter(contact::deleted_at.is_null())
            .select(ContactRow::as_select())
            .load(conn))?;
        for contact in into_contacts(rows).map_err(UnitError::Malformed)? {
            contacts.insert(contact.id, contact);
        }
    }
    for link in links {
        let [a, b] = link.link.contacts;
        // A link's contacts are live (erasing one deletes its links; `check` verifies it).
        if let (Some(a), Some(b)) = (contacts.get(&a), contacts.get(&b)) {
            let contacts = [a.clone(), b.clone()];
            give(sink, Exported::Link { link, contacts })?;
        }
    }
    Ok(())
}

/// The stored requests whose email and phone live contacts still hold: those still join
/// something. Each dated no earlier than the oldest live contact holding its email and the
/// oldest holding its phone, so that an import, taking records oldest first, meets it when
/// both values are there and it joins them (had the contacts it first joined been erased
/// and their values come back later, its own date would come first and make it a contact).
/// `greatest` is the backend's name for the largest of its arguments. Run once per export:
/// not worth caching.
fn held_evidence(greatest: &str) -> String {
    format!(
        "SELECT id, email, phone_number, {greatest}(created_at, email_since, phone_since) \
                AS created_at \
           FROM (SELECT e.id, e.email, e.phone_number, e.created_at, \
                        (SELECT min(c.created_at) FROM contact c \
                          WHERE c.email = e.email AND c.deleted_at IS NULL) AS email_since, \
                        (SELECT min(c.created_at) FROM contact c \
                          WHERE c.phone_number = e.phone_number AND c.deleted_at IS NULL) \
                          AS phone_since \
                   FROM link_evidence e) AS held \
          WHERE email_since IS NOT NULL AND phone_since IS NOT NULL \
          ORDER BY id"
    )
}

/// One stored request, as [`held_evidence`] reads it.
#[derive(Debug, QueryableByName)]
struct EvidenceRow {
    #[diesel(sql_type = Text)]
    email: String,
    #[diesel(sql_type = Text)]
    phone_number: String,
    #[diesel(sql_type = crate::sql_types::Timestamptz)]
    created_at: Instant,
}

/// One item of an invariant check.
#[derive(Debug, QueryableByName)]
struct ItemRow {
    #[diesel(sql_type = Text)]
    item: String,
}

/// One bucket of the distribution of customer sizes.
#[derive(Debug, QueryableByName)]
struct BucketRow {
    #[diesel(sql_type = Text)]
    bucket: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn read_stats(db: &mut Db<'_>, top: usize) -> QueryResult<StoreStats> {
    let to_u64 = |n: i64| u64::try_from(n).unwrap_or(0);
    let live = contact::table.filter(contact::deleted_at.is_null());
    let customers = live.filter(contact::link_precedence.eq(PRIMARY)).count();
    let contacts = live.count();
    let deleted = contact::table
        .filter(contact::deleted_at.is_not_null())
        .count();
    let largest = LargestCustomers {
        limit: i64::try_from(top).unwrap_or(i64::MAX),
    };
    let distribution = diesel::sql_query(stats::DISTRIBUTION);
    let (customers, contacts, deleted, largest, buckets) = on_backend!(db, conn => (
        customers.get_result::<i64>(conn)?,
        contacts.get_result::<i64>(conn)?,
        deleted.get_result::<i64>(conn)?,
        largest.load::<(i64, i64, i64, i64)>(conn)?,
        distribution.load::<BucketRow>(conn)?,
    ));
    Ok(StoreStats {
        customers: to_u64(customers),
        contacts: to_u64(contacts),
        deleted_contacts: to_u64(deleted),
        largest: largest
            .into_iter()
            .filter_map(|(primary, contacts, emails, phones)| {
                ContactId::new(primary).map(|primary| CustomerSize {
                    primary,
                    contacts: to_u64(contacts),
                    emails: to_u64(emails),
                    phones: to_u64(phones),
                })
            })
            .collect(),
        contacts_per_customer: buckets
            .into_iter()
            .map(|b| (b.bucket, to_u64(b.n)))
            .collect(),
    })
}
