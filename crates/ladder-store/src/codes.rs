//! Authorization codes: stored hashed, bound to everything they were issued for, consumed once.

use diesel::prelude::*;

use crate::db::native;
use crate::prepared::prepared;
use crate::schema::authorization_codes;
use crate::{Conn, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = authorization_codes)]
pub struct AuthorizationCode {
    pub code_hash: String,
    pub client_id: String,
    pub user_id: String,
    pub session_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub acr: String,
    /// JSON array.
    pub amr: String,
    pub auth_time: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub consumed_at: Option<i64>,
    /// When the claimed acr lapses (its level's freshness); caps access-token lifetimes.
    pub acr_expires_at: Option<i64>,
}

#[derive(Debug)]
pub enum Redemption {
    /// This call consumed the code.
    Redeemed(AuthorizationCode),
    /// The code existed but was already consumed: a replay.
    Replayed(AuthorizationCode),
    /// No such code.
    Unknown,
}

pub fn insert_code(conn: &mut Conn, code: &AuthorizationCode) -> Result<(), StoreError> {
    native!(conn => diesel::insert_into(authorization_codes::table).values(code).execute(conn))?;
    Ok(())
}

/// Marks the code consumed in one statement (`UPDATE … WHERE consumed_at IS NULL RETURNING`), so
/// two concurrent redemptions cannot both succeed. Expiry is the caller's check.
pub fn redeem_code(conn: &mut Conn, code_hash: &str, now: i64) -> Result<Redemption, StoreError> {
    struct Redeem;
    let redeemed: Option<AuthorizationCode> = native!(conn => prepared::<Redeem, _>(
        diesel::update(
            authorization_codes::table
                .filter(authorization_codes::code_hash.eq(code_hash))
                .filter(authorization_codes::consumed_at.is_null()),
        )
        .set(authorization_codes::consumed_at.eq(now))
        .returning(authorization_codes::all_columns),
    )
    .get_result::<AuthorizationCode>(conn)
    .optional())?;
    if let Some(code) = redeemed {
        return Ok(Redemption::Redeemed(code));
    }
    let existing = native!(conn => authorization_codes::table
        .find(code_hash)
        .select(AuthorizationCode::as_select())
        .get_result(conn)
        .optional())?;
    Ok(existing.map_or(Redemption::Unknown, Redemption::Replayed))
}
