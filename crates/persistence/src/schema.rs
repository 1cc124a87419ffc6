// @generated automatically by Diesel CLI.

diesel::table! {
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
