//! The repository contract: every rule, bad-input and invariant test at the persistence
//! level, written once and run unchanged on both backends (`postgres::*`, `sqlite::*`).

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use identity_domain::{
    reconcile, renormalize, BlockList, Contact, ContactId, CustomerLimits, Email, HistoryKind,
    Identified, Identifier, IdentifierPolicy, Identifiers, IdentityService, InconsistentGraph,
    Link, LinkTo, NewContact, PhoneNumber, Plan, RawPhone, Region, Relink, RepositoryError,
};
use identity_persistence::{
    open, DatabaseUrl, PersistenceError, PoolSettings, RetryPolicy, Store, StoreSettings,
};
use identity_test_support::{check_invariants, expected_groups, stored_groups, Pair, TestStore};

fn settings(url: &str) -> StoreSettings {
    StoreSettings {
        url: DatabaseUrl::parse(url).expect("a supported URL"),
        create_if_missing: true,
        run_migrations: true,
        pool: PoolSettings {
            max_size: 4,
            min_idle: 0,
            connect_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(10),
            statement_timeout: Duration::from_secs(30),
            lock_timeout: Duration::from_secs(5),
            deadline: Duration::from_secs(60),
        },
        retry: RetryPolicy::default(),
        read_url: None,
    }
}

fn open_store(store: &TestStore) -> Store {
    open(&settings(&store.url())).expect("the store opens")
}

fn us() -> Region {
    Region::parse("US").expect("a region")
}

fn request(email: Option<&str>, phone: Option<&str>) -> Identifiers {
    Identifiers::new(
        email.and_then(|e| Email::parse(e).expect("valid email")),
        phone.and_then(|p| PhoneNumber::parse(p, us()).expect("valid phone")),
    )
    .expect("an identifier")
}

/// Identifies the request of `email` and `phone` through `service`.
fn identify(service: &IdentityService, email: Option<&str>, phone: Option<&str>) -> Identified {
    service
        .identify(request(email, phone).into(), "test")
        .expect("identified")
}

fn service(store: &Store) -> IdentityService {
    IdentityService::new(Arc::clone(&store.repository), CustomerLimits::UNLIMITED)
}

fn policy() -> IdentifierPolicy {
    IdentifierPolicy {
        region: us(),
        blocked: BlockList::new(&[], &[], &["1234567890".to_owned()], Some(6), us())
            .expect("a list"),
    }
}

/// Writes through the unit of work, deciding with the real rules.
fn write(store: &Store, identifiers: &Identifiers) -> Vec<Contact> {
    store
        .repository
        .apply_atomically(
            identifiers,
            &|current: &[Contact]| reconcile(identifiers, current, &CustomerLimits::UNLIMITED),
            "test",
        )
        .expect("written")
        .contacts
}

fn count(store: &TestStore) -> i64 {
    store.connect().number("SELECT count(*) AS n FROM contact")
}

macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod postgres {
            $( #[test] fn $case() { super::cases::$case(super::TestStore::postgres()) } )*
        }
        mod sqlite {
            $( #[test] fn $case() { super::cases::$case(super::TestStore::sqlite()) } )*
        }
    };
}

contract!(
    rule_1_unknown_identifiers_create_a_primary,
    rule_2_new_information_creates_a_secondary_of_the_primary,
    rule_3_nothing_new_writes_nothing,
    rule_4_a_join_relinks_the_newer_customer_and_all_its_secondaries,
    reads_the_whole_customer_from_either_identifier_oldest_first,
    null_never_matches_null,
    a_refused_decision_writes_nothing,
    a_failure_midway_rolls_the_whole_unit_back,
    the_schema_refuses_rows_that_break_the_link_rules,
    the_invariant_checker_finds_planted_violations,
    concurrent_requests_keep_every_invariant,
    identical_concurrent_requests_create_one_contact,
    spellings_of_one_identifier_are_one_customer,
    renormalizing_old_rows_merges_the_customers_they_reveal,
    a_batch_applies_the_rules_in_order_and_an_older_record_becomes_primary,
    a_set_based_batch_writes_what_record_by_record_writes,
    under_the_merge_guard_a_set_based_batch_writes_what_record_by_record_writes,
    check_reports_what_breaks_the_invariants,
    the_history_of_a_merge_lists_both_creations_and_the_demotion,
    erasing_the_bridge_splits_the_customer_and_leaves_no_personal_data,
    an_unlink_rule_splits_its_customer_and_guards_the_write_path,
    a_rule_made_while_requests_bring_its_value_leaves_no_contact_holding_it,
    a_manual_link_joins_two_customers_and_deleting_it_restores_them,
    a_link_outlives_an_unlink_rule_and_goes_with_an_erased_contact,
    links_made_while_requests_merge_the_same_customers_keep_every_invariant,
);

mod cases {
    pub use super::batch_cases::*;
    pub use super::history_cases::*;
    pub use super::link_cases::*;
    pub use super::more_cases::*;
    pub use super::unlink_cases::*;
    use super::*;

    pub fn rule_1_unknown_identifiers_create_a_primary(db: TestStore) {
        let store = open_store(&db);
        let service = service(&store);
        let customer = identify(&service, Some("doc@hillvalley.edu"), Some("88")).customer;
        assert!(customer.secondary_ids.is_empty());
        let mut conn = db.connect();
        assert_eq!(
            conn.number(&format!(
                "SELECT count(*) AS n FROM contact WHERE id = {} AND link_precedence = 'primary'
                    AND linked_id IS NULL AND email = 'doc@hillvalley.edu' AND phone_number = '88'",
                customer.primary_id
            )),
            1
        );
    }

