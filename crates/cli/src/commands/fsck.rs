//! `techpack fsck`: check that every blob a row needs exists with the recorded size and hash.

use crate::context::Context;
use crate::output::{print_json, print_table};

/// Runs `techpack fsck`; fails (exit status 1) when any blob is missing or differs.
pub async fn run(context: &Context) -> anyhow::Result<()> {
    let app = context.app().await?;
    let store = app.store();
    let blobs = app.blobs().clone();
    let report = techpack_housekeeping::fsck(store.as_ref(), &blobs).await?;
    if context.json {
        print_json(&report)?;
    } else {
        if !report.findings.is_empty() {
            let rows: Vec<Vec<String>> = report
                .findings
                .iter()
                .map(|finding| {
                    vec![
                        format!("{} {}", finding.source, finding.file_id),
                        finding.name.clone(),
                        finding.key.clone(),
                        finding.problem.to_string(),
                    ]
                })
                .collect();
            print_table(&["ROW", "BLOB", "KEY", "PROBLEM"], &rows, "");
        }
        println!(
            "checked {} reference(s), {} blob(s), {} bytes: {} problem(s)",
            report.rows_checked,
            report.blobs_checked,
            report.bytes_read,
            report.findings.len()
        );
    }
    if !report.is_clean() {
        return Err(techpack_app::AppError::Corrupt(format!(
            "fsck found {} blob(s) that a row needs missing or different from what the row recorded; regenerate the pack (`techpack generate` again) or restore the blobs from a backup",
            report.findings.len()
        ))
        .into());
    }
    Ok(())
}
