//! Helpers shared by the admin crate's integration tests.

use std::time::{Duration, Instant};

/// Polls `f` every 20 ms until it yields a value; fails the test after `timeout`.
pub(crate) async fn wait_for<T, F>(what: &str, timeout: Duration, mut f: impl FnMut() -> F) -> T
where
    F: std::future::Future<Output = Option<T>>,
{
    let t0 = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
