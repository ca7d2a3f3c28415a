//! Grants (token families), their refresh tokens, and revoked access tokens. Revoking a grant
//! revokes everything descended from it.
//!
//! An access token is recorded only when it is revoked on its own (RFC 7009): until then it speaks
//! for itself. A grant's tokens name their grant (the `grant_id` claim) and live while it does; a
//! client's own tokens have no grant. Tokens of a grant issued by earlier versions were recorded
//! when issued, without the claim; their rows still answer for them until they expire.

use diesel::prelude::*;

use crate::db::native;
use crate::schema::{access_tokens, grants, refresh_tokens, users};
use crate::users::User;
use crate::db::AnyConnection;
use crate::prepared::prepared;
use crate::{Conn, StoreError};

/// No row revokes the access token `jti` (a grant's tokens are recorded only when revoked).
macro_rules! not_revoked {
    ($jti:expr) => {
        diesel::dsl::not(diesel::dsl::exists(
            access_tokens::table.filter(access_tokens::jti.eq($jti)).filter(access_tokens::revoked_at.is_not_null()),
        ))
    };
}

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
    /// When the newest of its access tokens expires: the purge keeps the grant until then.
    pub access_expires_at: Option<i64>,
}

#[cfg(test)]
impl Grant {
    /// A live grant of client `c`, with no user and nothing else set, for the store's unit tests.
    pub(crate) fn for_test(id: &str) -> Grant {
        Grant {
            id: id.into(),
            client_id: "c".into(),
            user_id: None,
            session_id: None,
            code_hash: None,
            scope: String::new(),
            acr: None,
            amr: "[]".into(),
            auth_time: None,
            acr_expires_at: None,
            created_at: 0,
            revoked_at: None,
            revoked_reason: None,
            access_expires_at: None,
        }
    }
}

pub fn insert_grant(conn: &mut Conn, grant: &Grant) -> Result<(), StoreError> {
    native!(conn => diesel::insert_into(grants::table).values(grant).execute(conn))?;
    Ok(())
}

pub fn find_grant(conn: &mut Conn, id: &str) -> Result<Option<Grant>, StoreError> {
    Ok(native!(conn => grants::table.find(id).select(Grant::as_select()).get_result(conn).optional())?)
}

