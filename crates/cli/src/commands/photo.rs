//! `techpack analyze`, `closeups` and `sketch`: run one generator on one photo, without the
//! store — for trying a provider, scripting, or looking at what it makes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use techpack_app::Providers;
use techpack_generate::{Analysis, Provider, ProviderKind, ViewPhoto};
use techpack_model::ProductCategory;

use crate::context::Context;
use crate::output::print_json;

/// What every photo command takes.
#[derive(Debug, Args)]
pub struct PhotoArgs {
    /// The product photo (JPEG, PNG or WebP).
    photo: PathBuf,
    /// Product category (apparel, tops, bottoms, outerwear, headwear, bags, drinkware, bottles,
    /// footwear, accessories, home, other …) or auto: detected from the photo's shape.
    #[arg(long, default_value = "auto")]
    category: ProductCategory,
    /// Which view the photo shows.
    #[arg(long, default_value = "front")]
    view: String,
    /// A known real size to scale measurements, e.g. height=70cm.
    #[arg(long)]
    reference: Option<String>,
    /// Generator: local (offline), openai (an OpenAI-compatible endpoint, configured from the
    /// settings) or hybrid (analyses from an OpenAI-compatible vision model, close-ups and
    /// sketches made locally) [default: the `provider` setting, local].
    #[arg(long)]
    provider: Option<ProviderKind>,
}

/// `techpack closeups`.
#[derive(Debug, Args)]
pub struct CloseupArgs {
    #[command(flatten)]
    photo: PhotoArgs,
    /// Folder to write the close-ups to (created when missing).
    #[arg(short, long)]
    output: PathBuf,
    /// How many close-ups.
    #[arg(long, default_value_t = 4)]
    count: usize,
}

/// `techpack sketch`.
#[derive(Debug, Args)]
pub struct SketchArgs {
    #[command(flatten)]
    photo: PhotoArgs,
    /// Where to write the SVG.
    #[arg(short, long)]
    output: PathBuf,
    /// Where to also write the PNG rendering.
    #[arg(long)]
    png: Option<PathBuf>,
}

/// Reads the photo and makes the provider through the application's one factory, so these
/// commands see the same settings (techpack.toml, environment) as `generate`.
async fn prepare(
    context: &Context,
    args: &PhotoArgs,
) -> anyhow::Result<(Arc<dyn Provider>, ViewPhoto)> {
    let bytes = tokio::fs::read(&args.photo)
        .await
        .with_context(|| format!("reading {}", args.photo.display()))?;
    let name = args.provider.map_or_else(
        || context.settings.provider.clone(),
        |kind| kind.as_str().to_owned(),
    );
    let provider = Providers::new(context.settings.openai.clone()).get(&name)?;
    let photo = ViewPhoto {
        bytes: bytes.into(),
        view: args.view.clone(),
        category: args.category,
        reference: args.reference.clone(),
    };
    Ok((provider, photo))
}

async fn analysis(provider: &dyn Provider, photo: &ViewPhoto) -> anyhow::Result<Analysis> {
    Ok(provider
        .analyze(photo)
        .await
        .context("analysing the photo")?
        .output)
}

async fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(parent)
            .await
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    tokio::fs::write(path, bytes)
        .await
        .with_context(|| format!("writing {}", path.display()))
}

/// Runs `techpack analyze`.
pub async fn analyze(context: &Context, args: PhotoArgs) -> anyhow::Result<()> {
    let (provider, photo) = prepare(context, &args).await?;
    let generated = provider
        .analyze(&photo)
        .await
        .context("analysing the photo")?;
    if context.json {
        return print_json(&generated.output);
    }
    let a = &generated.output;
    println!(
        "{} ({} view, {}), {}×{} px, model {}",
        args.photo.display(),
        a.view,
        a.category,
        a.image.width,
        a.image.height,
        generated.model
    );
    println!(
        "product box {:?}, {:.0}% of the image, symmetry {:.2}",
        a.product.bbox,
        a.product.area_share * 100.0,
        a.product.symmetry
    );
    let colors: Vec<String> = a
        .colors
        .iter()
        .map(|c| format!("{} {} {:.0}%", c.name, c.hex, c.share * 100.0))
        .collect();
    println!("colours: {}", colors.join(", "));
    println!(
        "scale: {:.4} cm/px ({:?}: {})",
        a.measurements.scale.cm_per_px, a.measurements.scale.source, a.measurements.scale.basis
    );
    for point in &a.measurements.points {
        println!(
            "  {:<16} {:>7.1} cm  ({:.0} px)",
            point.name, point.cm, point.px
        );
    }
    let regions: Vec<String> = a
        .detail_regions
        .iter()
        .map(|r| format!("{} {:.2}", r.name, r.score))
        .collect();
    println!("details: {}", regions.join(", "));
    println!(
        "confidence {:.2}: {}",
        a.confidence.score,
        a.confidence.reasons.join(" ")
    );
    Ok(())
}

/// Runs `techpack closeups`.
pub async fn closeups(context: &Context, args: CloseupArgs) -> anyhow::Result<()> {
    let (provider, photo) = prepare(context, &args.photo).await?;
    let analysis = analysis(provider.as_ref(), &photo).await?;
    let mut written = Vec::new();
    for (index, shot) in provider
        .plan_closeups(&analysis, args.count)
        .iter()
        .enumerate()
    {
        let closeup = provider
            .closeup(&photo, &analysis, shot)
            .await
            .with_context(|| format!("making the {} close-up", shot.name))?;
        let path = args.output.join(format!(
            "{:02}-{}.png",
            index + 1,
            shot.name.replace(['/', ' '], "-")
        ));
        write(&path, &closeup.output.png).await?;
        written.push(serde_json::json!({ "name": shot.name, "bbox": shot.bbox, "size": closeup.output.size, "path": path }));
    }
    if context.json {
        return print_json(&written);
    }
    for item in &written {
        println!(
            "{}  {}",
            item["path"].as_str().unwrap_or_default(),
            item["name"].as_str().unwrap_or_default()
        );
    }
    Ok(())
}

/// Runs `techpack sketch`.
pub async fn sketch(context: &Context, args: SketchArgs) -> anyhow::Result<()> {
    let (provider, photo) = prepare(context, &args.photo).await?;
    let analysis = analysis(provider.as_ref(), &photo).await?;
    let sketch = provider
        .sketch(&photo, &analysis)
        .await
        .context("drawing the sketch")?
        .output;
    write(&args.output, sketch.svg.as_bytes()).await?;
    if let Some(png) = &args.png {
        write(png, &sketch.png).await?;
    }
    if context.json {
        return print_json(&sketch.data);
    }
    println!(
        "wrote {}{}",
        args.output.display(),
        args.png
            .as_ref()
            .map(|p| format!(" and {}", p.display()))
            .unwrap_or_default()
    );
    Ok(())
}
