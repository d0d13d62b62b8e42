-- techpack rollback of generation jobs: its trigger, document view and table only.
DROP TRIGGER IF EXISTS generation_jobs_touch_updated_at;
DROP VIEW IF EXISTS generation_jobs_doc;
DROP TABLE IF EXISTS generation_jobs;
