//! What every write leaves behind, in the same transaction: history events (ids and link
//! states only, no personal data) and change events for the webhook (the outbox; ids only,
//! the receiver reads the customer with `GET /contacts/{id}`). And reading a customer's
//! history back.

use std::collections::{BTreeSet, HashMap};

use diesel::prelude::*;
use identity_domain::{
    Contact, ContactChange, ContactId, HistoryEntry, HistoryKind, Link, LinkTo, Plan, ValueChange,
};
use serde_json::json;

use crate::models::{HistoryRow, MalformedRow, NewEventRow, NewOutboxRow};
use crate::pool::{on_backend, Db};
use crate::postgres::RecordWrites;
use crate::retry::UnitError;
use crate::schema::{contact_event, outbox};

/// How a link is stored in the history's `before` and `after` columns:
/// `{"linkPrecedence": "primary" | "secondary", "linkedId": <id> | null}`.
fn link_state(link: Link) -> String {
    json!({
        "linkPrecedence": link.precedence(),
        "linkedId": link.linked_id().map(ContactId::get),
    })
    .to_string()
}

/// A link as [`link_state`] stores it; `None` for anything else.
fn read_link_state(text: &str) -> Option<Link> {
    let state: serde_json::Value = serde_json::from_str(text).ok()?;
    let linked = state.get("linkedId").and_then(serde_json::Value::as_i64);
    let precedence = state.get("linkPrecedence")?.as_str()?;
    let link = match linked {
        None => Link::Primary,
        Some(id) => Link::Secondary(ContactId::new(id)?),
    };
    (link.precedence() == precedence).then_some(link)
}

/// The event a stored row records.
fn entry(row: HistoryRow) -> Result<HistoryEntry, MalformedRow> {
    let malformed = |problem| MalformedRow::new(row.id, problem);
    let link = |text: Option<&String>| match text {
        None => Ok(None),
        Some(text) => read_link_state(text)
            .map(Some)
            .ok_or_else(|| malformed("a history event's link is not a link state")),
    };
    Ok(HistoryEntry {
        id: row.id,
        customer_id: row.customer_id,
        contact_id: row.contact_id,
        kind: HistoryKind::parse(&row.kind)
            .ok_or_else(|| malformed("a history event of an unknown kind"))?,
        cause: row.cause.clone(),
        before: link(row.before.as_ref())?,
        after: link(row.after.as_ref())?,
        occurred_at: row.occurred_at.0,
    })
}

/// The rows that record what `plan` did: `inserted` is the contact it created, if any;
/// `current` the contacts it was decided on.
pub(crate) fn of_plan<'a>(
    plan: &Plan,
    inserted: Option<ContactId>,
    current: &[Contact],
    cause: &'a str,
) -> (Vec<NewEventRow<'a>>, Vec<NewOutboxRow>) {
    let mut events = Vec::new();
    let mut outbox = Vec::new();
    if let (Some(contact), Some(id)) = (&plan.insert, inserted) {
        let (customer, kind) = match contact.link {
            Link::Primary => (id.get(), "customer.created"),
            Link::Secondary(p) => (p.get(), "customer.updated"),
        };
        events.push(NewEventRow {
            customer_id: customer,
            contact_id: id.get(),
            kind: HistoryKind::ContactCreated.as_str(),
            cause,
            before: None,
            after: Some(link_state(contact.link)),
        });
        if plan.relink.is_none() {
            outbox.push(NewOutboxRow {
                customer_id: customer,
                kind,
                payload: json!({"contactId": id.get()}).to_string(),
            });
        }
    }
    let survivor = plan.relink.as_ref().and_then(|relink| match relink.to {
        LinkTo::Existing(id) => Some((relink, id)),
        LinkTo::Inserted => inserted.map(|id| (relink, id)),
    });
    if let Some((relink, survivor)) = survivor {
        let mut absorbed = Vec::new();
        for id in &relink.contacts {
            let before = current.iter().find(|c| c.id == *id).map(|c| c.link);
            if before == Some(Link::Primary) {
                absorbed.push(id.get());
            }
            let after = Link::Secondary(survivor);
            let Some(kind) = HistoryKind::of_link_change(before, after) else {
                continue;
            };
            events.push(NewEventRow {
                customer_id: survivor.get(),
                contact_id: id.get(),
                kind: kind.as_str(),
                cause,
                before: before.map(link_state),
                after: Some(link_state(after)),
            });
        }
        outbox.push(NewOutboxRow {
            customer_id: survivor.get(),
            kind: "customer.merged",
            payload: json!({"survivorId": survivor.get(), "absorbedIds": absorbed}).to_string(),
        });
    }
    (events, outbox)
}

