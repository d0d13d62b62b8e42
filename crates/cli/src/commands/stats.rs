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
    let store = context.store().await?;
    let product = super::files::product_id(context, &args.product);
    let stats = store
        .get_product_generation_stats(context.principal(), product)
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
    let store = context.store().await?;
    let report = store.monitoring_report(context.principal()).await?;
    if context.json {
        return print_json(&report);
    }
    println!("Files created in the last 24 hours");
    let rows: Vec<Vec<String>> = report
        .recent_files
        .iter()
        .map(|r| vec![r.file_type.clone(), r.status.clone(), r.count.to_string()])
        .collect();
    print_table(&["TYPE", "STATUS", "COUNT"], &rows);
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
    print_table(&["PRODUCT", "CREDITS", "FILES"], &rows);
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
    print_table(&["STATUS", "AVG DONE", "COUNT"], &rows);
    Ok(())
}
