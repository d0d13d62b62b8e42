//! `techpack generate`: make a complete tech pack from product photos, with a progress bar on
//! a terminal and plain lines otherwise. The pack is queued as a durable job and, unless
//! `--detach`, run at once in this process; a crash leaves the job for a `techpack worker`
//! to resume.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use techpack_app::{AppError, JobEnd, JobUpdate, PackInput, RunOptions, ViewUpload, WaitControl};
use techpack_model::{CollectionStatus, JobState};
use techpack_pipeline::{CancellationToken, ProgressEvent, StepOrigin, TechPackResult};
use uuid::Uuid;

use crate::context::Context;
use crate::output::print_json;

/// Arguments of `techpack generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The product (a UUID or a name, which maps to a stable id per user).
    #[arg(long, required_unless_present = "retry_failed")]
    product: Option<String>,
    /// Product category: decides points of measure and close-up names [default: auto, detected
    /// from each photo's shape].
    #[arg(long)]
    category: Option<String>,
    /// A base view and its photo, e.g. `front=photos/front.jpg`; repeat for more views.
    #[arg(
        long = "view",
        value_name = "VIEW=PHOTO",
        required_unless_present = "retry_failed"
    )]
    views: Vec<String>,
    /// A known real size of a view's product for measurements, e.g. `front=height=70cm`
    /// (units cm, mm, m, in); repeat per view. Without it, a category default is assumed.
    #[arg(long = "reference", value_name = "VIEW=SIZE")]
    references: Vec<String>,
    /// The view whose photo is the pack's primary image (default: the first).
    #[arg(long)]
    primary_view: Option<String>,
    /// Close-ups per view [default: the `packs.closeups_per_view` setting, 4].
    #[arg(long)]
    closeups: Option<usize>,
    /// The generator: `local` (offline, no keys), `openai` (any OpenAI-compatible endpoint,
    /// configured from the settings) or `hybrid` (analyses from an OpenAI-compatible vision
    /// model such as Ollama or vLLM, close-ups and sketches made locally).
    #[arg(long)]
    provider: Option<String>,
    /// Provider calls in flight at once [default: the `packs.concurrency` setting, 4].
    #[arg(long)]
    concurrency: Option<usize>,
    /// Name of the pack's collection.
    #[arg(long)]
    collection_name: Option<String>,
    /// Regenerate everything as new versions, even when nothing changed.
    #[arg(long)]
    force: bool,
    /// Redo only the failed steps of this collection (a pack made before).
    #[arg(
        long,
        value_name = "COLLECTION",
        conflicts_with_all = ["product", "views", "force", "references", "collection_name", "primary_view"]
    )]
    retry_failed: Option<Uuid>,
    /// Do not mirror analyses into the legacy `revision_vision_analysis` table.
    #[arg(long)]
    no_legacy_write: bool,
    /// Only queue the job and print its id: a `techpack worker` runs it.
    #[arg(long)]
    detach: bool,
    /// A key of your own for this request: sending the same key again returns the same job
    /// (and charges nothing more) instead of starting another.
    #[arg(long, value_name = "KEY")]
    idempotency_key: Option<String>,
    /// Runs of the job before it is given up (a crashed or failed run is tried again).
    #[arg(long)]
    max_attempts: Option<i32>,
    /// How long this process holds the job without a heartbeat before a worker may take it
    /// over (after a crash), in seconds [default: the `jobs.lease_secs` setting, 30].
    #[arg(long, value_name = "SECONDS")]
    lease_secs: Option<f64>,
}

