//! Passkeys (stored as opaque JSON; the server crate owns their meaning) and WebAuthn ceremony
//! state, which is single-use and bound to one interaction.

use diesel::prelude::*;

use crate::db::native;
use crate::schema::{passkeys, webauthn_challenges};
use crate::{Conn, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, serde::Serialize)]
#[diesel(table_name = passkeys)]
pub struct StoredPasskey {
    pub id: String,
    pub user_id: String,
    pub cred_id: String,
    pub name: String,
    #[serde(skip)]
    pub credential: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

pub fn insert(conn: &mut Conn, p: &StoredPasskey) -> Result<(), StoreError> {
    native!(conn => diesel::insert_into(passkeys::table)
        .values(p)
        .execute(conn))
        .map_err(|e| StoreError::from_insert(e, "this passkey"))?;
    Ok(())
}

pub fn list_for_user(conn: &mut Conn, user_id: &str) -> Result<Vec<StoredPasskey>, StoreError> {
    Ok(native!(conn => passkeys::table
        .filter(passkeys::user_id.eq(user_id))
        .order(passkeys::created_at.asc())
        .select(StoredPasskey::as_select())
        .load(conn))?)
}

pub fn find_by_cred_id(conn: &mut Conn, cred_id: &str) -> Result<Option<StoredPasskey>, StoreError> {
    Ok(native!(conn => passkeys::table
        .filter(passkeys::cred_id.eq(cred_id))
        .select(StoredPasskey::as_select())
        .get_result(conn)
        .optional())?)
}

/// Stores the credential's new counter / backup state after a use.
pub fn record_use(conn: &mut Conn, id: &str, credential: &str, now: i64) -> Result<(), StoreError> {
    native!(conn => diesel::update(passkeys::table.find(id))
        .set((passkeys::credential.eq(credential), passkeys::last_used_at.eq(now)))
        .execute(conn))?;
    Ok(())
}

/// Renames one of the user's passkeys; false when it is not theirs.
pub fn rename(conn: &mut Conn, user_id: &str, id: &str, name: &str) -> Result<bool, StoreError> {
    Ok(native!(conn => diesel::update(passkeys::table.find(id).filter(passkeys::user_id.eq(user_id)))
        .set(passkeys::name.eq(name))
        .execute(conn))?
        == 1)
}

/// Removes one of the user's passkeys; false when it is not theirs.
pub fn delete(conn: &mut Conn, user_id: &str, id: &str) -> Result<bool, StoreError> {
    Ok(native!(conn => diesel::delete(passkeys::table.find(id).filter(passkeys::user_id.eq(user_id))).execute(conn))? == 1)
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = webauthn_challenges)]
pub struct Challenge {
    pub id: String,
    pub interaction_id: String,
    pub kind: String,
    pub user_id: Option<String>,
    pub state: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

pub fn insert_challenge(conn: &mut Conn, c: &Challenge) -> Result<(), StoreError> {
    native!(conn => diesel::insert_into(webauthn_challenges::table).values(c).execute(conn))?;
    Ok(())
}

/// Takes a challenge for its one use: it must belong to this interaction, be of this kind, be
/// unexpired and unused. A second take of the same challenge finds nothing (replay).
pub fn take_challenge(conn: &mut Conn, id: &str, interaction_id: &str, kind: &str, now: i64) -> Result<Option<Challenge>, StoreError> {
    let taken = native!(conn => diesel::update(
        webauthn_challenges::table
            .find(id)
            .filter(webauthn_challenges::interaction_id.eq(interaction_id))
            .filter(webauthn_challenges::kind.eq(kind))
            .filter(webauthn_challenges::used_at.is_null())
            .filter(webauthn_challenges::expires_at.gt(now)),
    )
    .set(webauthn_challenges::used_at.eq(now))
    .execute(conn))?;
    if taken != 1 {
        return Ok(None);
    }
    Ok(native!(conn => webauthn_challenges::table.find(id).select(Challenge::as_select()).get_result(conn).optional())?)
}
