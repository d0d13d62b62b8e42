-- techpack rollback of 20261125000003: nothing changed in SQLite's schema, nothing to undo.
SELECT 1;
