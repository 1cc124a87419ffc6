//! Past orders of a storefront, generated: the data set of the import's scale test and of
//! its benchmark (`identity-bench orders`). About one customer per three orders (35 per
//! 100), each with one or two emails and one or two phones; households that share a phone
//! with the customer before them; orders that bring only an email or only a phone; and
//! orders that bring one customer's email with another's phone (a cross-customer merge).
//! Dates are spread over five years, in no particular order. The same `seed` gives the same
//! orders.

use std::collections::{BTreeMap, BTreeSet};

use crate::components::Components;

/// One order: what an import file holds for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub email: Option<String>,
    pub phone: Option<String>,
    /// RFC 3339, UTC, whole seconds.
    pub created_at: String,
}

impl Order {
    /// The order as a JSON Lines record of an import file.
    pub fn to_jsonl(&self) -> String {
        let quote = |v: &str| format!("\"{v}\"");
        let mut fields = Vec::with_capacity(3);
        if let Some(email) = &self.email {
            fields.push(format!("\"email\":{}", quote(email)));
        }
        if let Some(phone) = &self.phone {
            fields.push(format!("\"phoneNumber\":{}", quote(phone)));
        }
        fields.push(format!("\"createdAt\":{}", quote(&self.created_at)));
        format!("{{{}}}", fields.join(","))
    }
}

/// `count` orders from about `count * 35 / 100` customers.
pub fn orders(count: usize, seed: u64) -> Vec<Order> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let customers = (count * 35 / 100).max(1);
    // Identifiers hold only letters, digits, '@' and '.': no JSON or CSV escaping needed.
    // Phones of eight digits are not valid numbers anywhere, so they are stored as typed.
    let emails: Vec<Vec<String>> = (0..customers)
        .map(|c| {
            let mut emails = vec![format!("c{c}@shop.io")];
            if rng.u8(..100) < 30 {
                emails.push(format!("c{c}.alt@mail.io"));
            }
            emails
        })
        .collect();
    let phones: Vec<Vec<String>> = (0..customers)
        .map(|c| {
            let mut phones = vec![format!("9{c:07}")];
            if rng.u8(..100) < 20 {
                phones.push(format!("8{c:07}"));
            }
            // A household: the phone of the customer before.
            if c > 0 && rng.u8(..100) < 5 {
                phones.push(format!("9{:07}", c - 1));
            }
            phones
        })
        .collect();
    let start = 1_546_300_800_i64; // 2019-01-01T00:00:00Z
    let span = 5 * 365 * 24 * 3600_i64;
    (0..count)
        .map(|k| {
            let c = if k < customers {
                k
            } else {
                rng.usize(..customers)
            };
            let pick =
                |rng: &mut fastrand::Rng, list: &[String]| list[rng.usize(..list.len())].clone();
            let kind = rng.u8(..100);
            let (email, phone) = match kind {
                0..=7 => (Some(pick(&mut rng, &emails[c])), None),
                8..=15 => (None, Some(pick(&mut rng, &phones[c]))),
                16 => {
                    let other = rng.usize(..customers);
                    (
                        Some(pick(&mut rng, &emails[c])),
                        Some(pick(&mut rng, &phones[other])),
                    )
                }
                _ => (
                    Some(pick(&mut rng, &emails[c])),
                    Some(pick(&mut rng, &phones[c])),
                ),
            };
            let at = start + rng.i64(0..span);
            let created_at = chrono::DateTime::from_timestamp(at, 0)
                .unwrap_or_default()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            Order {
                email,
                phone,
                created_at,
            }
        })
        .collect()
}

/// The customers an import of `orders` must give, computed without the service: values
/// that orders bring together are one customer (union-find over emails and phones), and
/// its primary holds the values of its oldest order (earliest date, then first in the
/// file). Each customer as (its primary's values, all its values), values written
/// `email:…` and `phone:…`, the primary's joined by a space.
pub fn expected_customers(orders: &[Order]) -> BTreeSet<(String, BTreeSet<String>)> {
    let mut components = Components::default();
    let values = |o: &Order| -> Vec<String> {
        o.email
            .iter()
            .map(|e| format!("email:{e}"))
            .chain(o.phone.iter().map(|p| format!("phone:{p}")))
            .collect()
    };
    for order in orders {
        components.join(&values(order));
    }
    /// A group's oldest order (date, position in the file) and its values.
    type Group<'a> = (Option<(&'a str, usize)>, BTreeSet<String>);
    let mut groups: BTreeMap<usize, Group<'_>> = BTreeMap::new();
    for (position, order) in orders.iter().enumerate() {
        let vals = values(order);
        let Some(root) = vals.first().and_then(|v| components.of(v)) else {
            continue;
        };
        let group = groups.entry(root).or_default();
        let key = (order.created_at.as_str(), position);
        if group.0.is_none_or(|oldest| key < oldest) {
            group.0 = Some(key);
        }
        group.1.extend(vals);
    }
    groups
        .into_values()
        .filter_map(|(oldest, all)| {
            let (_, position) = oldest?;
            Some((values(&orders[position]).join(" "), all))
        })
        .collect()
}