/// Runs `techpack generate`.
pub async fn run(context: &Context, args: GenerateArgs) -> anyhow::Result<()> {
    let lease = super::seconds(
        args.lease_secs.unwrap_or(context.settings.jobs.lease_secs),
        "--lease-secs",
        0.1,
    )?;
    let app = context.app().await?;
    let user = context.user_id();
    let run = RunOptions {
        provider: args.provider.clone(),
        concurrency: Some(
            args.concurrency
                .unwrap_or(context.settings.packs.concurrency),
        ),
        legacy_dual_write: Some(!args.no_legacy_write && context.settings.packs.legacy_dual_write),
        max_attempts: args.max_attempts,
        idempotency_key: args.idempotency_key.clone(),
    };
    // Fail before queueing when this process cannot run the job (e.g. no API key).
    let must_run_here = !args.detach;
    let submitted = match args.retry_failed {
        Some(collection) => {
            app.submit_retry(user, collection, &run, must_run_here)
                .await?
        }
        None => {
            let input = pack_input(&args, run, context.settings.packs.closeups_per_view)?;
            app.submit_pack(user, &input, must_run_here).await?
        }
    };
    let job = submitted.job;
    if submitted.joined && !context.json {
        eprintln!(
            "an identical request is already {} as job {}: following it (no second charge)",
            job.state, job.id
        );
    }
    if args.detach {
        if context.json {
            return print_json(&job);
        }
        println!("{}", job.id);
        eprintln!(
            "queued job {}: `techpack worker` runs it; `techpack jobs show {}` follows it",
            job.id, job.id
        );
        return Ok(());
    }

    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    let reporter = tokio::spawn(report_progress(receiver, std::io::stderr().is_terminal()));
    let interrupt = CancellationToken::new();
    let control = WaitControl {
        interrupt: interrupt.clone(),
    };
    let job_id = job.id;
    let waiting = app.run_or_follow(user, job_id, lease, Some(sender), control);
    tokio::pin!(waiting);
    let end = tokio::select! {
        end = &mut waiting => end,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("stopping after the steps in flight; press Ctrl-C again to quit at once");
            interrupt.cancel();
            tokio::select! {
                end = &mut waiting => end,
                _ = tokio::signal::ctrl_c() => {
                    // Asking to cancel keeps a worker from resuming the job once its lease
                    // expires; what finished is stored and reused by the next run.
                    let _ = app.store().cancel_job(app.principal(), job_id).await;
                    return Err(AppError::Cancelled("interrupted: finished steps are saved; run the same command again to finish the pack without redoing them".into()).into());
                }
            }
        }
    };
    // The run's update sender is gone with it, so the reporter ends once it has drained.
    let _ = reporter.await;
    let end = end?;
    if interrupt.is_cancelled() && !end.job.state.is_terminal() {
        // Interrupted while following a job another process runs: it goes on there.
        eprintln!("stopped following; job {job_id} goes on (`techpack jobs show {job_id}`)");
        return Ok(());
    }
    let end = end.into_outcome()?;
    print_end(context, &end)
}

/// The pack input the flags describe, the photos read from disk.
fn pack_input(
    args: &GenerateArgs,
    run: RunOptions,
    default_closeups: usize,
) -> anyhow::Result<PackInput> {
    let product = args.product.clone().unwrap_or_default();
    let mut references = std::collections::HashMap::new();
    for spec in &args.references {
        let Some((view, size)) = spec.split_once('=') else {
            return Err(AppError::Invalid(format!(
                "--reference takes VIEW=SIZE, e.g. front=height=70cm (got `{spec}`)"
            ))
            .into());
        };
        references.insert(view.trim().to_owned(), size.trim().to_owned());
    }
    let mut views = Vec::with_capacity(args.views.len());
    for spec in &args.views {
        let Some((view, path)) = spec.split_once('=') else {
            return Err(AppError::Invalid(format!(
                "--view takes VIEW=PHOTO, e.g. front=photos/front.jpg (got `{spec}`)"
            ))
            .into());
        };
        let path = PathBuf::from(path);
        let photo = std::fs::read(&path).map_err(|source| AppError::Io {
            what: format!("reading the {view} photo {}", path.display()),
            source,
        })?;
        views.push(ViewUpload {
            view: view.trim().to_owned(),
            photo: Bytes::from(photo),
            reference: references.remove(view.trim()),
        });
    }
    if let Some(view) = references.keys().next() {
        return Err(AppError::Invalid(format!(
            "--reference names view `{view}`, which no --view gives"
        ))
        .into());
    }
    Ok(PackInput {
        product,
        category: args.category.clone(),
        views,
        primary_view: args.primary_view.clone(),
        closeups_per_view: Some(args.closeups.unwrap_or(default_closeups)),
        collection_name: args.collection_name.clone(),
        force: args.force,
        run,
    })
}

fn print_end(context: &Context, end: &JobEnd) -> anyhow::Result<()> {
    let job = &end.job;
    match &end.result {
        Some(result) => {
            if context.json {
                let mut value = serde_json::to_value(result)?;
                value["job_id"] = serde_json::json!(job.id);
                return print_json(&value);
            }
            print_summary(result);
            println!("  techpack jobs show {}", job.id);
        }
        None => {
            // Run by another process: what its row recorded.
            if context.json {
                return print_json(job);
            }
            println!("job {} {}", job.id, job.state);
            if let Some(result) = job.pack_result() {
                println!(
                    "tech pack {}: {}% complete, {} credit(s) this run",
                    result.collection_id, result.completion_percentage, result.credits_used
                );
                println!("  techpack pack show {}", result.collection_id);
            }
            if let Some(error) = &job.last_error {
                println!("  {error}");
            }
        }
    }
    Ok(())
}

