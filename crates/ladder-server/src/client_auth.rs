//! Client authentication at the token, introspection and revocation endpoints (RFC 6749 §2.3.1,
//! OIDC Core §9): `client_secret_basic`, `client_secret_post`, `private_key_jwt` (RFC 7523, each
//! assertion's `jti` accepted once), and `none` for public clients (which rely on PKCE).

use actix_web::HttpRequest;
use actix_web::http::header;
use base64::Engine;
use ladder_store::clients::{self, Client};


use crate::crypto::{constant_time_eq, sha256_hex};
use crate::errors::OAuthError;
use crate::params::Params;
use crate::state::AppState;

/// What the request presented, before looking anything up.
#[derive(PartialEq, Eq)]
enum Presented {
    Basic { id: String, secret: String },
    Post { id: String, secret: String },
    Assertion { id: String, assertion: String },
    None { id: String },
}

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Basic credentials are form-urlencoded before base64 (RFC 6749 §2.3.1).
pub fn parse_basic(value: &str) -> Option<(String, String)> {
    let encoded = value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("v={s}").as_bytes()).next().map(|(_, v)| v.into_owned())
    };
    Some((unescape(id)?, unescape(secret)?))
}

fn presented(req: &HttpRequest, params: &Params) -> Result<Presented, OAuthError> {
    let dup = |d: crate::params::Duplicated| OAuthError::invalid_request(format!("The `{}` parameter is repeated.", d.0));
    let body_id = params.get("client_id").map_err(dup)?;
    let body_secret = params.get("client_secret").map_err(dup)?;
    let authz = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let assertion = params.get("client_assertion").map_err(dup)?;
    if let Some(assertion) = assertion {
        if authz.is_some() || body_secret.is_some() {
            return Err(OAuthError::invalid_request("Use one client authentication method, not two."));
        }
        if params.get("client_assertion_type").map_err(dup)? != Some(JWT_BEARER) {
            return Err(OAuthError::invalid_client("Unsupported client_assertion_type."));
        }
        // The issuer names the client; the signature is checked against that client's keys.
        let iss = unverified_claim(assertion, "iss").ok_or_else(|| OAuthError::invalid_client("Malformed client assertion."))?;
        if body_id.is_some_and(|b| b != iss) {
            return Err(OAuthError::invalid_client("client_id differs from the assertion's issuer."));
        }
        return Ok(Presented::Assertion { id: iss, assertion: assertion.to_owned() });
    }
    match (authz, body_secret) {
        (Some(h), None) => {
            let (id, secret) = parse_basic(h).ok_or_else(|| OAuthError::invalid_client("Malformed Basic credentials."))?;
            if body_id.is_some_and(|b| b != id) {
                return Err(OAuthError::invalid_request("client_id in the body differs from the Basic credentials."));
            }
            Ok(Presented::Basic { id, secret })
        }
        (Some(_), Some(_)) => Err(OAuthError::invalid_request("Use one client authentication method, not two.")),
        (None, Some(secret)) => {
            let id = body_id.ok_or_else(|| OAuthError::invalid_client("client_secret was sent without client_id."))?;
            Ok(Presented::Post { id: id.to_owned(), secret: secret.to_owned() })
        }
        (None, None) => {
            let id = body_id.ok_or_else(|| OAuthError::invalid_client("Client authentication is required."))?;
            Ok(Presented::None { id: id.to_owned() })
        }
    }
}

