-- techpack: PostgreSQL recounts collection credits once per statement from this version on.
-- SQLite has no statement-level triggers and no lock to wait on for them (one writer), so its
-- schema does not change; this migration exists so that both backends list the same versions.
SELECT 1;
