//! `techpack generate`: make a complete tech pack from product photos, with a progress bar on
//! a terminal and plain lines otherwise.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use techpack_blobs::{BlobStore, BlobStoreOptions};
use techpack_generate::{ProviderKind, build_provider};
use techpack_model::{CollectionStatus, ProductCategory};
use techpack_pipeline::{
    Pipeline, ProgressEvent, StepOrigin, TechPackOptions, TechPackRequest, TechPackResult,
    ViewInput,
};
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
}

/// Runs `techpack generate`.
pub async fn run(context: &Context, args: GenerateArgs) -> anyhow::Result<()> {
    let store = context.store().await?;
    let blobs = BlobStore::from_url(&context.storage_url, BlobStoreOptions::default())
        .with_context(|| format!("opening the blob storage {}", context.storage_url))?;
    let provider = build_provider(args.provider).context("setting up the provider")?;
    let pipeline = Pipeline::new(store, blobs, provider);
    let options = TechPackOptions {
        collection_name: args.collection_name.clone(),
        closeups_per_view: args.closeups,
        concurrency: args.concurrency,
        force: args.force,
        legacy_dual_write: !args.no_legacy_write,
        ..TechPackOptions::default()
    };

    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    let reporter = tokio::spawn(report_progress(receiver, std::io::stderr().is_terminal()));
    let work = async {
        match args.retry_failed {
            Some(collection) => {
                pipeline
                    .retry_failed(context.user_id, collection, options, Some(sender))
                    .await
            }
            None => {
                let request = build_request(context, &args, options)?;
                pipeline.generate(request, Some(sender)).await
            }
        }
        .map_err(anyhow::Error::from)
    };
    let result = tokio::select! {
        result = work => result,
        _ = tokio::signal::ctrl_c() => {
            // Dropping the run stops its steps; what finished is stored and will be reused.
            Err(anyhow::anyhow!(
                "interrupted: finished steps are saved; run the same command again to finish the pack without redoing them"
            ))
        }
    };
    // The sender is gone with the run, so the reporter ends once it has drained the events.
    let _ = reporter.await;
    let result = result?;
    if context.json {
        return print_json(&result);
    }
    print_summary(&result);
    Ok(())
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
