//! Client authentication at the token endpoint (RFC 6749 §2.3.1, OIDC Core §9):
//! `client_secret_basic`, `client_secret_post`, and `none` for public clients (which rely on PKCE).

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
    None { id: String },
}

/// Basic credentials are form-urlencoded before base64 (RFC 6749 §2.3.1).
fn parse_basic(value: &str) -> Option<(String, String)> {
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
        Presented::Basic { id, .. } | Presented::Post { id, .. } | Presented::None { id } => id.clone(),
    };
    let client = state.read(move |conn| clients::find_client(conn, &id)).await?;
    let refuse = || OAuthError::invalid_client("Client authentication failed.");
    let client = client.filter(|c| !c.disabled).ok_or_else(refuse)?;
    let ok = match (&presented, &client.secret_hash) {
        (Presented::Basic { secret, .. } | Presented::Post { secret, .. }, Some(hash)) => {
            constant_time_eq(&sha256_hex(secret), hash)
        }
        (Presented::None { .. }, None) => client.is_public,
        _ => false,
    };
    if ok { Ok(client) } else { Err(refuse()) }
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
