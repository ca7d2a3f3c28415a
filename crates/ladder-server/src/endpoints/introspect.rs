//! Token introspection (RFC 7662) for authenticated confidential clients — typically resource
//! servers. Answers the step-up claims too (`acr`, `amr`, `auth_time`), so an API can enforce
//! RFC 9470 without parsing tokens itself.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use ladder_store::grants;
use serde_json::{Value, json};

use crate::client_auth;
use crate::crypto::secret_key;
use crate::endpoints::token::{form_params, required};
use crate::errors::OAuthError;
use crate::state::AppState;
use crate::tokens;
use crate::verified_tokens::is_access_token_typ;

fn inactive() -> HttpResponse {
    HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).json(json!({ "active": false }))
}

#[tracing::instrument(name = "introspect", level = "debug", skip_all)]
pub async fn introspect(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> Result<HttpResponse, OAuthError> {
    let params = form_params(&req, &body)?;
    let client = client_auth::authenticate(&state, &req, &params).await?;
    if client.is_public {
        return Err(OAuthError::new("unauthorized_client", "Public clients cannot introspect tokens."));
    }
    let token = required(&params, "token")?.to_owned();
    let answer = match access_token_claims(&state, &token).await? {
        Some(claims) => Some(claims),
        None => refresh_token_claims(&state, &token).await?,
    };
    Ok(match answer {
        Some(body) => HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).json(body),
        None => inactive(),
    })
}

/// A live JWT access token's claims, as introspection reports them.
async fn access_token_claims(state: &AppState, token: &str) -> Result<Option<Value>, OAuthError> {
    let keys = state.keys.get().await;
    let Ok((typ, claims)) = state.verified.verify(&keys, token, state.now()) else { return Ok(None) };
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
    let jti = claims.get("jti").and_then(Value::as_str).unwrap_or_default().to_owned();
    if !typ.as_deref().is_some_and(is_access_token_typ)
        || claims.get("iss").and_then(Value::as_str) != Some(state.issuer.as_str())
        || exp <= state.now()
    {
        return Ok(None);
    }
    let client_token = tokens::is_client_token(&claims);
    let grant_id = claims.get("grant_id").and_then(Value::as_str).map(str::to_owned);
    if !state.lookup(move |conn| grants::access_token_is_live(conn, &jti, grant_id.as_deref(), client_token)).await? {
        return Ok(None);
    }
    // A client's own token lives no longer than the client: deleted or disabled, its tokens stop.
    let owner = claims.get("client_id").and_then(Value::as_str).unwrap_or_default();
    if client_token && state.client(owner).await?.is_none_or(|c| c.disabled) {
        return Ok(None);
    }
    let mut body = Value::Object(claims);
    body["active"] = json!(true);
    body["token_type"] = json!("Bearer");
    Ok(Some(body))
}

async fn refresh_token_claims(state: &AppState, token: &str) -> Result<Option<Value>, OAuthError> {
    let (hash, now) = (secret_key(token), state.now());
    let found = state
        .lookup(move |conn| {
            let Some(rt) = grants::find_refresh_token(conn, &hash)? else { return Ok(None) };
            let grant = grants::find_grant(conn, &rt.grant_id)?;
            Ok(grant.map(|g| (rt, g)))
        })
        .await?;
    let Some((rt, grant)) = found else { return Ok(None) };
    if rt.used_at.is_some() || rt.expires_at <= now || grant.revoked_at.is_some() {
        return Ok(None);
    }
    let amr: Value = serde_json::from_str(&grant.amr).unwrap_or_else(|_| json!([]));
    Ok(Some(json!({
        "active": true,
        "token_type": "refresh_token",
        "iss": state.issuer,
        "client_id": grant.client_id,
        "sub": grant.user_id.clone().unwrap_or_else(|| grant.client_id.clone()),
        "scope": grant.scope,
        "exp": rt.expires_at,
        "iat": rt.created_at,
        "acr": grant.acr,
        "amr": amr,
        "auth_time": grant.auth_time,
    })))
}