    pub fn rule_2_new_information_creates_a_secondary_of_the_primary(db: TestStore) {
        let store = open_store(&db);
        let service = service(&store);
        let first = identify(&service, Some("lorraine@hillvalley.edu"), Some("123456")).customer;
        let second = identify(&service, Some("mcfly@hillvalley.edu"), Some("123456")).customer;
        assert_eq!(second.primary_id, first.primary_id);
        let [secondary] = second.secondary_ids[..] else {
            panic!("one secondary: {second:?}")
        };
        let emails: Vec<&str> = second.emails.iter().map(Email::as_str).collect();
        assert_eq!(emails, ["lorraine@hillvalley.edu", "mcfly@hillvalley.edu"]);
        assert_eq!(
            db.connect().number(&format!(
                "SELECT count(*) AS n FROM contact WHERE id = {secondary}
                    AND link_precedence = 'secondary' AND linked_id = {}
                    AND email = 'mcfly@hillvalley.edu' AND phone_number = '123456'",
                first.primary_id
            )),
            1
        );
    }

    pub fn rule_3_nothing_new_writes_nothing(db: TestStore) {
        let store = open_store(&db);
        let service = service(&store);
        identify(&service, Some("a@x.io"), Some("1"));
        identify(&service, Some("b@x.io"), Some("1"));
        let before = count(&db);
        let stamp = "SELECT count(DISTINCT updated_at) AS n FROM contact";
        let stamps = db.connect().number(stamp);
        for req in [
            request(Some("a@x.io"), None),
            request(None, Some("1")),
            request(Some("b@x.io"), Some("1")),
            request(Some("a@x.io"), Some("1")),
        ] {
            service
                .identify(req.clone().into(), "test")
                .expect("identified");
        }
        assert_eq!(count(&db), before);
        assert_eq!(db.connect().number(stamp), stamps, "no row was touched");
    }

    pub fn rule_4_a_join_relinks_the_newer_customer_and_all_its_secondaries(db: TestStore) {
        let store = open_store(&db);
        let service = service(&store);
        let older = identify(&service, Some("doc@x.io"), Some("1")).customer;
        let newer = identify(&service, Some("marty@x.io"), Some("2")).customer;
        identify(&service, Some("marty@x.io"), Some("3"));
        identify(&service, Some("jennifer@x.io"), Some("2"));
        let before = count(&db);

        let merged = identify(&service, Some("doc@x.io"), Some("3")).customer;

        assert_eq!(merged.primary_id, older.primary_id);
        assert_eq!(merged.secondary_ids.len(), 3);
        assert!(merged.secondary_ids.contains(&newer.primary_id));
        assert_eq!(count(&db), before, "a merge creates no row");
        let mut conn = db.connect();
        assert_eq!(
            conn.number(&format!(
                "SELECT count(*) AS n FROM contact WHERE link_precedence = 'secondary'
                    AND linked_id = {}",
                older.primary_id
            )),
            3,
            "no chains: every contact links straight to the survivor"
        );
        assert!(check_invariants(&mut conn).is_empty());
    }

    pub fn reads_the_whole_customer_from_either_identifier_oldest_first(db: TestStore) {
        let store = open_store(&db);
        write(&store, &request(Some("a@x.io"), Some("1")));
        write(&store, &request(Some("b@x.io"), Some("1")));
        write(&store, &request(Some("unrelated@x.io"), Some("9")));
        for req in [
            request(Some("a@x.io"), None),
            request(Some("b@x.io"), None),
            request(None, Some("1")),
        ] {
            let mut customer = store.repository.find_customers(&req).expect("read");
            assert_eq!(customer.len(), 2, "{req:?}");
            customer.sort_by_key(|c| c.id);
            assert!(customer[0].created_at <= customer[1].created_at);
            assert!(customer[0].is_primary());
        }
        assert!(store
            .repository
            .find_customers(&request(Some("nobody@x.io"), None))
            .expect("read")
            .is_empty());
    }

    pub fn null_never_matches_null(db: TestStore) {
        let store = open_store(&db);
        write(&store, &request(Some("a@x.io"), None));
        write(&store, &request(Some("b@x.io"), None));
        write(&store, &request(None, Some("1")));
        assert_eq!(
            db.connect()
                .number("SELECT count(*) AS n FROM contact WHERE link_precedence = 'primary'"),
            3
        );
    }

    pub fn a_refused_decision_writes_nothing(db: TestStore) {
        let store = open_store(&db);
        let outcome = store.repository.apply_atomically(
            &request(Some("a@x.io"), None),
            &|_: &[Contact]| Err(InconsistentGraph::NoPrimary),
            "test",
        );
        assert!(matches!(outcome, Err(RepositoryError::Inconsistent(_))));
        assert_eq!(count(&db), 0);
    }

    pub fn a_failure_midway_rolls_the_whole_unit_back(db: TestStore) {
        let store = open_store(&db);
        let a = write(&store, &request(Some("a@x.io"), None))[0].id;
        let b = write(&store, &request(Some("b@x.io"), None))[0].id;
        let missing = ContactId::new(999_999).expect("positive");

        // The relink succeeds, then the insert breaks the foreign key.
        let outcome = store.repository.apply_atomically(
            &request(Some("a@x.io"), None),
            &|_: &[Contact]| {
                Ok(Plan {
                    relink: Some(Relink {
                        to: LinkTo::Existing(a),
                        contacts: vec![b],
                    }),
                    insert: Some(NewContact {
                        email: Email::parse("c@x.io").expect("valid"),
                        phone: None,
                        link: Link::Secondary(missing),
                        created_at: None,
                    }),
                    refused: None,
                })
            },
            "test",
        );
        assert!(
            matches!(outcome, Err(RepositoryError::Internal(_))),
            "{outcome:?}"
        );
        assert_eq!(count(&db), 2);
        let b_now = store
            .repository
            .find_customers(&request(Some("b@x.io"), None))
            .expect("read");
        assert_eq!(b_now.len(), 1);
        assert!(b_now[0].is_primary(), "the relink was rolled back");
    }

