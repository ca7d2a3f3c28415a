//! The token endpoint: RFC 6749 §3.2 and §4.1.3–4.1.4 (authorization_code grant), PKCE (RFC 7636
//! §4.5–4.6), OIDC Core §3.1.3 (ID token), RFC 9068 (JWT access tokens). Codes are single-use:
//! consumed atomically, and a replay is refused with `invalid_grant`.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use ladder_store::clients::Client;
use ladder_store::codes::{self, AuthorizationCode, Redemption};
use ladder_store::users;
use serde_json::{Map, Value, json};

use crate::client_auth;
use crate::crypto::{constant_time_eq, random_token, s256, sha256_hex};
use crate::errors::OAuthError;
use crate::params::Params;
use crate::signing::Alg;
use crate::state::AppState;

#[tracing::instrument(name = "token", skip_all)]
pub async fn token(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> Result<HttpResponse, OAuthError> {
    let form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return Err(OAuthError::invalid_request("The token request must be form-encoded."));
    }
    let params = Params::parse(&body);
    if let Some(name) = params.first_duplicate() {
        return Err(OAuthError::invalid_request(format!("The `{name}` parameter is repeated.")));
    }
    let client = client_auth::authenticate(&state, &req, &params).await.map_err(|e| {
        if req.headers().contains_key(header::AUTHORIZATION) { with_basic_challenge(e) } else { e }
    })?;
    match params.get("grant_type").ok().flatten() {
        Some("authorization_code") => authorization_code(&state, &client, &params).await,
        Some(_) => Err(OAuthError::new("unsupported_grant_type", "Only authorization_code is supported.")),
        None => Err(OAuthError::invalid_request("The grant_type parameter is missing.")),
    }
}

fn with_basic_challenge(mut e: OAuthError) -> OAuthError {
    if e.code == "invalid_client" {
        e.challenge = Some("Basic realm=\"ladder\"".into());
    }
    e
}

async fn authorization_code(state: &AppState, client: &Client, params: &Params) -> Result<HttpResponse, OAuthError> {
    let code = params
        .get("code")
        .ok()
        .flatten()
        .ok_or_else(|| OAuthError::invalid_request("The code parameter is missing."))?;
    let redirect_uri = params.get("redirect_uri").ok().flatten();
    let verifier = params.get("code_verifier").ok().flatten();
    if let Some(v) = verifier {
        // RFC 7636 §4.1: 43–128 characters of the unreserved set.
        let valid = (43..=128).contains(&v.len())
            && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
        if !valid {
            return Err(OAuthError::invalid_request("The code_verifier is malformed."));
        }
    }

    let (hash, now) = (sha256_hex(code), state.now());
    let redemption = state.write(move |conn| codes::redeem_code(conn, &hash, now)).await?;
    let code = match redemption {
        Redemption::Redeemed(c) => c,
        Redemption::Replayed(c) => {
            tracing::warn!(client_id = %c.client_id, "authorization code replayed");
            return Err(OAuthError::invalid_grant("The authorization code was already used."));
        }
        Redemption::Unknown => return Err(OAuthError::invalid_grant("The authorization code is invalid.")),
    };
    check_code(&code, client, redirect_uri, verifier, now)?;

    let user_id = code.user_id.clone();
    let user = state
        .read(move |conn| users::find_user(conn, &user_id))
        .await?
        .filter(|u| !u.disabled)
        .ok_or_else(|| OAuthError::invalid_grant("The user can no longer sign in."))?;

    let amr: Value = serde_json::from_str(&code.amr).unwrap_or_else(|_| json!([]));
    // Elevation decays: an access token never outlives the freshness of the level it claims.
    let t = &state.settings.tokens;
    let at_exp = code.acr_expires_at.map_or(now + t.access_token_ttl_secs, |lapse| lapse.min(now + t.access_token_ttl_secs));
    if at_exp <= now {
        return Err(OAuthError::invalid_grant("The authentication level of this code has lapsed; sign in again."));
    }
    let keys = state.keys.get().await;

    let mut id_claims = Map::new();
    id_claims.insert("iss".into(), json!(state.issuer));
    id_claims.insert("sub".into(), json!(user.id));
    id_claims.insert("aud".into(), json!(client.id));
    id_claims.insert("azp".into(), json!(client.id));
    id_claims.insert("iat".into(), json!(now));
    id_claims.insert("exp".into(), json!(now + t.id_token_ttl_secs));
    id_claims.insert("auth_time".into(), json!(code.auth_time));
    id_claims.insert("acr".into(), json!(code.acr));
    id_claims.insert("amr".into(), amr.clone());
    id_claims.insert("sid".into(), json!(code.session_id));
    if let Some(nonce) = &code.nonce {
        id_claims.insert("nonce".into(), json!(nonce));
    }
    let id_token = keys.sign(Alg::RS256, "JWT", id_claims)?;

    let mut at_claims = Map::new();
    at_claims.insert("iss".into(), json!(state.issuer));
    at_claims.insert("sub".into(), json!(user.id));
    at_claims.insert("aud".into(), json!(format!("{}/userinfo", state.issuer)));
    at_claims.insert("client_id".into(), json!(client.id));
    at_claims.insert("iat".into(), json!(now));
    at_claims.insert("exp".into(), json!(at_exp));
    at_claims.insert("jti".into(), json!(random_token(16)));
    at_claims.insert("scope".into(), json!(code.scope));
    at_claims.insert("auth_time".into(), json!(code.auth_time));
    at_claims.insert("acr".into(), json!(code.acr));
    at_claims.insert("amr".into(), amr);
    at_claims.insert("sid".into(), json!(code.session_id));
    let access_token = keys.sign(Alg::ES256, "at+jwt", at_claims)?;

    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": at_exp - now,
            "id_token": id_token,
            "scope": code.scope,
        })))
}

/// Everything the code was bound to must match the redemption (RFC 6749 §4.1.3, RFC 7636 §4.6).
fn check_code(
    code: &AuthorizationCode,
    client: &Client,
    redirect_uri: Option<&str>,
    verifier: Option<&str>,
    now: i64,
) -> Result<(), OAuthError> {
    if code.client_id != client.id {
        return Err(OAuthError::invalid_grant("The authorization code was issued to another client."));
    }
    if now >= code.expires_at {
        return Err(OAuthError::invalid_grant("The authorization code has expired."));
    }
    if redirect_uri != Some(code.redirect_uri.as_str()) {
        return Err(OAuthError::invalid_grant("The redirect_uri does not match the authorization request."));
    }
    match (&code.code_challenge, verifier) {
        (Some(challenge), Some(v)) if constant_time_eq(&s256(v), challenge) => Ok(()),
        (Some(_), Some(_)) => Err(OAuthError::invalid_grant("The code_verifier does not match the code_challenge.")),
        (Some(_), None) => Err(OAuthError::invalid_grant("The code_verifier is missing.")),
        (None, Some(_)) => Err(OAuthError::invalid_grant(
            "A code_verifier was sent but the authorization request had no code_challenge.",
        )),
        (None, None) => Ok(()),
    }
}
