//! Group commit for SQLite: the server's write transactions run on one writer thread, which takes
//! every transaction queued while it worked and commits them together.
//!
//! SQLite has one writer at a time anyway, so nothing is lost by serialising; what is won is that
//! a commit (WAL frames written and checksummed, the odd checkpoint) is paid once per batch rather
//! than once per request, and a request hands its work to a thread that is usually already awake
//! instead of waking a blocking-pool thread that then queues on the writer lock. Each transaction
//! runs in its own savepoint, so one that fails is rolled back alone; each is answered only after
//! the commit that made it durable. When the queue runs dry, the writer asks a thread of its own
//! to checkpoint the WAL, and goes on committing beside it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;

use diesel::connection::SimpleConnection;
use tokio::sync::oneshot;

use crate::StoreError;
use crate::db::{Conn, Db};
use crate::prepared::{self, BeginImmediate, Commit, ReleaseJob, Rollback, RollbackToJob, SavepointJob};

/// At most this many transactions share a commit, so one commit never holds up a request for long.
const MAX_BATCH: usize = 64;

/// Batches after which an idle writer has the WAL checkpointed (by the checkpoint thread), so
/// that checkpoints happen in the gaps between requests rather than inside a commit they wait on.
/// SQLite's automatic checkpoint (at 4,000 pages, `db.rs`) stays as the backstop for a writer
/// that is never idle.
const IDLE_CHECKPOINT_AFTER: usize = 200;

/// One queued write transaction, its result kept until the batch's commit is known.
trait Job: Send {
    /// Runs the work; true when it succeeded (its savepoint is then kept).
    fn run(&mut self, conn: &mut Conn) -> bool;
    /// Answers the caller: its own result, or the commit's failure.
    fn finish(self: Box<Self>, commit: Result<(), &StoreError>);
}

struct Pending<F, T> {
    work: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<F, T> Job for Pending<F, T>
where
    F: FnOnce(&mut Conn) -> Result<T, StoreError> + Send,
    T: Send,
{
    fn run(&mut self, conn: &mut Conn) -> bool {
        let Some(work) = self.work.take() else { return false };
        // A panicking transaction must not take the writer thread (and every later write) with it.
        let result = catch_unwind(AssertUnwindSafe(|| work(conn)))
            .unwrap_or_else(|_| Err(StoreError::Corrupt("a write transaction panicked".into())));
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, commit: Result<(), &StoreError>) {
        let result = match (self.result, commit) {
            (Some(Ok(_)), Err(e)) => Err(StoreError::Unavailable(format!("commit failed: {e}"))),
            (Some(result), _) => result.map_err(StoreError::or_unavailable),
            (None, Err(e)) => Err(StoreError::Unavailable(format!("transaction not started: {e}"))),
            (None, Ok(())) => Err(StoreError::Unavailable("transaction not run".into())),
        };
        // The caller may have gone (a dropped request); its work stands or falls with the batch.
        let _ = self.reply.send(result);
    }
}

/// The queue in front of the writer thread; cheap to clone.
#[derive(Clone)]
pub(crate) struct GroupWriter {
    queue: mpsc::Sender<Box<dyn Job>>,
}

impl GroupWriter {
    /// Starts the writer thread; it ends when the last handle is dropped.
    pub(crate) fn start(db: Db) -> std::io::Result<GroupWriter> {
        let (queue, jobs) = mpsc::channel::<Box<dyn Job>>();
        let checkpoints = start_checkpointer(db.clone())?;
        std::thread::Builder::new().name("ladder-writer".into()).spawn(move || {
            let mut since_checkpoint = 0;
            loop {
                let first = match jobs.try_recv() {
                    Ok(job) => job,
                    Err(mpsc::TryRecvError::Disconnected) => break,
                    Err(mpsc::TryRecvError::Empty) => {
                        if since_checkpoint >= IDLE_CHECKPOINT_AFTER {
                            // Full: one is already waiting to run.
                            let _ = checkpoints.try_send(());
                            since_checkpoint = 0;
                        }
                        match jobs.recv() {
                            Ok(job) => job,
                            Err(_) => break,
                        }
                    }
                };
                since_checkpoint += 1;
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match jobs.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                commit_batch(&db, batch);
            }
        })?;
        Ok(GroupWriter { queue })
    }

    /// Queues `f` as one write transaction; resolves once it is committed (or has failed).
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut Conn) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Pending { work: Some(f), result: None, reply });
        self.queue.send(job).map_err(|_| StoreError::Unavailable("the database writer has stopped".into()))?;
        answer.await.map_err(|_| StoreError::Unavailable("the database writer has stopped".into()))?
    }

    /// Queues `f` for the next batch and returns at once: nobody waits on it, and a failure is
    /// logged.
    pub(crate) fn queue(&self, f: impl FnOnce(&mut Conn) -> Result<(), StoreError> + Send + 'static) {
        let (reply, _) = oneshot::channel();
        let work = move |conn: &mut Conn| f(conn).inspect_err(|e| tracing::warn!(error = %e, "a background write failed"));
        if self.queue.send(Box::new(Pending { work: Some(work), result: None, reply })).is_err() {
            tracing::warn!("the database writer has stopped; a background write was dropped");
        }
    }
}

