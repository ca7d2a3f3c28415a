//! RP-Initiated Logout 1.0: `/end_session` with `id_token_hint`, `post_logout_redirect_uri`
//! (exact match against the client's registered values, else no redirect) and `state`. With a
//! valid hint for the signed-in user the session ends at once; otherwise the user confirms, so a
//! third party cannot sign people out with a link. Ending a session revokes the tokens it issued
//! (except offline_access grants) and queues back-channel logout tokens.

use actix_web::cookie::{Cookie, time::Duration as CookieDuration};
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use ladder_store::clients::{self, Client};
use ladder_store::{grants, logout, sessions};
use serde_json::{Value, json};

use crate::audit::{self, Subject};
use crate::backchannel;
use crate::browser::{ClientInfo, browser_key};
use crate::crypto::constant_time_eq;
use crate::errors::{AppError, PageError};
use crate::grant::redirect_with;
use crate::interaction::pages::html;
use crate::params::Params;
use crate::session::{self, ActiveSession};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "logout_confirm.html")]
struct ConfirmPage {
    action: String,
    csrf: String,
    client_name: Option<String>,
    post_logout_redirect_uri: String,
    state: String,
    client_id: String,
}

#[derive(Template)]
#[template(path = "signed_out.html")]
struct SignedOutPage {}

/// A validated logout request.
struct LogoutRequest {
    client: Option<Client>,
    hint_sub: Option<String>,
    destination: Option<String>,
    state: Option<String>,
}

fn bad(message: &str) -> PageError {
    PageError::bad_request("This sign-out link is not valid", format!("{message} Nothing was changed."))
}

async fn validate(state: &AppState, params: &Params) -> Result<LogoutRequest, PageError> {
    let get = |n: &str| params.get(n).map_err(|_| bad(&format!("The {n} parameter is repeated."))).map(|v| v.map(str::to_owned));
    let (hint, uri, rp_state, client_id) =
        (get("id_token_hint")?, get("post_logout_redirect_uri")?, get("state")?, get("client_id")?);
    let (mut hint_sub, mut hint_aud) = (None, None);
    if let Some(hint) = hint {
        // Expired hints are fine (the usual case); a forged or foreign one is not.
        let keys = state.keys.get().await;
        let (_, claims) = keys.verify(&hint).map_err(|_| bad("The id_token_hint was not issued by this provider."))?;
        if claims.get("iss").and_then(Value::as_str) != Some(state.issuer.as_str()) {
            return Err(bad("The id_token_hint was not issued by this provider."));
        }
        hint_sub = claims.get("sub").and_then(Value::as_str).map(str::to_owned);
        hint_aud = match claims.get("aud") {
            Some(Value::String(a)) => Some(a.clone()),
            Some(Value::Array(a)) => a.first().and_then(Value::as_str).map(str::to_owned),
            _ => None,
        };
    }
    let client_id = match (hint_aud, client_id) {
        (Some(a), Some(c)) if a != c => return Err(bad("The client_id does not match the id_token_hint.")),
        (a, c) => a.or(c),
    };
    let client = match client_id {
        Some(id) => state.client(&id).await?,
        None => None,
    };
    let destination = match (&uri, &client) {
        (None, _) => None,
        (Some(u), Some(c)) if c.settings.post_logout_redirect_uris.iter().any(|r| r == u) => Some(u.clone()),
        (Some(_), _) => return Err(bad("The post_logout_redirect_uri is not registered for this application.")),
    };
    Ok(LogoutRequest { client, hint_sub, destination, state: rp_state })
}

fn params_of(req: &HttpRequest, body: &[u8]) -> Params {
    if req.method() == actix_web::http::Method::POST { Params::parse(body) } else { Params::parse(req.query_string().as_bytes()) }
}

