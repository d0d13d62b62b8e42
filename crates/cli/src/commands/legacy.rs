//! `techpack legacy import`: backfill `tech_files` from the legacy analysis table.

use clap::Subcommand;
use techpack_pipeline::import_legacy_analyses;

use crate::context::Context;
use crate::output::print_json;

/// `techpack legacy …`
#[derive(Debug, Subcommand)]
pub enum LegacyCommand {
    /// Copies every `revision_vision_analysis` row into `tech_files` as a base-view file;
    /// safe to run again (each row is copied once).
    Import,
}

/// Runs `techpack legacy`.
pub async fn run(context: &Context, command: LegacyCommand) -> anyhow::Result<()> {
    let app = context.app().await?;
    let store = app.store();
    match command {
        LegacyCommand::Import => {
            let report = import_legacy_analyses(store.as_ref(), app.principal()).await?;
            if context.json {
                return print_json(&report);
            }
            println!(
                "{} legacy row(s): {} imported, {} already imported, {} skipped (mirrors of tech files)",
                report.scanned, report.imported, report.already_imported, report.mirrors_skipped
            );
            Ok(())
        }
    }
}