    pub fn the_schema_refuses_rows_that_break_the_link_rules(db: TestStore) {
        let mut conn = db.connect();
        conn.execute("INSERT INTO contact (email, link_precedence) VALUES ('p@x.io', 'primary')")
            .expect("a valid primary");
        for sql in [
            "INSERT INTO contact (email, link_precedence) VALUES ('a@x.io', 'tertiary')",
            "INSERT INTO contact (email, link_precedence, linked_id) VALUES ('a@x.io', 'primary', 1)",
            "INSERT INTO contact (email, link_precedence) VALUES ('a@x.io', 'secondary')",
            "INSERT INTO contact (link_precedence) VALUES ('primary')",
            "INSERT INTO contact (email, link_precedence, linked_id) VALUES ('a@x.io', 'secondary', 424242)",
        ] {
            // SQLite checks foreign keys only when asked to: the service's connections ask.
            conn.execute("PRAGMA foreign_keys = ON").ok();
            assert!(conn.execute(sql).is_err(), "{sql}");
        }
        assert_eq!(count(&db), 1);
    }

    pub fn the_invariant_checker_finds_planted_violations(db: TestStore) {
        let store = open_store(&db);
        write(&store, &request(Some("a@x.io"), Some("1")));
        write(&store, &request(Some("b@x.io"), Some("2")));
        let mut conn = db.connect();
        assert!(check_invariants(&mut conn).is_empty());
        // A second customer with a's email: breaks invariant 2.
        conn.execute("INSERT INTO contact (email, link_precedence) VALUES ('a@x.io', 'primary')")
            .expect("planted");
        let found = check_invariants(&mut conn);
        assert!(
            found.iter().any(|v| v.invariant.starts_with('2')),
            "{found:?}"
        );
    }

    pub fn concurrent_requests_keep_every_invariant(db: TestStore) {
        let store = open_store(&db);
        let service = Arc::new(service(&store));
        let threads: Vec<_> = (0..16u64)
            .map(|t| {
                let service = Arc::clone(&service);
                thread::spawn(move || {
                    let mut rng = fastrand::Rng::with_seed(t);
                    let mut sent = Vec::new();
                    for _ in 0..40 {
                        let pair = Pair {
                            email: Some(format!("e{}@x.io", rng.usize(..12))),
                            phone: (rng.u8(..4) > 0).then(|| format!("{}", rng.usize(..12))),
                        };
                        let req = request(pair.email.as_deref(), pair.phone.as_deref());
                        service
                            .identify(req.clone().into(), "test")
                            .expect("no request fails");
                        sent.push(pair);
                    }
                    sent
                })
            })
            .collect();
        let sent: Vec<Pair> = threads
            .into_iter()
            .flat_map(|t| t.join().expect("a client thread"))
            .collect();
        let mut conn = db.connect();
        let violations = check_invariants(&mut conn);
        assert!(violations.is_empty(), "{violations:#?}");
        let stored: std::collections::BTreeSet<_> =
            stored_groups(&mut conn).into_values().collect();
        assert_eq!(stored, expected_groups(&sent));
    }

    pub fn identical_concurrent_requests_create_one_contact(db: TestStore) {
        let store = open_store(&db);
        let service = Arc::new(service(&store));
        let barrier = Arc::new(std::sync::Barrier::new(12));
        let threads: Vec<_> = (0..12)
            .map(|_| {
                let service = Arc::clone(&service);
                let barrier = Arc::clone(&barrier);
                thread::spawn(move || {
                    barrier.wait();
                    service
                        .identify(request(Some("twin@x.io"), Some("42")).into(), "test")
                        .map(|c| c.customer.primary_id)
                })
            })
            .collect();
        let primaries: std::collections::BTreeSet<_> = threads
            .into_iter()
            .map(|t| t.join().expect("thread").expect("identified"))
            .collect();
        assert_eq!(primaries.len(), 1, "all answer the same customer");
        assert_eq!(count(&db), 1);
    }
}

mod more_cases {
    use super::*;

    pub fn spellings_of_one_identifier_are_one_customer(db: TestStore) {
        let store = open_store(&db);
        let service = service(&store);
        let policy = policy();
        let mut primaries = std::collections::BTreeSet::new();
        for (email, phone) in [
            (
                Some("Doc@HillValley.edu "),
                Some(RawPhone::Text("+1 (415) 555-0100".to_owned())),
            ),
            (Some("  doc@hillvalley.edu"), None),
            (None, Some(RawPhone::Text("415-555-0100".to_owned()))),
            (None, Some(RawPhone::Number(14_155_550_100))),
            (
                Some("DOC@HILLVALLEY.EDU"),
                Some(RawPhone::Text("14155550100".to_owned())),
            ),
        ] {
            let admitted = policy.admit(email, phone).expect("admitted");
            let identified = service
                .identify(admitted.identifiers.into(), "test")
                .expect("identified");
            primaries.insert(identified.customer.primary_id);
        }
        assert_eq!(primaries.len(), 1);
        assert_eq!(count(&db), 1, "every spelling matched the first contact");
        let mut conn = db.connect();
        assert_eq!(
            conn.number(
                "SELECT count(*) AS n FROM contact
                  WHERE email = 'doc@hillvalley.edu' AND phone_number = '+14155550100'"
            ),
            1
        );
    }

