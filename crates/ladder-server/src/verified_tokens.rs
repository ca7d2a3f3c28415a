//! Access tokens whose signature Ladder already checked, or that it signed itself, remembered until
//! they expire. Resource servers present the same token again and again (introspection, userinfo),
//! and an ES256 verification costs about 90 µs where a lookup here costs one SHA-256; a relying
//! party usually calls userinfo right after the exchange, with a token Ladder has just signed. Only
//! the signature check is remembered: the caller still checks the claims, and asks the database
//! whether the token was revoked, every time. A token whose key has since been retired no longer
//! verifies. Only access tokens (`typ` `at+jwt`) are remembered, the only tokens the callers
//! accept, and an entry is the token's digest, its expiry and a shared handle on its key's id: no
//! claims and no allocation of its own, so that a full cache stays under half a megabyte.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Map, Value};

use crate::signing::{KeySet, VerifyError};
use crate::tokens::ACCESS_TOKEN_TYP;

/// Bound on remembered tokens; when full, expired ones go, and if that is not enough, all. 7/8 of
/// 8,192, the most a table of 8,192 slots holds before it would double.
const CAPACITY: usize = 7_168;

struct Entry {
    kid: Arc<str>,
    exp: i64,
}

#[derive(Default)]
pub struct VerifiedTokens {
    entries: RwLock<HashMap<[u8; 32], Entry>>,
}

impl VerifiedTokens {
    /// `KeySet::verify`, answered from memory for an access token verified (or signed) before and
    /// not yet expired.
    pub fn verify(&self, keys: &KeySet, token: &str, now: i64) -> Result<(Option<String>, Map<String, Value>), VerifyError> {
        let digest = openssl::sha::sha256(token.as_bytes());
        let known = {
            let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
            entries.get(&digest).is_some_and(|e| now < e.exp && keys.publishes(&e.kid))
        };
        if known && let Some(claims) = claims_of(token) {
            return Ok((Some(ACCESS_TOKEN_TYP.to_owned()), claims));
        }
        let (kid, typ, claims) = keys.verify_naming_key(token)?;
        if typ.as_deref().is_some_and(is_access_token_typ) {
            let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
            self.insert(digest, Entry { kid: kid.clone(), exp }, now);
        }
        Ok((typ, claims))
    }

    /// An access token Ladder has just signed with the key `kid`: valid by construction, so its
    /// first use need not check the signature.
    pub fn remember(&self, token: &str, kid: &Arc<str>, exp: i64, now: i64) {
        self.insert(openssl::sha::sha256(token.as_bytes()), Entry { kid: kid.clone(), exp }, now);
    }

