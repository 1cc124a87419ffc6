//! The contact graph's invariants (docs/CONCURRENCY.md), checked on a live database, and the
//! order-independent oracle for how identifiers must be grouped.

use std::collections::{BTreeSet, HashMap};

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};

use crate::store::TestConnection;

/// One broken invariant, with the rows or values that break it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub invariant: &'static str,
    pub detail: String,
}

/// What one request brought: an email, a phone, or both.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pair {
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// A customer as a set of identifiers, each written `email:…` or `phone:…`.
pub type Group = BTreeSet<String>;

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

#[derive(QueryableByName)]
struct Value {
    #[diesel(sql_type = Text)]
    value: String,
}

#[derive(QueryableByName)]
struct Membership {
    #[diesel(sql_type = BigInt)]
    primary_id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    email: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    phone_number: Option<String>,
}

/// Checks invariants 1 to 4 on the live rows of `conn`'s database. Empty when all hold.
///
/// # Panics
/// When a query fails.
pub fn check_invariants(conn: &mut TestConnection) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut ids = |invariant: &'static str, sql: &str, violations: &mut Vec<Violation>| {
        let rows: Vec<Id> = conn
            .load(sql)
            .unwrap_or_else(|e| panic!("invariant query failed: {e}"));
        if !rows.is_empty() {
            let found: Vec<i64> = rows.iter().map(|r| r.id).collect();
            violations.push(Violation {
                invariant,
                detail: format!("contacts {found:?}"),
            });
        }
    };
    ids(
        "1: every live secondary links to a live primary",
        "SELECT s.id FROM contact s
           LEFT JOIN contact p ON p.id = s.linked_id AND p.deleted_at IS NULL
                              AND p.link_precedence = 'primary'
          WHERE s.deleted_at IS NULL AND s.link_precedence = 'secondary' AND p.id IS NULL",
        &mut violations,
    );
    ids(
        "1: a primary links nowhere",
        "SELECT id FROM contact
          WHERE deleted_at IS NULL AND link_precedence = 'primary' AND linked_id IS NOT NULL",
        &mut violations,
    );
    ids(
        "3: the primary is the customer's oldest contact",
        "SELECT s.id FROM contact s JOIN contact p ON p.id = s.linked_id
          WHERE s.deleted_at IS NULL AND (s.created_at, s.id) < (p.created_at, p.id)",
        &mut violations,
    );
    ids(
        "4: no two live contacts hold the same email and phone",
        "SELECT min(id) AS id FROM contact WHERE deleted_at IS NULL
          GROUP BY email, phone_number HAVING count(*) > 1",
        &mut violations,
    );
    for column in ["email", "phone_number"] {
        let shared: Vec<Value> = conn
            .load(&format!(
                "SELECT {column} AS value FROM contact
                  WHERE deleted_at IS NULL AND {column} IS NOT NULL
                  GROUP BY {column} HAVING count(DISTINCT COALESCE(linked_id, id)) > 1"
            ))
            .unwrap_or_else(|e| panic!("invariant query failed: {e}"));
        if !shared.is_empty() {
            let values: Vec<String> = shared.into_iter().map(|v| v.value).collect();
            violations.push(Violation {
                invariant: "2: two customers never share an email or a phone",
                detail: format!("{column} values {values:?}"),
            });
        }
    }
    violations
}

/// The customers as stored: primary id → its identifiers.
///
/// # Panics
/// When the query fails.
pub fn stored_groups(conn: &mut TestConnection) -> HashMap<i64, Group> {
    let rows: Vec<Membership> = conn
        .load(
            "SELECT COALESCE(linked_id, id) AS primary_id, email, phone_number
               FROM contact WHERE deleted_at IS NULL",
        )
        .unwrap_or_else(|e| panic!("cannot read the contacts: {e}"));
    let mut groups: HashMap<i64, Group> = HashMap::new();
    for row in rows {
        let group = groups.entry(row.primary_id).or_default();
        group.extend(row.email.map(|e| format!("email:{e}")));
        group.extend(row.phone_number.map(|p| format!("phone:{p}")));
    }
    groups
}

/// Invariant 5's oracle: the connected components of the identifiers of `requests` (two
/// identifiers are connected when one request brought both), computed with a union-find.
pub fn expected_groups<'a>(requests: impl IntoIterator<Item = &'a Pair>) -> BTreeSet<Group> {
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut parent: Vec<usize> = Vec::new();
    fn find(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    let mut node = |key: String, parent: &mut Vec<usize>| -> usize {
        *index.entry(key).or_insert_with(|| {
            parent.push(parent.len());
            parent.len() - 1
        })
    };
    let mut keys: Vec<String> = Vec::new();
    for pair in requests {
        let nodes: Vec<usize> = [
            pair.email.as_ref().map(|e| format!("email:{e}")),
            pair.phone.as_ref().map(|p| format!("phone:{p}")),
        ]
        .into_iter()
        .flatten()
        .map(|key| {
            let n = node(key.clone(), &mut parent);
            if n == keys.len() {
                keys.push(key);
            }
            n
        })
        .collect();
        if let [a, b] = nodes[..] {
            let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
            if ra != rb {
                parent[ra] = rb;
            }
        }
    }
    let mut groups: HashMap<usize, Group> = HashMap::new();
    for (n, key) in keys.into_iter().enumerate() {
        let root = find(&mut parent, n);
        groups.entry(root).or_default().insert(key);
    }
    groups.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(email: Option<&str>, phone: Option<&str>) -> Pair {
        Pair {
            email: email.map(str::to_owned),
            phone: phone.map(str::to_owned),
        }
    }

    #[test]
    fn the_oracle_joins_what_requests_connect() {
        let requests = [
            pair(Some("a"), Some("1")),
            pair(Some("b"), Some("2")),
            pair(Some("c"), None),
            pair(Some("b"), Some("1")),
            pair(None, Some("3")),
        ];
        let groups = expected_groups(&requests);
        let expected: BTreeSet<Group> = [
            ["email:a", "email:b", "phone:1", "phone:2"].as_slice(),
            ["email:c"].as_slice(),
            ["phone:3"].as_slice(),
        ]
        .iter()
        .map(|g| g.iter().map(|s| (*s).to_owned()).collect())
        .collect();
        assert_eq!(groups, expected);
    }
}
