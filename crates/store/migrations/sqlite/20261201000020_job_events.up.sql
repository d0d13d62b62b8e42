-- techpack: what each run of a job reported, one row per event, as on PostgreSQL. The id
-- increases with every event (AUTOINCREMENT never reuses one), so a reader asks for the
-- events after the last it saw.

CREATE TABLE generation_job_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL REFERENCES generation_jobs (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    attempt INTEGER NOT NULL CHECK (attempt >= 0),
    event TEXT NOT NULL
        CHECK (json_valid(event) AND json_type(event) = 'object' AND length(event) <= 2097152),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE INDEX generation_job_events_job_idx ON generation_job_events (job_id, id);
CREATE INDEX generation_job_events_user_idx ON generation_job_events (user_id);
