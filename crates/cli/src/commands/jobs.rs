//! `techpack jobs`: list, show and cancel generation jobs.

use clap::Subcommand;
use techpack_model::{Job, JobFilter, JobState};
use uuid::Uuid;

use crate::context::Context;
use crate::output::{or_dash, print_json, print_table};

/// `techpack jobs …`
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Jobs, newest first.
    List {
        /// Only jobs in this state: queued, running, succeeded, partial, failed, cancelled.
        #[arg(long)]
        state: Option<JobState>,
        /// Only this product (a UUID or a product name).
        #[arg(long)]
        product: Option<String>,
        /// At most this many (default 50).
        #[arg(long)]
        limit: Option<i64>,
    },
    /// One job: its state, attempts, lease, progress, result and last error.
    Show {
        /// The job's id.
        id: Uuid,
    },
    /// Cancels a job: a queued one at once, a running one at its next step boundary.
    Cancel {
        /// The job's id.
        id: Uuid,
    },
}

/// Runs `techpack jobs …`.
pub async fn run(context: &Context, command: JobsCommand) -> anyhow::Result<()> {
    let app = context.app().await?;
    let store = app.store();
    let me = app.principal();
    match command {
        JobsCommand::List {
            state,
            product,
            limit,
        } => {
            let filter = JobFilter {
                state,
                product_idea_id: product
                    .as_deref()
                    .map(|p| techpack_app::products::product_id(context.user_id(), p)),
                limit,
            };
            let jobs = store.list_jobs(me, &filter).await?;
            if context.json {
                return print_json(&jobs);
            }
            let rows: Vec<Vec<String>> = jobs
                .iter()
                .map(|job| {
                    vec![
                        job.id.to_string(),
                        job.state.to_string(),
                        progress(job),
                        format!("{}/{}", job.attempts, job.max_attempts),
                        or_dash(job.worker_id.as_deref()),
                        job.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                        or_dash(job.last_error.as_deref().map(short)),
                    ]
                })
                .collect();
            print_table(
                &[
                    "ID",
                    "STATE",
                    "PROGRESS",
                    "ATTEMPTS",
                    "WORKER",
                    "CREATED",
                    "LAST ERROR",
                ],
                &rows,
                "no jobs",
            );
        }
        JobsCommand::Show { id } => {
            let job = store.get_job(me, id).await?;
            if context.json {
                return print_json(&job);
            }
            print_job(&job);
        }
        JobsCommand::Cancel { id } => {
            let job = store.cancel_job(me, id).await?;
            if context.json {
                return print_json(&job);
            }
            if job.state == JobState::Cancelled {
                println!("job {id} cancelled");
            } else {
                println!(
                    "job {id} is {}: it stops at its next step boundary (`techpack jobs show {id}`)",
                    job.state
                );
            }
        }
    }
    Ok(())
}

fn progress(job: &Job) -> String {
    let progress = job.pack_progress();
    if progress.has_plan() {
        format!("{}/{}", progress.finished_steps(), progress.total)
    } else {
        "-".into()
    }
}

fn short(text: &str) -> String {
    let first_line = text.lines().next().unwrap_or_default();
    if first_line.chars().count() > 80 {
        format!("{}…", first_line.chars().take(79).collect::<String>())
    } else {
        first_line.to_owned()
    }
}

fn print_job(job: &Job) {
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
        or_dash(t.map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string()))
    };
    println!("job          {}", job.id);
    println!("state        {}", job.state);
    if job.cancel_requested && !job.state.is_terminal() {
        println!("             cancel requested: stops at its next step boundary");
    }
    println!("product      {}", job.product_idea_id);
    println!("collection   {}", or_dash(job.collection_id));
    println!("progress     {} steps", progress(job));
    let progress = job.pack_progress();
    match job.pack_result() {
        Some(result) => println!(
            "credits      {} this run, {} in the pack",
            result.credits_used, result.collection_credits
        ),
        None if progress.has_plan() => println!("credits      {} so far", progress.credits_used),
        None => {}
    }
    println!("attempts     {} of {}", job.attempts, job.max_attempts);
    println!("worker       {}", or_dash(job.worker_id.as_deref()));
    println!("lease until  {}", time(job.lease_expires_at));
    println!("heartbeat    {}", time(job.heartbeat_at));
    println!("created      {}", time(Some(job.created_at)));
    println!("started      {}", time(job.started_at));
    println!("finished     {}", time(job.finished_at));
    if job.state == JobState::Queued && job.attempts > 0 {
        println!("next attempt {}", time(Some(job.run_after)));
    }
    if let Some(error) = &job.last_error {
        println!("last error   {error}");
    }
    if let Some(collection) = job.collection_id {
        println!("\n  techpack pack show {collection}");
    }
}
