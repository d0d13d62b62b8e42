//! `techpack worker`: run queued generation jobs until stopped.

use anyhow::Context as _;
use clap::Args;
use techpack_pipeline::CancellationToken;
use techpack_pipeline::jobs::{WorkerOptions, default_worker_id, run_worker};

use crate::context::Context;
use crate::output::print_json;

/// Arguments of `techpack worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Jobs this worker runs at once [default: the `jobs.worker_concurrency` setting, 2].
    #[arg(long)]
    concurrency: Option<usize>,
    /// Jobs one user may have running at once, across every worker on the database [default:
    /// the `jobs.per_user_cap` setting, 2].
    #[arg(long)]
    per_user_cap: Option<u32>,
    /// Seconds a job stays this worker's without a heartbeat; after a crash, other workers
    /// take its jobs over this long after the last heartbeat [default: the `jobs.lease_secs`
    /// setting, 30].
    #[arg(long, value_name = "SECONDS")]
    lease_secs: Option<f64>,
    /// Seconds between looks at the queue when no notification comes (PostgreSQL notifies
    /// workers of new jobs at once; SQLite is polled) [default: the `jobs.poll_secs` setting,
    /// 2].
    #[arg(long, value_name = "SECONDS")]
    poll_secs: Option<f64>,
    /// Exit once nothing runs and nothing can be claimed, instead of waiting for more jobs.
    #[arg(long)]
    exit_when_idle: bool,
    /// The name recorded on the jobs this worker holds (default: host:pid).
    #[arg(long)]
    worker_id: Option<String>,
}

/// Runs `techpack worker` until SIGTERM or Ctrl-C (or, with `--exit-when-idle`, an empty queue).
pub async fn run(context: &Context, args: WorkerArgs) -> anyhow::Result<()> {
    let jobs = &context.settings.jobs;
    let options = WorkerOptions {
        worker_id: args.worker_id.unwrap_or_else(default_worker_id),
        concurrency: args.concurrency.unwrap_or(jobs.worker_concurrency),
        per_user_cap: args.per_user_cap.unwrap_or(jobs.per_user_cap),
        lease: super::seconds(
            args.lease_secs.unwrap_or(jobs.lease_secs),
            "--lease-secs",
            0.01,
        )?,
        poll: super::seconds(
            args.poll_secs.unwrap_or(jobs.poll_secs),
            "--poll-secs",
            0.01,
        )?,
        exit_when_idle: args.exit_when_idle,
    };
    let app = context.app().await?;
    let environment = app.job_environment();
    let shutdown = CancellationToken::new();
    tokio::spawn(super::stop_on_signals(
        shutdown.clone(),
        "stopping: no new jobs; the jobs in hand stop after their steps in flight and go back to the queue",
    ));
    let (events, mut event_queue) = tokio::sync::mpsc::unbounded_channel();
    let printer = tokio::spawn(async move {
        while let Some(event) = event_queue.recv().await {
            eprintln!("{event}");
        }
    });
    eprintln!(
        "worker {} running up to {} job(s), {} per user (SIGTERM or Ctrl-C stops it after the steps in flight)",
        options.worker_id, options.concurrency, options.per_user_cap
    );
    // The limits every job of this process shares; jobs name their own provider, so the
    // line is shown whenever the OpenAI-compatible settings are usable.
    if let Ok(limiter) = app.providers().openai_limiter() {
        eprintln!(
            "openai/hybrid requests: {} in this process, shared by all its jobs",
            limiter.describe()
        );
    }
    let report = run_worker(environment, options, shutdown, Some(events))
        .await
        .context("running the worker")?;
    let _ = printer.await;
    if context.json {
        return print_json(&serde_json::json!({
            "claimed": report.claimed,
            "ended": report.ended,
            "lost": report.lost,
        }));
    }
    let ended: Vec<String> = report
        .ended
        .iter()
        .map(|(state, count)| format!("{count} {state}"))
        .collect();
    println!(
        "worker stopped: {} job(s) claimed; {}{}",
        report.claimed,
        if ended.is_empty() {
            "none ended".to_owned()
        } else {
            ended.join(", ")
        },
        if report.lost > 0 {
            format!("; {} taken over by other workers", report.lost)
        } else {
            String::new()
        }
    );
    Ok(())
}
