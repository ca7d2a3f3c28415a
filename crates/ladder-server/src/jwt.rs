//! Verifying JWTs signed by someone else's keys (client assertions): RS256 and ES256 only, never
//! `none`, the key chosen by `kid` (or tried in turn when the header names none).

use josekit::jwk::JwkSet;
use josekit::jws::{ES256, JwsVerifier, RS256};
use serde_json::{Map, Value};

pub fn verify_with_jwks(jwks_json: &str, token: &str) -> Result<Map<String, Value>, String> {
    let set = JwkSet::from_bytes(jwks_json.as_bytes()).map_err(|_| "the client's key set is malformed".to_owned())?;
    let header = josekit::jwt::decode_header(token).map_err(|_| "malformed JWT".to_owned())?;
    let alg = header.claim("alg").and_then(Value::as_str).unwrap_or_default().to_owned();
    let kid = header.claim("kid").and_then(Value::as_str).map(str::to_owned);
    let candidates: Vec<&josekit::jwk::Jwk> = match &kid {
        Some(k) => set.get(k),
        None => set.keys(),
    };
    for jwk in candidates {
        let verifier: Box<dyn JwsVerifier> = match alg.as_str() {
            "RS256" => match RS256.verifier_from_jwk(jwk) {
                Ok(v) => Box::new(v),
                Err(_) => continue,
            },
            "ES256" => match ES256.verifier_from_jwk(jwk) {
                Ok(v) => Box::new(v),
                Err(_) => continue,
            },
            _ => return Err(format!("unsupported algorithm `{alg}`")),
        };
        if let Ok((payload, _)) = josekit::jwt::decode_with_verifier(token, verifier.as_ref()) {
            return Ok(payload.claims_set().clone());
        }
    }
    Err("the signature does not match any of the client's keys".into())
}
