//! Signing keys. Private halves are stored encrypted by the caller; this module never sees them clear.

use diesel::prelude::*;

use crate::db::native;
use crate::schema::signing_keys;
use crate::{Conn, StoreError};

pub const ACTIVE: &str = "active";
pub const PUBLISHED: &str = "published";
pub const RETIRED: &str = "retired";

#[derive(Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = signing_keys)]
pub struct SigningKey {
    pub kid: String,
    pub alg: String,
    pub private_jwk_enc: String,
    pub public_jwk: String,
    pub status: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

pub fn insert_key(conn: &mut Conn, key: &SigningKey) -> Result<(), StoreError> {
    native!(conn => diesel::insert_into(signing_keys::table).values(key).execute(conn))?;
    Ok(())
}

/// Every key not retired, newest first.
pub fn list_published(conn: &mut Conn) -> Result<Vec<SigningKey>, StoreError> {
    Ok(native!(conn => signing_keys::table
        .filter(signing_keys::status.ne(RETIRED))
        .order(signing_keys::created_at.desc())
        .select(SigningKey::as_select())
        .load(conn))?)
}

pub fn list_all(conn: &mut Conn) -> Result<Vec<SigningKey>, StoreError> {
    Ok(native!(conn => signing_keys::table
        .order(signing_keys::created_at.desc())
        .select(SigningKey::as_select())
        .load(conn))?)
}

/// Demotes the active keys of `alg` to published (still verifiable, no longer signing).
pub fn demote_active(conn: &mut Conn, alg: &str) -> Result<(), StoreError> {
    native!(conn => diesel::update(signing_keys::table.filter(signing_keys::alg.eq(alg)).filter(signing_keys::status.eq(ACTIVE)))
        .set(signing_keys::status.eq(PUBLISHED))
        .execute(conn))?;
    Ok(())
}

/// Retires a non-active key (it leaves the JWKS); false when there is no such published key.
pub fn retire_key(conn: &mut Conn, kid: &str, now: i64) -> Result<bool, StoreError> {
    Ok(native!(conn => diesel::update(signing_keys::table.find(kid).filter(signing_keys::status.eq(PUBLISHED)))
        .set((signing_keys::status.eq(RETIRED), signing_keys::retired_at.eq(now)))
        .execute(conn))?
        > 0)
}
