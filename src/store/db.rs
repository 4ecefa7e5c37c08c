//! Where the store's statements run: [`Db`].
//!
//! A SQLite database is one connection owned by a task. Callers send it
//! jobs over a bounded channel and it runs them one at a time, each
//! statement one hop to sqlx's SQLite thread. (Through sqlx's pool every
//! statement also paid a ping when the connection was acquired and another
//! when it went back, each a hop of its own, and a spawned task: three times
//! the cost of the statement on a zero-delay turn. SQLite takes one writer
//! at a time anyway, so a pool of one bought nothing.)
//!
//! Postgres runs on a pool: its connections serve statements in parallel.
//!
//! A job is a closure over `&mut AnyConnection`, so several statements (a
//! transaction too) can share one trip to the connection. A job runs to its
//! end even when its caller stops waiting: a connection is never left in
//! the middle of a statement.

use futures::future::BoxFuture;
use sqlx::{AnyConnection, AnyPool, Connection};
use tokio::sync::{mpsc, oneshot};

use super::StoreError;

/// Jobs waiting for the owned connection before callers wait too.
const QUEUE: usize = 1024;

/// A job's type-erased form, as the connection's task runs it.
type Work = Box<dyn for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, ()> + Send>;

/// The connections a [`Store`](super::Store) runs its statements on; clones
/// share them.
#[derive(Debug, Clone)]
pub(super) enum Db {
    /// A Postgres pool.
    Pool(AnyPool),
    /// One SQLite connection, owned by its task.
    Owned(OwnedConnection),
}

/// The handle on a connection's task: the task ends on [`Db::close`], or
/// when the last handle is dropped.
#[derive(Debug, Clone)]
pub(super) struct OwnedConnection {
    requests: mpsc::Sender<Request>,
}

enum Request {
    Run(Work),
    /// Close the connection, then answer.
    Close(oneshot::Sender<()>),
}

impl Db {
    /// Hands `conn` to a new task that runs jobs on it.
    pub(super) fn own(conn: AnyConnection) -> Db {
        let (requests, queue) = mpsc::channel(QUEUE);
        tokio::spawn(serve(conn, queue));
        Db::Owned(OwnedConnection { requests })
    }

    /// Runs `job` on a connection and returns what it returned. Fails with
    /// [`StoreError::Closed`] once the store is closed.
    pub(super) async fn run<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<T, sqlx::Error>>
            + Send
            + 'static,
    {
        let started = std::time::Instant::now();
        let result = self.run_job(job).await;
        crate::metrics::store_statement(started.elapsed());
        result
    }

    async fn run_job<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<T, sqlx::Error>>
            + Send
            + 'static,
    {
        match self {
            Db::Pool(pool) => {
                let mut conn = pool.acquire().await?;
                Ok(job(&mut conn).await?)
            }
            Db::Owned(owned) => {
                let (answer, answered) = oneshot::channel();
                let work = erase(move |conn| {
                    Box::pin(async move {
                        // The caller may have stopped waiting: nothing to do.
                        let _ = answer.send(job(conn).await);
                    })
                });
                owned
                    .requests
                    .send(Request::Run(work))
                    .await
                    .map_err(|_| StoreError::Closed)?;
                Ok(answered.await.map_err(|_| StoreError::Closed)??)
            }
        }
    }

    /// Closes the connections once the jobs already queued have run. Later
    /// calls fail with [`StoreError::Closed`].
    pub(super) async fn close(&self) {
        match self {
            Db::Pool(pool) => pool.close().await,
            Db::Owned(owned) => {
                let (done, closed) = oneshot::channel();
                if owned.requests.send(Request::Close(done)).await.is_ok() {
                    let _ = closed.await;
                }
            }
        }
    }

    /// Whether [`Db::close`] has run.
    pub(super) fn is_closed(&self) -> bool {
        match self {
            Db::Pool(pool) => pool.is_closed(),
            Db::Owned(owned) => owned.requests.is_closed(),
        }
    }
}

/// Gives a closure the job signature (a closure passed straight to a
/// function with this bound gets its higher-ranked lifetime right).
fn erase<F>(work: F) -> Work
where
    F: for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, ()> + Send + 'static,
{
    Box::new(work)
}

/// The connection's task: runs jobs in the order they came until closed or
/// until every handle is gone, then closes the connection (the last SQLite
/// connection to close checkpoints the write-ahead log).
async fn serve(mut conn: AnyConnection, mut queue: mpsc::Receiver<Request>) {
    let mut closed = None;
    while let Some(request) = queue.recv().await {
        match request {
            Request::Run(work) => work(&mut conn).await,
            Request::Close(done) => {
                closed = Some(done);
                break;
            }
        }
    }
    // Jobs still queued are dropped: their callers get `Closed`.
    queue.close();
    if let Err(e) = conn.close().await {
        tracing::warn!(error = %e, "closing the database connection failed");
    }
    if let Some(done) = closed {
        let _ = done.send(());
    }
}
