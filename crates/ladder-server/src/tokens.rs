//! Minting tokens: JWT access tokens (RFC 9068, ES256 unless the client asks otherwise), ID tokens
//! (OIDC Core §2, RS256 unless the client registered `id_token_signed_response_alg`) and opaque
//! refresh tokens, all from one grant (the token family). The grant and its refresh tokens are
//! stored; an access token names its grant (`grant_id`) and is stored only if it is revoked.

use std::sync::Arc;

use ladder_store::clients::{Client, ClientSettings};
use ladder_store::grants::{self, Grant};
use ladder_store::{Conn, StoreError};
use serde_json::{Map, Value, json};

use crate::crypto::{new_keyed_secret, secret_key};
use crate::errors::{AppError, OAuthError};
use crate::settings::TokenSettings;
use crate::signing::{Alg, KeySet};
use crate::state::AppState;

/// What a token response carries.
#[derive(Debug, Clone)]
pub struct Minted {
    pub access_token: String,
    /// The key that signed the access token.
    pub access_kid: Arc<str>,
    pub jti: String,
    pub access_expires_at: i64,
    pub id_token: Option<String>,
}

fn amr(grant: &Grant) -> Value {
    serde_json::from_str(&grant.amr).unwrap_or_else(|_| json!([]))
}

/// How long a client's tokens live, in seconds: its own settings where it has them, else the
/// global `[tokens]` ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    pub access: i64,
    pub id: i64,
    pub refresh: i64,
}

impl Lifetimes {
    pub fn for_client(global: &TokenSettings, client: &ClientSettings) -> Self {
        Lifetimes {
            access: client
                .access_token_ttl_secs
                .unwrap_or(global.access_token_ttl_secs),
            id: client.id_token_ttl_secs.unwrap_or(global.id_token_ttl_secs),
            refresh: client
                .refresh_token_ttl_secs
                .unwrap_or(global.refresh_token_ttl_secs),
        }
    }
}

/// The access token's expiry: `ttl` from now, capped where the claimed level lapses (elevation
/// decays, whatever the client's lifetime). None when the level has already lapsed.
pub fn access_expiry(ttl: i64, grant: &Grant, now: i64) -> Option<i64> {
    let exp = now + ttl;
    let exp = grant.acr_expires_at.map_or(exp, |lapse| lapse.min(exp));
    (exp > now).then_some(exp)
}

/// The audience of access tokens for this client: its configured API, else Ladder's userinfo. A
/// `resource` parameter (RFC 8707) must name that same API: a client cannot mint tokens for
/// resources it was not registered for.
pub fn audience(
    state: &AppState,
    client: &Client,
    resource: Option<&str>,
) -> Result<String, OAuthError> {
    let registered = client
        .settings
        .audience
        .clone()
        .unwrap_or_else(|| format!("{}/userinfo", state.issuer));
    match resource {
        Some(r) if r != registered => Err(OAuthError::new(
            "invalid_target",
            "The resource is not one this client may request tokens for.",
        )),
        _ => Ok(registered),
    }
}

/// The algorithm of a client's ID tokens: RS256, the one every relying party must accept, unless
/// it registered another.
pub fn id_token_alg(client: &Client) -> Alg {
    client.settings.id_token_signed_response_alg.as_deref().and_then(Alg::parse).unwrap_or(Alg::RS256)
}

/// The algorithm of a client's access tokens: ES256 (fast to sign, small) unless it asked otherwise.
pub fn access_token_alg(client: &Client) -> Alg {
    client.settings.access_token_signed_response_alg.as_deref().and_then(Alg::parse).unwrap_or(Alg::ES256)
}

/// The JOSE `typ` of an access token (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

#[allow(clippy::too_many_arguments)]
pub fn mint_access_token(
    issuer: &str,
    keys: &KeySet,
    alg: Alg,
    grant: &Grant,
    stored_grant: bool,
    scope: &str,
    aud: &str,
    exp: i64,
    now: i64,
) -> Result<(String, String), AppError> {
    // Time-ordered: a revoked token's row goes in at the end of the access_tokens index.
    let jti = ladder_store::new_sequential_id();
    let mut c = Map::new();
    c.insert("iss".into(), json!(issuer));
    c.insert(
        "sub".into(),
        json!(
            grant
                .user_id
                .clone()
                .unwrap_or_else(|| grant.client_id.clone())
        ),
    );
    c.insert("aud".into(), json!(aud));
    c.insert("client_id".into(), json!(grant.client_id));
    c.insert("iat".into(), json!(now));
    c.insert("exp".into(), json!(exp));
    c.insert("jti".into(), json!(jti));
    c.insert("scope".into(), json!(scope));
    if let Some(acr) = &grant.acr {
        c.insert("acr".into(), json!(acr));
        c.insert("amr".into(), amr(grant));
    }
    if let Some(t) = grant.auth_time {
        c.insert("auth_time".into(), json!(t));
    }
    if let Some(sid) = &grant.session_id {
        c.insert("sid".into(), json!(sid));
    }
    // The grant the token lives and dies with; a client's own token has no stored grant.
    if stored_grant {
        c.insert("grant_id".into(), json!(grant.id));
    }
    Ok((keys.sign(alg, ACCESS_TOKEN_TYP, c)?, jti))
}