/// A new access token of the grant lives until `expires_at`: the grant is kept at least as long.
pub fn extend_access(conn: &mut Conn, id: &str, expires_at: i64) -> Result<(), StoreError> {
    struct ExtendAccess;
    // Read back (`RETURNING`) so that it stays prepared (`prepared.rs`).
    let later = grants::access_expires_at.is_null().or(grants::access_expires_at.lt(expires_at));
    let extend = diesel::update(grants::table.find(id).filter(later))
        .set(grants::access_expires_at.eq(expires_at))
        .returning(grants::id);
    native!(conn => prepared::<ExtendAccess, _>(extend).get_result::<String>(conn).optional())?;
    Ok(())
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

/// An access token recorded when issued, as versions before the `grant_id` claim did.
#[cfg(test)]
pub(crate) fn insert_access_token(
    conn: &mut Conn,
    jti: &str,
    grant_id: Option<&str>,
    client_id: &str,
    expires_at: i64,
) -> Result<(), StoreError> {
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

/// Whether an access token may still be used: not revoked, and its grant (if it has one) live.
/// `grant_id` is the token's claim; without it, a token of a grant is one recorded when issued,
/// and for a client's own token (`unrecorded_is_live`) no row means live.
pub fn access_token_is_live(
    conn: &mut Conn,
    jti: &str,
    grant_id: Option<&str>,
    unrecorded_is_live: bool,
) -> Result<bool, StoreError> {
    if let Some(grant_id) = grant_id {
        struct GrantTokenIsLive;
        let live = native!(conn => prepared::<GrantTokenIsLive, _>(
            grants::table.find(grant_id).filter(grants::revoked_at.is_null()).filter(not_revoked!(jti)).select(grants::id),
        )
        .get_result::<String>(conn)
        .optional())?;
        return Ok(live.is_some());
    }
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
/// statement: what every userinfo request asks. `grant_id` is the token's claim, as above.
pub fn user_of_live_access_token(conn: &mut Conn, jti: &str, grant_id: Option<&str>) -> Result<Option<User>, StoreError> {
    let Some(grant_id) = grant_id else {
        return Ok(native!(conn => access_tokens::table
            .inner_join(grants::table.on(grants::id.nullable().eq(access_tokens::grant_id)))
            .inner_join(users::table.on(users::id.nullable().eq(grants::user_id)))
            .filter(access_tokens::jti.eq(jti))
            .filter(access_tokens::revoked_at.is_null())
            .filter(grants::revoked_at.is_null())
            .select(User::as_select())
            .get_result(conn)
            .optional())?);
    };
    struct UserOfGrantToken;
    Ok(native!(conn => prepared::<UserOfGrantToken, _>(
        grants::table
            .inner_join(users::table.on(users::id.nullable().eq(grants::user_id)))
            .filter(grants::id.eq(grant_id))
            .filter(grants::revoked_at.is_null())
            .filter(not_revoked!(jti))
            .select(User::as_select()),
    )
    .get_result(conn)
    .optional())?)
}

#[cfg(test)]
mod tests {
    use diesel::connection::SimpleConnection;

    use super::*;
    use crate::Db;

    /// A database with the client `c` and the user `u`.
    fn with_owner(dir: &tempfile::TempDir) -> Db {
        let db = Db::migrated_in(dir, 1);
        db.write(|conn| {
            Ok(conn.batch_execute(
                "INSERT INTO clients (id, name, is_public, redirect_uris, scopes, created_at, updated_at) \
                 VALUES ('c', 'c', FALSE, '[]', '', 0, 0); \
                 INSERT INTO users (id, username, created_at, updated_at) VALUES ('u', 'u', 0, 0);",
            )?)
        })
        .unwrap();
        db
    }

    /// A grant of the user `u`.
    fn grant(id: &str) -> Grant {
        Grant { user_id: Some("u".into()), ..Grant::for_test(id) }
    }

    /// A token that names its grant lives with the grant until it is revoked by itself; one
    /// recorded when issued (before the claim) answers by its row; a client's own token lives
    /// until revoked.
    #[test]
    fn access_tokens_live_by_their_grant_or_their_row() {
        let dir = tempfile::tempdir().unwrap();
        let db = with_owner(&dir);
        db.write(|conn| {
            insert_grant(conn, &grant("g"))?;
            insert_grant(conn, &grant("g-old"))?;
            insert_access_token(conn, "old", Some("g-old"), "c", 100)
        })
        .unwrap();
        let live = |jti: &'static str, grant: Option<&'static str>, client: bool| {
            db.read(move |c| access_token_is_live(c, jti, grant, client)).unwrap()
        };
        let user = |jti: &'static str, grant: Option<&'static str>| {
            db.read(move |c| user_of_live_access_token(c, jti, grant)).unwrap().map(|u| u.id)
        };
        assert!(live("new", Some("g"), false) && live("old", None, false) && live("svc", None, true));
        assert_eq!((user("new", Some("g")), user("old", None)), (Some("u".into()), Some("u".into())));
        assert!(!live("new", Some("gone"), false) && user("new", Some("gone")).is_none(), "no such grant");

        // Revoked by itself: a row, for that token alone.
        db.write(|c| revoke_access_token(c, "new", "c", 100, 5)).unwrap();
        db.write(|c| revoke_access_token(c, "svc", "c", 100, 5)).unwrap();
        assert!(!live("new", Some("g"), false) && !live("svc", None, true));
        assert!(live("sibling", Some("g"), false) && user("new", Some("g")).is_none());

        // The grant revoked: each of its tokens, named or recorded.
        db.write(|c| revoke_grant(c, "g", "test", 6)).unwrap();
        db.write(|c| revoke_grant(c, "g-old", "test", 6)).unwrap();
        assert!(!live("sibling", Some("g"), false) && !live("old", None, false));
        assert_eq!((user("sibling", Some("g")), user("old", None)), (None, None));
    }

    #[test]
    fn a_grant_keeps_its_newest_access_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let db = with_owner(&dir);
        db.write(|conn| {
            insert_grant(conn, &grant("g"))
        })
        .unwrap();
        let expiry = || db.read(|c| find_grant(c, "g")).unwrap().unwrap().access_expires_at;
        for (extend, kept) in [(100, 100), (300, 300), (200, 300)] {
            db.write(move |c| extend_access(c, "g", extend)).unwrap();
            assert_eq!(expiry(), Some(kept), "after {extend}");
        }
    }
}
