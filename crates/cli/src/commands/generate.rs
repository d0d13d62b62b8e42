//! `techpack generate`: make a complete tech pack from product photos, with a progress bar on
//! a terminal and plain lines otherwise. The pack is queued as a durable job and, unless
//! `--detach`, run at once in this process; a crash leaves the job for a `techpack worker`
//! to resume.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use techpack_blobs::{BlobStore, BlobStoreOptions};
use techpack_generate::{ProviderKind, build_provider, build_provider_named};
use techpack_model::{ClaimOptions, CollectionStatus, JobState, ProductCategory};
use techpack_pipeline::jobs::{
    JobControl, JobEnvironment, JobRunEnd, default_worker_id, enqueue_retry_failed,
    enqueue_tech_pack, run_claimed_job,
};
use techpack_pipeline::{
    CancellationToken, ProgressEvent, StepOrigin, TechPackOptions, TechPackRequest, TechPackResult,
    ViewInput,
};
use techpack_store::TechFileStore;
use uuid::Uuid;

use crate::context::Context;
use crate::output::print_json;

/// Arguments of `techpack generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The product (a UUID or a name, which maps to a stable id per user).
    #[arg(long, required_unless_present = "retry_failed")]
    product: Option<String>,
    /// Product category: decides points of measure and close-up names.
    #[arg(long, default_value = "apparel")]
    category: String,
    /// A base view and its photo, e.g. `front=photos/front.jpg`; repeat for more views.
    #[arg(
        long = "view",
        value_name = "VIEW=PHOTO",
        required_unless_present = "retry_failed"
    )]
    views: Vec<String>,
    /// The view whose photo is the pack's primary image (default: the first).
    #[arg(long)]
    primary_view: Option<String>,
    /// Close-ups per view.
    #[arg(long, default_value_t = 4)]
    closeups: usize,
    /// The generator: `local` (offline, no keys) or `openai` (any OpenAI-compatible endpoint,
    /// configured from the environment).
    #[arg(long, default_value = "local")]
    provider: ProviderKind,
    /// Provider calls in flight at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Name of the pack's collection.
    #[arg(long)]
    collection_name: Option<String>,
    /// Regenerate everything as new versions, even when nothing changed.
    #[arg(long)]
    force: bool,
    /// Redo only the failed steps of this collection (a pack made before).
    #[arg(long, value_name = "COLLECTION", conflicts_with_all = ["product", "views", "force"])]
    retry_failed: Option<Uuid>,
    /// Do not mirror analyses into the legacy `revision_vision_analysis` table.
    #[arg(long)]
    no_legacy_write: bool,
    /// Only queue the job and print its id: a `techpack worker` runs it.
    #[arg(long)]
    detach: bool,
    /// Runs of the job before it is given up (a crashed or failed run is tried again).
    #[arg(long, default_value_t = techpack_model::DEFAULT_MAX_ATTEMPTS)]
    max_attempts: i32,
    /// How long this process holds the job without a heartbeat before a worker may take it
    /// over (after a crash), in seconds.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 30.0,
        env = "TECHPACK_JOB_LEASE_SECS"
    )]
    lease_secs: f64,
}

/// Runs `techpack generate`.
pub async fn run(context: &Context, args: GenerateArgs) -> anyhow::Result<()> {
    let lease = super::seconds(args.lease_secs, "--lease-secs", 0.1)?;
    let store = context.store().await?;
    let blobs = BlobStore::from_url(&context.storage_url, BlobStoreOptions::default())
        .with_context(|| format!("opening the blob storage {}", context.storage_url))?;
    if !args.detach {
        // Fail before queueing when this process cannot run the job (e.g. no API key).
        build_provider(args.provider).context("setting up the provider")?;
    }
    let options = TechPackOptions {
        collection_name: args.collection_name.clone(),
        closeups_per_view: args.closeups,
        concurrency: args.concurrency,
        force: args.force,
        legacy_dual_write: !args.no_legacy_write,
        ..TechPackOptions::default()
    };
    let provider = args.provider.as_str();
    let job = match args.retry_failed {
        Some(collection) => {
            enqueue_retry_failed(
                store.as_ref(),
                context.user_id,
                collection,
                &options,
                provider,
                args.max_attempts,
            )
            .await?
        }
        None => {
            let request = build_request(context, &args, options)?;
            enqueue_tech_pack(
                store.as_ref(),
                &blobs,
                &request,
                provider,
                args.max_attempts,
            )
            .await?
        }
    };
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

    let claim = ClaimOptions {
        worker_id: default_worker_id(),
        lease,
        per_user_cap: u32::MAX,
        only_job: Some(job.id),
    };
    let Some((job, lease)) = store.claim_job(context.principal(), &claim).await? else {
        // A worker was faster: follow it there.
        return follow(context, store.as_ref(), job.id).await;
    };
    let environment = JobEnvironment {
        store: store.clone(),
        blobs,
        providers: Arc::new(|name: &str| build_provider_named(name).map_err(|e| e.to_string())),
    };
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    let reporter = tokio::spawn(report_progress(receiver, std::io::stderr().is_terminal()));
    let interrupt = CancellationToken::new();
    let control = JobControl {
        progress: Some(sender),
        interrupt: interrupt.clone(),
        shutdown: CancellationToken::new(),
    };
    let job_id = job.id;
    let run = run_claimed_job(&environment, job, lease, control);
    tokio::pin!(run);
    let run = tokio::select! {
        run = &mut run => run,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("stopping after the steps in flight; press Ctrl-C again to quit at once");
            interrupt.cancel();
            tokio::select! {
                run = &mut run => run,
                _ = tokio::signal::ctrl_c() => {
                    // Asking to cancel keeps a worker from resuming the job once its lease
                    // expires; what finished is stored and reused by the next run.
                    let _ = store.cancel_job(context.principal(), job_id).await;
                    bail!("interrupted: finished steps are saved; run the same command again to finish the pack without redoing them");
                }
            }
        }
    };
    // The run's progress sender is gone with it, so the reporter ends once it has drained.
    let _ = reporter.await;
    let job = match run.end {
        JobRunEnd::Ended(job) => *job,
        JobRunEnd::LeaseLost => bail!(
            "job {job_id}: this process stalled past its lease and a worker took the job over; `techpack jobs show {job_id}` follows it"
        ),
    };
    match (job.state, run.result) {
        (JobState::Succeeded | JobState::Partial, Some(result)) => {
            if context.json {
                let mut value = serde_json::to_value(&result)?;
                value["job_id"] = serde_json::json!(job.id);
                return print_json(&value);
            }
            print_summary(&result);
            println!("  techpack jobs show {}", job.id);
            Ok(())
        }
        (JobState::Cancelled, _) => bail!(
            "{}",
            job.last_error
                .unwrap_or_else(|| format!("job {} was cancelled", job.id))
        ),
        (JobState::Queued, _) => bail!(
            "the run failed: {}; job {} is queued for attempt {} of {} (from {}): `techpack worker --exit-when-idle` runs it, `techpack jobs cancel {}` drops it",
            job.last_error.as_deref().unwrap_or("unknown error"),
            job.id,
            job.attempts + 1,
            job.max_attempts,
            job.run_after.format("%H:%M:%S UTC"),
            job.id
        ),
        (state, _) => bail!(
            "job {} {state}: {}",
            job.id,
            job.last_error.as_deref().unwrap_or("unknown error")
        ),
    }
}