    pub fn renormalizing_old_rows_merges_the_customers_they_reveal(db: TestStore) {
        let store = open_store(&db);
        let mut conn = db.connect();
        // Rows as an older version stored them: as typed, never normalized.
        conn.execute(
            "INSERT INTO contact (id, email, phone_number, link_precedence, linked_id) VALUES
               (1, ' Doc@HillValley.edu', '415-555-0100', 'primary', NULL),
               (2, 'doc@hillvalley.edu', NULL, 'primary', NULL),
               (3, 'marty@hillvalley.edu', '+1 (415) 555-0100', 'primary', NULL),
               (4, 'jennifer@hillvalley.edu', '555-0199', 'secondary', 3),
               (5, 'biff@hillvalley.edu', '12 34 56', 'primary', NULL),
               (6, NULL, '1234567890', 'primary', NULL)",
        )
        .expect("old rows");
        if matches!(db, TestStore::Postgres(_)) {
            conn.execute("SELECT setval(pg_get_serial_sequence('contact', 'id'), 6)")
                .expect("sequence");
        }
        let policy = policy();
        let normalize_all = || {
            store
                .maintenance
                .rewrite_all(
                    &|contacts: &[Contact], _: &[Identifier]| renormalize(contacts, &policy),
                    "normalize",
                )
                .expect("rewritten")
        };
        let rewrite = normalize_all();
        assert_eq!(rewrite.customers_merged, 2, "{rewrite:?}");
        assert_eq!(rewrite.contacts_erased, 1, "{rewrite:?}");

        let violations = check_invariants(&mut conn);
        assert!(violations.is_empty(), "{violations:#?}");
        assert_eq!(
            conn.number(
                "SELECT count(*) AS n FROM contact WHERE deleted_at IS NULL AND linked_id = 1"
            ),
            3,
            "2, 3 and 4 now link to 1"
        );
        assert_eq!(
            conn.number(
                "SELECT count(*) AS n FROM contact WHERE id = 1 AND email = 'doc@hillvalley.edu'
                    AND phone_number = '+14155550100'"
            ),
            1
        );
        assert_eq!(
            conn.number(
                "SELECT count(*) AS n FROM contact WHERE id = 5 AND phone_number = '123456'"
            ),
            1
        );
        // The request path now finds the merged customer from any old spelling.
        let identified = identify(&service(&store), Some("MARTY@hillvalley.edu"), None);
        assert_eq!(identified.customer.primary_id.get(), 1);
        // A second run finds nothing left to do.
        let again = normalize_all();
        assert!(again.changes.is_empty(), "{again:?}");
    }
}

mod batch_cases {
    use chrono::{DateTime, TimeZone, Utc};
    use identity_domain::{
        reconcile_record, BatchOutcome, BatchRecord, DecideEach, IdentifierPriority,
    };

    use super::*;

    /// What each record of a batch brought, and when it was seen (`None`: when imported).
    type Records = [(Identifiers, Option<DateTime<Utc>>)];

    fn day(d: u32) -> Option<DateTime<Utc>> {
        Utc.with_ymd_and_hms(2021, 3, d, 12, 0, 0).single()
    }

    /// `records` written record by record (`apply_batch`), each as `decide` says.
    fn apply_one_by_one(store: &Store, records: &Records, decide: &DecideEach<'_>) -> BatchOutcome {
        let requests: Vec<Identifiers> = records.iter().map(|(r, _)| r.clone()).collect();
        store
            .maintenance
            .apply_batch(&requests, decide, "import")
            .expect("applied")
    }

    /// `records` imported set-based (`import_batch`), email first.
    fn import_set_based(store: &Store, records: &Records, limits: &CustomerLimits) -> BatchOutcome {
        let batch: Vec<BatchRecord> = records
            .iter()
            .map(|(identifiers, seen_at)| BatchRecord {
                identifiers: identifiers.clone(),
                seen_at: *seen_at,
            })
            .collect();
        store
            .maintenance
            .import_batch(&batch, limits, IdentifierPriority::EmailFirst, "import")
            .expect("applied")
    }

