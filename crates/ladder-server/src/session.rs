//! The browser's signed-in session, as handlers see it.

use actix_web::HttpRequest;
use ladder_core::{Factor, ProvenFactor};
use ladder_store::sessions::{self, ProofContext, Session};
use ladder_store::users::User;
use ladder_store::{Conn, StoreError, new_sequential_id};

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
    let db = state.db.clone();
    move |conn| {
        let Some(found) = token.map(|t| find_active(conn, &t, now, idle)).transpose()?.flatten() else { return Ok(None) };
        if found.session.last_seen_at < now {
            // The request does not wait on its session's last-seen time.
            let id = found.session.id.clone();
            db.write_aside(conn, move |conn| sessions::touch(conn, &id, now));
        }
        Ok(Some(found))
    }
}

/// The live session a cookie token names, inside a caller's write transaction (also right after
/// a proof rotated the token).
pub fn by_token_in(conn: &mut Conn, token: &str, now: i64, idle: i64) -> Result<Option<ActiveSession>, StoreError> {
    let found = find_active(conn, token, now, idle)?;
    if let Some(active) = &found
        && active.session.last_seen_at < now
    {
        sessions::touch(conn, &active.session.id, now)?;
    }
    Ok(found)
}

/// The live session a cookie token names, with its enabled user, proofs and enrolled factors.
fn find_active(conn: &mut Conn, token: &str, now: i64, idle: i64) -> Result<Option<ActiveSession>, StoreError> {
    let Some((session, user, enrolled)) = sessions::find_live_with_user(conn, &secret_key(token), now, idle)? else {
        return Ok(None);
    };
    let proofs = sessions::proven_factors(conn, &session.id)?;
    Ok(Some(ActiveSession { session, user, proofs, enrolled }))
}

/// A session that `proof` starts (a new session id at every authentication), not yet written,
/// and its cookie token.
fn new_session(user_id: &str, proof: &ProvenFactor, client: &ClientInfo, absolute_timeout: i64) -> (Session, String) {
    let (now, token) = (proof.proven_at, new_keyed_secret());
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
    (session, token)
}

fn write_start(
    conn: &mut Conn,
    session: &Session,
    previous: Option<&str>,
    proof: &ProvenFactor,
    ctx: &ProofContext,
) -> Result<(), StoreError> {
    if let Some(prev) = previous {
        sessions::end_session(conn, prev, proof.proven_at)?;
    }
    sessions::insert_session(conn, session)?;
    sessions::insert_factor(conn, &session.id, proof, ctx)
}

/// Records one more proof in an existing session and gives it a new cookie token (a step-up is an
/// authentication too: the session id a browser holds changes at every one). Returns the token.
pub fn add_proof(conn: &mut Conn, session_id: &str, proof: &ProvenFactor, client: &ClientInfo) -> Result<String, StoreError> {
    let token = new_keyed_secret();
    write_continue(conn, session_id, &secret_key(&token), proof, &proof_context(client))?;
    Ok(token)
}

/// Adds the proof and rotates the token; false when the session had ended meanwhile.
fn write_continue(
    conn: &mut Conn,
    session_id: &str,
    token_hash: &str,
    proof: &ProvenFactor,
    ctx: &ProofContext,
) -> Result<bool, StoreError> {
    sessions::insert_factor(conn, session_id, proof, ctx)?;
    sessions::rotate_token(conn, session_id, token_hash, proof.proven_at)
}

fn proof_context(client: &ClientInfo) -> ProofContext {
    ProofContext { ip: client.ip.clone(), user_agent: client.user_agent.clone() }
}

/// A proof about to be recorded, and the session as recording it will leave it. Built before
/// anything is written, so the step-up plan can be asked first: a sign-in or step-up that needs
/// nothing more then records its proof and issues its code in one transaction, and none reads its
/// session back.
pub struct PreparedProof {
    /// The session after the proof, with its new cookie token.
    pub after: ActiveSession,
    pub token: String,
    proof: ProvenFactor,
    ctx: ProofContext,
    /// `Some(previous)`: the proof starts a new session, ending the browser's previous one.
    starts: Option<Option<String>>,
}

impl PreparedProof {
    /// How a fresh proof joins the browser's sessions: the same user proving again continues
    /// their session (`current`); anyone else starts a new one, and `current` ends. `enrolled`:
    /// the user's enrolled factors, for a new session.
    pub fn joining(
        current: Option<ActiveSession>,
        user: User,
        enrolled: Vec<Factor>,
        proof: ProvenFactor,
        client: &ClientInfo,
        absolute_timeout: i64,
    ) -> Self {
        match current {
            Some(c) if c.user.id == user.id => Self::continuing(c, proof, client),
            other => {
                let (session, token) = new_session(&user.id, &proof, client, absolute_timeout);
                PreparedProof {
                    after: ActiveSession { session, user, proofs: vec![proof], enrolled },
                    token,
                    proof,
                    ctx: proof_context(client),
                    starts: Some(other.map(|c| c.session.id)),
                }
            }
        }
    }

