-- techpack rollback of 20261201000020: the job events go (the jobs keep their progress).
DROP TABLE IF EXISTS public.generation_job_events;
DROP FUNCTION IF EXISTS techpack_private.generation_job_events_notify();
DROP TRIGGER IF EXISTS generation_jobs_notify_event_readers ON public.generation_jobs;
DROP FUNCTION IF EXISTS techpack_private.generation_jobs_notify_event_readers();