    /// Record `i` of `records` decided by the rules, with no merge guard.
    fn unguarded(
        records: &Records,
    ) -> impl Fn(usize, &[Contact]) -> Result<Plan, InconsistentGraph> + '_ {
        |i, current| {
            reconcile_record(
                &records[i].0,
                records[i].1,
                current,
                &CustomerLimits::UNLIMITED,
            )
        }
    }

    pub fn a_batch_applies_the_rules_in_order_and_an_older_record_becomes_primary(db: TestStore) {
        let store = open_store(&db);
        let records = [
            (request(Some("doc@x.io"), Some("101")), day(10)),
            (request(Some("marty@x.io"), Some("101")), day(12)),
            (request(Some("doc@x.io"), None), day(13)),
            // Older than doc: with something new, it becomes the customer's primary.
            (request(Some("emmett@x.io"), Some("101")), day(2)),
            (request(Some("biff@x.io"), Some("202")), day(5)),
        ];
        let outcome = apply_one_by_one(&store, &records, &unguarded(&records));
        assert_eq!((outcome.created, outcome.unchanged), (4, 1), "{outcome:?}");

        let mut conn = db.connect();
        assert!(check_invariants(&mut conn).is_empty());
        let customer = identify(&service(&store), Some("doc@x.io"), None).customer;
        assert_eq!(
            customer
                .emails
                .iter()
                .map(Email::as_str)
                .collect::<Vec<_>>(),
            ["emmett@x.io", "doc@x.io", "marty@x.io"],
            "the oldest record is the primary"
        );
        // The same batch again writes nothing.
        let again = apply_one_by_one(&store, &records, &unguarded(&records));
        assert_eq!((again.created, again.unchanged), (0, 5));
    }

    /// What a store holds, ids aside: contacts (values, link, the primary's values),
    /// history (kind, cause, the contact's and the customer's values), change events
    /// (kind, the customer's values), evidence, in the order written.
    fn snapshot(db: &TestStore) -> Vec<Vec<String>> {
        #[derive(diesel::QueryableByName)]
        struct Line {
            #[diesel(sql_type = diesel::sql_types::Text)]
            line: String,
        }
        let mut conn = db.connect();
        let mut load = |sql: &str| -> Vec<String> {
            conn.load::<Line>(sql)
                .expect("read")
                .into_iter()
                .map(|l| l.line)
                .collect()
        };
        let values =
            |t: &str| format!("COALESCE({t}.email, '-') || '/' || COALESCE({t}.phone_number, '-')");
        let mut contacts = load(&format!(
            "SELECT {} || ' ' || c.link_precedence || ' of ' || {} AS line \
               FROM contact c JOIN contact p ON p.id = COALESCE(c.linked_id, c.id)",
            values("c"),
            values("p")
        ));
        contacts.sort();
        vec![
            contacts,
            load(&format!(
                "SELECT e.kind || ' ' || e.cause || ' ' || {} || ' in ' || {} AS line \
                   FROM contact_event e JOIN contact c ON c.id = e.contact_id \
                   JOIN contact k ON k.id = e.customer_id ORDER BY e.id",
                values("c"),
                values("k")
            )),
            load(&format!(
                "SELECT o.kind || ' ' || {} AS line \
                   FROM outbox o JOIN contact k ON k.id = o.customer_id ORDER BY o.id",
                values("k")
            )),
            load("SELECT email || '/' || phone_number AS line FROM link_evidence ORDER BY id"),
        ]
    }

    pub fn a_set_based_batch_writes_what_record_by_record_writes(db: TestStore) {
        let twin = db.another();
        let records = [
            // Older than lorraine, stored before the batch: becomes her primary (rule 5).
            (request(Some("mcfly@x.io"), Some("123456")), day(12)),
            // Joins george and biff without a new contact (rule 4, evidence).
            (request(Some("george@x.io"), Some("717171")), day(13)),
            (request(Some("needles@x.io"), Some("555")), day(3)),
            // Joins needles' customer (older) and george's: george's is absorbed.
            (request(Some("needles@x.io"), Some("919191")), day(4)),
            // Older than everyone it joins, with something new: the primary of all.
            (request(Some("strickland@x.io"), Some("555")), day(1)),
            (request(Some("george@x.io"), None), day(2)),
            (request(Some("goldie@x.io"), Some("777")), day(20)),
            (request(None, Some("777")), None),
            (request(Some("wilson@x.io"), Some("777")), None),
        ];
        let stores = [open_store(&db), open_store(&twin)];
        for store in &stores {
            for (email, phone) in [
                ("george@x.io", "919191"),
                ("biff@x.io", "717171"),
                ("lorraine@x.io", "123456"),
            ] {
                write(store, &request(Some(email), Some(phone)));
            }
        }
        let set_based = import_set_based(&stores[0], &records, &CustomerLimits::UNLIMITED);
        let one_by_one = apply_one_by_one(&stores[1], &records, &unguarded(&records));
        assert_eq!(set_based, one_by_one);
        assert_eq!(
            (set_based.created, set_based.merged),
            (5, 2),
            "{set_based:?}"
        );
        let written = snapshot(&db);
        assert_eq!(written, snapshot(&twin));
        assert!(check_invariants(&mut db.connect()).is_empty());
        assert!(
            written[0]
                .iter()
                .any(|c| c.starts_with("strickland@x.io/555 primary")),
            "{written:?}"
        );

        // The same batch again writes nothing.
        let again = import_set_based(&stores[0], &records, &CustomerLimits::UNLIMITED);
        assert_eq!((again.created, again.unchanged), (0, records.len()));
        assert_eq!(snapshot(&db), written);
    }

    pub fn under_the_merge_guard_a_set_based_batch_writes_what_record_by_record_writes(
        db: TestStore,
    ) {
        let twin = db.another();
        let limits = CustomerLimits {
            max_contacts: 3,
            max_emails: 2,
            max_phones: 3,
        };
        let records: Vec<(Identifiers, Option<DateTime<Utc>>)> = [
            ("doc@x.io", "101", 1),
            ("marty@x.io", "101", 2),
            // A third email for doc's customer: its phone is left out (email first), and the
            // email becomes a customer of its own.
            ("emmett@x.io", "101", 3),
            ("biff@x.io", "202", 4),
            // Would join biff's customer to doc's, past max_emails: the phone is left out, and
            // biff's email alone brings nothing new.
            ("biff@x.io", "101", 5),
            ("george@x.io", "303", 6),
        ]
        .iter()
        .map(|(email, phone, d)| (request(Some(email), Some(phone)), day(*d)))
        .collect();
        let set_based = import_set_based(&open_store(&db), &records, &limits);
        let decide = |i: usize, current: &[Contact]| {
            identity_domain::reconcile::reconcile_with_priority(
                &records[i].0,
                records[i].1,
                current,
                &limits,
                IdentifierPriority::EmailFirst,
            )
            .map(|(plan, _)| plan)
        };
        let one_by_one = apply_one_by_one(&open_store(&twin), &records, &decide);
        // The same writes; only the set-based outcome counts the identifiers left out (the
        // record-by-record path counts them in the command, around its decisions).
        assert_eq!(
            BatchOutcome {
                dropped: 0,
                ..set_based
            },
            one_by_one
        );
        assert_eq!(set_based.refused, 0, "{set_based:?}");
        assert_eq!(set_based.dropped, 2, "{set_based:?}");
        assert_eq!(snapshot(&db), snapshot(&twin));
        assert!(check_invariants(&mut db.connect()).is_empty());
    }

    pub fn check_reports_what_breaks_the_invariants(db: TestStore) {
        let store = open_store(&db);
        write(&store, &request(Some("a@x.io"), Some("1")));
        assert_eq!(store.maintenance.check().expect("checked"), vec![]);
        db.connect()
            .execute("INSERT INTO contact (email, link_precedence) VALUES ('a@x.io', 'primary')")
            .expect("planted");
        let found = store.maintenance.check().expect("checked");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].invariant.starts_with('2') && found[0].detail.contains("a@x.io"));

        let stats = store.maintenance.stats(5).expect("stats");
        assert_eq!((stats.customers, stats.contacts), (2, 2));
        assert_eq!(stats.contacts_per_customer, vec![("1".to_owned(), 2)]);
    }
}

mod history_cases {
    use super::*;

