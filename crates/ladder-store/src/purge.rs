//! Deleting what has expired, so tables do not grow forever, keeping what replay detection or the
//! audit still needs. Expired rows are found by a read and deleted by key in small write
//! transactions: on SQLite one writer serves every request, and a purge that scanned inside its
//! transaction held every sign-in for as long as the scan took, every few minutes, growing with
//! the tables.

use diesel::prelude::*;

use crate::db::native;
use crate::schema::{
    access_tokens, authorization_codes, client_assertions, grants, interactions, logout_deliveries, refresh_tokens, sessions,
    throttles, webauthn_challenges,
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
    /// Counts `n` more rows of `kind`.
    pub fn add(&mut self, kind: Kind, n: usize) {
        let count = match kind {
            Kind::Interactions => &mut self.interactions,
            Kind::Codes => &mut self.codes,
            Kind::Challenges => &mut self.challenges,
            Kind::Assertions => &mut self.assertions,
            Kind::Throttles => &mut self.throttles,
            Kind::Deliveries => &mut self.deliveries,
            Kind::AccessTokens => &mut self.access_tokens,
            Kind::RefreshTokens => &mut self.refresh_tokens,
            Kind::Grants => &mut self.grants,
            Kind::Sessions => &mut self.sessions,
        };
        *count += n;
    }

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

/// A grant no token row keeps alive: none of its refresh tokens is left, nor any access token
/// recorded when issued (before the `grant_id` claim; see also its `access_expires_at`). `NOT EXISTS`, so
/// that each grant costs two index probes (a `NOT IN` list of every token's grant id was built by
/// scanning the whole index).
macro_rules! without_tokens {
    () => {
        diesel::dsl::not(diesel::dsl::exists(refresh_tokens::table.filter(refresh_tokens::grant_id.eq(grants::id)))).and(
            diesel::dsl::not(diesel::dsl::exists(
                access_tokens::table.filter(access_tokens::grant_id.eq(grants::id.nullable())),
            )),
        )
    };
}

/// What the purge removes, in the order it removes them: tokens before the grants they keep alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Interactions,
    Codes,
    Challenges,
    Assertions,
    Throttles,
    Deliveries,
    AccessTokens,
    RefreshTokens,
    Grants,
    Sessions,
}

impl Kind {
    pub const ALL: [Kind; 10] = [
        Kind::Interactions,
        Kind::Codes,
        Kind::Challenges,
        Kind::Assertions,
        Kind::Throttles,
        Kind::Deliveries,
        Kind::AccessTokens,
        Kind::RefreshTokens,
        Kind::Grants,
        Kind::Sessions,
    ];
}

/// Runs `$body` with `$rows` bound to the rows of `$kind` past expiry and `$key` to their key
/// column, so the read that finds them and the delete that removes them ask the same condition.
/// Interactions, challenges and assertions go once expired; codes are kept `grace` past expiry so
/// a late replay is still recognised as one and revokes its grant; tokens, deliveries and
/// counters go `grace` past their time; grants once no token keeps them alive, `grace` after they
/// were made; sessions once ended or expired (absolutely), `grace` after.
macro_rules! with_expired {
    ($kind:expr, $now:expr, $cutoff:expr, |$rows:ident, $key:ident| $body:expr) => {
        match $kind {
            Kind::Interactions => {
                let ($rows, $key) = (interactions::table.filter(interactions::expires_at.lt($now)), interactions::id);
                $body
            }
            Kind::Codes => {
                let $rows = authorization_codes::table.filter(authorization_codes::expires_at.lt($cutoff));
                let $key = authorization_codes::code_hash;
                $body
            }
            Kind::Challenges => {
                let $rows = webauthn_challenges::table.filter(webauthn_challenges::expires_at.lt($now));
                let $key = webauthn_challenges::id;
                $body
            }
            // By jti alone: another client's assertion with the same jti goes too only if it has
            // expired as well.
            Kind::Assertions => {
                let $rows = client_assertions::table.filter(client_assertions::expires_at.lt($now));
                let $key = client_assertions::jti;
                $body
            }
            Kind::Throttles => {
                let $rows =
                    throttles::table.filter(throttles::window_start.lt($cutoff)).filter(throttles::locked_until.lt($now));
                let $key = throttles::key;
                $body
            }
            Kind::Deliveries => {
                let $rows = logout_deliveries::table.filter(logout_deliveries::created_at.lt($cutoff));
                let $key = logout_deliveries::id;
                $body
            }
            Kind::AccessTokens => {
                let ($rows, $key) = (access_tokens::table.filter(access_tokens::expires_at.lt($cutoff)), access_tokens::jti);
                $body
            }
            Kind::RefreshTokens => {
                let $rows = refresh_tokens::table.filter(refresh_tokens::expires_at.lt($cutoff));
                let $key = refresh_tokens::token_hash;
                $body
            }
            Kind::Grants => {
                let access_lapsed = grants::access_expires_at.is_null().or(grants::access_expires_at.lt($cutoff));
                let $rows = grants::table.filter(grants::created_at.lt($cutoff)).filter(access_lapsed).filter(without_tokens!());
                let $key = grants::id;
                $body
            }
            // Their proofs go with them (`ON DELETE CASCADE`).
            Kind::Sessions => {
                let $rows = sessions::table.filter(sessions::expires_at.lt($cutoff).or(sessions::ended_at.lt($cutoff)));
                let $key = sessions::id;
                $body
            }
        }
    };
}

