//! Deleting what has expired, so tables do not grow forever. Each statement is bounded by time,
//! never by a count, and keeps what replay detection or the audit still needs.

use diesel::prelude::*;

use crate::schema::{
    access_tokens, authorization_codes, client_assertions, grants, interactions, logout_deliveries, refresh_tokens,
    session_factors, sessions, throttles, webauthn_challenges,
};
use crate::{Conn, StoreError};

/// How many rows each kind lost.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Purged {
    pub interactions: usize,
    pub codes: usize,
    pub challenges: usize,
    pub sessions: usize,
    pub access_tokens: usize,
    pub refresh_tokens: usize,
    pub grants: usize,
    pub assertions: usize,
    pub throttles: usize,
    pub deliveries: usize,
}

impl Purged {
    pub fn total(&self) -> usize {
        self.interactions
            + self.codes
            + self.challenges
            + self.sessions
            + self.access_tokens
            + self.refresh_tokens
            + self.grants
            + self.assertions
            + self.throttles
            + self.deliveries
    }
}

/// Removes rows that expired more than `grace` seconds ago (codes are kept that long after
/// expiry so a late replay is still recognised as one and revokes its grant).
pub fn purge_expired(conn: &mut Conn, now: i64, grace: i64) -> Result<Purged, StoreError> {
    let cutoff = now - grace;
    let mut p = Purged {
        interactions: diesel::delete(interactions::table.filter(interactions::expires_at.lt(now))).execute(conn)?,
        codes: diesel::delete(authorization_codes::table.filter(authorization_codes::expires_at.lt(cutoff))).execute(conn)?,
        challenges: diesel::delete(webauthn_challenges::table.filter(webauthn_challenges::expires_at.lt(now))).execute(conn)?,
        assertions: diesel::delete(client_assertions::table.filter(client_assertions::expires_at.lt(now))).execute(conn)?,
        throttles: diesel::delete(
            throttles::table.filter(throttles::window_start.lt(cutoff)).filter(throttles::locked_until.lt(now)),
        )
        .execute(conn)?,
        deliveries: diesel::delete(logout_deliveries::table.filter(logout_deliveries::created_at.lt(cutoff)))
            .execute(conn)?,
        ..Purged::default()
    };
    p.access_tokens = diesel::delete(access_tokens::table.filter(access_tokens::expires_at.lt(cutoff))).execute(conn)?;
    p.refresh_tokens = diesel::delete(refresh_tokens::table.filter(refresh_tokens::expires_at.lt(cutoff))).execute(conn)?;
    // Grants with nothing left to use: revoked, or with no live refresh token, past the grace.
    let live_refresh = refresh_tokens::table.select(refresh_tokens::grant_id);
    let live_access = access_tokens::table.filter(access_tokens::grant_id.is_not_null()).select(access_tokens::grant_id.assume_not_null());
    p.grants = diesel::delete(
        grants::table
            .filter(grants::created_at.lt(cutoff))
            .filter(grants::id.ne_all(live_refresh))
            .filter(grants::id.ne_all(live_access)),
    )
    .execute(conn)?;
    // Sessions ended or expired (absolutely) past the grace; their proofs go with them.
    let dead = sessions::table
        .filter(sessions::expires_at.lt(cutoff).or(sessions::ended_at.lt(cutoff)))
        .select(sessions::id);
    diesel::delete(session_factors::table.filter(session_factors::session_id.eq_any(dead))).execute(conn)?;
    p.sessions = diesel::delete(sessions::table.filter(sessions::expires_at.lt(cutoff).or(sessions::ended_at.lt(cutoff))))
        .execute(conn)?;
    Ok(p)
}