    fn insert(&self, digest: [u8; 32], entry: Entry, now: i64) {
        if now >= entry.exp {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= CAPACITY {
            // Rebuilt rather than pruned in place: a pruned table keeps its deleted slots, and
            // the next insert would double it.
            let mut kept = HashMap::with_capacity(CAPACITY);
            kept.extend(entries.drain().filter(|(_, e)| now < e.exp));
            if kept.len() >= CAPACITY {
                kept.clear();
            }
            *entries = kept;
        }
        entries.insert(digest, entry);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.read().unwrap().len()
    }
}

/// The `typ` of an access token (RFC 9068), which media-type rules make case-insensitive.
pub fn is_access_token_typ(typ: &str) -> bool {
    typ.eq_ignore_ascii_case(ACCESS_TOKEN_TYP)
}

/// The claims of a compact JWS whose signature is known good.
fn claims_of(token: &str) -> Option<Map<String, Value>> {
    let payload = token.split('.').nth(1)?;
    serde_json::from_slice(&B64.decode(payload).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::crypto::ServerKey;
    use crate::signing::{self, Alg};

    fn keys() -> KeySet {
        let (server_key, _) = ServerKey::generate();
        let rows = vec![signing::generate_key(Alg::ES256, &server_key, 0).unwrap()];
        KeySet::load(rows, &server_key).unwrap()
    }

    fn token(keys: &KeySet, exp: i64) -> String {
        let claims = json!({ "iss": "https://id.example", "exp": exp, "jti": "j" });
        keys.sign(Alg::ES256, "at+jwt", claims.as_object().unwrap().clone()).unwrap()
    }

    #[test]
    fn remembers_valid_tokens_until_they_expire() {
        let (keys, cache) = (keys(), VerifiedTokens::default());
        let t = token(&keys, 100);
        let (typ, claims) = cache.verify(&keys, &t, 10).unwrap();
        assert_eq!((typ.as_deref(), claims["exp"].as_i64()), (Some("at+jwt"), Some(100)));
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.verify(&keys, &t, 99).unwrap().1, claims, "the same answer from memory");
        assert!(cache.verify(&keys, &t, 100).is_ok(), "expiry is the caller's to judge");
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn never_remembers_a_bad_signature_or_an_expired_token() {
        let (keys, cache) = (keys(), VerifiedTokens::default());
        let t = token(&keys, 100);
        let forged = format!("{}AAAA", &t[..t.len() - 4]);
        assert!(cache.verify(&keys, &forged, 10).is_err());
        assert!(cache.verify(&keys, &forged, 10).is_err(), "refused again, not remembered");
        assert!(cache.verify(&keys, &t, 200).is_ok());
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn a_token_it_signed_is_answered_from_memory_until_it_expires() {
        let (keys, cache) = (keys(), VerifiedTokens::default());
        let t = token(&keys, 100);
        let (kid, _, claims) = keys.verify_naming_key(&t).unwrap();
        cache.remember(&t, kid, 100, 10);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.verify(&keys, &t, 50).unwrap(), (Some("at+jwt".to_owned()), claims));
        cache.remember("expired.token.x", kid, 100, 100);
        assert_eq!(cache.len(), 1, "an expired token is not remembered");
        let forged = format!("{}AAAA", &t[..t.len() - 4]);
        assert!(cache.verify(&keys, &forged, 50).is_err(), "only that exact token");
    }

    #[test]
    fn only_access_tokens_are_remembered() {
        let (keys, cache) = (keys(), VerifiedTokens::default());
        let claims = json!({ "iss": "https://id.example", "exp": 100 });
        let id_token = keys.sign(Alg::ES256, "JWT", claims.as_object().unwrap().clone()).unwrap();
        let (typ, _) = cache.verify(&keys, &id_token, 10).unwrap();
        assert_eq!(typ.as_deref(), Some("JWT"));
        assert_eq!(cache.len(), 0);
        let upper = keys.sign(Alg::ES256, "AT+JWT", claims.as_object().unwrap().clone()).unwrap();
        cache.verify(&keys, &upper, 10).unwrap();
        assert_eq!(cache.len(), 1, "the type is compared without regard to case");
    }

    #[test]
    fn a_full_cache_keeps_its_bound() {
        let (keys, cache) = (keys(), VerifiedTokens::default());
        let kid = keys.active_kid(Alg::ES256).unwrap();
        for i in 0..CAPACITY {
            cache.remember(&format!("token-{i}"), kid, 50, 10);
        }
        assert_eq!(cache.len(), CAPACITY);
        cache.remember("one-more", kid, 60, 20);
        assert_eq!(cache.len(), 1, "none had expired, so all went");
        for i in 0..CAPACITY - 1 {
            cache.remember(&format!("token-{i}"), kid, 70, 20);
        }
        cache.remember("after-expiry", kid, 80, 65);
        assert_eq!(cache.len(), CAPACITY, "the expired one made room; the live ones stayed");
        assert!(!cache.entries.read().unwrap().contains_key(&openssl::sha::sha256(b"one-more")));
        assert_eq!(cache.entries.read().unwrap().capacity(), CAPACITY, "the table never grew past its bound");
    }

    #[test]
    fn a_token_of_a_key_no_longer_published_is_checked_again() {
        let (cache, old) = (VerifiedTokens::default(), keys());
        let t = token(&old, 100);
        cache.verify(&old, &t, 10).unwrap();
        let other = keys();
        assert!(matches!(cache.verify(&other, &t, 10), Err(VerifyError::UnknownKey)));
    }
}
