//! `techpack collections`: list and show.

use clap::Subcommand;
use uuid::Uuid;

use crate::context::Context;
use crate::output::{or_dash, print_json, print_table};

/// `techpack collections …`
#[derive(Debug, Subcommand)]
pub enum CollectionsCommand {
    /// Collections, newest first.
    List {
        /// Only this product (a UUID or a product name).
        #[arg(long)]
        product: Option<String>,
    },
    /// One collection with its files in display order.
    Show {
        /// The collection's id.
        id: Uuid,
    },
}

/// Runs `techpack collections …`.
pub async fn run(context: &Context, command: CollectionsCommand) -> anyhow::Result<()> {
    let app = context.app().await?;
    let store = app.store();
    let me = app.principal();
    match command {
        CollectionsCommand::List { product } => {
            let product = product
                .as_deref()
                .map(|p| techpack_app::products::product_id(context.user_id(), p));
            let collections = store.list_collections(me, product).await?;
            if context.json {
                return print_json(&collections);
            }
            let rows: Vec<Vec<String>> = collections
                .iter()
                .map(|c| {
                    vec![
                        c.id.to_string(),
                        c.name.clone(),
                        c.collection_type.to_string(),
                        c.status.to_string(),
                        format!("{}%", c.completion_percentage),
                        c.total_credits.to_string(),
                        c.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                    ]
                })
                .collect();
            print_table(
                &["ID", "NAME", "TYPE", "STATUS", "DONE", "CREDITS", "CREATED"],
                &rows,
                "no collections",
            );
        }
        CollectionsCommand::Show { id } => {
            let full = store.get_collection_with_files(me, id).await?;
            if context.json {
                return print_json(&full);
            }
            let c = &full.collection;
            println!("{} — {} ({})", c.name, c.status, c.collection_type);
            println!(
                "id {}  product {}  {}% done  {} credits",
                c.id, c.product_idea_id, c.completion_percentage, c.total_credits
            );
            let rows: Vec<Vec<String>> = full
                .items
                .iter()
                .map(|(item, file)| {
                    vec![
                        item.display_order.to_string(),
                        or_dash(item.section.as_ref()),
                        file.file_type.to_string(),
                        or_dash(file.view_type.as_ref()),
                        or_dash(file.file_category.as_ref()),
                        file.status.to_string(),
                        format!("v{}", file.version),
                        file.credits_used.to_string(),
                        file.id.to_string(),
                    ]
                })
                .collect();
            print_table(
                &[
                    "#", "SECTION", "TYPE", "VIEW", "CATEGORY", "STATUS", "VERSION", "CREDITS",
                    "FILE",
                ],
                &rows,
                "the collection holds no files",
            );
        }
    }
    Ok(())
}
