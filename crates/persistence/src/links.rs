//! Manual links in the database (the `manual_link` table): listing them, and making or
//! deleting one together with the re-clustering it causes, in one transaction. (The links of
//! some contacts are evidence: `writes::read_evidence` reads them with the stored requests.)

use diesel::prelude::*;
use identity_domain::{
    link_cause, AppliedLink, Contact, ContactId, CustomerRewriter, LinkPlanner, ManualLink,
    RepositoryError, StoredLink,
};

use crate::models::{into_links, LinkRow, NewLinkRow};
use crate::pool::{on_backend, Db};
use crate::reads::read_evidence;
use crate::retry::UnitError;
use crate::schema::manual_link;
use crate::sql_types::Instant;
use crate::writes::{apply_rewrite, guarded_read_customer_of};

/// Every link, oldest first.
pub(crate) fn read_all_links(db: &mut Db<'_>) -> Result<Vec<StoredLink>, UnitError> {
    let rows = on_backend!(db, conn => manual_link::table
        .order(manual_link::id)
        .select(LinkRow::as_select())
        .load(conn))?;
    into_links(rows).map_err(UnitError::Malformed)
}

/// Guards and reads the customers of both contacts of `link` (the lower id's first, so that
/// two links never wait on each other's second customer); an unknown contact reads as none.
fn guarded_read_both(db: &mut Db<'_>, link: &ManualLink) -> Result<Vec<Contact>, UnitError> {
    let mut contacts = guarded_read_customer_of(db, link.contacts[0].get())?;
    if !contacts.iter().any(|c| c.id == link.contacts[1]) {
        contacts.extend(guarded_read_customer_of(db, link.contacts[1].get())?);
    }
    Ok(contacts)
}

/// Inside a write transaction: guards the customers of the link's two contacts, lets
/// `planner` check the link against them, stores it and applies the re-clustering the
/// planner makes of them with the link among their evidence (cause `link:<id>`).
pub(crate) fn create_link(
    db: &mut Db<'_>,
    link: &ManualLink,
    planner: &dyn LinkPlanner,
) -> Result<AppliedLink, UnitError> {
    let before = guarded_read_both(db, link)?;
    planner
        .check(&before, link)
        .map_err(|refused| UnitError::Final(RepositoryError::LinkRefused(refused)))?;
    let [a, b] = link.contacts.map(ContactId::get);
    let row = NewLinkRow {
        contact_a: a.min(b),
        contact_b: a.max(b),
        reason: &link.reason,
        created_by: &link.created_by,
        created_at: Instant::now(),
    };
    let stored: LinkRow = on_backend!(db, conn => diesel::insert_into(manual_link::table)
        .values(&row)
        .returning(LinkRow::as_returning())
        .get_result(conn))?;
    let stored = StoredLink::try_from(stored).map_err(UnitError::Malformed)?;
    let evidence = read_evidence(db, &before)?;
    let rewrite = planner.plan(&before, &evidence);
    apply_rewrite(db, &rewrite, &before, &link_cause(stored.id))?;
    Ok(AppliedLink {
        link: stored,
        before,
        rewrite,
    })
}

/// Inside a write transaction: deletes link `id` and re-clusters the customer it held
/// (guarded) from the evidence that remains, as `rewriter` says (cause `link:<id>`). `None`
/// when there is no link `id`.
pub(crate) fn delete_link(
    db: &mut Db<'_>,
    id: i64,
    rewriter: &CustomerRewriter<'_>,
) -> Result<Option<AppliedLink>, UnitError> {
    let found: Option<LinkRow> = on_backend!(db, conn => manual_link::table
        .find(id)
        .select(LinkRow::as_select())
        .first(conn)
        .optional())?;
    let Some(found) = found else {
        return Ok(None);
    };
    let stored = StoredLink::try_from(found).map_err(UnitError::Malformed)?;
    let before = guarded_read_both(db, &stored.link)?;
    on_backend!(db, conn => diesel::delete(manual_link::table.find(id)).execute(conn))?;
    let evidence = read_evidence(db, &before)?;
    let rewrite = rewriter(&before, &evidence);
    apply_rewrite(db, &rewrite, &before, &link_cause(id))?;
    Ok(Some(AppliedLink {
        link: stored,
        before,
        rewrite,
    }))
}
