//! The browser's signed-in session, as handlers see it.

use actix_web::HttpRequest;
use ladder_core::{Factor, ProvenFactor};
use ladder_store::sessions::{self, ProofContext, Session};
use ladder_store::users::{self, User};
use ladder_store::{Conn, StoreError, factors, new_sequential_id};

use crate::browser::{ClientInfo, session_token};
use crate::crypto::{new_keyed_secret, secret_key};
use crate::errors::AppError;
use crate::state::AppState;

#[derive(Debug, Clone)]
pub struct ActiveSession {
    pub session: Session,
    pub user: User,
    pub proofs: Vec<ProvenFactor>,
    /// The factors the user has enrolled (read with the session: every step-up decision needs them).
    pub enrolled: Vec<Factor>,
}

/// The live session behind the request's cookie, with its user (if enabled), proofs and enrolled
/// factors, in one round trip.
pub async fn current(state: &AppState, req: &HttpRequest) -> Result<Option<ActiveSession>, AppError> {
    if session_token(state, req).is_none() {
        return Ok(None); // no cookie: no round trip
    }
    state.lookup(current_reader(state, req)).await
}

/// `current`, as a read to run inside a caller's round trip.
pub fn current_reader(
    state: &AppState,
    req: &HttpRequest,
) -> impl FnOnce(&mut Conn) -> Result<Option<ActiveSession>, StoreError> + Send + 'static {
    let (token, now, idle) = (session_token(state, req), state.now(), state.settings.session.idle_timeout_secs);
    move |conn| token.map(|t| by_token_in(conn, &t, now, idle)).transpose().map(Option::flatten)
}

/// The live session a cookie token names, inside a caller's round trip (also right after a proof
/// rotated the token).
pub fn by_token_in(conn: &mut Conn, token: &str, now: i64, idle: i64) -> Result<Option<ActiveSession>, StoreError> {
    let Some(session) = sessions::find_live_session(conn, &secret_key(token), now, idle)? else {
        return Ok(None);
    };
    let Some(user) = users::find_user(conn, &session.user_id)?.filter(|u| !u.disabled) else {
        return Ok(None);
    };
    let proofs = sessions::proven_factors(conn, &session.id)?;
    // Unchanged within the second (every page of one flow): no write, no commit.
    if session.last_seen_at != now {
        sessions::touch(conn, &session.id, now)?;
    }
    let enrolled = factors::enrolled(conn, &user.id)?;
    Ok(Some(ActiveSession { session, user, proofs, enrolled }))
}

/// Starts a new session for `user_id` with `proof` as its first factor, ending `previous` (a new
/// session id at every authentication). Returns the session id and the cookie token.
pub fn start(
    conn: &mut Conn,
    user_id: &str,
    previous: Option<&str>,
    proof: &ProvenFactor,
    client: &ClientInfo,
    absolute_timeout: i64,
) -> Result<(String, String), StoreError> {
    let now = proof.proven_at;
    if let Some(prev) = previous {
        sessions::end_session(conn, prev, now)?;
    }
    let token = new_keyed_secret();
    let session = Session {
        id: new_sequential_id(),
        token_hash: secret_key(&token),
        user_id: user_id.to_owned(),
        created_at: now,
        last_seen_at: now,
        expires_at: now + absolute_timeout,
        ip: client.ip.clone(),
        user_agent: client.user_agent.clone(),
        ended_at: None,
    };
    sessions::insert_session(conn, &session)?;
    let ctx = ProofContext { ip: client.ip.clone(), user_agent: client.user_agent.clone() };
    sessions::insert_factor(conn, &session.id, proof, &ctx)?;
    Ok((session.id, token))
}

/// Records one more proof in an existing session and gives it a new cookie token (a step-up is an
/// authentication too: the session id a browser holds changes at every one). Returns the token.
pub fn add_proof(conn: &mut Conn, session_id: &str, proof: &ProvenFactor, client: &ClientInfo) -> Result<String, StoreError> {
    Ok(add_proof_if_live(conn, session_id, proof, client)?.0)
}

/// `add_proof`, also saying whether the session was still live (not ended meanwhile).
fn add_proof_if_live(
    conn: &mut Conn,
    session_id: &str,
    proof: &ProvenFactor,
    client: &ClientInfo,
) -> Result<(String, bool), StoreError> {
    let ctx = ProofContext { ip: client.ip.clone(), user_agent: client.user_agent.clone() };
    sessions::insert_factor(conn, session_id, proof, &ctx)?;
    let token = new_keyed_secret();
    let live = sessions::rotate_token(conn, session_id, &secret_key(&token), proof.proven_at)?;
    Ok((token, live))
}

