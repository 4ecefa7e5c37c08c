//! The real `baton::app::run` in a task, as a platform test drives it.

use std::time::Duration;

use baton::config::Config;
use tokio::sync::oneshot;

/// `baton run` in a task, stopped by [`App::stop`].
pub struct App {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), baton::app::StartError>>,
}

impl App {
    /// Runs the service with `config` until [`App::stop`].
    pub fn spawn(config: Config) -> App {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(baton::app::run(config, async move {
            let _ = stopped.await;
        }));
        App {
            stop: Some(stop),
            task,
        }
    }

    /// Like [`App::spawn`], serving HTTP on `listener` (bound by the test).
    pub fn spawn_on(config: Config, listener: tokio::net::TcpListener) -> App {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(baton::app::run_on(config, Some(listener), async move {
            let _ = stopped.await;
        }));
        App {
            stop: Some(stop),
            task,
        }
    }

    /// Waits (up to 20 s) for the service to end by itself, as it does
    /// when it cannot start.
    pub async fn exit(self) -> Result<(), baton::app::StartError> {
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("baton ends by itself")
            .expect("the task did not panic")
    }

    /// Stops the service and waits for it.
    pub async fn stop(mut self) {
        drop(self.stop.take());
        tokio::time::timeout(Duration::from_secs(20), &mut self.task)
            .await
            .expect("baton stops")
            .expect("the task did not panic")
            .expect("baton ran without error");
    }
}
