//! The contact graph's invariants (docs/CONCURRENCY.md, 1 to 4, 8 and 9) as SQL that both backends
//! understand. Each query returns the offending items, one text column `item` per row; an
//! empty result means the invariant holds. Used by `identity-api check` and by the tests.

/// One invariant and the query that finds what breaks it.
#[derive(Debug, Clone, Copy)]
pub struct InvariantCheck {
    pub invariant: &'static str,
    /// What the items are (contact ids, emails, phones).
    pub items: &'static str,
    pub sql: &'static str,
}

/// Invariant 2's query for one identifier column: the values live contacts of more than one
/// customer hold.
#[rustfmt::skip]
macro_rules! held_by_two_customers {
    ($column:literal) => {
        concat!(
            "SELECT ", $column, " AS item FROM contact
               WHERE deleted_at IS NULL AND ", $column, " IS NOT NULL
               GROUP BY ", $column, " HAVING count(DISTINCT COALESCE(linked_id, id)) > 1
               ORDER BY ", $column
        )
    };
}

pub const INVARIANT_CHECKS: &[InvariantCheck] = &[
    InvariantCheck {
        invariant: "1: every live secondary links to a live primary",
        items: "contacts",
        sql: "SELECT CAST(s.id AS TEXT) AS item FROM contact s
                LEFT JOIN contact p ON p.id = s.linked_id AND p.deleted_at IS NULL
                                   AND p.link_precedence = 'primary'
               WHERE s.deleted_at IS NULL AND s.link_precedence = 'secondary' AND p.id IS NULL
               ORDER BY s.id",
    },
    InvariantCheck {
        invariant: "1: a primary links nowhere",
        items: "contacts",
        sql: "SELECT CAST(id AS TEXT) AS item FROM contact
               WHERE deleted_at IS NULL AND link_precedence = 'primary' AND linked_id IS NOT NULL
               ORDER BY id",
    },
    InvariantCheck {
        invariant: "2: two customers never share an email",
        items: "emails",
        sql: held_by_two_customers!("email"),
    },
    InvariantCheck {
        invariant: "2: two customers never share a phone",
        items: "phones",
        sql: held_by_two_customers!("phone_number"),
    },
    InvariantCheck {
        invariant: "3: the primary is the customer's oldest contact",
        items: "contacts",
        sql: "SELECT CAST(s.id AS TEXT) AS item FROM contact s JOIN contact p ON p.id = s.linked_id
               WHERE s.deleted_at IS NULL AND (s.created_at, s.id) < (p.created_at, p.id)
               ORDER BY s.id",
    },
    InvariantCheck {
        invariant: "4: no two live contacts hold the same email and phone",
        items: "contacts",
        sql: "SELECT CAST(min(id) AS TEXT) AS item FROM contact WHERE deleted_at IS NULL
               GROUP BY email, phone_number HAVING count(*) > 1
               ORDER BY min(id)",
    },
    InvariantCheck {
        invariant: "8: no live contact holds a value an unlink rule names",
        items: "contacts",
        sql: "SELECT CAST(c.id AS TEXT) AS item FROM contact c
                JOIN unlink_rule r ON (r.kind = 'email' AND r.value = c.email)
                                   OR (r.kind = 'phone' AND r.value = c.phone_number)
               WHERE c.deleted_at IS NULL
               ORDER BY c.id",
    },
    InvariantCheck {
        invariant: "9: a manual link joins two live contacts of one customer",
        items: "links",
        sql: "SELECT CAST(l.id AS TEXT) AS item FROM manual_link l
                LEFT JOIN contact a ON a.id = l.contact_a AND a.deleted_at IS NULL
                LEFT JOIN contact b ON b.id = l.contact_b AND b.deleted_at IS NULL
               WHERE a.id IS NULL OR b.id IS NULL
                  OR COALESCE(a.linked_id, a.id) <> COALESCE(b.linked_id, b.id)
               ORDER BY l.id",
    },
];

/// Store-wide figures, in SQL both backends understand.
pub(crate) mod stats {
    /// How many customers have 1, 2, 3–5, 6–10, 11–100 and more than 100 contacts.
    pub const DISTRIBUTION: &str = "SELECT bucket, count(*) AS n FROM (
            SELECT CASE WHEN c = 1 THEN '1' WHEN c = 2 THEN '2' WHEN c <= 5 THEN '3-5'
                        WHEN c <= 10 THEN '6-10' WHEN c <= 100 THEN '11-100' ELSE '>100' END AS bucket,
                   CASE WHEN c = 1 THEN 1 WHEN c = 2 THEN 2 WHEN c <= 5 THEN 3
                        WHEN c <= 10 THEN 4 WHEN c <= 100 THEN 5 ELSE 6 END AS rank
              FROM (SELECT count(*) AS c FROM contact WHERE deleted_at IS NULL
                     GROUP BY COALESCE(linked_id, id)) AS sizes
        ) AS buckets GROUP BY bucket, rank ORDER BY rank";
}
