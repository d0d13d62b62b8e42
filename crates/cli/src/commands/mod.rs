//! One module per command group.

pub mod cleanup;
pub mod collections;
pub mod files;
pub mod fsck;
pub mod generate;
pub mod jobs;
pub mod legacy;
pub mod migrate;
pub mod pack;
pub mod photo;
pub mod serve;
pub mod stats;
pub mod worker;

/// A duration given in seconds on the command line (`--lease-secs 1.5`): positive, at most a
/// day, at least `min` seconds.
pub fn seconds(value: f64, flag: &str, min: f64) -> anyhow::Result<std::time::Duration> {
    if !value.is_finite() || !(min..=86_400.0).contains(&value) {
        return Err(techpack_app::AppError::Invalid(format!(
            "{flag} must be between {min} and 86400 seconds (got {value})"
        ))
        .into());
    }
    Ok(std::time::Duration::from_secs_f64(value))
}

/// Cancels `shutdown` on SIGTERM (a deploy, `kill`) or Ctrl-C, saying `message` first, so
/// long-running commands stop gracefully.
pub async fn stop_on_signals(
    shutdown: techpack_pipeline::CancellationToken,
    message: &'static str,
) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
    eprintln!("{message}");
    shutdown.cancel();
}
