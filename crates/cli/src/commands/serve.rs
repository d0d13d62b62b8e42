//! `techpack serve`: the HTTP API (and, unless `--workers 0`, a worker running its jobs) until
//! SIGTERM or Ctrl-C.

use anyhow::Context as _;
use clap::Args;
use techpack_pipeline::CancellationToken;
use techpack_server::{ServeOptions, Server, ServerConfig};

use crate::context::Context;

/// Arguments of `techpack serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on [default: the `server.listen` setting, 127.0.0.1:8080].
    /// Anything but loopback needs a JWT secret (TECHPACK_JWT_SECRET) or a JWKS.
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Jobs this process runs at once; 0 leaves every job to `techpack worker` processes
    /// [default: the `server.workers` setting, 2].
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
}

/// Runs `techpack serve` until SIGTERM or Ctrl-C.
pub async fn run(context: &Context, args: ServeArgs) -> anyhow::Result<()> {
    let options = ServeOptions {
        listen: args.listen,
        workers: args.workers,
    };
    let config = ServerConfig::from_settings(&context.settings, &options)?;
    let workers = config.workers;
    let app = context.app().await?;
    let server = Server::bind(app, config).await?;
    let address = server.local_addr()?;
    eprintln!(
        "serving http://{address}: the API under /api/v1, its documentation at http://{address}/docs; {} (SIGTERM or Ctrl-C stops it)",
        if workers == 0 {
            "jobs are left to `techpack worker` processes".to_owned()
        } else {
            format!("running up to {workers} job(s) here")
        }
    );
    let shutdown = CancellationToken::new();
    tokio::spawn(super::stop_on_signals(
        shutdown.clone(),
        "stopping: no new connections; requests in flight finish, event streams end and running jobs go back to the queue",
    ));
    server.serve(shutdown).await.context("serving")?;
    eprintln!("stopped");
    Ok(())
}
