//! Ladder's storage: one diesel schema over SQLite (embedded default) or PostgreSQL (several nodes),
//! embedded migrations, and one repository module per table. Callers never see diesel's DSL.

mod db;
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
    fn from_insert(e: diesel::result::Error, what: &str) -> Self {
        match e {
            diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _) => {
                StoreError::Conflict(what.to_owned())
            }
            other => StoreError::Query(other),
        }
    }
}

/// A new random identifier for rows we create.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