async fn report_progress(
    mut receiver: tokio::sync::mpsc::UnboundedReceiver<JobUpdate>,
    terminal: bool,
) {
    let bar = terminal.then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30.cyan/blue} {pos}/{len} steps · {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    });
    while let Some(update) = receiver.recv().await {
        let event = match update {
            JobUpdate::Step(event) => event,
            JobUpdate::Elsewhere {
                state,
                progress,
                worker_id,
            } => {
                let line = match (state, worker_id) {
                    (JobState::Queued, _) => {
                        "waiting: the job is queued behind another run of this product".to_owned()
                    }
                    (JobState::Running, Some(worker)) => format!("running in {worker}"),
                    (state, _) => format!("{state}"),
                };
                let counts = if progress.has_plan() {
                    format!(
                        "[{:>3}/{:<3}] {} credit(s), {}% · ",
                        progress.finished_steps(),
                        progress.total,
                        progress.credits_used,
                        progress.percentage
                    )
                } else {
                    String::new()
                };
                match &bar {
                    Some(bar) => {
                        bar.set_length(progress.total);
                        bar.set_position(progress.finished_steps());
                        bar.set_message(line);
                    }
                    None => eprintln!("{counts}{line}"),
                }
                continue;
            }
        };
        let counts = event.counts();
        let line = match &event {
            ProgressEvent::Started { collection_id, .. } => {
                format!("tech pack {collection_id}: {} steps planned", counts.total)
            }
            ProgressEvent::StepStarted { step, .. } => format!("{step}: started"),
            ProgressEvent::StepFinished {
                step,
                origin,
                credits,
                elapsed_ms,
                ..
            } => {
                let how = match origin {
                    StepOrigin::Cached => "reused (no charge)".to_owned(),
                    StepOrigin::LegacyCache => {
                        "reused from the legacy analysis (no charge)".to_owned()
                    }
                    _ => format!("done, {credits} credit(s), {elapsed_ms} ms"),
                };
                format!("{step}: {how}")
            }
            ProgressEvent::StepFailed { step, error, .. } => format!("{step}: FAILED: {error}"),
            ProgressEvent::Finished { status, .. } => format!("finished: {status}"),
        };
        match &bar {
            Some(bar) => {
                bar.set_length(counts.total as u64);
                bar.set_position((counts.done + counts.failed) as u64);
                bar.set_message(format!("{} credit(s) · {line}", counts.credits_used));
                if matches!(event, ProgressEvent::StepFailed { .. }) {
                    bar.println(line);
                }
            }
            None => {
                if !matches!(event, ProgressEvent::StepStarted { .. }) {
                    eprintln!(
                        "[{:>3}/{:<3}] {line}",
                        counts.done + counts.failed,
                        counts.total
                    );
                }
            }
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}

fn print_summary(result: &TechPackResult) {
    let generated = result
        .steps()
        .filter(|s| s.origin == StepOrigin::Generated)
        .count();
    let reused = result
        .steps()
        .filter(|s| matches!(s.origin, StepOrigin::Cached | StepOrigin::LegacyCache))
        .count();
    let failed: Vec<_> = result.failed_steps().collect();
    println!(
        "Tech pack {} {}: {} base view(s), {} close-up(s), {} sketch(es); {generated} generated, {reused} reused, {} failed",
        result.collection_id,
        result.status,
        result
            .base_views
            .iter()
            .filter(|s| s.error.is_none())
            .count(),
        result.closeups.iter().filter(|s| s.error.is_none()).count(),
        result.sketches.iter().filter(|s| s.error.is_none()).count(),
        failed.len(),
    );
    println!(
        "credits: {} this run, {} in the pack; {}% complete in {:.1} s",
        result.credits_used,
        result.collection_credits,
        result.completion_percentage,
        result.elapsed_ms as f64 / 1000.0
    );
    for step in &failed {
        println!(
            "  failed: {}: {}",
            step.step,
            step.error.as_deref().unwrap_or("unknown error")
        );
    }
    println!("\nLook at it:");
    println!("  techpack pack show {}", result.collection_id);
    println!(
        "  techpack pack export {} -o ./tech-pack",
        result.collection_id
    );
    println!("  techpack stats {}", result.product_idea_id);
    if result.status != CollectionStatus::Completed {
        println!(
            "  techpack generate --retry-failed {}   (redo only the failed steps)",
            result.collection_id
        );
    }
}
