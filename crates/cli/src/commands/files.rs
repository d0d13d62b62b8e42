//! `techpack files`: list, show, versions, restore, archive, status.

use clap::Subcommand;
use techpack_app::AppError;
use techpack_model::{FileCursor, FileFilter, FileStatus, FileType, TechFile};
use uuid::Uuid;

use crate::context::Context;
use crate::output::{or_dash, print_json, print_table};

/// `techpack files …`
#[derive(Debug, Subcommand)]
pub enum FilesCommand {
    /// The latest version of each file, newest first.
    List {
        /// Only this product (a UUID or a product name).
        #[arg(long)]
        product: Option<String>,
        /// Only this revision (UUID).
        #[arg(long)]
        revision: Option<Uuid>,
        /// Only this type: base_view, closeup, sketch, category, complete_pack.
        #[arg(long = "type")]
        file_type: Option<FileType>,
        /// Only this view (front, back …).
        #[arg(long)]
        view: Option<String>,
        /// Only this status (archived lists archived files).
        #[arg(long)]
        status: Option<FileStatus>,
        /// Only this generation batch.
        #[arg(long)]
        batch: Option<Uuid>,
        /// Page size.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Continue after this cursor (printed at the end of the previous page).
        #[arg(long)]
        after: Option<String>,
    },
    /// One file version, whole.
    Show {
        /// The file version's id.
        id: Uuid,
    },
    /// Every version of the file, oldest first, with who changed it and why.
    Versions {
        /// Any version's id.
        id: Uuid,
    },
    /// Make an earlier version's content the new latest version.
    Restore {
        /// Any version's id.
        id: Uuid,
        /// The version number to restore.
        #[arg(long)]
        version: i32,
    },
    /// Archive (soft-delete) a file; its history is kept.
    Archive {
        /// The file version's id.
        id: Uuid,
    },
    /// Set a file's processing status.
    Status {
        /// The file version's id.
        id: Uuid,
        /// processing, completed or failed.
        status: FileStatus,
        /// Why it failed.
        #[arg(long)]
        error: Option<String>,
    },
    /// Store a local file: its blob first, then a completed row pointing at it.
    Put {
        /// The file to store (streamed; PNG, JPEG, WebP, GIF, SVG, JSON or PDF).
        path: std::path::PathBuf,
        /// The product (a UUID or a product name).
        #[arg(long)]
        product: String,
        /// The revision (UUID).
        #[arg(long)]
        revision: Option<Uuid>,
        /// What the file holds: base_view, closeup, sketch, category, complete_pack.
        #[arg(long = "type")]
        file_type: FileType,
        /// The view (front, back …).
        #[arg(long)]
        view: Option<String>,
        /// The close-up shot name or sub-category.
        #[arg(long)]
        category: Option<String>,
    },
    /// Write a file version's blob to a local file.
    Get {
        /// The file version's id.
        id: Uuid,
        /// Where to write it.
        #[arg(short, long)]
        output: std::path::PathBuf,
        /// Replace the output file if it exists.
        #[arg(long)]
        force: bool,
    },
}

fn file_rows(files: &[TechFile]) -> Vec<Vec<String>> {
    files
        .iter()
        .map(|f| {
            vec![
                f.id.to_string(),
                f.file_type.to_string(),
                or_dash(f.view_type.as_ref()),
                or_dash(f.file_category.as_ref()),
                f.status.to_string(),
                format!("v{}", f.version),
                f.credits_used.to_string(),
                f.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            ]
        })
        .collect()
}

const FILE_HEADERS: &[&str] = &[
    "ID", "TYPE", "VIEW", "CATEGORY", "STATUS", "VERSION", "CREDITS", "CREATED",
];

/// Resolves a product reference (UUID or name) for the acting user.
pub fn product_id(context: &Context, reference: &str) -> Uuid {
    techpack_app::products::product_id(context.user_id(), reference)
}

