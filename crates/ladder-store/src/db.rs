//! One `Db` handle over SQLite or PostgreSQL, chosen by the URL scheme.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::StoreError;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    Postgresql(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

/// The connection repositories work with.
pub type Conn = AnyConnection;

/// Runs `$body` with `$conn` rebound to the backend's own connection. Through the multi-backend
/// connection, every run of a query writes its SQL out as a string twice (once to ask the statement
/// cache, once to run it) and walks it once more for the binds, even when the statement is already
/// prepared; on the backend's own connection diesel finds a cached statement by the query's type.
/// The body is compiled once per backend, so it may not name the multi-backend connection.
macro_rules! native {
    ($conn:ident => $body:expr) => {
        match $conn {
            $crate::db::AnyConnection::Sqlite($conn) => $body,
            $crate::db::AnyConnection::Postgresql($conn) => $body,
        }
    };
}
pub(crate) use native;

/// Where the data lives, parsed from `database_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbUrl {
    /// A SQLite file path (`sqlite://data/ladder.db`, `sqlite:///abs/path.db` or a bare path).
    Sqlite(String),
    /// A libpq URL (`postgres://…` / `postgresql://…`).
    Postgres(String),
}

impl DbUrl {
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(DbUrl::Postgres(url.to_owned()))
        } else if let Some(path) = url.strip_prefix("sqlite://") {
            Ok(DbUrl::Sqlite(path.to_owned()))
        } else if let Some(path) = url.strip_prefix("sqlite:") {
            Ok(DbUrl::Sqlite(path.to_owned()))
        } else if url.contains("://") {
            Err(StoreError::Config(format!(
                "unsupported database URL scheme in `{}` (use sqlite://PATH or postgres://…)",
                redact(url)
            )))
        } else {
            Ok(DbUrl::Sqlite(url.to_owned()))
        }
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self, DbUrl::Sqlite(_))
    }

    /// Connections kept when the configuration leaves it to the backend. A SQLite read runs in
    /// this process and on its CPU, so more readers than a few only hold page caches and threads
    /// (eight against four: 1.4 MiB more resident, no faster; bench/RESULTS.md, round 12). A
    /// PostgreSQL query waits on the network, and more connections keep more of them in flight.
    pub fn default_pool_size(&self) -> u32 {
        match self {
            DbUrl::Sqlite(_) => 4,
            DbUrl::Postgres(_) => 8,
        }
    }
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

struct Manager {
    url: DbUrl,
}

impl r2d2::ManageConnection for Manager {
    type Connection = AnyConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<AnyConnection, Self::Error> {
        match &self.url {
            DbUrl::Postgres(url) => diesel::PgConnection::establish(url)
                .map(AnyConnection::Postgresql)
                .map_err(diesel::r2d2::Error::ConnectionError),
            DbUrl::Sqlite(path) => {
                let mut conn = diesel::SqliteConnection::establish(path)
                    .map_err(diesel::r2d2::Error::ConnectionError)?;
                // WAL lets readers proceed during a write; the busy timeout makes writers wait
                // for each other instead of failing with "database is locked" (set first: opening
                // a WAL database another process is opening can be briefly busy). The automatic
                // checkpoint stays on, behind the idle writer's own (`group_commit`): a background
                // timer alone, with it off, made the tail worse (bench/RESULTS.md). A 128 KiB page
                // cache per reader (default 2 MiB; the writer's own connection raises it,
                // `open_writer`): lookups are by key, the OS caches the file, and SQLite empties a
                // reader's cache whenever the WAL has changed, so under writes it holds one read's
                // pages at most. At 1 MiB, eight caches were a tenth of the server's resident
                // memory, for no speed; 128 KiB measured even with 256 (round 12).
                // The automatic checkpoint waits for 4,000 WAL pages (16 MiB) rather than 1,000:
                // the pages every commit touches (the audit chain's head, the newest index leaves)
                // are copied into the database a quarter as often (three sign-in runs each: 1–14%
                // less server CPU per flow). Temporary storage in memory: a group commit runs each
                // transaction in a savepoint, whose sub-journal (the pages as they were before it)
                // otherwise spills past 64 KiB into a temporary file, 3% of a sign-in's CPU in
                // write calls; it lives only until the batch commits.
                conn.batch_execute(
                    "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
                     PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; \
                     PRAGMA cache_size = -128; PRAGMA wal_autocheckpoint = 4000; \
                     PRAGMA temp_store = MEMORY;",
                )
                .map_err(diesel::r2d2::Error::QueryError)?;
                Ok(AnyConnection::Sqlite(conn))
            }
        }
    }

