//! A customer's history as the domain keeps it: what happened to one contact (a
//! [`HistoryKind`]), why (the cause), and where it hung before and after. Ids and links only,
//! never personal data.

use chrono::{DateTime, Utc};

use crate::contact::Link;

/// What happened to a contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HistoryKind {
    /// Stored for the first time.
    ContactCreated,
    /// Linked to another primary than before (its customer merged into another).
    ContactLinked,
    /// A primary that became a secondary (rule 4: a newer primary; rule 5 and manual
    /// links: an older one joined).
    PrimaryDemoted,
    /// A secondary that became the primary of a customer (an older contact joined, an
    /// erasure or a split left it the oldest).
    PrimaryPromoted,
    /// Its values were rewritten to the current identifier rules.
    ContactNormalized,
    /// An unlink rule took a value off it.
    ContactUnlinked,
    /// Erased: its values blanked, its row deleted.
    ContactErased,
}

impl HistoryKind {
    pub const ALL: [Self; 7] = [
        Self::ContactCreated,
        Self::ContactLinked,
        Self::PrimaryDemoted,
        Self::PrimaryPromoted,
        Self::ContactNormalized,
        Self::ContactUnlinked,
        Self::ContactErased,
    ];

    /// The name stored and served: `contact.created`, `primary.demoted`, …
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ContactCreated => "contact.created",
            Self::ContactLinked => "contact.linked",
            Self::PrimaryDemoted => "primary.demoted",
            Self::PrimaryPromoted => "primary.promoted",
            Self::ContactNormalized => "contact.normalized",
            Self::ContactUnlinked => "contact.unlinked",
            Self::ContactErased => "contact.erased",
        }
    }

    /// The kind named `name` ([`Self::as_str`]); `None` for any other text.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// The event of a contact whose link went from `before` (`None`: it is new) to `after`.
    /// `None` when the link stayed the same.
    pub fn of_link_change(before: Option<Link>, after: Link) -> Option<Self> {
        match (before, after) {
            (None, _) => Some(Self::ContactCreated),
            (Some(old), new) if old == new => None,
            (Some(Link::Primary), Link::Secondary(_)) => Some(Self::PrimaryDemoted),
            (Some(Link::Secondary(_)), Link::Primary) => Some(Self::PrimaryPromoted),
            (Some(_), _) => Some(Self::ContactLinked),
        }
    }
}

/// One event of a customer's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub id: i64,
    /// The customer (its primary) the event belonged to when it happened.
    pub customer_id: i64,
    pub contact_id: i64,
    pub kind: HistoryKind,
    /// What caused it: `request:<request id>`, `import`, `normalize`, `erasure:<request id>`,
    /// `unlink:<rule id>`, `link:<link id>`.
    pub cause: String,
    /// The contact's link before the event (none for a creation) and after it (none for an
    /// erasure).
    pub before: Option<Link>,
    pub after: Option<Link>,
    pub occurred_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::customer::tests::id;

    #[test]
    fn every_kind_reads_back_from_its_name() {
        for kind in HistoryKind::ALL {
            assert_eq!(HistoryKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(HistoryKind::parse("contact.teleported"), None);
    }

    #[test]
    fn a_link_change_names_its_event() {
        let secondary = Link::Secondary(id(1));
        assert_eq!(
            HistoryKind::of_link_change(None, secondary),
            Some(HistoryKind::ContactCreated)
        );
        assert_eq!(
            HistoryKind::of_link_change(Some(Link::Primary), secondary),
            Some(HistoryKind::PrimaryDemoted)
        );
        assert_eq!(
            HistoryKind::of_link_change(Some(secondary), Link::Primary),
            Some(HistoryKind::PrimaryPromoted)
        );
        assert_eq!(
            HistoryKind::of_link_change(Some(secondary), Link::Secondary(id(2))),
            Some(HistoryKind::ContactLinked)
        );
        assert_eq!(
            HistoryKind::of_link_change(Some(secondary), secondary),
            None
        );
    }
}
