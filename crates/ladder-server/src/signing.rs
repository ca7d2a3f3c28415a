//! Signing keys: generated on first start, stored with the private half encrypted under the server
//! key, cached in memory (reloaded every minute so a rotation on one node reaches all), and served
//! as a pre-serialized JWKS. ID tokens default to RS256 (required by OIDC), access tokens to ES256;
//! a client may ask for any of the three algorithms for either (its registration metadata).

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use josekit::jwk::{Jwk, KeyPair};
use josekit::jwk::alg::ed::EdCurve;
use josekit::jws::{ES256, EdDSA, JwsHeader, JwsSigner, JwsVerifier, RS256};
use josekit::jwt::{self, JwtPayload};
use ladder_store::keys::{self, SigningKey};
use ladder_store::{Conn, Db};
use serde_json::{Map, Value};

use crate::crypto::{ServerKey, random_identifier};
use crate::es256::Es256Signer;
use crate::errors::AppError;

const RELOAD_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    RS256,
    ES256,
    /// Ed25519 (RFC 8037).
    EdDSA,
}

impl Alg {
    pub const ALL: [Alg; 3] = [Alg::RS256, Alg::ES256, Alg::EdDSA];

    pub fn as_str(self) -> &'static str {
        match self {
            Alg::RS256 => "RS256",
            Alg::ES256 => "ES256",
            Alg::EdDSA => "EdDSA",
        }
    }

    pub fn parse(s: &str) -> Option<Alg> {
        Alg::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// The associated data under which a private key is sealed: it cannot be swapped between rows.
fn seal_context(kid: &str) -> String {
    format!("signing_key:{kid}")
}

/// Makes a new key pair, ready to insert.
pub fn generate_key(alg: Alg, server_key: &ServerKey, now: i64) -> Result<SigningKey, AppError> {
    let kid = random_identifier(12);
    let (mut private, mut public) = match alg {
        Alg::RS256 => {
            let pair = RS256.generate_key_pair(2048).map_err(keys_err)?;
            (pair.to_jwk_private_key(), pair.to_jwk_public_key())
        }
        Alg::ES256 => {
            let pair = ES256.generate_key_pair().map_err(keys_err)?;
            (pair.to_jwk_private_key(), pair.to_jwk_public_key())
        }
        Alg::EdDSA => {
            let pair = EdDSA.generate_key_pair(EdCurve::Ed25519).map_err(keys_err)?;
            (pair.to_jwk_private_key(), pair.to_jwk_public_key())
        }
    };
    for jwk in [&mut private, &mut public] {
        jwk.set_key_id(kid.clone());
        jwk.set_algorithm(alg.as_str());
        jwk.set_key_use("sig");
    }
    let sealed = server_key
        .encrypt(&seal_context(&kid), private.to_string().as_bytes())
        .map_err(|e| AppError::Keys(e.to_string()))?;
    Ok(SigningKey {
        kid,
        alg: alg.as_str().into(),
        private_jwk_enc: sealed,
        public_jwk: public.to_string(),
        status: keys::ACTIVE.into(),
        created_at: now,
        retired_at: None,
    })
}

/// Gives every algorithm an active key if it has none (first start).
pub fn ensure_keys(conn: &mut Conn, server_key: &ServerKey, now: i64) -> Result<Vec<String>, AppError> {
    let existing = keys::list_published(conn)?;
    let mut created = Vec::new();
    for alg in Alg::ALL {
        if !existing.iter().any(|k| k.alg == alg.as_str() && k.status == keys::ACTIVE) {
            let key = generate_key(alg, server_key, now)?;
            keys::insert_key(conn, &key)?;
            created.push(key.kid);
        }
    }
    Ok(created)
}

/// Makes a new active key for `alg`; the previous one keeps verifying until retired.
pub fn rotate(conn: &mut Conn, alg: Alg, server_key: &ServerKey, now: i64) -> Result<SigningKey, AppError> {
    let key = generate_key(alg, server_key, now)?;
    keys::demote_active(conn, alg.as_str())?;
    keys::insert_key(conn, &key)?;
    Ok(key)
}

fn keys_err(e: josekit::JoseError) -> AppError {
    AppError::Keys(e.to_string())
}

struct LoadedKey {
    /// Shared with the tokens `VerifiedTokens` remembers for this key.
    kid: Arc<str>,
    alg: Alg,
    active: bool,
    signer: Box<dyn JwsSigner>,
    verifier: Box<dyn JwsVerifier>,
}

/// The keys in force at one moment.
pub struct KeySet {
    keys: Vec<LoadedKey>,
    jwks_json: String,
    loaded_at: Instant,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("malformed or unsigned token")]
    Malformed,
    #[error("unknown signing key")]
    UnknownKey,
    #[error("bad signature")]
    Signature,
}

/// A JWT's claims set.
pub type Claims = Map<String, Value>;

