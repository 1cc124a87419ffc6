//! The contact graph's invariants (docs/CONCURRENCY.md), checked on a live database, and the
//! order-independent oracle for how identifiers must be grouped.

use std::collections::{BTreeSet, HashMap};

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};

use crate::components::Components;
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
struct Membership {
    #[diesel(sql_type = BigInt)]
    primary_id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    email: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    phone_number: Option<String>,
}

/// Checks invariants 1 to 4 on the live rows of `conn`'s database, with the same queries as
/// `identity-api check`. Empty when all hold.
///
/// # Panics
/// When a query fails.
pub fn check_invariants(conn: &mut TestConnection) -> Vec<Violation> {
    #[derive(QueryableByName)]
    struct Item {
        #[diesel(sql_type = Text)]
        item: String,
    }
    let mut violations = Vec::new();
    for check in identity_persistence::INVARIANT_CHECKS {
        let items: Vec<Item> = conn
            .load(check.sql)
            .unwrap_or_else(|e| panic!("invariant query failed: {e}"));
        if !items.is_empty() {
            let found: Vec<String> = items.into_iter().map(|i| i.item).collect();
            violations.push(Violation {
                invariant: check.invariant,
                detail: format!("{} {found:?}", check.items),
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
    let mut components = Components::default();
    for pair in requests {
        let values: Vec<String> = [
            pair.email.as_ref().map(|e| format!("email:{e}")),
            pair.phone.as_ref().map(|p| format!("phone:{p}")),
        ]
        .into_iter()
        .flatten()
        .collect();
        components.join(&values);
    }
    components.groups().into_iter().collect()
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