/// `add_proof` on a session read moments before, returning the session as the proof left it
/// without reading it back (`None` when it ended meanwhile, as a read would have found).
pub fn add_proof_to(
    conn: &mut Conn,
    active: ActiveSession,
    proof: ProvenFactor,
    client: &ClientInfo,
) -> Result<(String, Option<ActiveSession>), StoreError> {
    let (token, live) = add_proof_if_live(conn, &active.session.id, &proof, client)?;
    let active = live.then(|| with_proof(active, &token, proof));
    Ok((token, active))
}

/// The session after `add_proof`: its new cookie token, seen when the proof was made, and the
/// proof first in its ledger in place of any older proof of the same factor (the ledger keeps the
/// latest proof of each factor, newest first).
fn with_proof(mut active: ActiveSession, token: &str, proof: ProvenFactor) -> ActiveSession {
    active.session.token_hash = secret_key(token);
    active.session.last_seen_at = proof.proven_at;
    active.proofs.retain(|p| p.factor != proof.factor);
    active.proofs.insert(0, proof);
    active
}

/// How a fresh proof joins the browser's sessions: the same user proving again continues their
/// session; anyone else starts a new one, and the browser's previous session ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Continuation {
    Same(String),
    New { previous: Option<String> },
}

pub async fn continuation(state: &AppState, req: &HttpRequest, user_id: &str) -> Result<Continuation, AppError> {
    Ok(match current(state, req).await? {
        Some(c) if c.user.id == user_id => Continuation::Same(c.session.id),
        Some(c) => Continuation::New { previous: Some(c.session.id) },
        None => Continuation::New { previous: None },
    })
}

/// Records the proof the way `continuation` says; returns the session id and its new cookie token.
pub fn record_proof(
    conn: &mut Conn,
    continuation: &Continuation,
    user_id: &str,
    proof: &ProvenFactor,
    client: &ClientInfo,
    absolute_timeout: i64,
) -> Result<(String, String), StoreError> {
    match continuation {
        Continuation::Same(id) => Ok((id.clone(), add_proof(conn, id, proof, client)?)),
        Continuation::New { previous } => start(conn, user_id, previous.as_deref(), proof, client, absolute_timeout),
    }
}

#[cfg(test)]
mod tests {
    use ladder_store::Db;

    use super::*;
    use crate::manage::NewUser;

    /// A step-up builds the session it leaves instead of reading it back: both must agree.
    #[test]
    fn a_proof_leaves_the_session_as_reading_it_back_would() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}/t.db", dir.path().display()), 1).unwrap();
        db.migrate().unwrap();
        let client = ClientInfo { ip: Some("192.0.2.1".into()), user_agent: Some("test".into()) };
        let proof = |factor, proven_at| ProvenFactor { factor, proven_at, user_verified: false };
        let new = NewUser { username: "alice".into(), email: None, name: None, password: "correct horse".into(), is_admin: false };
        let user = crate::manage::add_user(&db, new, 0).unwrap();
        db.write(|conn| {
            let (id, _) = start(conn, &user.id, None, &proof(Factor::Password, 100), &client, 3600)?;
            let token = add_proof(conn, &id, &proof(Factor::Totp, 110), &client)?;
            let before = by_token_in(conn, &token, 120, 600)?.expect("a live session");

            let (token, built) = add_proof_to(conn, before.clone(), proof(Factor::Totp, 130), &client)?;
            let (built, read) = (built.expect("still live"), by_token_in(conn, &token, 130, 600)?.expect("read back"));
            assert_eq!(
                (&built.session, &built.user, &built.proofs, &built.enrolled),
                (&read.session, &read.user, &read.proofs, &read.enrolled)
            );
            assert_eq!(built.proofs, vec![proof(Factor::Totp, 130), proof(Factor::Password, 100)]);

            sessions::end_session(conn, &id, 140)?;
            let (_, ended) = add_proof_to(conn, before, proof(Factor::Totp, 150), &client)?;
            assert!(ended.is_none(), "a session ended meanwhile is not continued");
            Ok(())
        })
        .unwrap();
    }
}
