-- techpack: what each run of a job reported, one row per event (step started, step finished or
-- failed, run started and finished, with the counts and credits), so that a job's progress can
-- be followed step by step from any process: the HTTP service streams these rows to a browser
-- while the worker that writes them runs on another machine. Rows are written by the worker
-- (as service_role, in the transaction that records the job's progress) and never changed.

CREATE TABLE public.generation_job_events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id uuid NOT NULL REFERENCES public.generation_jobs (id) ON DELETE CASCADE,
    user_id uuid NOT NULL,
    attempt integer NOT NULL CHECK (attempt >= 0),
    event jsonb NOT NULL
        CHECK (jsonb_typeof(event) = 'object' AND octet_length(event::text) <= 2097152),
    created_at timestamptz NOT NULL DEFAULT statement_timestamp()
);

-- A reader asks for a job's events after the last one it saw.
CREATE INDEX generation_job_events_job_idx ON public.generation_job_events (job_id, id);
-- Policies test the owner.
CREATE INDEX generation_job_events_user_idx ON public.generation_job_events (user_id);

-- Readers of a job's events LISTEN on techpack_job_events; the payload is the job id. NOTIFY
-- is delivered at commit and folds identical payloads of one transaction into one.
CREATE FUNCTION techpack_private.generation_job_events_notify() RETURNS trigger
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    PERFORM pg_catalog.pg_notify('techpack_job_events', NEW.job_id::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER generation_job_events_notify AFTER INSERT ON public.generation_job_events
    FOR EACH ROW EXECUTE FUNCTION techpack_private.generation_job_events_notify();

-- A job's readers also follow its state (claimed, given back, finished, cancel requested).
CREATE FUNCTION techpack_private.generation_jobs_notify_event_readers() RETURNS trigger
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    PERFORM pg_catalog.pg_notify('techpack_job_events', NEW.id::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER generation_jobs_notify_event_readers
    AFTER UPDATE OF state, attempts, cancel_requested ON public.generation_jobs
    FOR EACH ROW EXECUTE FUNCTION techpack_private.generation_jobs_notify_event_readers();

-- Locked down like every techpack object (see 20261201000010): revoke what the defaults gave,
-- then grant exactly this. Users (the Supabase API and techpack acting for them) read their
-- own jobs' events; service_role (the workers) writes them and deletes them with their jobs.
DO $$
DECLARE
    api_roles text;
BEGIN
    SELECT string_agg(quote_ident(rolname), ', ' ORDER BY rolname) INTO api_roles
      FROM pg_catalog.pg_roles
     WHERE rolname IN ('anon', 'authenticated', 'service_role', 'techpack_app');
    EXECUTE format('REVOKE ALL ON TABLE public.generation_job_events FROM PUBLIC, %s', api_roles);
    EXECUTE format('REVOKE ALL ON SEQUENCE public.generation_job_events_id_seq FROM PUBLIC, %s', api_roles);
    EXECUTE format('REVOKE ALL ON FUNCTION techpack_private.generation_job_events_notify() FROM PUBLIC, %s', api_roles);
    EXECUTE format('REVOKE ALL ON FUNCTION techpack_private.generation_jobs_notify_event_readers() FROM PUBLIC, %s', api_roles);
END
$$;
GRANT USAGE, SELECT ON SEQUENCE public.generation_job_events_id_seq TO techpack_app, service_role;
GRANT SELECT ON public.generation_job_events TO authenticated, techpack_app;
GRANT SELECT, INSERT, DELETE ON public.generation_job_events TO service_role;

ALTER TABLE public.generation_job_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.generation_job_events FORCE ROW LEVEL SECURITY;
CREATE POLICY generation_job_events_select_own ON public.generation_job_events FOR SELECT
    TO authenticated, techpack_app
    USING (user_id = (SELECT public.techpack_current_user_id()));
CREATE POLICY generation_job_events_service_role ON public.generation_job_events FOR ALL
    TO service_role USING (true) WITH CHECK (true);
