-- Timestamps are now written with microseconds (2026-11-25T16:48:26.123456Z), as on
-- PostgreSQL, so that two contacts less than a millisecond apart keep their order. Rows
-- written with milliseconds get three more digits, so that every value of a column sorts
-- in time order as text.
UPDATE contact SET created_at = substr(created_at, 1, 23) || '000Z'
 WHERE length(created_at) = 24 AND substr(created_at, 24, 1) = 'Z';
UPDATE contact SET updated_at = substr(updated_at, 1, 23) || '000Z'
 WHERE length(updated_at) = 24 AND substr(updated_at, 24, 1) = 'Z';
UPDATE contact SET deleted_at = substr(deleted_at, 1, 23) || '000Z'
 WHERE length(deleted_at) = 24 AND substr(deleted_at, 24, 1) = 'Z';
