// @generated automatically by Diesel CLI.

diesel::table! {
    use diesel::sql_types::{Int4, Int8, Nullable, Text};
    use crate::sql_types::Timestamptz;

    api_key (id) {
        id -> Int8,
        name -> Text,
        key_hash -> Text,
        scopes -> Text,
        created_at -> Timestamptz,
        last_used_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    use diesel::sql_types::{Int4, Int8, Nullable, Text};
    use crate::sql_types::Timestamptz;

    contact (id) {
        id -> Int8,
        phone_number -> Nullable<Text>,
        email -> Nullable<Text>,
        linked_id -> Nullable<Int8>,
        link_precedence -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        deleted_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    use diesel::sql_types::{Int4, Int8, Nullable, Text};
    use crate::sql_types::Timestamptz;

    contact_event (id) {
        id -> Int8,
        customer_id -> Int8,
        contact_id -> Int8,
        kind -> Text,
        cause -> Text,
        before -> Nullable<Text>,
        after -> Nullable<Text>,
        occurred_at -> Timestamptz,
    }
}

diesel::table! {
    use diesel::sql_types::{Int4, Int8, Nullable, Text};
    use crate::sql_types::Timestamptz;

    link_evidence (id) {
        id -> Int8,
        email -> Text,
        phone_number -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    use diesel::sql_types::{Int4, Int8, Nullable, Text};
    use crate::sql_types::Timestamptz;

    manual_link (id) {
        id -> Int8,
        contact_a -> Int8,
        contact_b -> Int8,
        reason -> Text,
        created_by -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    use diesel::sql_types::{Int4, Int8, Nullable, Text};
    use crate::sql_types::Timestamptz;

    outbox (id) {
        id -> Int8,
        customer_id -> Int8,
        kind -> Text,
        payload -> Text,
        created_at -> Timestamptz,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        claimed_until -> Nullable<Timestamptz>,
        delivered_at -> Nullable<Timestamptz>,
        last_error -> Nullable<Text>,
        dead_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    use diesel::sql_types::{Int4, Int8, Nullable, Text};
    use crate::sql_types::Timestamptz;

    unlink_rule (id) {
        id -> Int8,
        kind -> Text,
        value -> Text,
        reason -> Text,
        created_by -> Text,
        created_at -> Timestamptz,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    api_key,
    contact,
    contact_event,
    link_evidence,
    manual_link,
    outbox,
    unlink_rule,
);