/// The rows that record a whole-customer rewrite (normalization, erasure, unlink): one
/// history event per changed contact (a change of values alone is `value_change`'s kind),
/// `contact.erased` change events, and `customer.updated` for every customer that comes
/// out of it.
pub(crate) fn of_changes<'a>(
    changes: &[ContactChange],
    value_change: ValueChange,
    before: &[Contact],
    cause: &'a str,
) -> (Vec<NewEventRow<'a>>, Vec<NewOutboxRow>) {
    let mut events = Vec::new();
    let mut outbox = Vec::new();
    let mut touched = BTreeSet::new();
    // By id: a rewrite of the whole store (normalize) has as many changes as contacts.
    let old_of: HashMap<ContactId, &Contact> = before.iter().map(|c| (c.id, c)).collect();
    let change_of: HashMap<i64, &ContactChange> = changes.iter().map(|c| (c.id.get(), c)).collect();
    // Whether the contact `id` leads a customer after the rewrite.
    let primary_after = |id: i64| match change_of.get(&id) {
        Some(change) => !change.erased && change.link == Link::Primary,
        None => ContactId::new(id)
            .and_then(|id| old_of.get(&id))
            .is_some_and(|c| c.link == Link::Primary),
    };
    let value_kind = match value_change {
        ValueChange::Normalized => HistoryKind::ContactNormalized,
        ValueChange::Unlinked => HistoryKind::ContactUnlinked,
    };
    for change in changes {
        let old = old_of.get(&change.id).copied();
        let old_link = old.map(|c| c.link);
        let customer_before = old.map_or(change.id.get(), |c| c.primary_id().get());
        let customer_after = change.link.linked_id().unwrap_or(change.id).get();
        let values_changed = old.is_some_and(|c| {
            c.email.as_ref() != change.email.as_ref() || c.phone.as_ref() != change.phone.as_ref()
        });
        // A contact that lost (or had rewritten) a value and changed link gets both events:
        // the value's first, since it caused the link's.
        let kinds = if change.erased {
            vec![HistoryKind::ContactErased]
        } else {
            match old_link.and_then(|old| HistoryKind::of_link_change(Some(old), change.link)) {
                Some(link) if values_changed => vec![value_kind, link],
                Some(link) => vec![link],
                None => vec![value_kind],
            }
        };
        for kind in kinds {
            events.push(NewEventRow {
                customer_id: if change.erased {
                    customer_before
                } else {
                    customer_after
                },
                contact_id: change.id.get(),
                kind: kind.as_str(),
                cause,
                before: old_link.map(link_state),
                after: (!change.erased).then(|| link_state(change.link)),
            });
        }
        if change.erased {
            outbox.push(NewOutboxRow {
                customer_id: customer_before,
                kind: "contact.erased",
                payload: json!({"contactId": change.id.get()}).to_string(),
            });
        } else {
            touched.insert(customer_after);
        }
        // Every customer whose membership changed hears of it: the one a contact left (when
        // it still exists) as well as the one it joined.
        if (change.erased || customer_before != customer_after) && primary_after(customer_before) {
            touched.insert(customer_before);
        }
    }
    for customer in touched {
        outbox.push(NewOutboxRow {
            customer_id: customer,
            kind: "customer.updated",
            payload: json!({"reason": cause}).to_string(),
        });
    }
    (events, outbox)
}

/// Writes history and outbox rows: on PostgreSQL in one statement (one round trip), on
/// SQLite (no round trips: it runs in this process) as one insert per table.
pub(crate) fn record(
    db: &mut Db<'_>,
    events: Vec<NewEventRow<'_>>,
    outbox: Vec<NewOutboxRow>,
) -> QueryResult<()> {
    if events.is_empty() && outbox.is_empty() {
        return Ok(());
    }
    match db {
        Db::Pg(conn) => RecordWrites::new(events, outbox)
            .execute(&mut **conn)
            .map(drop),
        Db::Sqlite(conn) => {
            diesel::insert_into(contact_event::table)
                .values(&events)
                .execute(&mut **conn)?;
            diesel::insert_into(outbox::table)
                .values(&outbox)
                .execute(&mut **conn)
                .map(drop)
        }
    }
}

/// Every history event of any of `contacts` (or of a customer led by one of them), oldest
/// first.
pub(crate) fn read(db: &mut Db<'_>, contacts: &[i64]) -> Result<Vec<HistoryEntry>, UnitError> {
    let rows: Vec<HistoryRow> = on_backend!(db, conn => contact_event::table
        .filter(
            contact_event::contact_id
                .eq_any(contacts)
                .or(contact_event::customer_id.eq_any(contacts)),
        )
        .order(contact_event::id)
        .select(HistoryRow::as_select())
        .load(conn))?;
    rows.into_iter()
        .map(entry)
        .collect::<Result<_, _>>()
        .map_err(UnitError::Malformed)
}
