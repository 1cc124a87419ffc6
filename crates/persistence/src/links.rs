//! Manual links in the database (the `manual_link` table): reading the links of some
//! contacts (they are evidence, read with the stored requests), and making or deleting one
//! together with the re-clustering it causes, in one transaction.

use diesel::prelude::*;
use identity_domain::{
    link_cause, AppliedLink, Contact, ContactId, CustomerRewriter, LinkPlanner, ManualLink,
    RepositoryError, StoredLink,
};

use crate::pool::{on_backend, Db};
use crate::retry::UnitError;
use crate::schema::manual_link;
use crate::sql_types::Instant;
use crate::writes::{apply_rewrite, guarded_read_customer_of, read_evidence};

/// Ids per statement when deleting many (bound as one list).
const ID_CHUNK: usize = 10_000;

/// A link as stored.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = manual_link)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
struct LinkRow {
    id: i64,
    contact_a: i64,
    contact_b: i64,
    reason: String,
    created_by: String,
    created_at: Instant,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = manual_link)]
struct NewLinkRow<'a> {
    contact_a: i64,
    contact_b: i64,
    reason: &'a str,
    created_by: &'a str,
    created_at: Instant,
}

impl LinkRow {
    fn into_link(self) -> Result<StoredLink, UnitError> {
        let id = |raw: i64| {
            ContactId::new(raw).ok_or_else(|| {
                UnitError::Final(RepositoryError::Internal(
                    format!("manual link {} names contact id {raw}", self.id).into(),
                ))
            })
        };
        Ok(StoredLink {
            id: self.id,
            link: ManualLink {
                contacts: [id(self.contact_a)?, id(self.contact_b)?],
                reason: self.reason,
                created_by: self.created_by,
            },
            created_at: self.created_at.0,
        })
    }
}

/// The links that name any of the contacts `ids`.
pub(crate) fn read_links_of(db: &mut Db<'_>, ids: &[i64]) -> Result<Vec<StoredLink>, UnitError> {
    let rows: Vec<LinkRow> = on_backend!(db, conn => manual_link::table
        .filter(
            manual_link::contact_a
                .eq_any(ids)
                .or(manual_link::contact_b.eq_any(ids)),
        )
        .order(manual_link::id)
        .select(LinkRow::as_select())
        .load(conn))?;
    rows.into_iter().map(LinkRow::into_link).collect()
}

/// Every link, oldest first.
pub(crate) fn read_all_links(db: &mut Db<'_>) -> Result<Vec<StoredLink>, UnitError> {
    let rows: Vec<LinkRow> = on_backend!(db, conn => manual_link::table
        .order(manual_link::id)
        .select(LinkRow::as_select())
        .load(conn))?;
    rows.into_iter().map(LinkRow::into_link).collect()
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
    let stored = stored.into_link()?;
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
    rewriter: &dyn CustomerRewriter,
) -> Result<Option<AppliedLink>, UnitError> {
    let found: Option<LinkRow> = on_backend!(db, conn => manual_link::table
        .find(id)
        .select(LinkRow::as_select())
        .first(conn)
        .optional())?;
    let Some(found) = found else {
        return Ok(None);
    };
    let stored = found.into_link()?;
    let before = guarded_read_both(db, &stored.link)?;
    on_backend!(db, conn => diesel::delete(manual_link::table.find(id)).execute(conn))?;
    let evidence = read_evidence(db, &before)?;
    let rewrite = rewriter.rewrite(&before, &evidence);
    apply_rewrite(db, &rewrite, &before, &link_cause(id))?;
    Ok(Some(AppliedLink {
        link: stored,
        before,
        rewrite,
    }))
}