/// Follows a job another process runs, printing its progress, until it ends.
async fn follow(context: &Context, store: &dyn TechFileStore, job_id: Uuid) -> anyhow::Result<()> {
    eprintln!(
        "job {job_id} is running in a worker; following it (Ctrl-C stops following, not the job)"
    );
    let mut shown = serde_json::Value::Null;
    loop {
        let job = store.get_job(context.principal(), job_id).await?;
        if job.progress != shown {
            let p = &job.progress;
            if p.get("total").is_some() {
                eprintln!(
                    "[{:>3}/{:<3}] {} credit(s), {}%",
                    p["done"].as_u64().unwrap_or(0) + p["failed"].as_u64().unwrap_or(0),
                    p["total"].as_u64().unwrap_or(0),
                    p["credits_used"].as_i64().unwrap_or(0),
                    p["percentage"].as_i64().unwrap_or(0)
                );
            }
            shown = job.progress.clone();
        }
        if job.state.is_terminal() {
            if context.json {
                return print_json(&job);
            }
            println!("job {} {}", job.id, job.state);
            if let Some(result) = &job.result {
                println!(
                    "tech pack {}: {}% complete, {} credit(s) this run",
                    result["collection_id"].as_str().unwrap_or("?"),
                    result["completion_percentage"],
                    result["credits_used"]
                );
                println!(
                    "  techpack pack show {}",
                    result["collection_id"].as_str().unwrap_or("?")
                );
            }
            if let Some(error) = &job.last_error {
                println!("  {error}");
            }
            return match job.state {
                JobState::Succeeded | JobState::Partial => Ok(()),
                state => bail!("job {} {state}", job.id),
            };
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = tokio::signal::ctrl_c() => {
                eprintln!("stopped following; job {job_id} goes on (`techpack jobs show {job_id}`)");
                return Ok(());
            }
        }
    }
}

fn build_request(
    context: &Context,
    args: &GenerateArgs,
    options: TechPackOptions,
) -> anyhow::Result<TechPackRequest> {
    let product = args.product.as_deref().context("--product is required")?;
    let product_idea_id = super::files::product_id(context, product);
    let category: ProductCategory = args.category.parse()?;
    let mut views = Vec::with_capacity(args.views.len());
    for spec in &args.views {
        let Some((view, path)) = spec.split_once('=') else {
            bail!("--view takes VIEW=PHOTO, e.g. front=photos/front.jpg (got `{spec}`)");
        };
        let path = PathBuf::from(path);
        let photo = std::fs::read(&path)
            .with_context(|| format!("reading the {view} photo {}", path.display()))?;
        views.push(ViewInput {
            // A revision per view: a new photo of the same view is a new version of its files.
            revision_id: techpack_model::revision_id_from_name(
                context.user_id,
                product_idea_id,
                view.trim(),
            ),
            view: view.trim().to_owned(),
            photo: Arc::from(photo),
            reference: None,
        });
    }
    Ok(TechPackRequest {
        product_idea_id,
        user_id: context.user_id,
        views,
        category,
        primary_view: args.primary_view.clone(),
        options,
    })
}

async fn report_progress(
    mut receiver: tokio::sync::mpsc::UnboundedReceiver<ProgressEvent>,
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
    while let Some(event) = receiver.recv().await {
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