    fn is_valid(&self, conn: &mut AnyConnection) -> Result<(), Self::Error> {
        conn.batch_execute("SELECT 1").map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, _conn: &mut AnyConnection) -> bool {
        false
    }
}

/// A pooled database handle; cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: r2d2::Pool<Manager>,
    /// Opens the SQLite writer's own connection.
    connect: std::sync::Arc<Manager>,
    is_sqlite: bool,
    /// SQLite has one writer at a time: writers queue here rather than in SQLite's busy handler,
    /// which sleeps (1, 2, 5, 10… ms) and, under load, keeps the WAL from ever being reset. The
    /// lock holds the connection they write on, opened on first use and kept out of the pool:
    /// SQLite empties a connection's page cache whenever another one has committed since its last
    /// transaction, so a writer on whichever pooled connection came along read back, at every
    /// commit, the index pages it had just written.
    pub(crate) writer: std::sync::Arc<std::sync::Mutex<Option<Conn>>>,
    /// The SQLite writer thread, started by the first `write_async`.
    group: std::sync::Arc<std::sync::OnceLock<crate::group_commit::GroupWriter>>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("sqlite", &self.is_sqlite).finish()
    }
}

impl Db {
    /// Connects (creating the SQLite file and its directory when needed). Does not migrate.
    /// A `pool_size` of 0 keeps the backend's default number of connections.
    pub fn connect(url: &str, pool_size: u32) -> Result<Self, StoreError> {
        let url = DbUrl::parse(url)?;
        if let DbUrl::Sqlite(path) = &url
            && let Some(dir) = std::path::Path::new(path).parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Config(format!("cannot create {}: {e}", dir.display())))?;
        }
        let is_sqlite = url.is_sqlite();
        let pool_size = if pool_size == 0 { url.default_pool_size() } else { pool_size };
        let connect = std::sync::Arc::new(Manager { url: url.clone() });
        // The pool opens and reaps connections on threads of its own (three by default); one is
        // enough for a handful of connections, and each idle thread keeps a stack and a malloc arena.
        let pool_threads = scheduled_thread_pool::ScheduledThreadPool::builder()
            .num_threads(1)
            .thread_name_pattern("r2d2-worker-{}")
            .build();
        let pool = r2d2::Pool::builder()
            .max_size(pool_size)
            // Waiting long for a pooled connection only turns overload into a hang: answer 503 instead.
            .connection_timeout(std::time::Duration::from_secs(3))
            // A PostgreSQL connection can die with its server or the network: test it before use.
            // A SQLite one is a file handle in this process; testing it cost every request a
            // statement prepared and run for nothing.
            .test_on_check_out(!is_sqlite)
            .thread_pool(std::sync::Arc::new(pool_threads))
            .build(Manager { url })
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(Db { pool, connect, is_sqlite, writer: Default::default(), group: Default::default() })
    }

    pub fn is_sqlite(&self) -> bool {
        self.is_sqlite
    }

    /// The most connections the pool keeps.
    pub fn pool_size(&self) -> u32 {
        self.pool.max_size()
    }

    /// (idle, total) connections in the pool.
    pub fn pool_state(&self) -> (u32, u32) {
        let s = self.pool.state();
        (s.idle_connections, s.connections)
    }

    /// Applies pending migrations; returns the versions applied.
    pub fn migrate(&self) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn()?;
        let applied = conn
            .run_pending_migrations(MIGRATIONS)
            .map_err(|e| StoreError::Migration(e.to_string()))?;
        Ok(applied.iter().map(|v| v.to_string()).collect())
    }

    fn conn(&self) -> Result<r2d2::PooledConnection<Manager>, StoreError> {
        self.pool.get().map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    /// Runs administrative SQL (e.g. creating a schema for an isolated test database).
    pub fn batch_execute(&self, sql: &str) -> Result<(), StoreError> {
        Ok(self.conn()?.batch_execute(sql)?)
    }

    /// Runs `f` on one connection, outside a transaction (reads, single statements).
    ///
    /// Single-row lookups use `get_result`, not `first`: `first` adds `LIMIT ?`, and SQLite lets a
    /// bound LIMIT shape the plan, so it re-prepares such a statement at every execution instead
    /// of reusing the cached one (measured: a tenth of a token request's CPU for one lookup).
    pub fn read<T>(&self, f: impl FnOnce(&mut Conn) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut conn = self.conn()?;
        f(&mut conn).map_err(StoreError::or_unavailable)
    }

    /// On SQLite, runs the read `f` at once on an idle pooled connection and returns its result;
    /// gives `f` back unrun on PostgreSQL or when every connection is in use, so the caller can
    /// send it to a blocking thread. Never waits: a SQLite read in WAL mode takes no lock a writer
    /// holds, and an indexed lookup in this process's page cache costs less than the hop to
    /// another thread and back.
    pub fn read_if_idle<T, F>(&self, f: F) -> Result<Result<T, StoreError>, F>
    where
        F: FnOnce(&mut Conn) -> Result<T, StoreError>,
    {
        let Some(mut conn) = self.is_sqlite.then(|| self.pool.try_get()).flatten() else { return Err(f) };
        Ok(f(&mut conn).map_err(StoreError::or_unavailable))
    }

    /// Runs `f` in one write transaction. On SQLite the transaction takes the write lock up front
    /// (`BEGIN IMMEDIATE`) so two writers never deadlock; within this process they first queue on
    /// a mutex, and the busy timeout only arbitrates with other processes (the CLI).
    pub fn write<T>(&self, f: impl FnOnce(&mut Conn) -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.write_inner(f).map_err(StoreError::or_unavailable)
    }

    /// `write` without blocking an async worker. On SQLite, on the writer thread, committed
    /// together with the transactions queued beside it (`group_commit`); on PostgreSQL, which takes
    /// concurrent writers, on a blocking thread. Resolves once the transaction is durable.
    pub async fn write_async<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut Conn) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        if !self.is_sqlite {
            let db = self.clone();
            return tokio::task::spawn_blocking(move || db.write(f))
                .await
                .unwrap_or_else(|_| Err(StoreError::Corrupt("a write transaction panicked".into())));
        }
        self.group()?.write(f).await
    }

    /// A small write for a reader that does not wait on it (a session's last-seen time), from
    /// inside its read on `conn`. On SQLite it joins the writer thread's next batch and this
    /// returns at once: from the reader's own connection it would take SQLite's write lock beside
    /// the writer thread (waiting in SQLite's sleeping busy handler, on an async worker, whenever
    /// the writer held it) and commit alone. On PostgreSQL, which takes concurrent writers, it
    /// runs on `conn`. A failure is logged.
    pub fn write_aside(&self, conn: &mut Conn, f: impl FnOnce(&mut Conn) -> Result<(), StoreError> + Send + 'static) {
        let queued = match self.is_sqlite {
            true => self.group().map(|group| group.queue(f)),
            false => f(conn),
        };
        if let Err(e) = queued {
            tracing::warn!(error = %e, "a background write failed");
        }
    }

    /// The SQLite writer thread, started on first use.
    fn group(&self) -> Result<&crate::group_commit::GroupWriter, StoreError> {
        if let Some(group) = self.group.get() {
            return Ok(group);
        }
        // The thread's own handle has no group of its own: a cycle would keep it alive.
        let inner = Db { group: Default::default(), ..self.clone() };
        let started = crate::group_commit::GroupWriter::start(inner)
            .map_err(|e| StoreError::Unavailable(format!("cannot start the database writer: {e}")))?;
        Ok(self.group.get_or_init(|| started))
    }

    /// Runs `f` on a connection while holding the in-process write lock.
    pub(crate) fn with_write_lock<T>(
        &self,
        f: impl FnOnce(&mut Conn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if !self.is_sqlite {
            return f(&mut *self.conn()?);
        }
        let mut writer = self.writer.lock().unwrap_or_else(|poisoned| {
            // A write panicked holding the connection, perhaps inside its transaction: open afresh.
            self.writer.clear_poison();
            let mut writer = poisoned.into_inner();
            *writer = None;
            writer
        });
        if writer.is_none() {
            *writer = Some(self.open_writer()?);
        }
        f(writer.as_mut().expect("opened above"))
    }

    /// The SQLite writer's own connection, with a page cache of 2 MiB (a pooled one has 128 KiB):
    /// it keeps the index pages a batch of writes walks down and the leaves it appends to.
    fn open_writer(&self) -> Result<Conn, StoreError> {
        use r2d2::ManageConnection;
        let mut conn = self.connect.connect().map_err(|e| StoreError::Unavailable(e.to_string()))?;
        conn.batch_execute("PRAGMA cache_size = -2048")?;
        Ok(conn)
    }

    fn write_inner<T>(&self, f: impl FnOnce(&mut Conn) -> Result<T, StoreError>) -> Result<T, StoreError> {
        if !self.is_sqlite {
            let mut conn = self.conn()?;
            let conn: &mut Conn = &mut conn;
            return conn.transaction(f);
        }
        self.with_write_lock(|conn| {
            conn.batch_execute("BEGIN IMMEDIATE")?;
            match f(conn) {
                Ok(v) => {
                    conn.batch_execute("COMMIT")?;
                    Ok(v)
                }
                Err(e) => {
                    let _ = conn.batch_execute("ROLLBACK");
                    Err(e)
                }
            }
        })
    }
}

