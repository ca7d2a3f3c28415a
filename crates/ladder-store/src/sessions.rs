//! Server-side browser sessions and the factors each has proven.

use diesel::prelude::*;
use ladder_core::{Factor, ProvenFactor};

use crate::db::native;
use crate::prepared::prepared;
use crate::factors::{self, Held};
use crate::schema::{session_factors, sessions, users};
use crate::users::User;
use crate::{Conn, StoreError, new_sequential_id};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions)]
pub struct Session {
    pub id: String,
    pub token_hash: String,
    pub user_id: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub ended_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = session_factors)]
struct FactorRow {
    factor: String,
    user_verified: bool,
    proven_at: i64,
}

/// Where a proof came from, recorded with it.
#[derive(Debug, Clone, Default)]
pub struct ProofContext {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

pub fn insert_session(conn: &mut Conn, session: &Session) -> Result<(), StoreError> {
    native!(conn => diesel::insert_into(sessions::table).values(session).execute(conn))?;
    Ok(())
}

/// The live session a cookie's token names (not ended, not past its absolute or idle expiry),
/// with its user (unless disabled) and the factors the user holds, in one statement: every request
/// that carries a session cookie asks.
pub fn find_live_with_user(
    conn: &mut Conn,
    token_hash: &str,
    now: i64,
    idle_timeout: i64,
) -> Result<Option<(Session, User, Vec<Factor>)>, StoreError> {
    struct FindLiveWithUser;
    let found: Option<(Session, User, Held)> = native!(conn => prepared::<FindLiveWithUser, _>(
        sessions::table
            .inner_join(users::table.on(users::id.eq(sessions::user_id)))
            .filter(sessions::token_hash.eq(token_hash))
            .filter(sessions::ended_at.is_null())
            .filter(sessions::expires_at.gt(now))
            .filter(sessions::last_seen_at.gt(now - idle_timeout))
            .filter(users::disabled.eq(false))
            .select((Session::as_select(), User::as_select(), factors::held())),
    )
    .get_result(conn)
    .optional())?;
    Ok(found.map(|(session, user, held)| (session, user, factors::held_factors(held))))
}

pub fn find_session(conn: &mut Conn, id: &str) -> Result<Option<Session>, StoreError> {
    Ok(native!(conn => sessions::table.find(id).select(Session::as_select()).get_result(conn).optional())?)
}

/// Gives the session a new cookie value (at every authentication, against fixation); false when
/// the session has ended meanwhile (it keeps its old value).
pub fn rotate_token(conn: &mut Conn, id: &str, new_token_hash: &str, now: i64) -> Result<bool, StoreError> {
    struct Rotate;
    // Read back (`RETURNING`) so that it stays prepared (`prepared.rs`).
    let rotate = diesel::update(sessions::table.find(id).filter(sessions::ended_at.is_null()))
        .set((sessions::token_hash.eq(new_token_hash), sessions::last_seen_at.eq(now)))
        .returning(sessions::id);
    Ok(native!(conn => prepared::<Rotate, _>(rotate).get_result::<String>(conn).optional())?.is_some())
}

pub fn touch(conn: &mut Conn, id: &str, now: i64) -> Result<(), StoreError> {
    struct Touch;
    // Never backwards: a touch queued behind a later write of the same session (`write_aside`).
    let session = sessions::table.find(id).filter(sessions::last_seen_at.lt(now));
    let touch = diesel::update(session).set(sessions::last_seen_at.eq(now)).returning(sessions::id);
    native!(conn => prepared::<Touch, _>(touch).get_result::<String>(conn).optional())?;
    Ok(())
}

pub fn end_session(conn: &mut Conn, id: &str, now: i64) -> Result<(), StoreError> {
    native!(conn => diesel::update(sessions::table.find(id).filter(sessions::ended_at.is_null()))
        .set(sessions::ended_at.eq(now))
        .execute(conn))?;
    Ok(())
}

pub fn insert_factor(
    conn: &mut Conn,
    session_id: &str,
    proof: &ProvenFactor,
    ctx: &ProofContext,
) -> Result<(), StoreError> {
    native!(conn => diesel::insert_into(session_factors::table)
        .values((
            session_factors::id.eq(new_sequential_id()),
            session_factors::session_id.eq(session_id),
            session_factors::factor.eq(proof.factor.as_str()),
            session_factors::user_verified.eq(proof.user_verified),
            session_factors::proven_at.eq(proof.proven_at),
            session_factors::ip.eq(&ctx.ip),
            session_factors::user_agent.eq(&ctx.user_agent),
        ))
        .execute(conn))?;
    Ok(())
}

/// Forgets every proof of the session (a full re-authentication starts over).
pub fn delete_factors(conn: &mut Conn, session_id: &str) -> Result<(), StoreError> {
    native!(conn => diesel::delete(session_factors::table.filter(session_factors::session_id.eq(session_id))).execute(conn))?;
    Ok(())
}

/// The session's proof ledger: the latest proof of each factor.
pub fn proven_factors(conn: &mut Conn, session_id: &str) -> Result<Vec<ProvenFactor>, StoreError> {
    let rows: Vec<FactorRow> = native!(conn => session_factors::table
        .filter(session_factors::session_id.eq(session_id))
        .order(session_factors::proven_at.desc())
        .select(FactorRow::as_select())
        .load(conn))?;
    let mut ledger: Vec<ProvenFactor> = Vec::new();
    for r in rows {
        let factor: Factor = r.factor.parse().map_err(|e| StoreError::Corrupt(format!("{e}")))?;
        if !ledger.iter().any(|p| p.factor == factor) {
            ledger.push(ProvenFactor { factor, proven_at: r.proven_at, user_verified: r.user_verified });
        }
    }
    Ok(ledger)
}

/// The user's most recently active live session, if any.
pub fn latest_live_for_user(conn: &mut Conn, user_id: &str, now: i64, idle_timeout: i64) -> Result<Option<Session>, StoreError> {
    Ok(native!(conn => sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::ended_at.is_null())
        .filter(sessions::expires_at.gt(now))
        .filter(sessions::last_seen_at.gt(now - idle_timeout))
        .order(sessions::last_seen_at.desc())
        .select(Session::as_select())
        .first(conn)
        .optional())?)
}

