//! `techpack`: make complete product tech packs from photos, and browse, version and manage
//! the stored files. Runs on the embedded defaults (a SQLite file and blobs in a local folder)
//! with no setup, or on PostgreSQL and S3 in production.

mod commands;
mod context;
mod output;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::context::GlobalOptions;

/// Make, version and manage product tech packs.
#[derive(Debug, Parser)]
#[command(name = "techpack", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    global: GlobalOptions,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply, inspect, verify or roll back the database schema.
    Migrate(commands::migrate::MigrateArgs),
    /// Stored tech files: list, show, versions, restore, archive, status.
    #[command(subcommand)]
    Files(commands::files::FilesCommand),
    /// Collections of files (e.g. complete tech packs).
    #[command(subcommand)]
    Collections(commands::collections::CollectionsCommand),
    /// Files, credits and counts of one product.
    Stats(commands::stats::StatsArgs),
    /// The monitoring report: recent files, credits by product, collection completion.
    Report,
    /// Delete blobs of files archived long ago, orphan blobs and abandoned uploads.
    Cleanup(commands::cleanup::CleanupArgs),
    /// Check that every file's blob exists with the recorded size and hash.
    Fsck,
    /// Analyse one product photo (colours, measurements, detail regions) without storing it.
    Analyze(commands::photo::PhotoArgs),
    /// Make close-up shots of one photo into a folder.
    Closeups(commands::photo::CloseupArgs),
    /// Draw a technical sketch (SVG, optionally PNG) of one photo.
    Sketch(commands::photo::SketchArgs),
    /// Make a complete tech pack from product photos (analyses, close-ups, sketches).
    Generate(commands::generate::GenerateArgs),
    /// Generation jobs: list, show, cancel.
    #[command(subcommand)]
    Jobs(commands::jobs::JobsCommand),
    /// Run queued generation jobs until stopped (start several, on any machines).
    Worker(commands::worker::WorkerArgs),
    /// Serve the HTTP API (with a worker for its jobs) until stopped.
    Serve(commands::serve::ServeArgs),
    /// Read back a tech pack (by collection or product) or export it to a folder.
    #[command(subcommand)]
    Pack(commands::pack::PackCommand),
    /// The legacy `revision_vision_analysis` table: backfill tech files from it.
    #[command(subcommand)]
    Legacy(commands::legacy::LegacyCommand),
}

/// The server answers every request with many small allocations (rows decoded into JSON
/// values and encoded again); the system allocator spent a fifth of its CPU time on them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    // One process-wide TLS provider: two linked providers make some TLS paths panic.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            init_logs(false);
            return argument_error(error);
        }
    };
    // A server's log is read by machines: one JSON object per line, requests included.
    init_logs(matches!(cli.command, Command::Serve(_)));
    survive_file_size_limits();
    let json = cli.global.json;
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => ExitCode::from(output::print_error(&error, json)),
    }
}

/// Logs to stderr at the `TECHPACK_LOG` filter: JSON lines at `info` for a server, text at
/// `warn` (colours on a terminal only) for everything else.
fn init_logs(server: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TECHPACK_LOG")
        .unwrap_or_else(|_| if server { "info" } else { "warn" }.into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if server {
        logs.json().with_current_span(true).init();
    } else {
        logs.with_ansi(std::io::stderr().is_terminal()).init();
    }
}

/// A write past the process's file-size limit (a quota, `ulimit -f`) kills the process with
/// SIGXFSZ by default, with no message and possibly a transaction open. With a handler
/// installed the write fails instead (EFBIG), and the error reaches the user as "storage full"
/// with everything already stored intact.
fn survive_file_size_limits() {
    #[cfg(unix)]
    {
        const SIGXFSZ: i32 = 25;
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut limit) = signal(SignalKind::from_raw(SIGXFSZ)) {
            tokio::spawn(async move {
                while limit.recv().await.is_some() {
                    tracing::warn!("a write went past the file-size limit");
                }
            });
        }
    }
}

/// A command line clap refused: help and version go to stdout as usual; a mistake is the
/// caller's (exit 2), printed as JSON when `--json` was given.
fn argument_error(error: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = error.print();
        return if error.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    if std::env::args().any(|arg| arg == "--json") {
        let message = error.kind().as_str().map_or_else(
            || error.to_string().trim().to_owned(),
            |kind| {
                let rendered = error.to_string();
                let first = rendered.lines().next().unwrap_or(kind).trim();
                first.strip_prefix("error: ").unwrap_or(first).to_owned()
            },
        );
        eprintln!(
            "{}",
            serde_json::json!({ "error": { "code": "invalid_input", "message": message } })
        );
        return ExitCode::from(2);
    }
    let _ = error.print();
    ExitCode::from(2)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let context = context::Context::new(cli.global)?;
    match cli.command {
        Command::Migrate(args) => commands::migrate::run(&context, args).await,
        Command::Files(command) => commands::files::run(&context, command).await,
        Command::Collections(command) => commands::collections::run(&context, command).await,
        Command::Stats(args) => commands::stats::run(&context, args).await,
        Command::Report => commands::stats::report(&context).await,
        Command::Cleanup(args) => commands::cleanup::run(&context, args).await,
        Command::Fsck => commands::fsck::run(&context).await,
        Command::Analyze(args) => commands::photo::analyze(&context, args).await,
        Command::Closeups(args) => commands::photo::closeups(&context, args).await,
        Command::Sketch(args) => commands::photo::sketch(&context, args).await,
        Command::Generate(args) => commands::generate::run(&context, args).await,
        Command::Jobs(command) => commands::jobs::run(&context, command).await,
        Command::Worker(args) => commands::worker::run(&context, args).await,
        Command::Serve(args) => commands::serve::run(&context, args).await,
        Command::Pack(command) => commands::pack::run(&context, command).await,
        Command::Legacy(command) => commands::legacy::run(&context, command).await,
    }
}
