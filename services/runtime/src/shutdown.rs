//! Shutdown: SIGTERM or Ctrl-C cancels one `CancellationToken` that every part of a service
//! watches. Services take the token as a parameter (`run(.., shutdown)`), so tests trigger
//! shutdown themselves instead of sending signals.

use std::time::Duration;

pub use tokio_util::sync::CancellationToken;

/// How long a service may drain (finish in-flight requests, stop children) after the signal.
pub const GRACE_PERIOD: Duration = Duration::from_secs(10);

/// A token cancelled on the first SIGTERM or Ctrl-C. A second signal exits at once.
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown signal received; draining (send it again to exit at once)");
        trigger.cancel();
        wait_for_signal().await;
        tracing::warn!("second shutdown signal: exiting now");
        std::process::exit(130);
    });
    token
}

async fn wait_for_signal() {
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
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the service");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