/// The authenticated client, or `invalid_client` (401; with a Basic challenge when Basic was tried).
pub async fn authenticate(state: &AppState, req: &HttpRequest, params: &Params) -> Result<Client, OAuthError> {
    let presented = presented(req, params)?;
    let id = match &presented {
        Presented::Basic { id, .. } | Presented::Post { id, .. } | Presented::Assertion { id, .. } | Presented::None { id } => {
            id.clone()
        }
    };
    let client = state.client_unless_refused(&id, |c| !c.disabled && secret_matches(&presented, c)).await?;
    // A failed Basic attempt is answered with a Basic challenge (RFC 6749 §5.2).
    let basic = matches!(presented, Presented::Basic { .. });
    let refuse = || {
        let mut e = OAuthError::invalid_client("Client authentication failed.");
        if basic {
            e.challenge = Some("Basic realm=\"ladder\"".into());
        }
        e
    };
    let client = client.filter(|c| !c.disabled).ok_or_else(refuse)?;
    let method = client.settings.token_endpoint_auth_method.as_str();
    // A secret is accepted only the way the client registered to send it (RFC 7591 §2).
    let secret_way = match presented {
        Presented::Basic { .. } => Some("client_secret_basic"),
        Presented::Post { .. } => Some("client_secret_post"),
        _ => None,
    };
    if secret_way.is_some_and(|way| way != method) && client.secret_hash.is_some() {
        let mut e = refuse();
        e.description = format!("This client is registered to authenticate with {method}.");
        return Err(e);
    }
    let ok = match (&presented, &client.secret_hash) {
        (Presented::Basic { .. } | Presented::Post { .. }, Some(_)) => secret_matches(&presented, &client),
        (Presented::Assertion { assertion, .. }, _) if method == "private_key_jwt" => {
            verify_assertion(state, &client, assertion).await?;
            true
        }
        (Presented::None { .. }, None) => client.is_public,
        _ => false,
    };
    if ok { Ok(client) } else { Err(refuse()) }
}

/// For secret-based methods, whether the secret is the client's (hashes compared in constant
/// time); other methods are checked elsewhere.
fn secret_matches(presented: &Presented, client: &Client) -> bool {
    match (presented, &client.secret_hash) {
        (Presented::Basic { secret, .. } | Presented::Post { secret, .. }, Some(hash)) => {
            constant_time_eq(&sha256_hex(secret), hash)
        }
        (Presented::Basic { .. } | Presented::Post { .. }, None) => false,
        _ => true,
    }
}

/// A claim of a JWT read before its signature is checked (to find whose keys verify it).
pub fn unverified_claim(jwt: &str, name: &str) -> Option<String> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get(name)?.as_str().map(str::to_owned)
}

/// RFC 7523 §3: signed by one of the client's keys; `iss` = `sub` = client_id; `aud` names this
/// token endpoint or the issuer; unexpired; `jti` never seen before.
async fn verify_assertion(state: &AppState, client: &Client, assertion: &str) -> Result<(), OAuthError> {
    let refuse = |why: &str| OAuthError::invalid_client(format!("Client assertion refused: {why}."));
    let jwks = match (&client.settings.jwks, &client.settings.jwks_uri) {
        (Some(inline), _) => inline.clone(),
        (None, Some(uri)) => fetch_jwks(state, uri).await.map_err(|_| refuse("the client's keys could not be fetched"))?,
        (None, None) => return Err(refuse("the client has no registered keys")),
    };
    let claims = crate::jwt::verify_with_jwks(&jwks, assertion).map_err(|e| refuse(&e))?;
    let str_claim = |n: &str| claims.get(n).and_then(|v| v.as_str());
    if str_claim("iss") != Some(client.id.as_str()) || str_claim("sub") != Some(client.id.as_str()) {
        return Err(refuse("iss and sub must be the client_id"));
    }
    let token_endpoint = format!("{}/token", state.issuer);
    let aud_ok = |a: &str| a == token_endpoint || a == state.issuer;
    let aud = match claims.get("aud") {
        Some(serde_json::Value::String(a)) => aud_ok(a),
        Some(serde_json::Value::Array(list)) => list.iter().filter_map(|v| v.as_str()).any(aud_ok),
        _ => false,
    };
    if !aud {
        return Err(refuse("aud must be the token endpoint"));
    }
    let now = state.now();
    let exp = claims.get("exp").and_then(|v| v.as_i64()).ok_or_else(|| refuse("exp is required"))?;
    if exp <= now {
        return Err(refuse("it has expired"));
    }
    let jti = str_claim("jti").ok_or_else(|| refuse("jti is required"))?.to_owned();
    let client_id = client.id.clone();
    let fresh = state.write(move |conn| clients::remember_assertion(conn, &client_id, &jti, exp, now)).await?;
    if !fresh {
        return Err(refuse("its jti was already used"));
    }
    Ok(())
}

async fn fetch_jwks(state: &AppState, uri: &str) -> Result<String, reqwest::Error> {
    state.http.get(uri).send().await?.error_for_status()?.text().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_url_decoded() {
        let v = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("my%20id:p%3Ass+word"));
        assert_eq!(parse_basic(&v), Some(("my id".into(), "p:ss word".into())));
        assert_eq!(parse_basic("Bearer x"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
    }
}