    /// One more proof in `active`, a session read moments before.
    pub fn continuing(active: ActiveSession, proof: ProvenFactor, client: &ClientInfo) -> Self {
        let token = new_keyed_secret();
        PreparedProof { after: with_proof(active, &token, proof), token, proof, ctx: proof_context(client), starts: None }
    }

    /// Writes the proof; false when the session it continues ended meanwhile (as a read would
    /// have found: `after` is then not the browser's session).
    pub fn record(&self, conn: &mut Conn) -> Result<bool, StoreError> {
        let session = &self.after.session;
        match &self.starts {
            Some(previous) => write_start(conn, session, previous.as_deref(), &self.proof, &self.ctx).map(|()| true),
            None => write_continue(conn, &session.id, &session.token_hash, &self.proof, &self.ctx),
        }
    }
}

/// The session after a proof: its new cookie token, seen when the proof was made, and the proof
/// first in its ledger in place of any older proof of the same factor (the ledger keeps the
/// latest proof of each factor, newest first).
fn with_proof(mut active: ActiveSession, token: &str, proof: ProvenFactor) -> ActiveSession {
    active.session.token_hash = secret_key(token);
    active.session.last_seen_at = proof.proven_at;
    active.proofs.retain(|p| p.factor != proof.factor);
    active.proofs.insert(0, proof);
    active
}

#[cfg(test)]
mod tests {
    use ladder_store::{Db, factors};

    use super::*;
    use crate::manage::NewUser;

    /// A proof builds the session it leaves instead of reading it back: both must agree, for a
    /// new session (ending the browser's previous one) and for one continued.
    #[test]
    fn a_proof_leaves_the_session_as_reading_it_back_would() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}/t.db", dir.path().display()), 1).unwrap();
        db.migrate().unwrap();
        let client = ClientInfo { ip: Some("192.0.2.1".into()), user_agent: Some("test".into()) };
        let proof = |factor, proven_at| ProvenFactor { factor, proven_at, user_verified: false };
        let new = |name: &str| NewUser {
            username: name.into(),
            email: None,
            name: None,
            password: "correct horse".into(),
            is_admin: false,
        };
        let alice = crate::manage::add_user(&db, new("alice"), 0).unwrap();
        let bob = crate::manage::add_user(&db, new("bob"), 0).unwrap();
        let same = |built: &ActiveSession, read: &ActiveSession| {
            assert_eq!(
                (&built.session, &built.user, &built.proofs, &built.enrolled),
                (&read.session, &read.user, &read.proofs, &read.enrolled)
            );
        };
        db.write(|conn| {
            let enrolled = factors::enrolled(conn, &alice.id)?;
            let password = proof(Factor::Password, 100);
            let first = PreparedProof::joining(None, alice.clone(), enrolled.clone(), password, &client, 3600);
            assert!(first.record(conn)?);
            same(&first.after, &by_token_in(conn, &first.token, 100, 600)?.expect("a new session"));
            let token = add_proof(conn, &first.after.session.id, &proof(Factor::Totp, 110), &client)?;
            let before = by_token_in(conn, &token, 120, 600)?.expect("a live session");

            let password = proof(Factor::Password, 125);
            let again = PreparedProof::joining(Some(before.clone()), alice.clone(), enrolled, password, &client, 3600);
            assert_eq!(again.after.session.id, before.session.id, "the same user continues the session");
            let stepped = PreparedProof::continuing(before.clone(), proof(Factor::Totp, 130), &client);
            assert!(stepped.record(conn)?);
            same(&stepped.after, &by_token_in(conn, &stepped.token, 130, 600)?.expect("read back"));
            assert_eq!(stepped.after.proofs, vec![proof(Factor::Totp, 130), proof(Factor::Password, 100)]);

            let enrolled = factors::enrolled(conn, &bob.id)?;
            let password = proof(Factor::Password, 135);
            let other = PreparedProof::joining(Some(stepped.after.clone()), bob.clone(), enrolled, password, &client, 3600);
            assert!(other.record(conn)?);
            same(&other.after, &by_token_in(conn, &other.token, 135, 600)?.expect("bob's session"));
            let ended = by_token_in(conn, &stepped.token, 135, 600)?;
            assert!(ended.is_none(), "another user's proof ends the previous session");

            let late = PreparedProof::continuing(before, proof(Factor::Totp, 150), &client);
            assert!(!late.record(conn)?, "a session ended meanwhile is not continued");
            Ok(())
        })
        .unwrap();
    }
}