    pub fn the_history_of_a_merge_lists_both_creations_and_the_demotion(db: TestStore) {
        let store = open_store(&db);
        let service = service(&store);
        // Each request with a cause of its own, which the history names.
        let primary_after = |cause: &str, email: &str, phone: &str| {
            service
                .identify(request(Some(email), Some(phone)).into(), cause)
                .expect("identified")
                .customer
                .primary_id
        };
        let george = primary_after("req-1", "george@hillvalley.edu", "919191");
        let biff = primary_after("req-2", "biffsucks@hillvalley.edu", "717171");
        primary_after("req-3", "george@hillvalley.edu", "717171");

        let history = service
            .history(biff)
            .expect("read")
            .expect("a live contact");
        let summary: Vec<(HistoryKind, i64, String)> = history
            .iter()
            .map(|e| (e.kind, e.contact_id, e.cause.clone()))
            .collect();
        assert_eq!(
            summary,
            [
                (
                    HistoryKind::ContactCreated,
                    george.get(),
                    "req-1".to_owned()
                ),
                (HistoryKind::ContactCreated, biff.get(), "req-2".to_owned()),
                (HistoryKind::PrimaryDemoted, biff.get(), "req-3".to_owned()),
            ]
        );
        let demotion = &history[2];
        assert_eq!(demotion.customer_id, george.get());
        assert_eq!(demotion.before, Some(Link::Primary));
        assert_eq!(demotion.after, Some(Link::Secondary(george)));
        assert_eq!(
            service
                .history(ContactId::new(999_999).expect("id"))
                .expect("read"),
            None
        );
        let mut conn = db.connect();
        assert_eq!(
            conn.number("SELECT count(*) AS n FROM outbox"),
            3,
            "customer.created twice, customer.merged once"
        );
    }

    pub fn erasing_the_bridge_splits_the_customer_and_leaves_no_personal_data(db: TestStore) {
        let store = open_store(&db);
        let service = service(&store);
        let say = |email: &str, phone: &str| identify(&service, Some(email), Some(phone)).customer;
        say("doc@hillvalley.edu", "5550101");
        say("marty@hillvalley.edu", "5550101");
        let bridge = say("marty@hillvalley.edu", "5550202");
        say("jennifer@hillvalley.edu", "5550202");
        let whole = say("biff@hillvalley.edu", "5550202");
        assert_eq!(whole.secondary_ids.len(), 4, "one customer of five");
        let bridge_id = *bridge.secondary_ids.last().expect("the bridge");

        let rewrite = service
            .erase_contact(bridge_id, "erasure")
            .expect("erased")
            .expect("a live contact");
        assert_eq!(rewrite.contacts_erased, 1);

        let doc = identify(&service, Some("doc@hillvalley.edu"), None).customer;
        let jennifer = identify(&service, Some("jennifer@hillvalley.edu"), None).customer;
        assert_ne!(doc.primary_id, jennifer.primary_id, "split in two");
        assert_eq!(doc.secondary_ids.len(), 1, "doc and marty");
        assert_eq!(
            jennifer.secondary_ids.len(),
            1,
            "jennifer (oldest) and biff"
        );
        let mut conn = db.connect();
        assert!(check_invariants(&mut conn).is_empty());
        // The bridge's own phone, 5550202, is still held by jennifer and biff; its row
        // holds nothing any more, and nothing else ever copied its values.
        assert_eq!(
            conn.number(&format!(
                "SELECT count(*) AS n FROM contact WHERE id = {bridge_id}
                    AND email IS NULL AND phone_number IS NULL AND deleted_at IS NOT NULL"
            )),
            1
        );
        for table in ["contact_event", "outbox"] {
            assert_eq!(
                conn.number(&format!(
                    "SELECT count(*) AS n FROM {table} WHERE {} LIKE '%hillvalley%' OR {} LIKE '%555%'",
                    if table == "outbox" { "payload" } else { "coalesce(before, '') || coalesce(after, '')" },
                    if table == "outbox" { "payload" } else { "coalesce(before, '') || coalesce(after, '')" },
                )),
                0,
                "{table} holds no personal data"
            );
        }
        assert_eq!(
            service.erase_contact(bridge_id, "erasure").expect("ran"),
            None,
            "an erased contact is gone"
        );

        // A whole customer.
        let erased = service
            .erase_customer(jennifer.primary_id, "erasure")
            .expect("erased")
            .expect("a live primary");
        assert_eq!(erased.contacts_erased, 2);
        assert_eq!(
            conn.number(
                "SELECT count(*) AS n FROM contact WHERE email LIKE '%jennifer%' OR email LIKE '%biff%'
                    OR phone_number = '5550202'"
            ),
            0,
            "the erased people's emails and phones are nowhere"
        );
        assert!(check_invariants(&mut conn).is_empty());
        assert!(
            matches!(
                service.erase_customer(doc.secondary_ids[0], "erasure"),
                Err(identity_domain::ServiceError::NotPrimary { primary, .. })
                    if primary == doc.primary_id
            ),
            "only a primary's id names a customer; the error names the one it belongs to"
        );
    }
}

/// Opening a store: clear errors for what cannot work.
mod opening {
    use super::*;

    /// Why the store at `url` does not open.
    fn refusal(url: &str) -> PersistenceError {
        open(&settings(url)).err().expect("refused")
    }

    #[test]
    fn a_file_that_is_not_a_database_is_refused() {
        let path = std::env::temp_dir().join(format!("not-a-db-{}.db", std::process::id()));
        std::fs::write(
            &path,
            "these are not the bytes of a SQLite database, not even close ".repeat(50),
        )
        .expect("write");
        let refused = refusal(&format!("sqlite://{}", path.display()));
        let _ = std::fs::remove_file(&path);
        assert!(
            matches!(refused, PersistenceError::NotADatabase { .. }),
            "{refused:?}"
        );
    }

    #[test]
    fn a_directory_that_cannot_be_created_is_refused() {
        let refused = refusal("sqlite:///proc/identity/contacts.db");
        assert!(
            matches!(refused, PersistenceError::CreateDirectory { .. }),
            "{refused:?}"
        );
    }