async fn print_file(
    context: &Context,
    blobs: &techpack_blobs::BlobStore,
    file: &TechFile,
) -> anyhow::Result<()> {
    if context.json {
        return print_json(file);
    }
    // Say plainly when a row points at content that is not in storage (see `techpack fsck`).
    let blob_state = match &file.file_url {
        Some(key) => match blobs.exists(key).await {
            Ok(true) => " (stored)",
            Ok(false) => " (MISSING from storage)",
            Err(_) => " (storage unreachable)",
        },
        None => "",
    };
    println!("id            {}", file.id);
    println!("type          {}", file.file_type);
    println!("product       {}", file.product_idea_id);
    println!("revision      {}", or_dash(file.revision_id));
    println!("view          {}", or_dash(file.view_type.as_ref()));
    println!("category      {}", or_dash(file.file_category.as_ref()));
    println!(
        "status        {}{}",
        file.status,
        file.error_message
            .as_ref()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default()
    );
    println!(
        "version       {} of lineage {}{}",
        file.version,
        file.lineage_id,
        if file.is_latest { " (latest)" } else { "" }
    );
    println!(
        "blob          {}{blob_state}",
        or_dash(file.file_url.as_ref())
    );
    println!(
        "content       {} bytes, {}",
        or_dash(file.content_size),
        or_dash(file.mime_type.as_ref())
    );
    println!("model         {}", or_dash(file.ai_model.as_ref()));
    println!("batch         {}", or_dash(file.generation_batch_id));
    println!("credits       {}", file.credits_used);
    println!("confidence    {}", or_dash(file.confidence_score));
    println!("created       {}", file.created_at);
    println!("updated       {}", file.updated_at);
    println!(
        "analysis_data {}",
        serde_json::to_string(&file.analysis_data)?
    );
    Ok(())
}

