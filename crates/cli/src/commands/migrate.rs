//! `techpack migrate`: up (default), status, verify, down.

use std::io::{BufRead, IsTerminal, Write};

use clap::{Args, ValueEnum};

use techpack_app::{AppError, redact_url};

use crate::context::Context;
use crate::output::{print_json, print_table};

/// Arguments of `techpack migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// What to do.
    #[arg(value_enum, default_value = "up")]
    action: MigrateAction,
    /// Roll back without asking (with `down`).
    #[arg(long)]
    yes: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum MigrateAction {
    /// Apply pending migrations (a no-op when none are pending).
    Up,
    /// List migrations and whether each is applied.
    Status,
    /// Check that every table, index, trigger, function and policy exists.
    Verify,
    /// Drop techpack's tables and functions (every migration undone, newest first). Asks first.
    Down,
}

/// Runs `techpack migrate`.
pub async fn run(context: &Context, args: MigrateArgs) -> anyhow::Result<()> {
    let store = context.raw_store().await?;
    match args.action {
        MigrateAction::Up => {
            let applied = store.migrate_up().await?;
            if context.json {
                print_json(&serde_json::json!({ "applied": applied }))?;
            } else if applied.is_empty() {
                println!(
                    "schema up to date ({})",
                    redact_url(&context.settings.database_url())
                );
            } else {
                println!(
                    "applied {} migration(s) to {}: {:?}",
                    applied.len(),
                    redact_url(&context.settings.database_url()),
                    applied
                );
            }
        }
        MigrateAction::Status => {
            let status = store.migration_status().await?;
            if context.json {
                print_json(&status)?;
            } else {
                let rows: Vec<Vec<String>> = status
                    .iter()
                    .map(|m| {
                        vec![
                            m.version.to_string(),
                            m.description.clone(),
                            if m.applied { "applied" } else { "pending" }.into(),
                        ]
                    })
                    .collect();
                print_table(&["VERSION", "DESCRIPTION", "STATE"], &rows, "no migrations");
            }
        }
        MigrateAction::Verify => {
            let report = store.verify_schema().await?;
            if context.json {
                print_json(&report)?;
            } else if report.is_complete() {
                println!("schema complete: {} objects checked", report.checked);
            } else {
                println!(
                    "schema incomplete: {} of {} objects missing",
                    report.missing.len(),
                    report.checked
                );
                for missing in &report.missing {
                    println!("  missing {missing}");
                }
            }
            if !report.is_complete() {
                return Err(AppError::Config(
                    "the schema is incomplete: run `techpack migrate` (after `migrate down` if it is damaged)".into(),
                )
                .into());
            }
        }
        MigrateAction::Down => {
            if !args.yes
                && !confirm(&format!(
                    "This drops every techpack table, with all files' metadata, from {}. Type 'yes' to go on: ",
                    redact_url(&context.settings.database_url())
                ))?
            {
                return Err(AppError::Cancelled(
                    "rollback not confirmed; nothing was dropped (pass --yes to skip the question)"
                        .into(),
                )
                .into());
            }
            let reverted = store.migrate_down().await?;
            if context.json {
                print_json(&serde_json::json!({ "reverted": reverted }))?;
            } else {
                println!("reverted {} migration(s)", reverted.len());
            }
        }
    }
    Ok(())
}

fn confirm(question: &str) -> anyhow::Result<bool> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(AppError::Invalid(
            "`migrate down` needs confirmation: pass --yes when not running in a terminal".into(),
        )
        .into());
    }
    eprint!("{question}");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}
