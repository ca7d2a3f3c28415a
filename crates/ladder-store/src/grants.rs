//! Grants (token families), their refresh tokens and issued access tokens. Revoking a grant
//! revokes everything descended from it.

use diesel::prelude::*;

use crate::db::native;
use crate::schema::{access_tokens, grants, refresh_tokens, users};
use crate::users::User;
use crate::db::AnyConnection;
use crate::{Conn, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = grants)]
pub struct Grant {
    pub id: String,
    pub client_id: String,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub code_hash: Option<String>,
    pub scope: String,
    pub acr: Option<String>,
    /// JSON array.
    pub amr: String,
    pub auth_time: Option<i64>,
    pub acr_expires_at: Option<i64>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub revoked_reason: Option<String>,
}

pub fn insert_grant(conn: &mut Conn, grant: &Grant) -> Result<(), StoreError> {
    native!(conn => diesel::insert_into(grants::table).values(grant).execute(conn))?;
    Ok(())
}

pub fn find_grant(conn: &mut Conn, id: &str) -> Result<Option<Grant>, StoreError> {
    Ok(native!(conn => grants::table.find(id).select(Grant::as_select()).get_result(conn).optional())?)
}

/// Revokes the grant and every token it issued; returns false if it was already revoked.
pub fn revoke_grant(conn: &mut Conn, id: &str, reason: &str, now: i64) -> Result<bool, StoreError> {
    let n = native!(conn => diesel::update(grants::table.find(id).filter(grants::revoked_at.is_null()))
        .set((grants::revoked_at.eq(now), grants::revoked_reason.eq(reason)))
        .execute(conn))?;
    let tokens = access_tokens::table.filter(access_tokens::grant_id.eq(id)).filter(access_tokens::revoked_at.is_null());
    native!(conn => diesel::update(tokens).set(access_tokens::revoked_at.eq(now)).execute(conn))?;
    Ok(n > 0)
}

/// The grants redeemed from a code (a replayed code revokes them).
pub fn grants_for_code(conn: &mut Conn, code_hash: &str) -> Result<Vec<Grant>, StoreError> {
    Ok(native!(conn => grants::table.filter(grants::code_hash.eq(code_hash)).select(Grant::as_select()).load(conn))?)
}

/// Live grants of a browser session (logout ends them).
pub fn live_grants_for_session(conn: &mut Conn, session_id: &str) -> Result<Vec<Grant>, StoreError> {
    Ok(native!(conn => grants::table
        .filter(grants::session_id.eq(session_id))
        .filter(grants::revoked_at.is_null())
        .select(Grant::as_select())
        .load(conn))?)
}

pub fn insert_refresh_token(conn: &mut Conn, token_hash: &str, grant_id: &str, now: i64, expires_at: i64) -> Result<(), StoreError> {
    native!(conn => diesel::insert_into(refresh_tokens::table)
        .values((
            refresh_tokens::token_hash.eq(token_hash),
            refresh_tokens::grant_id.eq(grant_id),
            refresh_tokens::created_at.eq(now),
            refresh_tokens::expires_at.eq(expires_at),
        ))
        .execute(conn))?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = refresh_tokens)]
pub struct RefreshToken {
    pub token_hash: String,
    pub grant_id: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

pub fn find_refresh_token(conn: &mut Conn, token_hash: &str) -> Result<Option<RefreshToken>, StoreError> {
    Ok(native!(conn => refresh_tokens::table.find(token_hash).select(RefreshToken::as_select()).get_result(conn).optional())?)
}

/// Marks the token used, once (conditional UPDATE): true when this call rotated it.
pub fn use_refresh_token(conn: &mut Conn, token_hash: &str, now: i64) -> Result<bool, StoreError> {
    Ok(native!(conn => diesel::update(refresh_tokens::table.find(token_hash).filter(refresh_tokens::used_at.is_null()))
        .set(refresh_tokens::used_at.eq(now))
        .execute(conn))?
        == 1)
}

pub fn insert_access_token(conn: &mut Conn, jti: &str, grant_id: Option<&str>, client_id: &str, expires_at: i64) -> Result<(), StoreError> {
    native!(conn => diesel::insert_into(access_tokens::table)
        .values((
            access_tokens::jti.eq(jti),
            access_tokens::grant_id.eq(grant_id),
            access_tokens::client_id.eq(client_id),
            access_tokens::expires_at.eq(expires_at),
        ))
        .execute(conn))?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = access_tokens)]
