//! How the cost of the linking rules grows with the size of the customer: `reconcile` (what
//! to write) and `Customer::from_contacts` (what to answer) for customers of 1 to 1,000
//! contacts. `cargo bench -p identity-domain`.

use std::hint::black_box;

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use identity_domain::{
    reconcile, Contact, ContactId, Customer, CustomerLimits, Email, Identifiers, Link, PhoneNumber,
};

/// A customer of `size` contacts: a primary and secondaries with their own emails and a
/// phone shared by groups of ten.
fn customer(size: i64) -> Vec<Contact> {
    let start = Utc
        .with_ymd_and_hms(2023, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default();
    (1..=size)
        .filter_map(|n| {
            Some(Contact {
                id: ContactId::new(n)?,
                email: Some(Email::from_stored(format!("c{n}@bench.io"))),
                phone: Some(PhoneNumber::from_stored(format!("1555{:07}", n / 10))),
                link: if n == 1 {
                    Link::Primary
                } else {
                    Link::Secondary(ContactId::new(1)?)
                },
                created_at: start + chrono::Duration::seconds(n),
            })
        })
        .collect()
}

fn request(email: &str, phone: &str) -> Option<Identifiers> {
    Identifiers::new(
        Some(Email::from_stored(email.to_owned())),
        Some(PhoneNumber::from_stored(phone.to_owned())),
    )
    .ok()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("reconcile");
    for size in [1_i64, 10, 100, 1_000] {
        let known = customer(size);
        let Some(nothing_new) = request("c1@bench.io", "15550000000") else {
            return;
        };
        let Some(new_email) = request("new@bench.io", "15550000000") else {
            return;
        };
        group.bench_with_input(BenchmarkId::new("nothing new", size), &known, |b, known| {
            b.iter(|| {
                reconcile(
                    black_box(&nothing_new),
                    black_box(known),
                    &CustomerLimits::UNLIMITED,
                )
            })
        });
        group.bench_with_input(BenchmarkId::new("new email", size), &known, |b, known| {
            b.iter(|| {
                reconcile(
                    black_box(&new_email),
                    black_box(known),
                    &CustomerLimits::UNLIMITED,
                )
            })
        });
        group.bench_with_input(BenchmarkId::new("answer", size), &known, |b, known| {
            b.iter(|| Customer::from_contacts(black_box(known)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
