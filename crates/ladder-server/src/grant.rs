//! The validated authorization request that travels through Ladder's pages, and what happens when
//! it completes: an authorization code bound to everything the request said, sent back with `iss`.

use ladder_core::{ProvenFactor, amr_for};
use ladder_store::codes::{self, AuthorizationCode};
use ladder_store::{Conn, StoreError};
use serde::{Deserialize, Serialize};

use crate::crypto::{random_token, sha256_hex};

/// An authorization request after every check in `endpoints::authorize` passed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuthRequest {
    pub client_id: String,
    pub redirect_uri: String,
    /// Granted scopes: requested ∩ allowed for the client, `openid` always first.
    pub scope: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub prompt_none: bool,
    pub prompt_login: bool,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    /// `sub` of a valid `id_token_hint`.
    pub hint_sub: Option<String>,
}

/// The redirect URI with `pairs` appended to its query (existing query parameters kept).
pub fn redirect_with(redirect_uri: &str, pairs: &[(&str, &str)]) -> String {
    match url::Url::parse(redirect_uri) {
        Ok(mut url) => {
            {
                let mut q = url.query_pairs_mut();
                for (k, v) in pairs {
                    q.append_pair(k, v);
                }
            }
            url.to_string()
        }
        // Registered redirect URIs are validated as absolute URLs; this is unreachable in practice.
        Err(_) => redirect_uri.to_owned(),
    }
}

/// The time of the most recent active authentication (OIDC Core §2, RFC 9470 §4).
pub fn auth_time(proofs: &[ProvenFactor]) -> i64 {
    proofs.iter().map(|p| p.proven_at).max().unwrap_or(0)
}

/// The acr reported for a set of proofs. Step-up levels extend this; one proof is level 1.
pub fn achieved_acr(proofs: &[ProvenFactor]) -> Option<&'static str> {
    (!proofs.is_empty()).then_some("urn:ladder:loa:1")
}

/// Mints a code for `request`, bound to the session's proofs; returns the URL to send the browser to.
pub fn issue_code(
    conn: &mut Conn,
    request: &AuthRequest,
    user_id: &str,
    session_id: &str,
    proofs: &[ProvenFactor],
    issuer: &str,
    code_ttl: i64,
    now: i64,
) -> Result<String, StoreError> {
    let code = random_token(32);
    let acr = achieved_acr(proofs).ok_or_else(|| StoreError::Corrupt("session without proofs".into()))?;
    codes::insert_code(
        conn,
        &AuthorizationCode {
            code_hash: sha256_hex(&code),
            client_id: request.client_id.clone(),
            user_id: user_id.to_owned(),
            session_id: session_id.to_owned(),
            redirect_uri: request.redirect_uri.clone(),
            scope: request.scope.join(" "),
            nonce: request.nonce.clone(),
            code_challenge: request.code_challenge.clone(),
            acr: acr.to_owned(),
            amr: serde_json::to_string(&amr_for(proofs)).unwrap_or_else(|_| "[]".into()),
            auth_time: auth_time(proofs),
            created_at: now,
            expires_at: now + code_ttl,
            consumed_at: None,
        },
    )?;
    let mut pairs = vec![("code", code.as_str())];
    if let Some(s) = &request.state {
        pairs.push(("state", s));
    }
    pairs.push(("iss", issuer));
    Ok(redirect_with(&request.redirect_uri, &pairs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_keeps_existing_query() {
        assert_eq!(
            redirect_with("https://rp.example/cb?x=1", &[("code", "a b"), ("state", "s")]),
            "https://rp.example/cb?x=1&code=a+b&state=s"
        );
    }
}
