//! `techpack cleanup`: delete the blobs of files archived long ago, orphan blobs and abandoned
//! uploads (see `techpack_housekeeping` for why this is safe while uploads run).

use clap::Args;
use techpack_housekeeping::{CleanupOptions, CleanupReport};

use crate::context::Context;
use crate::output::{print_json, print_table};

/// `techpack cleanup …`
#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// Delete the blobs of files archived longer ago than this (e.g. 30d, 12h, 90m, 2w).
    #[arg(long, value_parser = parse_age, default_value = "30d")]
    pub archived_older_than: chrono::Duration,
    /// Never delete a blob written more recently than this; orphans older than it go.
    #[arg(long, value_parser = parse_age, default_value = "24h")]
    pub orphan_grace: chrono::Duration,
    /// List what would be deleted and the bytes it would free; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Parses an age: a whole number followed by s, m, h, d or w (a bare 0 is allowed).
pub fn parse_age(text: &str) -> Result<chrono::Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(chrono::Duration::zero());
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: i64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not an age like 30d, 24h, 90m"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(format!("{text:?}: the unit must be s, m, h, d or w")),
    };
    number
        .checked_mul(seconds)
        .and_then(chrono::Duration::try_seconds)
        .ok_or_else(|| format!("{text:?} is too long"))
}

/// Runs `techpack cleanup`.
pub async fn run(context: &Context, args: CleanupArgs) -> anyhow::Result<()> {
    let app = context.app().await?;
    let store = app.store();
    let blobs = app.blobs().clone();
    let options = CleanupOptions {
        archived_older_than: args.archived_older_than,
        orphan_grace: args.orphan_grace,
        dry_run: args.dry_run,
        now: chrono::Utc::now(),
    };
    let report = techpack_housekeeping::cleanup(store.as_ref(), &blobs, &options).await?;
    if context.json {
        print_json(&report)?;
    } else {
        print_report(&report);
    }
    if !report.failed.is_empty() {
        return Err(techpack_app::AppError::Incomplete(format!(
            "{} blob(s) could not be deleted; run cleanup again",
            report.failed.len()
        ))
        .into());
    }
    Ok(())
}

fn print_report(report: &CleanupReport) {
    if !report.deleted.is_empty() {
        let rows: Vec<Vec<String>> = report
            .deleted
            .iter()
            .map(|item| {
                vec![
                    item.reason.to_string(),
                    item.size.to_string(),
                    item.last_modified.format("%Y-%m-%d %H:%M:%S").to_string(),
                    item.key.clone(),
                ]
            })
            .collect();
        print_table(&["REASON", "BYTES", "WRITTEN", "KEY"], &rows, "");
    }
    for failure in &report.failed {
        println!("failed   {}: {}", failure.key, failure.error);
    }
    let verb = if report.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    println!(
        "{verb} {} blob(s), {} freed; scanned {}, kept {} referenced and {} recent, kept {} that became referenced while cleanup ran, left {} unknown key(s){}",
        report.deleted.len(),
        human_bytes(report.bytes_freed),
        report.scanned,
        report.kept_referenced,
        report.kept_recent,
        report.spared,
        report.unknown_keys,
        if report.failed.is_empty() {
            String::new()
        } else {
            format!(", {} failed", report.failed.len())
        },
    );
}

/// Bytes in the largest unit that keeps a whole number in front.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {} ({bytes} bytes)", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_parse() {
        assert_eq!(parse_age("30d"), Ok(chrono::Duration::days(30)));
        assert_eq!(parse_age("24h"), Ok(chrono::Duration::hours(24)));
        assert_eq!(parse_age("90m"), Ok(chrono::Duration::minutes(90)));
        assert_eq!(parse_age("2w"), Ok(chrono::Duration::weeks(2)));
        assert_eq!(parse_age("0"), Ok(chrono::Duration::zero()));
        assert!(parse_age("d").is_err());
        assert!(parse_age("3y").is_err());
        assert!(parse_age("-3d").is_err());
    }
}
