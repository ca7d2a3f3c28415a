//! Ladder's storage: one diesel schema over SQLite (embedded default) or PostgreSQL (several nodes),
//! embedded migrations, and one repository module per table. Callers never see diesel's DSL.

mod db;
mod group_commit;
mod prepared;
mod schema;

pub mod audit;
pub mod clients;
pub mod codes;
pub mod devices;
pub mod factors;
pub mod grants;
pub mod interactions;
pub mod keys;
pub mod logout;
pub mod passkeys;
pub mod purge;
pub mod sessions;
pub mod throttles;
pub mod users;

pub use db::{Conn, Db, DbUrl, redact};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database configuration: {0}")]
    Config(String),
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("already exists: {0}")]
    Conflict(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Query(#[from] diesel::result::Error),
}

impl StoreError {
    /// A query that failed because the connection to the database went away (a restart, a network
    /// cut) means the database is unavailable — answered 503, retry — not an internal error.
    pub fn or_unavailable(self) -> StoreError {
        match self {
            StoreError::Query(e) if connection_lost(&e) => StoreError::Unavailable(e.to_string()),
            other => other,
        }
    }

    fn from_insert(e: diesel::result::Error, what: &str) -> Self {
        match e {
            diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _) => {
                StoreError::Conflict(what.to_owned())
            }
            other => StoreError::Query(other),
        }
    }
}

fn connection_lost(e: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind as K, Error as E};
    match e {
        E::DatabaseError(K::ClosedConnection | K::UnableToSendCommand, _) | E::BrokenTransactionManager => true,
        E::RollbackErrorOnCommit { commit_error, .. } => connection_lost(commit_error),
        _ => false,
    }
}

/// A new random identifier (UUIDv4), for what others see and keep: users, clients.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A new time-ordered identifier (UUIDv7: milliseconds, then 74 random bits) for the rows every
/// sign-in and token writes. Ids made one after another sort together, so their index entries land
/// in the same B-tree page: a commit of many rows dirties one page per index instead of one per
/// row. It says when the row was made, so it is not for users' or clients' ids.
pub fn new_sequential_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::result::{DatabaseErrorKind, Error};

    #[test]
    fn a_lost_connection_is_unavailability_and_other_errors_stay_as_they_are() {
        let closed =
            StoreError::Query(Error::DatabaseError(DatabaseErrorKind::ClosedConnection, Box::new("gone".to_owned())));
        assert!(matches!(closed.or_unavailable(), StoreError::Unavailable(_)));
        let unique =
            StoreError::Query(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, Box::new("dup".to_owned())));
        assert!(matches!(unique.or_unavailable(), StoreError::Query(_)));
        assert!(matches!(StoreError::Query(Error::NotFound).or_unavailable(), StoreError::Query(Error::NotFound)));
    }

    #[test]
    fn sequential_ids_sort_as_text_in_the_order_they_were_made() {
        let ids: Vec<String> = (0..1000).map(|_| new_sequential_id()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "not strictly increasing");
    }
}
