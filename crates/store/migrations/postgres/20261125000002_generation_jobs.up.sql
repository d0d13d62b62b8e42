-- techpack: durable generation jobs. A run is a row that workers claim under a lease
-- (FOR UPDATE SKIP LOCKED), renew by heartbeats and finish; the lease token fences every write of
-- the run. Applies on plain PostgreSQL and on a Supabase project: it needs no extension and no
-- superuser, and relies on the roles and functions of the first migration.

CREATE TABLE public.generation_jobs (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL,
    product_idea_id uuid NOT NULL,
    kind text NOT NULL CHECK (length(btrim(kind)) > 0 AND char_length(kind) <= 64),
    request jsonb NOT NULL
        CHECK (jsonb_typeof(request) = 'object' AND octet_length(request::text) <= 2097152),
    state text NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued', 'running', 'succeeded', 'partial', 'failed', 'cancelled')),
    attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts integer NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 100),
    worker_id text,
    lease_token uuid,
    lease_expires_at timestamptz,
    heartbeat_at timestamptz,
    cancel_requested boolean NOT NULL DEFAULT false,
    collection_id uuid,
    progress jsonb NOT NULL DEFAULT '{}'::jsonb
        CHECK (jsonb_typeof(progress) = 'object' AND octet_length(progress::text) <= 2097152),
    result jsonb CHECK (result IS NULL OR octet_length(result::text) <= 2097152),
    last_error text,
    run_after timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz,
    -- A lease exists exactly while the job runs: the token is the fence, so a job that is not
    -- running must have none for a stale worker to match.
    CONSTRAINT generation_jobs_lease_while_running CHECK (
        (state = 'running') = (lease_token IS NOT NULL)
        AND (state = 'running') = (lease_expires_at IS NOT NULL)
        AND (state <> 'running' OR worker_id IS NOT NULL)),
    CONSTRAINT generation_jobs_finished_when_terminal CHECK (
        (state IN ('succeeded', 'partial', 'failed', 'cancelled')) = (finished_at IS NOT NULL))
);

-- Claiming: the due queued jobs and the running ones whose lease may have expired, in order.
CREATE INDEX generation_jobs_claim_idx ON public.generation_jobs (state, run_after, created_at)
    WHERE state IN ('queued', 'running');
-- The per-user cap counts a user's running jobs at every claim.
CREATE INDEX generation_jobs_user_running_idx ON public.generation_jobs (user_id)
    WHERE state = 'running';
-- A user's jobs, newest first (and the column of every policy).
CREATE INDEX generation_jobs_user_created_idx ON public.generation_jobs (user_id, created_at DESC);

CREATE TRIGGER generation_jobs_touch_updated_at BEFORE UPDATE ON public.generation_jobs
    FOR EACH ROW EXECUTE FUNCTION public.techpack_touch_updated_at();

-- Wakes waiting workers (LISTEN techpack_jobs) when a job may have become claimable: it was
-- queued (inserted, or given back), or a running job ended, which frees a slot of its owner's
-- per-user cap. NOTIFY is delivered at commit, so a woken worker sees the row.
CREATE OR REPLACE FUNCTION public.generation_jobs_notify() RETURNS trigger
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    IF (NEW.state = 'queued' AND (TG_OP = 'INSERT' OR OLD.state IS DISTINCT FROM 'queued'))
       OR (TG_OP = 'UPDATE' AND OLD.state = 'running' AND NEW.state <> 'running') THEN
        PERFORM pg_catalog.pg_notify('techpack_jobs', NEW.id::text);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER generation_jobs_notify AFTER INSERT OR UPDATE OF state ON public.generation_jobs
    FOR EACH ROW EXECUTE FUNCTION public.generation_jobs_notify();

-- Row level security: a user sees, enqueues and cancels only their own jobs, and may enqueue
-- only a fresh queued job; workers act as service_role.
ALTER TABLE public.generation_jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.generation_jobs FORCE ROW LEVEL SECURITY;

CREATE POLICY generation_jobs_select_own ON public.generation_jobs FOR SELECT TO authenticated
    USING (user_id = (SELECT public.techpack_current_user_id()));
CREATE POLICY generation_jobs_insert_own ON public.generation_jobs FOR INSERT TO authenticated
    WITH CHECK (user_id = (SELECT public.techpack_current_user_id())
                AND state = 'queued' AND attempts = 0 AND lease_token IS NULL
                AND NOT cancel_requested);
CREATE POLICY generation_jobs_update_own ON public.generation_jobs FOR UPDATE TO authenticated
    USING (user_id = (SELECT public.techpack_current_user_id()))
    WITH CHECK (user_id = (SELECT public.techpack_current_user_id()));

-- Jobs are kept as history: users never delete them.
GRANT SELECT, INSERT, UPDATE ON public.generation_jobs TO authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.generation_jobs TO service_role;
