//! The issuer's signing keys, fetched from its JWKS and kept in memory.
//!
//! Keys are refetched when the cached set is older than its max age, or when a token names a
//! key we do not have (a rotation). Any fetch waits for a cooldown since the previous attempt,
//! so a stream of tokens with invented `kid`s cannot turn this server into a JWKS hammer.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use josekit::jwk::{Jwk, JwkSet};
use josekit::jws::{ES256, EdDSA, JwsVerifier, RS256};

use crate::error::{GuardError, TokenRejection};

/// The signature algorithms Ladder uses; anything else (notably `none` and HMAC) is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alg {
    ES256,
    RS256,
    /// Ed25519 (RFC 8037).
    EdDSA,
}

impl Alg {
    pub(crate) fn parse(name: &str) -> Option<Alg> {
        match name {
            "ES256" => Some(Alg::ES256),
            "RS256" => Some(Alg::RS256),
            "EdDSA" => Some(Alg::EdDSA),
            _ => None,
        }
    }

    /// The algorithm a JWK is for: its `alg`, or else what its key type implies.
    fn of_jwk(jwk: &Jwk) -> Option<Alg> {
        match jwk.algorithm() {
            Some(name) => Alg::parse(name),
            None => match (jwk.key_type(), jwk.curve()) {
                ("EC", Some("P-256")) => Some(Alg::ES256),
                ("RSA", _) => Some(Alg::RS256),
                ("OKP", Some("Ed25519")) => Some(Alg::EdDSA),
                _ => None,
            },
        }
    }
}

struct Key {
    kid: String,
    alg: Alg,
    verifier: Arc<dyn JwsVerifier>,
}

#[derive(Default)]
struct Snapshot {
    keys: Arc<Vec<Key>>,
    /// When the keys were last fetched successfully.
    fetched_at: Option<i64>,
    /// When a fetch was last tried, successful or not.
    attempted_at: Option<i64>,
    last_fetch_failed: bool,
}

impl Snapshot {
    fn find(&self, kid: &str, alg: Alg) -> Option<Arc<dyn JwsVerifier>> {
        self.keys
            .iter()
            .find(|k| k.kid == kid && k.alg == alg)
            .map(|k| Arc::clone(&k.verifier))
    }
}

/// Seconds from `then` to `now` are at least `span`; a clock that went backwards counts as elapsed
/// so that a wrong clock cannot freeze the cache.
fn elapsed(then: Option<i64>, now: i64, span: i64) -> bool {
    then.is_none_or(|t| now < t || now - t >= span)
}

pub(crate) struct KeyCache {
    uri: String,
    http: reqwest::Client,
    max_age: i64,
    cooldown: i64,
    snapshot: RwLock<Arc<Snapshot>>,
    /// Held during a fetch so that concurrent misses cause one request, not many.
    fetching: tokio::sync::Mutex<()>,
}

impl KeyCache {
    pub(crate) fn new(
        uri: String,
        http: reqwest::Client,
        max_age: Duration,
        cooldown: Duration,
    ) -> KeyCache {
        let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        KeyCache {
            uri,
            http,
            max_age: secs(max_age),
            cooldown: secs(cooldown),
            snapshot: RwLock::new(Arc::default()),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    pub(crate) fn uri(&self) -> &str {
        &self.uri
    }

    fn current(&self) -> Arc<Snapshot> {
        match self.snapshot.read() {
            Ok(s) => Arc::clone(&s),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    fn store(&self, snapshot: Snapshot) {
        let snapshot = Arc::new(snapshot);
        match self.snapshot.write() {
            Ok(mut s) => *s = snapshot,
            Err(poisoned) => *poisoned.into_inner() = snapshot,
        }
    }

    fn wants_fetch(&self, snap: &Snapshot, kid: &str, alg: Alg, now: i64) -> bool {
        let stale = elapsed(snap.fetched_at, now, self.max_age);
        (stale || snap.find(kid, alg).is_none()) && elapsed(snap.attempted_at, now, self.cooldown)
    }

    /// The verifier for `kid`/`alg`, fetching the JWKS first if needed and allowed.
    pub(crate) async fn verifier(
        &self,
        kid: &str,
        alg: Alg,
        now: i64,
    ) -> Result<Arc<dyn JwsVerifier>, GuardError> {
        let mut snap = self.current();
        if self.wants_fetch(&snap, kid, alg, now) {
            let _fetching = self.fetching.lock().await;
            // Another request may have fetched while this one waited.
            snap = self.current();
            if self.wants_fetch(&snap, kid, alg, now) {
                let next = match self.fetch().await {
                    Ok(keys) => Snapshot {
                        keys: Arc::new(keys),
                        fetched_at: Some(now),
                        attempted_at: Some(now),
                        last_fetch_failed: false,
                    },
                    // Keep serving the keys we had: an outage of the issuer should not take
                    // down every API that trusts it.
                    Err(()) => Snapshot {
                        keys: Arc::clone(&snap.keys),
                        fetched_at: snap.fetched_at,
                        attempted_at: Some(now),
                        last_fetch_failed: true,
                    },
                };
                self.store(next);
                snap = self.current();
            }
        }
        match snap.find(kid, alg) {
            Some(verifier) => Ok(verifier),
            None if snap.last_fetch_failed || snap.fetched_at.is_none() => {
                Err(GuardError::KeysUnavailable)
            }
            None => Err(GuardError::InvalidToken(TokenRejection::UnknownKey)),
        }
    }

    /// Fetches and parses the JWKS; keys that cannot verify ES256, RS256 or EdDSA signatures are skipped.
    async fn fetch(&self) -> Result<Vec<Key>, ()> {
        let response = self.http.get(&self.uri).send().await.map_err(|_| ())?;
        if !response.status().is_success() {
            return Err(());
        }
        let body = response.bytes().await.map_err(|_| ())?;
        let set = JwkSet::from_bytes(&body).map_err(|_| ())?;
        let mut keys = Vec::new();
        for jwk in set.keys() {
            let (Some(kid), Some(alg)) = (jwk.key_id(), Alg::of_jwk(jwk)) else {
                continue;
            };
            let verifier: Arc<dyn JwsVerifier> = match alg {
                Alg::ES256 => match ES256.verifier_from_jwk(jwk) {
                    Ok(v) => Arc::new(v),
                    Err(_) => continue,
                },
                Alg::RS256 => match RS256.verifier_from_jwk(jwk) {
                    Ok(v) => Arc::new(v),
                    Err(_) => continue,
                },
                Alg::EdDSA => match EdDSA.verifier_from_jwk(jwk) {
                    Ok(v) => Arc::new(v),
                    Err(_) => continue,
                },
            };
            keys.push(Key {
                kid: kid.to_owned(),
                alg,
                verifier,
            });
        }
        Ok(keys)
    }
}