#[cfg(test)]
impl Db {
    /// A migrated SQLite database, `dir/test.db`, for the store's unit tests.
    pub(crate) fn migrated_in(dir: &tempfile::TempDir, pool_size: u32) -> Db {
        let db = Db::connect(dir.path().join("test.db").to_str().unwrap(), pool_size).unwrap();
        db.migrate().unwrap();
        db
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::users::count_users;

    #[test]
    fn read_if_idle_runs_at_once_or_gives_the_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::migrated_in(&dir, 1);
        assert_eq!(db.read_if_idle(count_users).ok().map(Result::unwrap), Some(0));
        // The only connection is taken: the read is handed back unrun, never waited for.
        let held = db.conn().unwrap();
        let ran = std::cell::Cell::new(false);
        let read = |_: &mut Conn| {
            ran.set(true);
            Ok(())
        };
        assert!(db.read_if_idle(read).is_err());
        assert!(!ran.get());
        drop(held);
        assert!(db.read_if_idle(read).is_ok());
        assert!(ran.get());
    }

    /// A reader's write aside never takes SQLite's write lock itself: while another connection
    /// holds it, the read returns at once, and the write lands once the lock is free.
    #[test]
    fn a_write_aside_waits_for_the_writer_not_the_reader() {
        use std::time::{Duration, Instant};
        let dir = tempfile::tempdir().unwrap();
        let db = Db::migrated_in(&dir, 3);
        let mut holder = db.conn().unwrap();
        holder.batch_execute("BEGIN IMMEDIATE").unwrap();
        let started = Instant::now();
        db.read(|conn| {
            let insert = "INSERT INTO users (id, username, created_at, updated_at) VALUES ('u1', 'aside', 0, 0)";
            db.write_aside(conn, move |conn| Ok(conn.batch_execute(insert)?));
            Ok(())
        })
        .unwrap();
        assert!(started.elapsed() < Duration::from_secs(2), "the read waited for SQLite's write lock");
        assert_eq!(db.read(count_users).unwrap(), 0);
        holder.batch_execute("COMMIT").unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while db.read(count_users).unwrap() == 0 {
            assert!(Instant::now() < deadline, "the write aside never landed");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_pool_size_of_zero_is_the_backends_default() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("pool.db").to_str().unwrap().to_owned();
        assert_eq!(Db::connect(&url, 0).unwrap().pool_size(), 4);
        assert_eq!(Db::connect(&url, 6).unwrap().pool_size(), 6);
        assert_eq!(DbUrl::parse("postgres://u@h/db").unwrap().default_pool_size(), 8);
    }

    /// Writes share one connection of their own (a temporary table lives on its connection
    /// only), with the larger cache; a write that panics inside its transaction costs that
    /// connection, not the next write.
    #[test]
    fn writes_keep_one_connection_and_survive_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::migrated_in(&dir, 2);
        db.write(|conn| Ok(conn.batch_execute("CREATE TEMP TABLE writer_marker (x INTEGER)")?)).unwrap();
        for _ in 0..3 {
            db.read(count_users).unwrap();
            db.write(|conn| Ok(conn.batch_execute("INSERT INTO temp.writer_marker VALUES (1)")?)).unwrap();
        }
        let cache = |conn: &mut Conn| {
            #[derive(QueryableByName)]
            struct Size {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                cache_size: i64,
            }
            let AnyConnection::Sqlite(conn) = conn else { unreachable!("a SQLite test") };
            Ok(diesel::sql_query("PRAGMA cache_size").get_result::<Size>(conn)?.cache_size)
        };
        assert_eq!(db.write(cache).unwrap(), -2048);
        assert_eq!(db.read(cache).unwrap(), -128);

        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            db.write(|conn| -> Result<(), StoreError> {
                conn.batch_execute("INSERT INTO users (id, username, created_at, updated_at) VALUES ('u1', 'lost', 0, 0)")?;
                panic!("a bug inside a write transaction")
            })
        }));
        assert!(panicked.is_err());
        let insert = "INSERT INTO users (id, username, created_at, updated_at) VALUES ('u2', 'kept', 0, 0)";
        db.write(|conn| Ok(conn.batch_execute(insert)?)).unwrap();
        assert_eq!(db.read(count_users).unwrap(), 1, "the panicked write was rolled back, the next one committed");
        assert!(db.write(|conn| Ok(conn.batch_execute("SELECT * FROM temp.writer_marker")?)).is_err(), "a fresh connection");
    }
}