    #[test]
    fn a_missing_sqlite_file_is_created_with_its_directory_and_survives_reopening() {
        let dir = std::env::temp_dir().join(format!("identity-open-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let url = format!("sqlite://{}/nested/identity.db", dir.display());
        {
            let store = open(&settings(&url)).expect("opens");
            write(&store, &request(Some("doc@x.io"), None));
        }
        let store = open(&settings(&url)).expect("reopens");
        let found = store
            .repository
            .find_customers(&request(Some("doc@x.io"), None))
            .expect("read");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(found.len(), 1);
    }
}

mod unlink_cases {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::thread;

    use identity_domain::{NewUnlinkRule, ServiceError, UnlinkRule};

    use super::*;

    fn phone(value: &str) -> Identifier {
        Identifier::Phone(PhoneNumber::from_stored(value.to_owned()))
    }

    pub fn an_unlink_rule_splits_its_customer_and_guards_the_write_path(db: TestStore) {
        let store = open_store(&db);
        let service = service(&store);
        write(&store, &request(Some("doc@x.io"), Some("555000")));
        write(&store, &request(Some("marty@x.io"), Some("555000")));
        let rule = NewUnlinkRule {
            identifier: phone("555000"),
            reason: "a family's landline".to_owned(),
            created_by: "test".to_owned(),
        };
        let preview = service.preview_unlink(&rule.identifier).expect("previewed");
        let unlinked = service.unlink(&rule).expect("made");
        assert_eq!(unlinked.customers, preview.customers);
        assert_eq!(unlinked.customers.len(), 2, "{unlinked:?}");
        let stored: &UnlinkRule = unlinked.rule.as_ref().expect("the rule");
        assert_eq!(stored.identifier, phone("555000"));
        assert_eq!(
            service.unlink_rules().expect("listed"),
            vec![stored.clone()]
        );
        assert!(matches!(
            service.unlink(&rule),
            Err(ServiceError::RuleExists { .. })
        ));
        assert!(check_invariants(&mut db.connect()).is_empty());

        // Under its guard the write path refuses the value, writing nothing.
        let outcome = store.repository.apply_atomically(
            &request(Some("jennifer@x.io"), Some("555000")),
            &|_: &[Contact]| -> Result<Plan, InconsistentGraph> {
                panic!("never decided: the rule is checked first")
            },
            "test",
        );
        assert!(
            matches!(&outcome, Err(RepositoryError::Unlinked(values)) if values == &[phone("555000")]),
            "{outcome:?}"
        );
        let identified = identify(&service, Some("jennifer@x.io"), Some("555000"));
        assert_eq!(identified.ignored.len(), 1);
        assert!(identified.customer.phone_numbers.is_empty());

        // Deleted: the value links again.
        let deleted = service
            .delete_unlink_rule(stored.id)
            .expect("deleted")
            .expect("it existed");
        assert_eq!(&deleted, stored);
        assert_eq!(service.delete_unlink_rule(stored.id).expect("read"), None);
        let identified = identify(&service, Some("jennifer@x.io"), Some("555000"));
        assert!(identified.ignored.is_empty());
        assert_eq!(identified.customer.phone_numbers.len(), 1);
        assert!(check_invariants(&mut db.connect()).is_empty());
    }

    /// The race the guarded check is for: requests bringing a value keep arriving (on 8
    /// threads, each its own connection) while the rule for it is made. Whatever the
    /// interleaving, no live contact holds the value afterwards, every request succeeds,
    /// and the graph keeps every invariant.
    pub fn a_rule_made_while_requests_bring_its_value_leaves_no_contact_holding_it(db: TestStore) {
        let store = open_store(&db);
        let service = Arc::new(service(&store));
        let ruled = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..8u64)
            .map(|t| {
                let (service, ruled) = (Arc::clone(&service), Arc::clone(&ruled));
                thread::spawn(move || {
                    // Until well after the rule: every request brings the value.
                    let mut after_rule = 0;
                    let mut n = 0;
                    while after_rule < 10 {
                        let email = format!("t{t}-{n}@x.io");
                        let other = format!("{t}{n:04}");
                        let phone = if n % 2 == 0 { "555000" } else { other.as_str() };
                        identify(&service, Some(&email), Some(phone));
                        identify(&service, Some(&email), Some("555000"));
                        n += 1;
                        after_rule += usize::from(ruled.load(Ordering::SeqCst));
                    }
                })
            })
            .collect();
        thread::sleep(std::time::Duration::from_millis(200));
        let rule = NewUnlinkRule {
            identifier: phone("555000"),
            reason: "raced".to_owned(),
            created_by: "test".to_owned(),
        };
        service.unlink(&rule).expect("made");
        ruled.store(true, Ordering::SeqCst);
        for thread in threads {
            thread.join().expect("a client thread");
        }
        let mut conn = db.connect();
        let violations = check_invariants(&mut conn);
        assert!(violations.is_empty(), "{violations:#?}");
        assert_eq!(
            conn.number(
                "SELECT count(*) AS n FROM contact WHERE deleted_at IS NULL \
                 AND phone_number = '555000'"
            ),
            0
        );
    }
}

mod link_cases {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::thread;

    use identity_domain::{
        Customer, Evidence, LinkRefused, ManualLink, NewUnlinkRule, ServiceError,
    };

    use super::*;

    fn link(a: ContactId, b: ContactId) -> ManualLink {
        ManualLink {
            contacts: [a, b],
            reason: "she wrote in from her work address".to_owned(),
            created_by: "support".to_owned(),
        }
    }

    fn primary(contacts: &[Contact]) -> ContactId {
        contacts
            .iter()
            .find(|c| c.is_primary())
            .map(|c| c.id)
            .expect("a primary")
    }

    /// Every customer: its primary's id and its identifiers.
    fn customers(db: &TestStore) -> std::collections::BTreeMap<i64, identity_test_support::Group> {
        stored_groups(&mut db.connect()).into_iter().collect()
    }

