//! Durable generation jobs. `techpack generate` queues a tech pack as a job and, unless
//! detached, runs it at once in its own process; `techpack worker` processes on any machines
//! run the jobs in the queue. A job survives its runner: a runner heartbeats its lease, and
//! when it dies the lease expires and another worker claims the job and resumes it in the
//! same batch, where every finished step is reused by its idempotency key and charged once.
//! Every write of a run goes through a store fenced by the lease, so a runner that stalled
//! past its lease cannot write over the work of the worker that took the job over.

mod request;
mod runner;
mod worker;

pub use request::{
    EnqueueOptions, Enqueued, JOB_REQUEST_SCHEMA, JobRequest, JobWork, enqueue_retry_failed,
    enqueue_tech_pack,
};
pub use runner::{
    JobControl, JobEnvironment, JobRun, JobRunEnd, ProviderFactory, result_summary, run_claimed_job,
};
pub use worker::{WorkerEvent, WorkerOptions, WorkerReport, default_worker_id, run_worker};
