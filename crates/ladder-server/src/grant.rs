//! The validated authorization request that travels through Ladder's pages, and what happens when
//! it completes: an authorization code bound to everything the request said, sent back with `iss`.

use ladder_core::{AcrRequest, Levels, MaxAge, ProvenFactor, ReportedAcr, Target, access_token_lapse, amr_for, reported_acr_for};
use ladder_store::codes::{self, AuthorizationCode};
use ladder_store::{Conn, StoreError};
use serde::{Deserialize, Serialize};

use crate::crypto::{new_keyed_secret, secret_key};

/// An authorization request after every check in `endpoints::authorize` passed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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
    pub max_age: Option<MaxAge>,
    pub login_hint: Option<String>,
    /// `acr_values` and the `claims` parameter's `id_token.acr`, parsed.
    pub acr: AcrRequest,
    /// The subject the request names: a valid `id_token_hint`'s `sub` or `claims.id_token.sub`.
    pub subject_hint: Option<String>,
    /// The only user who may complete this request: the hint, or the signed-in user a step-up
    /// continues. Nobody else can sign in halfway (no silent account switch).
    pub pinned_sub: Option<String>,
    /// When the request arrived: proofs since then are this request's active authentication.
    pub requested_at: i64,
    /// Why a signed-in user was sent to step up (audit), if that is what this interaction is.
    pub stepup_reason: Option<String>,
    /// RFC 9396 `authorization_details` (JSON array), read by the value-threshold signal.
    #[serde(default)]
    pub authorization_details: Option<String>,
    /// Raises from risk signals seen when the request arrived (e.g. a dormant session).
    #[serde(default)]
    pub risk: Vec<ladder_core::Raise>,
}

/// The redirect URI with `pairs` appended to its query (existing query parameters kept).
pub fn redirect_with(redirect_uri: &str, pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return redirect_uri.to_owned();
    }
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

/// What a completed request grants: the acr as the RP spelled it, when that level lapses, the
/// methods used and the time of the last active authentication (DESIGN §3.6, §7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub acr: String,
    pub acr_expires_at: Option<i64>,
    pub amr: Vec<String>,
    pub auth_time: i64,
}

impl Grant {
    /// None when the proofs do not meet the request (essential acr unmet, or nothing proven).
    pub fn from_proofs(target: &Target, levels: &Levels, proofs: &[ProvenFactor], now: i64) -> Option<Grant> {
        let ReportedAcr::Acr { value, level } = reported_acr_for(target, levels, proofs, now) else {
            return None;
        };
        Some(Grant {
            acr: value,
            acr_expires_at: access_token_lapse(&level, proofs, now),
            amr: amr_for(proofs),
            auth_time: ladder_core::auth_time(proofs)?,
        })
    }
}

/// Mints a code for `request` carrying `grant`; returns the URL to send the browser to.
#[allow(clippy::too_many_arguments)]
pub fn issue_code(
    conn: &mut Conn,
    request: &AuthRequest,
    user_id: &str,
    session_id: &str,
    grant: &Grant,
    issuer: &str,
    code_ttl: i64,
    now: i64,
) -> Result<String, StoreError> {
    let code = new_keyed_secret();
    codes::insert_code(
        conn,
        &AuthorizationCode {
            code_hash: secret_key(&code),
            client_id: request.client_id.clone(),
            user_id: user_id.to_owned(),
            session_id: session_id.to_owned(),
            redirect_uri: request.redirect_uri.clone(),
            scope: request.scope.join(" "),
            nonce: request.nonce.clone(),
            code_challenge: request.code_challenge.clone(),
            acr: grant.acr.clone(),
            amr: serde_json::to_string(&grant.amr).unwrap_or_else(|_| "[]".into()),
            auth_time: grant.auth_time,
            created_at: now,
            expires_at: now + code_ttl,
            consumed_at: None,
            acr_expires_at: grant.acr_expires_at,
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
