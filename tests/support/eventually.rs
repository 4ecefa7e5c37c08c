//! Waiting for what happens elsewhere: another task, a real socket, a child
//! process. Paused time cannot serve these tests (the engine's store and
//! servers run on threads and sockets tokio's clock does not see), so they
//! poll: [`eventually`] asks a check every [`POLL`] until it answers, and
//! panics naming what it waited for once [`PATIENCE`] has passed.
//! [`eventually_async`] does the same for a check that is itself a request.

use std::time::Duration;

/// How long a test waits for something before it fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// How often a check is asked again.
pub const POLL: Duration = Duration::from_millis(10);

/// What `check` gives once it gives something, asked every [`POLL`];
/// panics ("timed out waiting for `what`") after [`PATIENCE`].
pub async fn eventually<T>(what: &str, check: impl FnMut() -> Option<T>) -> T {
    eventually_within(PATIENCE, what, check).await
}

/// Waits until `done` holds, asked every [`POLL`]; panics after
/// [`PATIENCE`].
pub async fn until(what: &str, mut done: impl FnMut() -> bool) {
    eventually(what, || done().then_some(())).await;
}

/// [`eventually`] with a patience of its own.
pub async fn eventually_within<T>(
    patience: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    eventually_async_within(patience, what, async || check()).await
}

/// [`eventually`] for a check that awaits (an HTTP request, a browser).
pub async fn eventually_async<T>(what: &str, check: impl AsyncFnMut() -> Option<T>) -> T {
    eventually_async_within(PATIENCE, what, check).await
}

async fn eventually_async_within<T>(
    patience: Duration,
    what: &str,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let waiting = async {
        loop {
            if let Some(found) = check().await {
                return found;
            }
            tokio::time::sleep(POLL).await;
        }
    };
    match tokio::time::timeout(patience, waiting).await {
        Ok(found) => found,
        Err(_) => panic!("timed out after {patience:?} waiting for {what}"),
    }
}
