//! Token revocation (RFC 7009). A refresh token revokes its whole grant; an access token just
//! itself. Only the client a token was issued to can revoke it; any other token — unknown, already
//! revoked, or another client's — is answered 200 all the same (§2.2), revealing nothing.

use actix_web::{HttpRequest, HttpResponse, web};
use ladder_store::grants;
use serde_json::Value;

use crate::audit;
use crate::browser::ClientInfo;
use crate::client_auth;
use crate::crypto::secret_key;
use crate::endpoints::token::{form_params, required};
use crate::errors::OAuthError;
use crate::state::AppState;

#[tracing::instrument(name = "revoke", level = "debug", skip_all)]
pub async fn revoke(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> Result<HttpResponse, OAuthError> {
    let params = form_params(&req, &body)?;
    let client = client_auth::authenticate(&state, &req, &params).await?;
    let token = required(&params, "token")?.to_owned();
    let now = state.now();
    let info = ClientInfo::from_request(&req);

    // An access token we signed (expired ones too: revoking them is harmless).
    let keys = state.keys.get().await;
    let access = keys
        .verify(&token)
        .ok()
        .filter(|(_, c)| c.get("client_id").and_then(Value::as_str) == Some(client.id.as_str()))
        .and_then(|(_, c)| Some((c.get("jti")?.as_str()?.to_owned(), c.get("exp")?.as_i64()?)));
    let (hash, client_id) = (secret_key(&token), client.id.clone());
    state
        .write(move |conn| {
            if let Some((jti, exp)) = access {
                return grants::revoke_access_token(conn, &jti, &client_id, exp, now);
            }
            let Some(rt) = grants::find_refresh_token(conn, &hash)? else { return Ok(()) };
            let Some(grant) = grants::find_grant(conn, &rt.grant_id)?.filter(|g| g.client_id == client_id) else {
                return Ok(());
            };
            if grants::revoke_grant(conn, &grant.id, "revoked_by_client", now)? {
                audit::grant_revoked(conn, now, &grant, &info, "revoked_by_client")?;
            }
            Ok(())
        })
        .await?;
    Ok(HttpResponse::Ok().insert_header((actix_web::http::header::CACHE_CONTROL, "no-store")).finish())
}