/// Up to `limit` keys of rows of `kind` past expiry. No index covers expiry, so this scans: it is
/// a read, so that the scan never holds SQLite's single writer, and `delete_expired` then deletes
/// by key.
pub fn expired_keys(conn: &mut Conn, kind: Kind, now: i64, grace: i64, limit: i64) -> Result<Vec<String>, StoreError> {
    let cutoff = now - grace;
    with_expired!(kind, now, cutoff, |rows, key| Ok(native!(conn => rows.select(key).limit(limit).load(conn))?))
}

/// Deletes the rows of `kind` under `keys` (from `expired_keys`) that are still past expiry, so
/// a row that came back to life in between (a grant given a new token) stays. Returns how many
/// went.
pub fn delete_expired(conn: &mut Conn, kind: Kind, keys: &[String], now: i64, grace: i64) -> Result<usize, StoreError> {
    let cutoff = now - grace;
    with_expired!(kind, now, cutoff, |rows, key| Ok(native!(conn => diesel::delete(rows.filter(key.eq_any(keys))).execute(conn))?))
}

#[cfg(test)]
mod tests {
    use diesel::connection::SimpleConnection;

    use super::*;
    use crate::Db;
    use crate::grants::{self, Grant};

    /// Expired rows go in batches, by key; live ones stay, and so does a grant that gains a token
    /// between the read that found it and the delete.
    #[test]
    fn expired_rows_go_in_batches_and_the_living_stay() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::migrated_in(&dir, 2);
        let (now, grace) = (1_000_000, 100);
        db.write(|conn| {
            conn.batch_execute(
                "INSERT INTO clients (id, name, is_public, redirect_uris, scopes, created_at, updated_at) \
                 VALUES ('c', 'c', FALSE, '[]', '', 0, 0)",
            )?;
            for i in 0..1_200 {
                grants::insert_access_token(conn, &format!("old-{i:04}"), None, "c", 10)?;
            }
            for id in ["g-dead", "g-kept", "g-in-use", "g-revived"] {
                grants::insert_grant(conn, &Grant::for_test(id))?;
            }
            // Tokens that name their grant have no row: the grant keeps their expiry.
            grants::insert_grant(conn, &Grant { access_expires_at: Some(now + 60), ..Grant::for_test("g-named") })?;
            grants::insert_grant(conn, &Grant { access_expires_at: Some(now - grace - 1), ..Grant::for_test("g-named-lapsed") })?;
            grants::insert_access_token(conn, "live", Some("g-in-use"), "c", now + 60)?;
            grants::insert_refresh_token(conn, "r-live", "g-kept", 0, now + 3600)
        })
        .unwrap();

        let (mut gone, mut batches) = (0, 0);
        loop {
            let keys = db.read(|c| expired_keys(c, Kind::AccessTokens, now, grace, 500)).unwrap();
            if keys.is_empty() {
                break;
            }
            batches += 1;
            gone += db.write(|c| delete_expired(c, Kind::AccessTokens, &keys, now, grace)).unwrap();
        }
        assert_eq!((gone, batches), (1_200, 3));
        assert!(db.read(|c| grants::find_access_token(c, "live")).unwrap().is_some());

        let mut keys = db.read(|c| expired_keys(c, Kind::Grants, now, grace, 500)).unwrap();
        keys.sort();
        assert_eq!(keys, ["g-dead", "g-named-lapsed", "g-revived"]);
        db.write(|c| grants::insert_refresh_token(c, "r-new", "g-revived", now, now + 3600)).unwrap();
        assert_eq!(db.write(|c| delete_expired(c, Kind::Grants, &keys, now, grace)).unwrap(), 2);
        let found = |id: &'static str| db.read(move |c| grants::find_grant(c, id)).unwrap().is_some();
        assert_eq!(
            (found("g-dead"), found("g-kept"), found("g-in-use"), found("g-revived")),
            (false, true, true, true),
            "gone without tokens; kept by a refresh token, an access token, a token given in between"
        );
        assert_eq!((found("g-named"), found("g-named-lapsed")), (true, false), "kept while its access tokens live");

        // An ended session goes with its proofs; a live one stays.
        db.write(|conn| {
            Ok(conn.batch_execute(
                "INSERT INTO users (id, username, created_at, updated_at) VALUES ('u', 'u', 0, 0); \
                 INSERT INTO sessions (id, token_hash, user_id, created_at, last_seen_at, expires_at, ended_at) \
                 VALUES ('s-ended', 'h1', 'u', 0, 0, 2000000, 5), ('s-live', 'h2', 'u', 0, 0, 2000000, NULL); \
                 INSERT INTO session_factors (id, session_id, factor, proven_at) \
                 VALUES ('f1', 's-ended', 'password', 0), ('f2', 's-live', 'password', 0);",
            )?)
        })
        .unwrap();
        let keys = db.read(|c| expired_keys(c, Kind::Sessions, now, grace, 500)).unwrap();
        assert_eq!(keys, ["s-ended"]);
        assert_eq!(db.write(|c| delete_expired(c, Kind::Sessions, &keys, now, grace)).unwrap(), 1);
        let proofs = |id: &'static str| db.read(move |c| crate::sessions::proven_factors(c, id)).unwrap().len();
        assert_eq!((proofs("s-ended"), proofs("s-live")), (0, 1), "the ended session's proof went with it");
    }
}