#[tracing::instrument(name = "end_session", level = "debug", skip_all)]
pub async fn end_session(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> Result<HttpResponse, PageError> {
    let request = validate(&state, &params_of(&req, &body)).await?;
    let current = session::current(&state, &req).await?;
    match current {
        None => finish(&state, &request, false),
        Some(active) if request.hint_sub.as_deref() == Some(active.user.id.as_str()) => {
            end(&state, &req, &active).await?;
            backchannel::deliver_soon(&state);
            finish(&state, &request, true)
        }
        Some(_) => {
            let (csrf, new_cookie) = browser_key(&state, &req);
            let page = ConfirmPage {
                action: "/end_session/confirm".into(),
                csrf,
                client_name: request.client.as_ref().map(|c| c.name.clone()),
                post_logout_redirect_uri: request.destination.clone().unwrap_or_default(),
                state: request.state.clone().unwrap_or_default(),
                client_id: request.client.as_ref().map(|c| c.id.clone()).unwrap_or_default(),
            };
            let mut resp = html(&page, StatusCode::OK)?;
            if let Some(c) = new_cookie {
                resp.add_cookie(&c).map_err(|e| AppError::Blocking(e.to_string()))?;
            }
            Ok(resp)
        }
    }
}

/// The confirmation form's POST.
pub async fn confirm(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> Result<HttpResponse, PageError> {
    let params = Params::parse(&body);
    let csrf = params.get("csrf").ok().flatten().unwrap_or_default();
    let cookie = req.cookie(state.cookies.browser).map(|c| c.value().to_owned()).unwrap_or_default();
    if cookie.is_empty() || !constant_time_eq(&cookie, csrf) {
        return Err(PageError::forbidden("This form has expired", "Open the sign-out link again."));
    }
    let request = validate(&state, &params).await?;
    let signed_out = match session::current(&state, &req).await? {
        Some(active) => {
            end(&state, &req, &active).await?;
            backchannel::deliver_soon(&state);
            true
        }
        None => false,
    };
    finish(&state, &request, signed_out)
}

/// Sends the browser on: to the RP's registered URI (with its state), or a signed-out page.
fn finish(state: &AppState, request: &LogoutRequest, clear_cookie: bool) -> Result<HttpResponse, PageError> {
    let mut resp = match &request.destination {
        Some(uri) => {
            let pairs: Vec<(&str, &str)> = request.state.iter().map(|s| ("state", s.as_str())).collect();
            HttpResponse::SeeOther()
                .insert_header((header::LOCATION, redirect_with(uri, &pairs)))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .finish()
        }
        None => html(&SignedOutPage {}, StatusCode::OK)?,
    };
    if clear_cookie {
        let mut gone = Cookie::build(state.cookies.session, "").path("/").http_only(true).secure(state.cookies.secure).finish();
        gone.set_max_age(CookieDuration::ZERO);
        resp.add_cookie(&gone).map_err(|e| AppError::Blocking(e.to_string()))?;
    }
    Ok(resp)
}

/// Ends the session: its tokens are revoked (offline_access grants survive), back-channel logout
/// tokens are queued for the clients it signed in to, and the event is audited.
async fn end(state: &AppState, req: &HttpRequest, active: &ActiveSession) -> Result<(), AppError> {
    let session_id = active.session.id.clone();
    let sid = session_id.clone();
    let targets = state.lookup(move |conn| clients::backchannel_clients_for_session(conn, &sid)).await?;
    let (keys, now) = (state.keys.get().await, state.now());
    let mut tokens = Vec::new();
    for client in &targets {
        let token = backchannel::logout_token(state, &keys, client, &active.user.id, &session_id, now)?;
        tokens.push((client.id.clone(), client.settings.backchannel_logout_uri.clone().unwrap_or_default(), token));
    }
    let (user_id, info) = (active.user.id.clone(), ClientInfo::from_request(req));
    let notified: Vec<String> = tokens.iter().map(|(c, _, _)| c.clone()).collect();
    state
        .write(move |conn| {
            sessions::end_session(conn, &session_id, now)?;
            for g in grants::live_grants_for_session(conn, &session_id)? {
                if !g.scope.split(' ').any(|s| s == "offline_access") {
                    grants::revoke_grant(conn, &g.id, "logout", now)?;
                }
            }
            for (client_id, uri, token) in &tokens {
                logout::enqueue(conn, client_id, uri, token, now)?;
            }
            audit::record(
                conn,
                now,
                "logout",
                "success",
                Subject { user_id: Some(&user_id), session_id: Some(&session_id), client_id: None },
                &info,
                json!({ "backchannel": notified }),
            )
        })
        .await?;
    Ok(())
}