/// Runs `techpack files …`.
pub async fn run(context: &Context, command: FilesCommand) -> anyhow::Result<()> {
    let app = context.app().await?;
    let store = app.store();
    let me = app.principal();
    match command {
        FilesCommand::List {
            product,
            revision,
            file_type,
            view,
            status,
            batch,
            limit,
            after,
        } => {
            let filter = FileFilter {
                product_idea_id: product.as_deref().map(|p| product_id(context, p)),
                revision_id: revision,
                file_type,
                view_type: view,
                status,
                generation_batch_id: batch,
                limit: Some(limit),
                after: after.as_deref().map(FileCursor::from_token).transpose()?,
            };
            let page = store.get_latest_tech_files(me, &filter).await?;
            if context.json {
                return print_json(&serde_json::json!({
                    "files": page.files,
                    "next": page.next.map(|c| c.to_token()),
                }));
            }
            print_table(FILE_HEADERS, &file_rows(&page.files), "no files match");
            if let Some(next) = page.next {
                println!("more: --after {}", next.to_token());
            }
        }
        FilesCommand::Show { id } => {
            print_file(
                context,
                app.blobs(),
                &store.get_tech_file_by_id(me, id).await?,
            )
            .await?
        }
        FilesCommand::Versions { id } => {
            let history = store.get_file_history(me, id).await?;
            let snapshots = store.get_tech_file_versions(me, id).await?;
            if context.json {
                return print_json(
                    &serde_json::json!({ "versions": history, "archived": snapshots }),
                );
            }
            let rows: Vec<Vec<String>> = history
                .iter()
                .map(|f| {
                    vec![
                        format!("v{}{}", f.version, if f.is_latest { "*" } else { "" }),
                        f.id.to_string(),
                        f.status.to_string(),
                        f.credits_used.to_string(),
                        f.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                        or_dash(f.created_by),
                        or_dash(f.change_description.as_ref()),
                    ]
                })
                .collect();
            print_table(
                &["VERSION", "ID", "STATUS", "CREDITS", "CREATED", "BY", "WHY"],
                &rows,
                "the file has no versions",
            );
        }
        FilesCommand::Restore { id, version } => {
            let restored = store.restore_tech_file_version(me, id, version).await?;
            if context.json {
                return print_json(&restored);
            }
            println!(
                "restored version {version} as version {} ({})",
                restored.version, restored.id
            );
        }
        FilesCommand::Archive { id } => {
            let archived = store.archive_tech_file(me, id).await?;
            if context.json {
                return print_json(&archived);
            }
            println!("archived {}", archived.id);
        }
        FilesCommand::Status { id, status, error } => {
            let updated = store.update_tech_file_status(me, id, status, error).await?;
            if context.json {
                return print_json(&updated);
            }
            println!("{} is now {}", updated.id, updated.status);
        }
        FilesCommand::Put {
            path,
            product,
            revision,
            file_type,
            view,
            category,
        } => {
            let request = techpack_housekeeping::upload::UploadRequest {
                owner: context.user_id(),
                product_idea_id: product_id(context, &product),
                revision_id: revision,
                file_type,
                view_type: view,
                file_category: category,
            };
            let source = techpack_housekeeping::upload::UploadSource::File(path);
            let blobs = app.blobs();
            let file = techpack_housekeeping::upload::store_file(
                store.as_ref(),
                blobs,
                me,
                &source,
                request,
            )
            .await?;
            if context.json {
                return print_json(&file);
            }
            println!(
                "stored {} ({} bytes, {}) as {}",
                or_dash(file.file_url.as_ref()),
                or_dash(file.content_size),
                or_dash(file.mime_type.as_ref()),
                file.id
            );
        }
        FilesCommand::Get { id, output, force } => {
            let file = store.get_tech_file_by_id(me, id).await?;
            let key = file.file_url.as_deref().ok_or_else(|| {
                AppError::Invalid(format!(
                    "tech file {id} has no stored content (it is {}): there is nothing to write",
                    file.status
                ))
            })?;
            let written = write_blob(app.blobs(), key, &output, force).await?;
            if context.json {
                return print_json(
                    &serde_json::json!({ "id": id, "key": key, "path": output, "bytes": written }),
                );
            }
            println!("wrote {written} bytes to {}", output.display());
        }
    }
    Ok(())
}

/// Streams the blob `key` into `output` (never whole in memory), through a temporary file in
/// the same folder renamed into place, so a failed download leaves no partial file behind.
/// Refuses an existing `output` unless `force`.
async fn write_blob(
    blobs: &techpack_blobs::BlobStore,
    key: &str,
    output: &std::path::Path,
    force: bool,
) -> anyhow::Result<u64> {
    use anyhow::Context as _;
    use tokio::io::AsyncWriteExt as _;
    if !force && tokio::fs::try_exists(output).await.unwrap_or(false) {
        return Err(AppError::Invalid(format!(
            "{} exists; pass --force to replace it",
            output.display()
        ))
        .into());
    }
    let mut download = blobs.get_stream(key).await?;
    let folder = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let partial = folder.join(format!(
        ".{}.partial-{}",
        output
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("download"),
        Uuid::new_v4()
    ));
    let result: anyhow::Result<u64> = async {
        let mut out = tokio::fs::File::create(&partial)
            .await
            .with_context(|| format!("creating {}", partial.display()))?;
        let mut written = 0u64;
        while let Some(chunk) = futures::TryStreamExt::try_next(&mut download.stream).await? {
            out.write_all(&chunk).await?;
            written += chunk.len() as u64;
        }
        out.sync_all().await?;
        if !force && tokio::fs::try_exists(output).await.unwrap_or(false) {
            return Err(AppError::Conflict(format!(
                "{} appeared while downloading; pass --force to replace it",
                output.display()
            ))
            .into());
        }
        tokio::fs::rename(&partial, output)
            .await
            .with_context(|| format!("writing {}", output.display()))?;
        Ok(written)
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&partial).await;
    }
    result
}
