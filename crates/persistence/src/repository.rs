//! `ContactRepository` on either backend, written once.
//!
//! Reads: no locks, one statement each, so an answer comes from one snapshot; except
//! `find_history` (the customer, then the events of its contacts: an event written in
//! between may show as well, none the customer's contacts had is missed) and
//! `find_evidence` (the joining requests, then the manual links).
//! Writes: one transaction per unit of work that first guards what it is about to change,
//! then reads, decides and writes (`writes.rs`); it runs again when it collides with a
//! concurrent one (`retry.rs`).

use std::sync::Arc;

use identity_domain::{
    Applied, AppliedLink, AppliedRule, Contact, ContactId, ContactRepository, CustomerRewriter,
    Decide, Evidence, HistoryEntry, Identifiers, LinkPlanner, ManualLink, NewUnlinkRule, Outcome,
    Plan, RepositoryError, Rewrite, StoredLink, UnlinkRule,
};

use crate::history;
use crate::models::into_contacts;

use crate::pool::{Db, Pool};
use crate::reads::{read_customer_of, read_customers, read_evidence};
use crate::replica::Replica;
use crate::retry::{RetryPolicy, UnitError};
use crate::unlink::{create_rule, delete_rule, read_rules, unlinked_among};
use crate::writes::{
    apply_rewrite, guarded_read, guarded_read_customer_of, write_plan, write_transaction,
};

/// The pool's state at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    pub open: u32,
    pub idle: u32,
    pub max: u32,
}

/// The one adapter behind every port of the domain on this database (`ContactRepository`,
/// `ContactMaintenance`, `KeyRepository` and the `Outbox`): the pool, how a unit of work is
/// retried, and the standbys.
pub(crate) struct SqlStore {
    pub(crate) pool: Pool,
    pub(crate) retry: RetryPolicy,
    /// Standbys for the lock-free reads, when `database.read_url` is set.
    pub(crate) replica: Option<Arc<Replica>>,
}

impl SqlStore {
    /// A read that takes no lock and decides no write: on a standby when there is one and it
    /// is up, else on the primary (counted as a fallback when a standby was meant).
    fn read<T>(
        &self,
        mut work: impl FnMut(&mut Db<'_>) -> Result<T, UnitError>,
    ) -> Result<T, RepositoryError> {
        if let Some(replica) = &self.replica {
            if let Some(done) = replica.read(&mut work) {
                metrics::counter!("identity_db_reads_total", "target" => "standby").increment(1);
                return Ok(done);
            }
            metrics::counter!("identity_db_read_fallbacks_total").increment(1);
        }
        metrics::counter!("identity_db_reads_total", "target" => "primary").increment(1);
        self.retry.once(&self.pool, work)
    }

    /// Whether the database answers (for readiness probes).
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when it does not.
    pub(crate) fn ping(&self) -> Result<(), RepositoryError> {
        let mut conn = self
            .pool
            .get()
            .map_err(|e| RepositoryError::Unavailable(Box::new(e)))?;
        conn.ping().map_err(|e| {
            conn.discard();
            match conn.timed_out() {
                Some(timed_out) => RepositoryError::Unavailable(Box::new(timed_out)),
                None => RepositoryError::Unavailable(Box::new(e)),
            }
        })
    }

    /// Connections open, idle, and at most.
    pub(crate) fn pool_stats(&self) -> PoolStats {
        let (state, max) = self.pool.state();
        PoolStats {
            open: state.connections,
            idle: state.idle_connections,
            max,
        }
    }
}

impl ContactRepository for SqlStore {
    fn find_customers(&self, identifiers: &Identifiers) -> Result<Vec<Contact>, RepositoryError> {
        self.read(|db| {
            into_contacts(read_customers(db, identifiers)?).map_err(UnitError::Malformed)
        })
    }

    fn find_customer_of(&self, id: ContactId) -> Result<Vec<Contact>, RepositoryError> {
        self.read(|db| into_contacts(read_customer_of(db, id.get())?).map_err(UnitError::Malformed))
    }

    fn find_evidence(&self, contacts: &[Contact]) -> Result<Vec<Evidence>, RepositoryError> {
        self.read(|db| read_evidence(db, contacts))
    }

