//! Reading a pack back: the specification's `getExistingTechPack`, and an export to a folder a person
//! can open.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::json;
use techpack_blobs::BlobStore;
use techpack_model::{
    CollectionType, CollectionWithFiles, FileStatus, FileType, Principal, TechFile,
};
use techpack_store::{BlobSource, StoreError, TechFileStore};
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
/// as `export.json`. The blobs written are the ones the database records each file needs (the
/// same set cleanup keeps and fsck checks). A folder that exists and is not empty is refused
/// unless `replace`; then its contents are replaced as a whole (the new export is written
/// beside it first and swapped in), so no file of an older export stays behind.
pub async fn export_tech_pack(
    store: &dyn TechFileStore,
    blobs: &BlobStore,
    principal: Principal,
    collection_id: Uuid,
    dir: &Path,
    replace: bool,
) -> PipelineResult<ExportReport> {
    let pack = store
        .get_collection_with_files(principal, collection_id)
        .await?;
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| PipelineError::Io { path, source }
    };
    let occupied = match tokio::fs::read_dir(dir).await {
        Ok(mut entries) => entries.next_entry().await.map_err(io(dir))?.is_some(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => false,
        Err(error) => return Err(io(dir)(error)),
    };
    if occupied && !replace {
        return Err(PipelineError::InvalidRequest(format!(
            "{} is not empty: choose an empty or new folder, or pass --force to replace what is in it",
            dir.display()
        )));
    }
    let name = dir
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("export");
    let parent = dir
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    tokio::fs::create_dir_all(parent)
        .await
        .map_err(io(parent))?;
    let staging = parent.join(format!(".{name}.export-{}", Uuid::new_v4()));
    let written = write_export(store, blobs, principal, &pack, &staging).await;
    let mut report = match written {
        Ok(report) => report,
        Err(error) => {
            let _ = tokio::fs::remove_dir_all(&staging).await;
            return Err(error);
        }
    };
    // Swap the finished export in: a failure before this point leaves the folder as it was.
    if occupied {
        let old = parent.join(format!(".{name}.replaced-{}", Uuid::new_v4()));
        tokio::fs::rename(dir, &old).await.map_err(io(dir))?;
        tokio::fs::rename(&staging, dir).await.map_err(io(dir))?;
        let _ = tokio::fs::remove_dir_all(&old).await;
    } else {
        let _ = tokio::fs::remove_dir(dir).await;
        tokio::fs::rename(&staging, dir).await.map_err(io(dir))?;
    }
    report.dir = dir.to_path_buf();
    Ok(report)
}

/// Writes the export into `dir` (a fresh folder).
async fn write_export(
    store: &dyn TechFileStore,
    blobs: &BlobStore,
    principal: Principal,
    pack: &CollectionWithFiles,
    dir: &Path,
) -> PipelineResult<ExportReport> {
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
    let ids: Vec<Uuid> = pack.items.iter().map(|(_, file)| file.id).collect();
    let mut needed: HashMap<(Uuid, String), String> = HashMap::new();
    for reference in store
        .blob_references_of(principal, BlobSource::TechFile, &ids)
        .await?
    {
        needed.insert((reference.source_id, reference.name), reference.blob_key);
    }
    let blob_of = |file: &TechFile, name: &str| needed.get(&(file.id, name.to_owned())).cloned();
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
        let Some(key) = blob_of(file, "content").filter(|_| file.status == FileStatus::Completed)
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
                    blobs.get_bytes(&key).await?.to_vec(),
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
                    blobs.get_bytes(&key).await?.to_vec(),
                ));
            }
            FileType::Sketch => {
                outputs.push((
                    format!("sketches/{view}.{extension}").into(),
                    blobs.get_bytes(&key).await?.to_vec(),
                ));
                if let Some(png) = blob_of(file, "png") {
                    outputs.push((
                        format!("sketches/{view}.png").into(),
                        blobs.get_bytes(&png).await?.to_vec(),
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
                outputs.push((
                    "manifest.json".into(),
                    blobs.get_bytes(&key).await?.to_vec(),
                ));
            }
            FileType::Category => {
                let name = readable(file.file_category.as_deref().unwrap_or("category"));
                outputs.push((
                    format!("other/{name}.{extension}").into(),
                    blobs.get_bytes(&key).await?.to_vec(),
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