impl KeySet {
    pub(crate) fn load(rows: Vec<SigningKey>, server_key: &ServerKey) -> Result<KeySet, AppError> {
        let mut keys = Vec::new();
        let mut jwks = josekit::jwk::JwkSet::new();
        for row in rows {
            let Some(alg) = Alg::parse(&row.alg) else {
                tracing::warn!(kid = %row.kid, alg = %row.alg, "skipping key with unsupported algorithm");
                continue;
            };
            let private = server_key
                .decrypt(&seal_context(&row.kid), &row.private_jwk_enc)
                .map_err(|e| AppError::Keys(format!("key {}: {e}", row.kid)))?;
            let private = Jwk::from_bytes(private).map_err(keys_err)?;
            let public = Jwk::from_bytes(row.public_jwk.as_bytes()).map_err(keys_err)?;
            let (signer, verifier): (Box<dyn JwsSigner>, Box<dyn JwsVerifier>) = match alg {
                Alg::RS256 => (
                    Box::new(RS256.signer_from_jwk(&private).map_err(keys_err)?),
                    Box::new(RS256.verifier_from_jwk(&public).map_err(keys_err)?),
                ),
                Alg::ES256 => (
                    Box::new(Es256Signer::from_jwk(&private).map_err(keys_err)?),
                    Box::new(ES256.verifier_from_jwk(&public).map_err(keys_err)?),
                ),
                Alg::EdDSA => (
                    Box::new(EdDSA.signer_from_jwk(&private).map_err(keys_err)?),
                    Box::new(EdDSA.verifier_from_jwk(&public).map_err(keys_err)?),
                ),
            };
            jwks.push_key(public);
            keys.push(LoadedKey { kid: row.kid.into(), alg, active: row.status == keys::ACTIVE, signer, verifier });
        }
        Ok(KeySet { keys, jwks_json: jwks.to_string(), loaded_at: Instant::now() })
    }

    /// The key `sign` uses for `alg`.
    pub fn active_kid(&self, alg: Alg) -> Option<&Arc<str>> {
        self.keys.iter().find(|k| k.alg == alg && k.active).map(|k| &k.kid)
    }

    /// Whether `kid` is still published (a retired key's tokens no longer verify).
    pub fn publishes(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| &*k.kid == kid)
    }

    pub fn jwks_json(&self) -> &str {
        &self.jwks_json
    }

    /// Signs `claims` as a JWT with the active key of `alg`; `typ` is `JWT` or `at+jwt` (RFC 9068).
    pub fn sign(&self, alg: Alg, typ: &str, claims: Map<String, Value>) -> Result<String, AppError> {
        let key = self
            .keys
            .iter()
            .find(|k| k.alg == alg && k.active)
            .ok_or_else(|| AppError::Keys(format!("no active {} key", alg.as_str())))?;
        let mut header = JwsHeader::new();
        header.set_token_type(typ);
        header.set_key_id(key.kid.to_string());
        let payload = JwtPayload::from_map(claims).map_err(keys_err)?;
        jwt::encode_with_signer(&payload, &header, key.signer.as_ref()).map_err(keys_err)
    }

    /// Verifies a JWT we signed, with any published key; returns its header `typ` and claims.
    /// Claim checks (iss, exp, aud) are the caller's.
    pub fn verify(&self, token: &str) -> Result<(Option<String>, Claims), VerifyError> {
        self.verify_naming_key(token).map(|(_, typ, claims)| (typ, claims))
    }

    /// `verify`, also naming the key that signed the token: (kid, typ, claims).
    pub fn verify_naming_key(&self, token: &str) -> Result<(&Arc<str>, Option<String>, Claims), VerifyError> {
        let header = jwt::decode_header(token).map_err(|_| VerifyError::Malformed)?;
        let kid = header.claim("kid").and_then(Value::as_str).ok_or(VerifyError::UnknownKey)?;
        let alg = header.claim("alg").and_then(Value::as_str).ok_or(VerifyError::Malformed)?;
        let key = self
            .keys
            .iter()
            .find(|k| &*k.kid == kid && k.alg.as_str() == alg)
            .ok_or(VerifyError::UnknownKey)?;
        let (payload, header) =
            jwt::decode_with_verifier(token, key.verifier.as_ref()).map_err(|_| VerifyError::Signature)?;
        Ok((&key.kid, header.token_type().map(str::to_owned), payload.claims_set().clone()))
    }
}

/// Keys cached in memory, refreshed from the database at most once a minute.
pub struct KeyCache {
    current: RwLock<Arc<KeySet>>,
    db: Db,
    server_key: ServerKey,
}

impl KeyCache {
    pub fn load(db: Db, server_key: ServerKey) -> Result<KeyCache, AppError> {
        let set = KeySet::load(db.read(keys::list_published)?, &server_key)?;
        Ok(KeyCache { current: RwLock::new(Arc::new(set)), db, server_key })
    }

    fn cached(&self) -> Arc<KeySet> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The current key set; reloads (on the blocking pool) when it is older than a minute.
    pub async fn get(&self) -> Arc<KeySet> {
        let cached = self.cached();
        if cached.loaded_at.elapsed() < RELOAD_EVERY {
            return cached;
        }
        self.reload().await.unwrap_or(cached)
    }

    /// Reads the keys from the database now (after a rotation through this node, or when stale).
    pub async fn reload(&self) -> Option<Arc<KeySet>> {
        let (db, server_key) = (self.db.clone(), self.server_key.clone());
        let reloaded = actix_web::web::block(move || -> Result<KeySet, AppError> {
            KeySet::load(db.read(keys::list_published)?, &server_key)
        })
        .await;
        match reloaded {
            Ok(Ok(set)) => {
                let set = Arc::new(set);
                if let Ok(mut guard) = self.current.write() {
                    *guard = set.clone();
                }
                Some(set)
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "key reload failed; serving cached keys");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "key reload failed; serving cached keys");
                None
            }
        }
    }
}
