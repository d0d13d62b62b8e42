-- techpack rollback of 20261201000020: the job events go (the jobs keep their progress).
DROP TABLE IF EXISTS generation_job_events;