/// Checkpoints on a thread of its own, so that copying the WAL into the database and its two
/// `fsync`s (up to 18 ms each on a busy disk) no longer hold up the writes queued meanwhile. A
/// passive checkpoint takes SQLite's checkpoint lock, not its write lock: the writer commits
/// beside it. Ends with the writer thread (its sender).
fn start_checkpointer(db: Db) -> std::io::Result<mpsc::SyncSender<()>> {
    let (requests, requested) = mpsc::sync_channel::<()>(1);
    std::thread::Builder::new().name("ladder-checkpoint".into()).spawn(move || {
        while requested.recv().is_ok() {
            checkpoint(&db);
        }
    })?;
    Ok(requests)
}

/// Copies what it can of the WAL into the database without waiting for readers (`PASSIVE`).
fn checkpoint(db: &Db) {
    // On a pooled connection of its own, outside the writer's lock.
    if let Err(e) = db.read(|conn| Ok(conn.batch_execute("PRAGMA wal_checkpoint(PASSIVE)")?)) {
        tracing::warn!(error = %e, "WAL checkpoint failed; SQLite's automatic one will follow");
    }
}

/// Runs a batch in one transaction, each job in its own savepoint when it shares the transaction.
fn commit_batch(db: &Db, mut batch: Vec<Box<dyn Job>>) {
    let outcome = db.with_write_lock(|conn| {
        prepared::run::<BeginImmediate>(conn)?;
        let done = run_and_commit(conn, &mut batch);
        if done.is_err() {
            // Never hand the pool a connection still inside a transaction.
            let _ = prepared::run::<Rollback>(conn);
        }
        done
    });
    for job in batch {
        job.finish(outcome.as_ref().map(|_| ()));
    }
}

fn run_and_commit(conn: &mut Conn, batch: &mut [Box<dyn Job>]) -> Result<(), StoreError> {
    if let [only] = batch {
        // Alone: its failure rolls back the whole transaction, no savepoint needed.
        if !only.run(conn) {
            return Ok(prepared::run::<Rollback>(conn)?);
        }
    } else {
        for job in batch.iter_mut() {
            prepared::run::<SavepointJob>(conn)?;
            if !job.run(conn) {
                prepared::run::<RollbackToJob>(conn)?;
            }
            prepared::run::<ReleaseJob>(conn)?;
        }
    }
    Ok(prepared::run::<Commit>(conn)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::users::{User, count_users, find_user_by_username, insert_user};

    fn user(name: &str) -> User {
        User::for_test(&format!("id-{name}"), name)
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    #[test]
    fn concurrent_transactions_all_commit() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::migrated_in(&dir, 4);
        runtime().block_on(async {
            let writes: Vec<_> = (0..200)
                .map(|i| {
                    let db = db.clone();
                    tokio::spawn(async move {
                        db.write_async(move |conn| insert_user(conn, &user(&format!("u{i}")))).await
                    })
                })
                .collect();
            for write in writes {
                write.await.unwrap().unwrap();
            }
        });
        assert_eq!(db.read(count_users).unwrap(), 200);
    }

    #[test]
    fn a_failing_transaction_is_rolled_back_alone_and_told_why() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::migrated_in(&dir, 4);
        let rt = runtime();
        // Hold the write lock so the writer thread stalls on its first batch while the next two
        // queue behind it: they then share one transaction.
        let lock = db.writer.lock().unwrap();
        let first = rt.spawn({
            let db = db.clone();
            async move { db.write_async(|conn| insert_user(conn, &user("first"))).await }
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        let failing = rt.spawn({
            let db = db.clone();
            async move {
                db.write_async(|conn| {
                    insert_user(conn, &user("written-then-failed"))?;
                    Err::<(), _>(StoreError::Conflict("refused after writing".into()))
                })
                .await
            }
        });
        let other = rt.spawn({
            let db = db.clone();
            async move { db.write_async(|conn| insert_user(conn, &user("kept"))).await }
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        drop(lock);
        rt.block_on(async {
            first.await.unwrap().unwrap();
            assert!(matches!(failing.await.unwrap(), Err(StoreError::Conflict(m)) if m == "refused after writing"));
            other.await.unwrap().unwrap();
        });
        let find = |name: &'static str| db.read(move |conn| find_user_by_username(conn, name)).unwrap();
        assert!(find("first").is_some());
        assert!(find("kept").is_some(), "a neighbour's failure must not undo this transaction");
        assert!(find("written-then-failed").is_none(), "a failed transaction's writes must be rolled back");
    }

    #[test]
    fn a_panicking_transaction_fails_alone_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::migrated_in(&dir, 4);
        runtime().block_on(async {
            let panicked = db
                .write_async(|conn| {
                    insert_user(conn, &user("before-panic"))?;
                    panic!("a bug in one transaction")
                })
                .await;
            assert!(matches!(panicked, Err::<(), _>(StoreError::Corrupt(_))));
            db.write_async(|conn| insert_user(conn, &user("after"))).await.unwrap();
        });
        assert_eq!(db.read(count_users).unwrap(), 1);
    }

    #[test]
    fn an_idle_writer_checkpoints_the_wal_into_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::migrated_in(&dir, 4);
        let file = dir.path().join("test.db");
        let before = std::fs::metadata(&file).unwrap().len();
        runtime().block_on(async {
            // One at a time: each its own batch, too few pages for SQLite's automatic checkpoint.
            for i in 0..IDLE_CHECKPOINT_AFTER {
                db.write_async(move |conn| insert_user(conn, &user(&format!("u{i}")))).await.unwrap();
            }
        });
        let grown = (0..50).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(20));
            std::fs::metadata(&file).unwrap().len() > before
        });
        assert!(grown, "the users written reached the database file, not only the WAL");
    }
}
