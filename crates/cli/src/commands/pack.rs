//! `techpack pack show` (the specification's getExistingTechPack) and `techpack pack export`.

use std::path::PathBuf;

use clap::Subcommand;
use techpack_pipeline::export_tech_pack;

use crate::context::Context;
use crate::output::{or_dash, print_json, print_table};

/// `techpack pack …`
#[derive(Debug, Subcommand)]
pub enum PackCommand {
    /// A tech pack with its files by section: a collection id, or a product (UUID or name)
    /// for its newest pack.
    Show {
        /// Collection id, product id or product name.
        reference: String,
    },
    /// Writes a pack's files to a folder with readable names, plus its manifest.
    Export {
        /// Collection id, product id or product name (its newest pack).
        reference: String,
        /// The folder to write (created if missing; refused if not empty, unless --force).
        #[arg(short, long)]
        output: PathBuf,
        /// Replace what the folder holds (the new export is swapped in whole).
        #[arg(long)]
        force: bool,
    },
}

/// Runs `techpack pack`.
pub async fn run(context: &Context, command: PackCommand) -> anyhow::Result<()> {
    let app = context.app().await?;
    let store = app.store();
    match command {
        PackCommand::Show { reference } => {
            // A UUID is tried as a collection first, then as a product; a name is a product.
            let pack = app.find_pack(context.user_id(), &reference).await?;
            if context.json {
                return print_json(&pack);
            }
            let c = &pack.collection;
            println!("{} — {} ({})", c.name, c.id, c.collection_type);
            println!(
                "product {}  status {}  {}% complete  {} credit(s)  batch {}",
                c.product_idea_id,
                c.status,
                c.completion_percentage,
                c.total_credits,
                or_dash(c.generation_batch_id)
            );
            let rows: Vec<Vec<String>> = pack
                .items
                .iter()
                .map(|(item, file)| {
                    vec![
                        or_dash(item.section.clone()),
                        or_dash(file.view_type.clone()),
                        file.file_type.to_string(),
                        or_dash(file.file_category.clone()),
                        format!("v{}", file.version),
                        file.status.to_string(),
                        file.credits_used.to_string(),
                        file.id.to_string(),
                        or_dash(file.error_message.clone()),
                    ]
                })
                .collect();
            print_table(
                &[
                    "SECTION", "VIEW", "TYPE", "SHOT", "VERSION", "STATUS", "CREDITS", "FILE",
                    "ERROR",
                ],
                &rows,
                "the pack has no files",
            );
            Ok(())
        }
        PackCommand::Export {
            reference,
            output,
            force,
        } => {
            let collection = app
                .find_pack(context.user_id(), &reference)
                .await?
                .collection
                .id;
            let blobs = app.blobs();
            let report = export_tech_pack(
                store.as_ref(),
                blobs,
                app.principal(),
                collection,
                &output,
                force,
            )
            .await?;
            if context.json {
                return print_json(&report);
            }
            for file in &report.files {
                println!("{}", output.join(&file.path).display());
            }
            println!(
                "{} file(s) written to {}",
                report.files.len(),
                output.display()
            );
            if !report.skipped.is_empty() {
                println!(
                    "{} file(s) of the pack have no content (failed or processing)",
                    report.skipped.len()
                );
            }
            Ok(())
        }
    }
}
