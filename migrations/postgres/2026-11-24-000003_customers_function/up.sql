-- The read path's one statement as a function, so that PostgreSQL plans it once per
-- connection instead of once per request (PL/pgSQL caches the plans of its queries).
-- Same query as CUSTOMERS_SQL in crates/persistence/src/backend/postgres.rs.
CREATE FUNCTION identity_customers(p_email text, p_phone text)
RETURNS TABLE (id bigint, phone_number text, email text, linked_id bigint,
               link_precedence text, created_at_us bigint)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN QUERY
    WITH matched AS (
        SELECT COALESCE(c.linked_id, c.id) AS primary_id FROM contact c
         WHERE c.email = p_email AND c.deleted_at IS NULL
        UNION
        SELECT COALESCE(c.linked_id, c.id) FROM contact c
         WHERE c.phone_number = p_phone AND c.deleted_at IS NULL
    ), customer AS (
        SELECT * FROM contact c
         WHERE c.id IN (SELECT primary_id FROM matched) AND c.deleted_at IS NULL
        UNION ALL
        SELECT * FROM contact c
         WHERE c.linked_id IN (SELECT primary_id FROM matched) AND c.deleted_at IS NULL
    )
    SELECT cu.id, cu.phone_number, cu.email, cu.linked_id, cu.link_precedence,
           (extract(epoch FROM cu.created_at) * 1000000)::bigint
      FROM customer cu;
END
$$;
