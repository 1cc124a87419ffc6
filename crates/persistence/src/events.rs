//! What every write leaves behind, in the same transaction: history events (ids and link
//! states only, no personal data) and change events for the webhook (the outbox; ids only,
//! the receiver reads the customer with `GET /contacts/{id}`).

use identity_domain::{Contact, ContactChange, Link, LinkTo, Plan};
use serde_json::json;

use crate::backend::{Backend, Statements};

/// One history event.
#[derive(Debug)]
pub(crate) struct Event<'a> {
    pub customer: i64,
    pub contact: i64,
    pub kind: &'static str,
    pub cause: &'a str,
    pub before: Option<String>,
    pub after: Option<String>,
}

fn link_state(link: Link) -> String {
    match link {
        Link::Primary => json!({"linkPrecedence": "primary", "linkedId": null}),
        Link::Secondary(p) => json!({"linkPrecedence": "secondary", "linkedId": p.get()}),
    }
    .to_string()
}

/// Records what `plan` did: `inserted` is the id of the contact it created, if any;
/// `current` the contacts it was decided on.
pub(crate) fn record_plan<B: Backend>(
    conn: &mut B::Connection,
    plan: &Plan,
    inserted: Option<i64>,
    current: &[Contact],
    cause: &str,
) -> diesel::QueryResult<()> {
    let resolve = |to: LinkTo| match to {
        LinkTo::Existing(id) => Some(id.get()),
        LinkTo::Inserted => inserted,
    };
    if let (Some(contact), Some(id)) = (&plan.insert, inserted) {
        let (customer, kind) = match contact.link {
            Link::Primary => (id, "customer.created"),
            Link::Secondary(p) => (p.get(), "customer.updated"),
        };
        conn.record_event(
            B::EVENT_SQL,
            &Event {
                customer,
                contact: id,
                kind: "contact.created",
                cause,
                before: None,
                after: Some(link_state(contact.link)),
            },
        )?;
        if plan.relink.is_none() {
            let payload = json!({"contactId": id}).to_string();
            conn.enqueue(B::OUTBOX_SQL, customer, kind, &payload)?;
        }
    }
    if let Some(relink) = &plan.relink {
        let Some(survivor) = resolve(relink.to) else {
            return Ok(());
        };
        let survivor_id = identity_domain::ContactId::new(survivor);
        let mut absorbed = Vec::new();
        for id in &relink.contacts {
            let before = current.iter().find(|c| c.id == *id).map(|c| c.link);
            let was_primary = before == Some(Link::Primary);
            if was_primary {
                absorbed.push(id.get());
            }
            conn.record_event(
                B::EVENT_SQL,
                &Event {
                    customer: survivor,
                    contact: id.get(),
                    kind: if was_primary {
                        "primary.demoted"
                    } else {
                        "contact.linked"
                    },
                    cause,
                    before: before.map(link_state),
                    after: survivor_id.map(|p| link_state(Link::Secondary(p))),
                },
            )?;
        }
        let payload = json!({"survivorId": survivor, "absorbedIds": absorbed}).to_string();
        conn.enqueue(B::OUTBOX_SQL, survivor, "customer.merged", &payload)?;
    }
    Ok(())
}

/// Records a whole-customer rewrite (normalization, erasure): one history event per
/// changed contact, `contact.erased` change events, and `customer.updated` for every
/// customer that comes out of it.
pub(crate) fn record_changes<B: Backend>(
    conn: &mut B::Connection,
    changes: &[ContactChange],
    before: &[Contact],
    cause: &str,
) -> diesel::QueryResult<()> {
    let mut touched = std::collections::BTreeSet::new();
    let erased: std::collections::BTreeSet<i64> = changes
        .iter()
        .filter(|c| c.erased)
        .map(|c| c.id.get())
        .collect();
    for change in changes {
        let old = before.iter().find(|c| c.id == change.id);
        let old_link = old.map(|c| c.link);
        let customer_before = old.map_or(change.id.get(), |c| c.primary_id().get());
        let customer_after = match change.link {
            Link::Primary => change.id.get(),
            Link::Secondary(p) => p.get(),
        };
        let kind = if change.erased {
            "contact.erased"
        } else if old_link != Some(Link::Primary) && change.link == Link::Primary {
            "primary.promoted"
        } else if old_link == Some(Link::Primary) && change.link != Link::Primary {
            "primary.demoted"
        } else if old_link != Some(change.link) {
            "contact.linked"
        } else {
            "contact.normalized"
        };
        conn.record_event(
            B::EVENT_SQL,
            &Event {
                customer: if change.erased {
                    customer_before
                } else {
                    customer_after
                },
                contact: change.id.get(),
                kind,
                cause,
                before: old_link.map(link_state),
                after: (!change.erased).then(|| link_state(change.link)),
            },
        )?;
        if change.erased {
            let payload = json!({"contactId": change.id.get()}).to_string();
            conn.enqueue(B::OUTBOX_SQL, customer_before, "contact.erased", &payload)?;
            // The customer it leaves behind changed too, if anything is left of it.
            if !erased.contains(&customer_before) {
                touched.insert(customer_before);
            }
        } else {
            touched.insert(customer_after);
        }
    }
    for customer in touched {
        let payload = json!({"reason": cause}).to_string();
        conn.enqueue(B::OUTBOX_SQL, customer, "customer.updated", &payload)?;
    }
    Ok(())
}