    fn find_history(&self, id: ContactId) -> Result<Option<Vec<HistoryEntry>>, RepositoryError> {
        let customer = self.find_customer_of(id)?;
        if customer.is_empty() {
            return Ok(None);
        }
        let ids: Vec<i64> = customer.iter().map(|c| c.id.get()).collect();
        self.read(|db| history::read(db, &ids)).map(Some)
    }

    fn rewrite_customer_of<'f>(
        &self,
        id: ContactId,
        rewriter: &'f CustomerRewriter<'f>,
        cause: &str,
    ) -> Result<Option<Rewrite>, RepositoryError> {
        let rewrite = self.retry.run(&self.pool, |db| {
            write_transaction(db, |db| {
                let contacts = guarded_read_customer_of(db, id.get())?;
                if contacts.is_empty() {
                    return Ok(None);
                }
                let evidence = read_evidence(db, &contacts)?;
                let rewrite = rewriter(&contacts, &evidence);
                apply_rewrite(db, &rewrite, &contacts, cause)?;
                Ok(Some(rewrite))
            })
        })?;
        if rewrite.is_some() {
            self.pool.checkpoint();
        }
        Ok(rewrite)
    }

    fn apply_atomically<'f>(
        &self,
        identifiers: &Identifiers,
        decide: &'f Decide<'f>,
        cause: &str,
    ) -> Result<Applied, RepositoryError> {
        let (contacts, plan) = self.retry.run(&self.pool, |db| {
            write_transaction(db, |db| {
                let current = guarded_read(db, identifiers)?;
                // Under the guard: a rule made on another replica after this request was
                // admitted is committed by now (making one takes the same guard).
                let unlinked = unlinked_among(db, identifiers)?;
                if !unlinked.is_empty() {
                    return Err(UnitError::Final(RepositoryError::Unlinked(unlinked)));
                }
                let plan = decide(&current).map_err(UnitError::Inconsistent)?;
                if plan.is_empty() {
                    return Ok((current, plan));
                }
                let after = write_plan(db, &plan, identifiers, current, cause)?;
                Ok((after, plan))
            })
        })?;
        record_committed(&plan);
        Ok(Applied { plan, contacts })
    }

    fn find_unlink_rules(&self) -> Result<Vec<UnlinkRule>, RepositoryError> {
        self.retry.once(&self.pool, read_rules)
    }

    fn create_unlink_rule<'f>(
        &self,
        rule: &NewUnlinkRule,
        rewriter: &'f CustomerRewriter<'f>,
    ) -> Result<Option<AppliedRule>, RepositoryError> {
        self.retry.run(&self.pool, |db| {
            write_transaction(db, |db| create_rule(db, rule, rewriter))
        })
    }

    fn delete_unlink_rule(&self, id: i64) -> Result<Option<UnlinkRule>, RepositoryError> {
        self.retry.once(&self.pool, |db| delete_rule(db, id))
    }

    fn find_links(&self) -> Result<Vec<StoredLink>, RepositoryError> {
        self.retry.once(&self.pool, crate::links::read_all_links)
    }

    fn create_link(
        &self,
        link: &ManualLink,
        planner: &dyn LinkPlanner,
    ) -> Result<AppliedLink, RepositoryError> {
        self.retry.run(&self.pool, |db| {
            write_transaction(db, |db| crate::links::create_link(db, link, planner))
        })
    }

    fn delete_link<'f>(
        &self,
        id: i64,
        rewriter: &'f CustomerRewriter<'f>,
    ) -> Result<Option<AppliedLink>, RepositoryError> {
        let applied = self.retry.run(&self.pool, |db| {
            write_transaction(db, |db| crate::links::delete_link(db, id, rewriter))
        })?;
        Ok(applied)
    }
}

/// Counts what a committed unit of work wrote.
pub(crate) fn record_committed(plan: &Plan) {
    let Outcome::Written { created, merged } = plan.outcome() else {
        return;
    };
    if let Some(contact) = plan.insert.as_ref().filter(|_| created) {
        metrics::counter!("identity_contacts_created_total", "precedence" => contact.link.precedence())
            .increment(1);
    }
    if merged {
        metrics::counter!("identity_merges_total").increment(1);
    }
}
