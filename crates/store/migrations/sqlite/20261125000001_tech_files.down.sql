-- techpack rollback: drops techpack's own objects only. Foreign keys are checked at commit, when
-- every row is gone: DROP TABLE deletes row by row, and a version row may go before its parent.
PRAGMA defer_foreign_keys = ON;
DROP TRIGGER IF EXISTS revision_vision_analysis_touch_updated_at;
DROP TRIGGER IF EXISTS tech_file_collections_touch_updated_at;
DROP TRIGGER IF EXISTS tech_file_collection_items_after_delete;
DROP TRIGGER IF EXISTS tech_file_collection_items_after_insert;
DROP TRIGGER IF EXISTS tech_files_after_credits_change;
DROP TRIGGER IF EXISTS tech_files_touch_updated_at;
DROP TRIGGER IF EXISTS tech_files_guard_update;
DROP TRIGGER IF EXISTS tech_files_before_insert_first_version;
DROP TRIGGER IF EXISTS tech_files_before_insert;
DROP VIEW IF EXISTS revision_vision_analysis_doc;
DROP VIEW IF EXISTS tech_file_collection_items_doc;
DROP VIEW IF EXISTS tech_file_collections_doc;
DROP VIEW IF EXISTS tech_file_versions_doc;
DROP VIEW IF EXISTS tech_files_doc;
DROP TABLE IF EXISTS tech_file_collection_items;
DROP TABLE IF EXISTS tech_file_versions;
DROP TABLE IF EXISTS tech_file_collections;
DROP TABLE IF EXISTS revision_vision_analysis;
DROP TABLE IF EXISTS tech_files;
