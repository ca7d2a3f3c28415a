//! Access tokens whose signature Ladder already checked, or that it signed itself, remembered until
//! they expire. Resource servers present the same token again and again (introspection, userinfo),
//! and an ES256 verification costs about 90 µs where a lookup here costs one SHA-256; a relying
//! party usually calls userinfo right after the exchange, with a token Ladder has just signed. Only
//! the signature check is remembered: the caller still checks the claims, and asks the database
//! whether the token was revoked, every time. A token whose key has since been retired no longer
//! verifies. An entry holds no claims (they are read from the token again at each use), so that
//! a full cache stays a few megabytes.

use std::collections::HashMap;
use std::sync::RwLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Map, Value};

use crate::signing::{KeySet, VerifyError};

/// Bound on remembered tokens; when full, expired ones go, and if that is not enough, all.
const CAPACITY: usize = 20_000;

struct Entry {
    kid: String,
    typ: Option<String>,
    exp: i64,
}

#[derive(Default)]
pub struct VerifiedTokens {
    entries: RwLock<HashMap<[u8; 32], Entry>>,
}

impl VerifiedTokens {
    /// `KeySet::verify`, answered from memory for a token verified (or signed) before and not yet
    /// expired.
    pub fn verify(&self, keys: &KeySet, token: &str, now: i64) -> Result<(Option<String>, Map<String, Value>), VerifyError> {
        let digest = openssl::sha::sha256(token.as_bytes());
        let known = {
            let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
            entries.get(&digest).filter(|e| now < e.exp && keys.publishes(&e.kid)).map(|e| e.typ.clone())
        };
        if let Some(typ) = known
            && let Some(claims) = claims_of(token)
        {
            return Ok((typ, claims));
        }
        let (kid, typ, claims) = keys.verify_naming_key(token)?;
        let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
        self.insert(digest, Entry { kid: kid.to_owned(), typ: typ.clone(), exp }, now);
        Ok((typ, claims))
    }

    /// An access token Ladder has just signed with the key `kid`: valid by construction, so its
    /// first use need not check the signature.
    pub fn remember(&self, token: &str, kid: &str, exp: i64, now: i64) {
        let entry = Entry { kid: kid.to_owned(), typ: Some(crate::tokens::ACCESS_TOKEN_TYP.to_owned()), exp };
        self.insert(openssl::sha::sha256(token.as_bytes()), entry, now);
    }

    fn insert(&self, digest: [u8; 32], entry: Entry, now: i64) {
        if now >= entry.exp {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= CAPACITY {
            entries.retain(|_, e| now < e.exp);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(digest, entry);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.read().unwrap().len()
    }
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
    fn a_token_of_a_key_no_longer_published_is_checked_again() {
        let (cache, old) = (VerifiedTokens::default(), keys());
        let t = token(&old, 100);
        cache.verify(&old, &t, 10).unwrap();
        let other = keys();
        assert!(matches!(cache.verify(&other, &t, 10), Err(VerifyError::UnknownKey)));
    }
}