    pub fn a_manual_link_joins_two_customers_and_deleting_it_restores_them(db: TestStore) {
        let store = open_store(&db);
        let service = service(&store);
        let home = primary(&write(
            &store,
            &request(Some("jen@home.io"), Some("5550001")),
        ));
        write(&store, &request(Some("jen@home.io"), Some("5550002")));
        let work = primary(&write(&store, &request(Some("jennifer@work.io"), None)));
        let before = customers(&db);

        let preview = service.preview_link(&link(work, home)).expect("previewed");
        assert_eq!(customers(&db), before, "a preview writes nothing");
        let linked = service.link(&link(work, home)).expect("linked");
        assert_eq!(linked.customers, preview.customers);
        let [joined]: [Customer; 1] = linked.customers.try_into().expect("one customer");
        assert_eq!(joined.primary_id, home, "the older primary leads");
        assert_eq!(joined.secondary_ids.len(), 2);
        assert_eq!(service.links().expect("listed"), vec![linked.link.clone()]);
        assert!(check_invariants(&mut db.connect()).is_empty());

        // The why-chain names it.
        let graph = service.graph(work).expect("read").expect("a customer");
        assert!(graph
            .evidence
            .iter()
            .any(|e: &Evidence| e.id == linked.link.id));

        // Refused, writing nothing: the same customer, an unknown contact.
        assert!(matches!(
            service.link(&link(work, home)),
            Err(ServiceError::LinkRefused(LinkRefused::OneCustomer(..)))
        ));
        let unknown = ContactId::new(999_999).expect("an id");
        assert!(matches!(
            service.link(&link(work, unknown)),
            Err(ServiceError::LinkRefused(LinkRefused::UnknownContact(_)))
        ));
        assert_eq!(service.links().expect("listed").len(), 1);

        // Deleted: exactly the customers before the link.
        let deleted = service
            .delete_link(linked.link.id)
            .expect("deleted")
            .expect("it existed");
        assert_eq!(deleted.customers.len(), 2, "{deleted:?}");
        assert_eq!(customers(&db), before);
        assert!(service.links().expect("listed").is_empty());
        assert_eq!(service.delete_link(linked.link.id).expect("read"), None);
        assert!(check_invariants(&mut db.connect()).is_empty());
    }

    pub fn a_link_outlives_an_unlink_rule_and_goes_with_an_erased_contact(db: TestStore) {
        let store = open_store(&db);
        let service = service(&store);
        let doc = primary(&write(&store, &request(Some("doc@x.io"), Some("555000"))));
        let marty = write(&store, &request(Some("marty@x.io"), Some("555000")));
        let marty = marty
            .iter()
            .find(|c| !c.is_primary())
            .map(|c| c.id)
            .expect("marty");
        // One customer by the phone; support also links the two by hand. Then the phone is
        // unlinked: the link wins, they stay one customer.
        assert!(matches!(
            service.link(&link(doc, marty)),
            Err(ServiceError::LinkRefused(LinkRefused::OneCustomer(..)))
        ));
        let lorraine = primary(&write(&store, &request(Some("lorraine@x.io"), None)));
        let linked = service.link(&link(marty, lorraine)).expect("linked");
        service
            .unlink(&NewUnlinkRule {
                identifier: Identifier::Phone(PhoneNumber::from_stored("555000".to_owned())),
                reason: "the lab's phone".to_owned(),
                created_by: "test".to_owned(),
            })
            .expect("unlinked");
        let lorraines = service.customer_of(lorraine).expect("read").expect("live");
        assert!(
            lorraines.primary_id == marty || lorraines.secondary_ids.contains(&marty),
            "the link still joins marty and lorraine: {lorraines:?}"
        );
        assert!(check_invariants(&mut db.connect()).is_empty());

        // Erasing marty takes the link with him.
        service.erase_contact(marty, "test").expect("erased");
        assert!(service.links().expect("listed").is_empty(), "{linked:?}");
        assert!(check_invariants(&mut db.connect()).is_empty());
    }

    /// Links made (and deleted) while requests on 6 threads keep merging and growing the
    /// same customers: every invariant holds afterwards.
    pub fn links_made_while_requests_merge_the_same_customers_keep_every_invariant(db: TestStore) {
        let store = open_store(&db);
        let service = Arc::new(service(&store));
        let ids: Vec<ContactId> = (0..6)
            .map(|n| {
                primary(&write(
                    &store,
                    &request(Some(&format!("p{n}@x.io")), Some(&format!("55500{n}"))),
                ))
            })
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..6)
            .map(|t| {
                let (service, stop) = (Arc::clone(&service), Arc::clone(&stop));
                thread::spawn(move || {
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) && n < 40 {
                        let email = format!("p{}@x.io", (t + n) % 6);
                        let phone = format!("55500{}", (t + 2 * n + 1) % 6);
                        let _ = service.identify(
                            request(Some(&format!("t{t}n{n}@x.io")), Some(&phone)).into(),
                            "test",
                        );
                        let _ =
                            service.identify(request(Some(&email), Some(&phone)).into(), "test");
                        n += 1;
                    }
                })
            })
            .collect();
        for round in 0..30 {
            let (a, b) = (ids[round % 6], ids[(round + 1) % 6]);
            match service.link(&link(a, b)) {
                Ok(linked) if round % 3 == 0 => {
                    let _ = service.delete_link(linked.link.id);
                }
                Ok(_) | Err(ServiceError::LinkRefused(LinkRefused::OneCustomer(..))) => {}
                Err(other) => panic!("round {round}: {other:?}"),
            }
        }
        stop.store(true, Ordering::Relaxed);
        for writer in writers {
            writer.join().expect("a writer");
        }
        let violations = check_invariants(&mut db.connect());
        assert!(violations.is_empty(), "{violations:?}");
    }
}
