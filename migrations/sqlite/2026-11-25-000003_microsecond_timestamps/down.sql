-- Nothing to undo: millisecond readers parse microsecond values too.
SELECT 1;
