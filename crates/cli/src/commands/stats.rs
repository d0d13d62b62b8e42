//! `techpack stats PRODUCT` and `techpack report`.

use clap::Args;

use crate::context::Context;
use crate::output::{print_json, print_table};

/// Arguments of `techpack stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// The product (a UUID or a product name).
    product: String,
}

/// Runs `techpack stats`.
pub async fn run(context: &Context, args: StatsArgs) -> anyhow::Result<()> {
    let app = context.app().await?;
    let store = app.store();
    let product = techpack_app::products::product_id(context.user_id(), &args.product);
    let stats = store
        .get_product_generation_stats(app.principal(), product)
        .await?;
    if context.json {
        return print_json(&stats);
    }
    println!("product {}", stats.product_idea_id);
    println!(
        "files {} ({} latest), credits used {}",
        stats.total_files, stats.latest_files, stats.total_credits_used
    );
    for (label, counts) in [
        ("by type", &stats.files_by_type),
        ("by status", &stats.files_by_status),
    ] {
        let parts: Vec<String> = counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!(
            "{label}: {}",
            if parts.is_empty() {
                "-".into()
            } else {
                parts.join(", ")
            }
        );
    }
    Ok(())
}

/// Runs `techpack report`.
pub async fn report(context: &Context) -> anyhow::Result<()> {
    let app = context.app().await?;
    let store = app.store();
    let report = store.monitoring_report(app.principal()).await?;
    if context.json {
        return print_json(&report);
    }
    println!("Files created in the last 24 hours");
    let rows: Vec<Vec<String>> = report
        .recent_files
        .iter()
        .map(|r| vec![r.file_type.clone(), r.status.clone(), r.count.to_string()])
        .collect();
    print_table(
        &["TYPE", "STATUS", "COUNT"],
        &rows,
        "  no files in the last 24 hours",
    );
    println!("\nCredits by product, last 7 days");
    let rows: Vec<Vec<String>> = report
        .credits_by_product
        .iter()
        .map(|r| {
            vec![
                r.product_idea_id.to_string(),
                r.total_credits.to_string(),
                r.file_count.to_string(),
            ]
        })
        .collect();
    print_table(
        &["PRODUCT", "CREDITS", "FILES"],
        &rows,
        "  no credits in the last 7 days",
    );
    println!("\nCollection completion");
    let rows: Vec<Vec<String>> = report
        .collection_completion
        .iter()
        .map(|r| {
            vec![
                r.status.clone(),
                format!("{:.1}%", r.avg_completion),
                r.count.to_string(),
            ]
        })
        .collect();
    print_table(&["STATUS", "AVG DONE", "COUNT"], &rows, "  no collections");
    Ok(())
}
