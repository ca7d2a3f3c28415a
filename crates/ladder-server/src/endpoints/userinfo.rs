//! The UserInfo endpoint: OIDC Core §5.3 (GET and POST), bearer tokens per RFC 6750 §2.1–2.2
//! (Authorization header or form body), claims released per granted scope (§5.4).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use ladder_store::grants;
use serde_json::{Map, Value, json};

use crate::errors::OAuthError;
use crate::params::Params;
use crate::state::AppState;
use crate::verified_tokens::is_access_token_typ;

fn invalid_token(description: &str) -> OAuthError {
    let mut e = OAuthError::new("invalid_token", description);
    e.challenge = Some(format!("Bearer error=\"invalid_token\", error_description=\"{description}\""));
    e
}

fn bearer_from_header(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")).map(str::trim)
}

pub async fn userinfo_get(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, OAuthError> {
    let token = bearer_from_header(&req).map(str::to_owned);
    respond(&state, token).await
}

pub async fn userinfo_post(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> Result<HttpResponse, OAuthError> {
    let header_token = bearer_from_header(&req).map(str::to_owned);
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    let body_token = if is_form {
        Params::parse(&body)
            .get("access_token")
            .map_err(|_| OAuthError::invalid_request("The access_token parameter is repeated."))?
            .map(str::to_owned)
    } else {
        None
    };
    let token = match (header_token, body_token) {
        (Some(_), Some(_)) => return Err(OAuthError::invalid_request("Send the access token one way only.")),
        (h, b) => h.or(b),
    };
    respond(&state, token).await
}

async fn respond(state: &AppState, token: Option<String>) -> Result<HttpResponse, OAuthError> {
    let Some(token) = token else {
        let mut e = OAuthError::new("invalid_token", "An access token is required.");
        e.status = actix_web::http::StatusCode::UNAUTHORIZED;
        e.challenge = Some("Bearer".into());
        return Err(e);
    };
    let claims = verify_access_token(state, &token).await?;
    let sub = claims.get("sub").and_then(Value::as_str).unwrap_or_default().to_owned();
    let scope: Vec<String> = claims
        .get("scope")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .split(' ')
        .map(str::to_owned)
        .collect();
    let jti = claims.get("jti").and_then(Value::as_str).unwrap_or_default().to_owned();
    let grant_id = claims.get("grant_id").and_then(Value::as_str).map(str::to_owned);
    // One statement: the token and its grant are live, and who their user is. A client's own
    // token has no grant and no user, so it never gets past this.
    let user = state
        .lookup(move |conn| {
            let grant_id = grant_id.as_deref();
            let Some(user) = grants::user_of_live_access_token(conn, &jti, grant_id)? else {
                let revoked = !grants::access_token_is_live(conn, &jti, grant_id, false)?;
                let why = if revoked { "The access token has been revoked." } else { "The user of this token no longer exists." };
                return Ok(Err(invalid_token(why)));
            };
            Ok(Ok(user))
        })
        .await??;
    if user.disabled || user.id != sub {
        return Err(invalid_token("The user of this token can no longer sign in."));
    }

    let mut body = Map::new();
    body.insert("sub".into(), json!(user.id));
    if scope.iter().any(|s| s == "profile") {
        body.insert("preferred_username".into(), json!(user.username));
        if let Some(name) = &user.name {
            body.insert("name".into(), json!(name));
        }
        body.insert("updated_at".into(), json!(user.updated_at));
    }
    if scope.iter().any(|s| s == "email")
        && let Some(email) = &user.email
    {
        body.insert("email".into(), json!(email));
        // Ladder does not verify addresses; it says so rather than imply it.
        body.insert("email_verified".into(), json!(false));
    }
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(Value::Object(body)))
}

/// A JWT access token (RFC 9068) that Ladder signed, unexpired, for this issuer. Whether it was
/// revoked is the caller's to ask the database.
pub async fn verify_access_token(state: &AppState, token: &str) -> Result<Map<String, Value>, OAuthError> {
    let keys = state.keys.get().await;
    let (typ, claims) =
        state.verified.verify(&keys, token, state.now()).map_err(|_| invalid_token("The access token is invalid."))?;
    if !typ.as_deref().is_some_and(is_access_token_typ) {
        return Err(invalid_token("The token is not an access token."));
    }
    if claims.get("iss").and_then(Value::as_str) != Some(state.issuer.as_str()) {
        return Err(invalid_token("The access token was issued by someone else."));
    }
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
    if state.now() >= exp {
        return Err(invalid_token("The access token has expired."));
    }
    Ok(claims)
}
