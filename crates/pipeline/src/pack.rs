//! Reading a pack back: the seed's `getExistingTechPack`, and an export to a folder a person
//! can open.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::json;
use techpack_blobs::BlobStore;
use techpack_model::{
    CollectionType, CollectionWithFiles, FileStatus, FileType, Principal, TechFile,
};
use techpack_store::{StoreError, TechFileStore};
use uuid::Uuid;

use crate::error::{PipelineError, PipelineResult};

/// The tech pack `id` names: a collection id, or a product id (its newest tech pack).
pub async fn find_tech_pack(
    store: &dyn TechFileStore,
    principal: Principal,
    id: Uuid,
) -> PipelineResult<CollectionWithFiles> {
    match store.get_collection_with_files(principal, id).await {
        Ok(pack) => return Ok(pack),
        Err(StoreError::NotFound { .. }) => {}
        Err(error) => return Err(error.into()),
    }
    let newest = store
        .list_collections(principal, Some(id))
        .await?
        .into_iter()
        .find(|collection| collection.collection_type == CollectionType::TechPackV2)
        .ok_or_else(|| {
            PipelineError::NotFound(format!(
                "no tech pack with id {id}, and no tech pack of a product with that id"
            ))
        })?;
    Ok(store
        .get_collection_with_files(principal, newest.id)
        .await?)
}

/// What an export wrote.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportReport {
    /// The folder.
    pub dir: PathBuf,
    /// Every file written, relative to the folder, with the tech file it came from.
    pub files: Vec<ExportedFile>,
    /// Files of the pack that have no content to export (failed or still processing).
    pub skipped: Vec<Uuid>,
}

/// One exported file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportedFile {
    /// Path relative to the export folder.
    pub path: PathBuf,
    /// The tech file (version) it holds.
    pub tech_file_id: Uuid,
    /// Its version.
    pub version: i32,
}

/// Writes a pack's files to `dir` with readable names — `base_views/front.jpg` (+ its
/// analysis as JSON), `closeups/front-01-collar.png`, `sketches/front.svg` (+ `.png` and its
/// callouts as JSON) — the pack's manifest as `manifest.json` and the list of what was written
/// as `export.json`.
pub async fn export_tech_pack(
    store: &dyn TechFileStore,
    blobs: &BlobStore,
    principal: Principal,
    collection_id: Uuid,
    dir: &Path,
) -> PipelineResult<ExportReport> {
    let pack = store
        .get_collection_with_files(principal, collection_id)
        .await?;
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| PipelineError::Io { path, source }
    };
    tokio::fs::create_dir_all(dir).await.map_err(io(dir))?;
    let mut report = ExportReport {
        dir: dir.to_path_buf(),
        files: Vec::new(),
        skipped: Vec::new(),
    };
    // A collection retried before runs took superseded manifests out may still list several:
    // export the newest.
    let newest_manifest = pack
        .items
        .iter()
        .filter(|(_, file)| file.file_type == FileType::CompletePack)
        .map(|(_, file)| file.version)
        .max();
    let mut closeup_numbers = std::collections::HashMap::<String, usize>::new();
    for (_, file) in &pack.items {
        let Some(key) = file
            .file_url
            .as_deref()
            .filter(|_| file.status == FileStatus::Completed)
        else {
            report.skipped.push(file.id);
            continue;
        };
        let view = readable(file.view_type.as_deref().unwrap_or("view"));
        let extension = extension(file.mime_type.as_deref());
        let mut outputs: Vec<(PathBuf, Vec<u8>)> = Vec::new();
        match file.file_type {
            FileType::BaseView => {
                outputs.push((
                    format!("base_views/{view}.{extension}").into(),
                    blobs.get_bytes(key).await?.to_vec(),
                ));
                outputs.push((
                    format!("base_views/{view}-analysis.json").into(),
                    pretty(&file.analysis_data)?,
                ));
            }
            FileType::Closeup => {
                let number = closeup_numbers.entry(view.clone()).or_default();
                *number += 1;
                let shot = readable(file.file_category.as_deref().unwrap_or("detail"));
                outputs.push((
                    format!("closeups/{view}-{number:02}-{shot}.{extension}").into(),
                    blobs.get_bytes(key).await?.to_vec(),
                ));
            }
            FileType::Sketch => {
                outputs.push((
                    format!("sketches/{view}.{extension}").into(),
                    blobs.get_bytes(key).await?.to_vec(),
                ));
                if let Some(png) = file.metadata["png_key"].as_str() {
                    outputs.push((
                        format!("sketches/{view}.png").into(),
                        blobs.get_bytes(png).await?.to_vec(),
                    ));
                }
                outputs.push((
                    format!("sketches/{view}-callouts.json").into(),
                    pretty(&file.analysis_data)?,
                ));
            }
            FileType::CompletePack => {
                if Some(file.version) != newest_manifest {
                    continue;
                }
                outputs.push(("manifest.json".into(), blobs.get_bytes(key).await?.to_vec()));
            }
            FileType::Category => {
                let name = readable(file.file_category.as_deref().unwrap_or("category"));
                outputs.push((
                    format!("other/{name}.{extension}").into(),
                    blobs.get_bytes(key).await?.to_vec(),
                ));
            }
        }
        for (path, bytes) in outputs {
            let full = dir.join(&path);
            if let Some(parent) = full.parent() {
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(io(parent))?;
            }
            tokio::fs::write(&full, bytes).await.map_err(io(&full))?;
            report.files.push(ExportedFile {
                path,
                tech_file_id: file.id,
                version: file.version,
            });
        }
    }
    let listing = json!({
        "collection": pack.collection,
        "files": report.files,
        "skipped": report.skipped,
    });
    let path = dir.join("export.json");
    tokio::fs::write(&path, pretty(&listing)?)
        .await
        .map_err(io(&path))?;
    Ok(report)
}

fn pretty(value: &serde_json::Value) -> PipelineResult<Vec<u8>> {
    serde_json::to_vec_pretty(value).map_err(|error| PipelineError::Corrupt(error.to_string()))
}

/// A name safe in any file system: lower-case letters, digits, `-` and `_`.
fn readable(name: &str) -> String {
    let cleaned: String = name
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(60)
        .collect();
    if cleaned.is_empty() {
        "file".into()
    } else {
        cleaned
    }
}

fn extension(mime: Option<&str>) -> &'static str {
    match mime {
        Some("image/jpeg") => "jpg",
        Some("image/png") => "png",
        Some("image/webp") => "webp",
        Some("image/gif") => "gif",
        Some("image/svg+xml") => "svg",
        Some("application/json") => "json",
        Some("application/pdf") => "pdf",
        _ => "bin",
    }
}

/// The files of a pack by section, for display.
pub fn files_in_section<'a>(
    pack: &'a CollectionWithFiles,
    section: &'a str,
) -> impl Iterator<Item = &'a TechFile> + 'a {
    pack.items
        .iter()
        .filter(move |(item, _)| item.section.as_deref() == Some(section))
        .map(|(_, file)| file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_for_any_file_system() {
        assert_eq!(readable("Front Left/../x"), "front-left----x");
        assert_eq!(readable(""), "file");
        assert_eq!(extension(Some("image/svg+xml")), "svg");
    }
}