/// Whether access-token claims are a client's own token (client_credentials): the client is its
/// subject and no user signed in. Such tokens have no grant.
pub fn is_client_token(claims: &Map<String, Value>) -> bool {
    let user_claims = ["auth_time", "acr", "sid"].iter().any(|c| claims.contains_key(*c));
    !user_claims && claims.get("sub").is_some_and(|s| s.is_string() && Some(s) == claims.get("client_id"))
}

pub fn mint_id_token(
    issuer: &str,
    keys: &KeySet,
    alg: Alg,
    grant: &Grant,
    nonce: Option<&str>,
    ttl: i64,
    now: i64,
) -> Result<Option<String>, AppError> {
    let (Some(user_id), Some(acr), Some(auth_time)) = (&grant.user_id, &grant.acr, grant.auth_time)
    else {
        return Ok(None);
    };
    let mut c = Map::new();
    c.insert("iss".into(), json!(issuer));
    c.insert("sub".into(), json!(user_id));
    c.insert("aud".into(), json!(grant.client_id));
    c.insert("azp".into(), json!(grant.client_id));
    c.insert("iat".into(), json!(now));
    c.insert("exp".into(), json!(now + ttl));
    c.insert("auth_time".into(), json!(auth_time));
    c.insert("acr".into(), json!(acr));
    c.insert("amr".into(), amr(grant));
    if let Some(sid) = &grant.session_id {
        c.insert("sid".into(), json!(sid));
    }
    if let Some(nonce) = nonce {
        c.insert("nonce".into(), json!(nonce));
    }
    Ok(Some(keys.sign(alg, "JWT", c)?))
}

/// A new refresh token for the grant; returns the token (only its hash is stored).
pub fn new_refresh_token(
    conn: &mut Conn,
    grant_id: &str,
    ttl: i64,
    now: i64,
) -> Result<String, StoreError> {
    let token = new_keyed_secret();
    grants::insert_refresh_token(conn, &secret_key(&token), grant_id, now, now + ttl)?;
    Ok(token)
}

/// The token endpoint's success response (RFC 6749 §5.1), never cached.
pub fn response(
    minted: &Minted,
    refresh_token: Option<&str>,
    scope: &str,
    now: i64,
) -> actix_web::HttpResponse {
    let mut body = json!({
        "access_token": minted.access_token,
        "token_type": "Bearer",
        "expires_in": minted.access_expires_at - now,
        "scope": scope,
    });
    if let Some(id) = &minted.id_token {
        body["id_token"] = json!(id);
    }
    if let Some(rt) = refresh_token {
        body["refresh_token"] = json!(rt);
    }
    actix_web::HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .insert_header((actix_web::http::header::PRAGMA, "no-cache"))
        .json(body)
}

/// Refuses grants whose level lapsed: a refresh never raises, nor silently keeps, a lapsed acr.
pub fn lapsed() -> OAuthError {
    OAuthError::invalid_grant("The authentication level of this grant has lapsed; sign in again.")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(acr_expires_at: Option<i64>) -> Grant {
        Grant {
            id: "g".into(),
            client_id: "c".into(),
            user_id: Some("u".into()),
            session_id: None,
            code_hash: None,
            scope: "openid".into(),
            acr: Some("urn:ladder:loa:2".into()),
            amr: "[]".into(),
            auth_time: Some(0),
            acr_expires_at,
            created_at: 0,
            revoked_at: None,
            revoked_reason: None,
            access_expires_at: None,
        }
    }

    #[test]
    fn only_tokens_without_a_user_are_client_tokens() {
        let claims = |v: Value| v.as_object().unwrap().clone();
        assert!(is_client_token(&claims(json!({ "sub": "c", "client_id": "c", "scope": "" }))));
        assert!(!is_client_token(&claims(json!({ "sub": "u", "client_id": "c" }))), "a user's subject");
        let signed_in = json!({ "sub": "c", "client_id": "c", "auth_time": 1 });
        assert!(!is_client_token(&claims(signed_in)), "a user whose id is the client's still signed in");
        assert!(!is_client_token(&claims(json!({ "sub": "c", "client_id": "c", "sid": "s" }))));
        assert!(!is_client_token(&claims(json!({ "client_id": "c" }))), "no subject");
    }

    #[test]
    fn a_client_lifetime_replaces_the_global_one_and_the_lapse_still_caps_it() {
        let global = TokenSettings::default();
        let own = ClientSettings {
            access_token_ttl_secs: Some(120),
            refresh_token_ttl_secs: Some(3600),
            ..Default::default()
        };
        let l = Lifetimes::for_client(&global, &own);
        assert_eq!(
            (l.access, l.id, l.refresh),
            (120, global.id_token_ttl_secs, 3600)
        );
        assert_eq!(
            Lifetimes::for_client(&global, &ClientSettings::default()).access,
            global.access_token_ttl_secs
        );
        assert_eq!(access_expiry(120, &grant(None), 1000), Some(1120));
        assert_eq!(
            access_expiry(120, &grant(Some(1060)), 1000),
            Some(1060),
            "the level lapses first"
        );
        assert_eq!(
            access_expiry(120, &grant(Some(1000)), 1000),
            None,
            "already lapsed"
        );
    }
}