pub struct AccessTokenRecord {
    pub jti: String,
    pub grant_id: Option<String>,
    pub client_id: String,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

pub fn find_access_token(conn: &mut Conn, jti: &str) -> Result<Option<AccessTokenRecord>, StoreError> {
    Ok(native!(conn => access_tokens::table.find(jti).select(AccessTokenRecord::as_select()).get_result(conn).optional())?)
}

/// Revokes an access token, recording it first if it never was (a client's own token).
pub fn revoke_access_token(conn: &mut Conn, jti: &str, client_id: &str, expires_at: i64, now: i64) -> Result<(), StoreError> {
    let revoked = native!(conn => diesel::update(access_tokens::table.find(jti).filter(access_tokens::revoked_at.is_null()))
        .set(access_tokens::revoked_at.eq(now))
        .execute(conn))?;
    if revoked == 0 {
        let row = (
            access_tokens::jti.eq(jti),
            access_tokens::client_id.eq(client_id),
            access_tokens::expires_at.eq(expires_at),
            access_tokens::revoked_at.eq(now),
        );
        // Already there (revoked before, or by a request racing this one): nothing to add. The ORM
        // offers ON CONFLICT per backend only.
        let insert = diesel::insert_into(access_tokens::table).values(row).on_conflict_do_nothing();
        match conn {
            AnyConnection::Postgresql(pg) => insert.execute(pg)?,
            AnyConnection::Sqlite(lite) => insert.execute(lite)?,
        };
    }
    Ok(())
}

/// Whether an access token (by jti) may still be used: not revoked, and its grant live. A token of
/// a grant is recorded when issued; a client's own token (client_credentials, no grant) only when
/// revoked, so for one of those (`unrecorded_is_live`) no row means live.
pub fn access_token_is_live(conn: &mut Conn, jti: &str, unrecorded_is_live: bool) -> Result<bool, StoreError> {
    // The token's revocation and grant id; the grant's id (if the row exists) and revocation.
    type Liveness = (Option<i64>, Option<String>, Option<String>, Option<i64>);
    let row: Option<Liveness> = native!(conn => access_tokens::table
        .left_join(grants::table.on(grants::id.nullable().eq(access_tokens::grant_id)))
        .filter(access_tokens::jti.eq(jti))
        .select((access_tokens::revoked_at, access_tokens::grant_id, grants::id.nullable(), grants::revoked_at.nullable()))
        .get_result(conn)
        .optional())?;
    Ok(match row {
        None => unrecorded_is_live,
        Some((Some(_revoked), ..)) => false,
        Some((None, None, ..)) => true,
        Some((None, Some(_), grant, grant_revoked)) => grant.is_some() && grant_revoked.is_none(),
    })
}

/// The user of a live access token of a grant (neither the token nor its grant revoked), in one
/// statement: what every userinfo request asks.
pub fn user_of_live_access_token(conn: &mut Conn, jti: &str) -> Result<Option<User>, StoreError> {
    Ok(native!(conn => access_tokens::table
        .inner_join(grants::table.on(grants::id.nullable().eq(access_tokens::grant_id)))
        .inner_join(users::table.on(users::id.nullable().eq(grants::user_id)))
        .filter(access_tokens::jti.eq(jti))
        .filter(access_tokens::revoked_at.is_null())
        .filter(grants::revoked_at.is_null())
        .select(User::as_select())
        .get_result(conn)
        .optional())?)
}
