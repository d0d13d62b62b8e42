-- techpack: a new version that starts `processing` starts with no output (PostgreSQL changes
-- its create_tech_file_version function in the migration of the same number). SQLite makes new
-- versions in Rust (FileChanges::apply_to), so its schema does not change; this migration
-- exists so that both backends list the same migration versions.
SELECT 1;