/// Live sessions, most recently active first.
pub fn list_live(conn: &mut Conn, now: i64, idle_timeout: i64, limit: i64) -> Result<Vec<Session>, StoreError> {
    Ok(native!(conn => sessions::table
        .filter(sessions::ended_at.is_null())
        .filter(sessions::expires_at.gt(now))
        .filter(sessions::last_seen_at.gt(now - idle_timeout))
        .order(sessions::last_seen_at.desc())
        .limit(limit)
        .select(Session::as_select())
        .load(conn))?)
}

/// Ends every live session of the user (except `keep`); returns how many.
pub fn end_user_sessions(conn: &mut Conn, user_id: &str, keep: Option<&str>, now: i64) -> Result<usize, StoreError> {
    let target = sessions::table.filter(sessions::user_id.eq(user_id)).filter(sessions::ended_at.is_null());
    Ok(match keep {
        Some(k) => {
            native!(conn => diesel::update(target.filter(sessions::id.ne(k))).set(sessions::ended_at.eq(now)).execute(conn))?
        }
        None => native!(conn => diesel::update(target).set(sessions::ended_at.eq(now)).execute(conn))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::connection::InstrumentationEvent;
    use std::sync::{Arc, Mutex};

    /// Every step-up touches and rotates its session: both must be prepared once per connection,
    /// not parsed again at each use.
    #[test]
    fn touch_and_rotation_are_prepared_once_per_connection() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::Db::migrated_in(&dir, 1);
        let (runs, prepares) = (Arc::new(Mutex::new(0)), Arc::new(Mutex::new(0)));
        let (r, p) = (runs.clone(), prepares.clone());
        db.read(move |conn| {
            conn.set_instrumentation(move |event: InstrumentationEvent<'_>| match event {
                InstrumentationEvent::StartQuery { query, .. } if query.to_string().starts_with("UPDATE") => {
                    *r.lock().unwrap() += 1
                }
                InstrumentationEvent::CacheQuery { sql, .. } if sql.starts_with("UPDATE") => *p.lock().unwrap() += 1,
                _ => {}
            });
            for now in 0..3 {
                touch(conn, "no-such-session", now)?;
                rotate_token(conn, "no-such-session", "hash", now)?;
            }
            Ok(())
        })
        .unwrap();
        assert_eq!((*runs.lock().unwrap(), *prepares.lock().unwrap()), (6, 2));
    }

    /// A session read finds a live session with its enabled user and the user's factors; an
    /// ended, idle or lapsed session, or a disabled user, finds nothing.
    #[test]
    fn a_live_session_is_read_with_its_user_and_factors() {
        use diesel::connection::SimpleConnection;
        let dir = tempfile::tempdir().unwrap();
        let db = crate::Db::migrated_in(&dir, 1);
        let user = User::for_test("u", "ada");
        let session = |id: &str, token_hash: &str| Session {
            id: id.into(),
            token_hash: token_hash.into(),
            user_id: "u".into(),
            created_at: 0,
            last_seen_at: 100,
            expires_at: 1000,
            ip: None,
            user_agent: None,
            ended_at: None,
        };
        db.write(move |conn| {
            crate::users::insert_user(conn, &user)?;
            crate::users::set_password(conn, "u", "$argon2id$stub", 0)?;
            insert_session(conn, &session("s-live", "live"))?;
            insert_session(conn, &session("s-ended", "ended"))?;
            end_session(conn, "s-ended", 50)
        })
        .unwrap();
        let read = |hash: &'static str, now: i64| db.read(move |c| find_live_with_user(c, hash, now, 300)).unwrap();
        let (found, user, factors) = read("live", 200).unwrap();
        assert_eq!((found.id.as_str(), user.username.as_str(), factors), ("s-live", "ada", vec![Factor::Password]));
        assert!(read("ended", 200).is_none(), "ended");
        assert!(read("live", 400).is_none(), "idle for the whole timeout");
        assert!(read("live", 1000).is_none(), "past its absolute expiry");
        assert!(read("unknown", 200).is_none(), "no such token");
        db.write(|c| Ok(c.batch_execute("UPDATE users SET disabled = TRUE WHERE id = 'u'")?)).unwrap();
        assert!(read("live", 200).is_none(), "its user disabled");
    }
}
