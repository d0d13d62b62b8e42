-- techpack rollback of generation jobs: drops the jobs table (with its indexes, triggers and
-- policies) and its notify function. The shared functions and roles belong to the first
-- migration and stay until it is reverted.
DROP TABLE IF EXISTS public.generation_jobs CASCADE;
DROP FUNCTION IF EXISTS public.generation_jobs_notify();
