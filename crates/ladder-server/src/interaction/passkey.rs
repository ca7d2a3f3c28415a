//! Passkeys (WebAuthn Level 3 via webauthn-rs) inside the flow: as the first factor (with or
//! without a username), as a step-up factor, and enrolled on the spot when a level needs one.
//! Ceremony state stays on the server, bound to the interaction, and is taken once; a credential
//! whose signature counter goes backwards (a cloned authenticator) is refused and audited.
//! The browser side is `static/passkey.js`; these are its JSON endpoints, CSRF-checked by header.

use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ladder_core::{Factor, ProvenFactor};
use ladder_store::passkeys::{self, Challenge, StoredPasskey};
use ladder_store::{factors, users};
use serde::Deserialize;
use serde_json::{Value, json};
use webauthn_rs::prelude::{
    DiscoverableAuthentication, DiscoverableKey, Passkey, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, Uuid, WebauthnError,
};

use super::{Pending, advance, leave_to, load, pinned_session};
use crate::audit::{self, Subject};
use crate::browser::{ClientInfo, check_csrf, session_cookie};
use crate::crypto::random_token;
use crate::errors::{AppError, OAuthError};
use crate::session::{self, ActiveSession, PreparedProof};
use crate::state::AppState;

const CHALLENGE_TTL: i64 = 300;
pub const CSRF_HEADER: &str = "x-csrf-token";

fn failed(status: u16, message: &str) -> OAuthError {
    let mut e = OAuthError::new("invalid_request", message);
    e.status = actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::BAD_REQUEST);
    e
}

/// The interaction, for a JSON call carrying the page's CSRF token in a header.
async fn pending_for(state: &AppState, req: &HttpRequest, id: String) -> Result<Pending, OAuthError> {
    let pending = load(state, req, id).await.map_err(|e| failed(e.status.as_u16(), &e.message))?;
    let token = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !check_csrf(state, req, token, &pending.interaction.browser_hash) {
        return Err(failed(403, "This page has expired. Go back to the application and start again."));
    }
    Ok(pending)
}

fn webauthn(state: &AppState) -> Result<&webauthn_rs::Webauthn, OAuthError> {
    state.webauthn.as_ref().ok_or_else(|| failed(501, "Passkeys are not available on this server."))
}

fn parse_passkey(stored: &StoredPasskey) -> Result<Passkey, AppError> {
    Ok(serde_json::from_str(&stored.credential)?)
}

async fn store_challenge(
    state: &AppState,
    pending: &Pending,
    kind: &'static str,
    user_id: Option<String>,
    ceremony: String,
) -> Result<String, AppError> {
    let now = state.now();
    let challenge = Challenge {
        id: random_token(16),
        interaction_id: pending.interaction.id.clone(),
        kind: kind.into(),
        user_id,
        state: ceremony,
        created_at: now,
        expires_at: now + CHALLENGE_TTL,
        used_at: None,
    };
    let id = challenge.id.clone();
    state.write(move |conn| passkeys::insert_challenge(conn, &challenge)).await?;
    Ok(id)
}

#[derive(Deserialize, Default)]
pub struct SignInOptions {
    #[serde(default)]
    username: String,
}

/// `POST …/passkey/options`: a challenge for the signed-in user's passkeys, for the named user's,
/// or (no username, or one without passkeys — the answer looks the same) for any discoverable one.
pub async fn sign_in_options(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: Option<web::Json<SignInOptions>>,
) -> Result<HttpResponse, OAuthError> {
    let pending = pending_for(&state, &req, path.into_inner()).await?;
    let webauthn = webauthn(&state)?;
    let username = body.map(|b| b.into_inner().username.trim().to_owned()).unwrap_or_default();
    let user_id = match pinned_session(&state, &req, &pending).await? {
        Some(active) => Some(active.user.id),
        None if !username.is_empty() => {
            let found = state.lookup(move |conn| users::find_user_by_username(conn, &username)).await?;
            found.filter(|u| !u.disabled).map(|u| u.id)
        }
        None => pending.request.pinned_sub.clone(),
    };
    let stored = match &user_id {
        Some(id) => {
            let id = id.clone();
            state.lookup(move |conn| passkeys::list_for_user(conn, &id)).await?
        }
        None => vec![],
    };
    let creds = stored.iter().map(parse_passkey).collect::<Result<Vec<_>, _>>()?;
    let (challenge_id, options) = if creds.is_empty() {
        let (rcr, ceremony) =
            webauthn.start_discoverable_authentication().map_err(|e| AppError::Keys(e.to_string()))?;
        let id = store_challenge(&state, &pending, "discover", None, serde_json::to_string(&ceremony)?).await?;
        (id, serde_json::to_value(rcr).map_err(AppError::from)?)
    } else {
        let (rcr, ceremony) = webauthn.start_passkey_authentication(&creds).map_err(|e| AppError::Keys(e.to_string()))?;
        let id = store_challenge(&state, &pending, "authenticate", user_id, serde_json::to_string(&ceremony)?).await?;
        (id, serde_json::to_value(rcr).map_err(AppError::from)?)
    };
    Ok(HttpResponse::Ok().insert_header(("cache-control", "no-store")).json(json!({ "challenge_id": challenge_id, "options": options })))
}

#[derive(Deserialize)]
pub struct Finish {
    challenge_id: String,
    credential: Value,
    #[serde(default)]
    name: String,
}

impl Finish {
    /// The browser's answer to a sign-in challenge, if it has the shape of one.
    pub fn authentication(&self) -> Option<PublicKeyCredential> {
        serde_json::from_value(self.credential.clone()).ok()
    }

    /// The browser's answer to a registration challenge, if it has the shape of one.
    pub fn registration(&self) -> Option<RegisterPublicKeyCredential> {
        serde_json::from_value(self.credential.clone()).ok()
    }
}

/// `POST …/passkey`: completes a sign-in or step-up with a passkey.
#[tracing::instrument(name = "passkey", level = "debug", skip_all)]
pub async fn sign_in(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<Finish>,
) -> Result<HttpResponse, OAuthError> {
    let pending = pending_for(&state, &req, path.into_inner()).await?;
    let webauthn = webauthn(&state)?;
    let finish = body.into_inner();
    let info = ClientInfo::from_request(&req);
    let now = state.now();
    let challenge = take(&state, &pending, &finish.challenge_id, &["authenticate", "discover"]).await?;
    let Some(challenge) = challenge else {
        audit_failure(&state, &pending, None, &info, "passkey", "challenge_expired_or_reused").await?;
        return Err(failed(400, "This passkey request expired or was already used. Try again."));
    };
    let credential = finish.authentication().ok_or_else(|| failed(400, "The passkey response could not be read."))?;
    let cred_id = B64.encode(credential.get_credential_id());
    let lookup = cred_id.clone();
    let stored = state.lookup(move |conn| passkeys::find_by_cred_id(conn, &lookup)).await?;
    let Some(stored) = stored else {
        audit_failure(&state, &pending, challenge.user_id.as_deref(), &info, "passkey", "unknown_credential").await?;
        return Err(failed(400, "This passkey is not registered with Ladder."));
    };
    let mut passkey = parse_passkey(&stored)?;
    let result = match challenge.kind.as_str() {
        "authenticate" => {
            let ceremony: PasskeyAuthentication = serde_json::from_str(&challenge.state).map_err(AppError::from)?;
            if challenge.user_id.as_deref() != Some(stored.user_id.as_str()) {
                return Err(failed(400, "This passkey belongs to another account."));
            }
            webauthn.finish_passkey_authentication(&credential, &ceremony)
        }
        _ => {
            let ceremony: DiscoverableAuthentication = serde_json::from_str(&challenge.state).map_err(AppError::from)?;
            let (handle, _) = webauthn
                .identify_discoverable_authentication(&credential)
                .map_err(|_| failed(400, "The passkey did not say which account it belongs to."))?;
            if Uuid::parse_str(&stored.user_id).ok() != Some(handle) {
                return Err(failed(400, "This passkey belongs to another account."));
            }
            #[allow(deprecated)]
            webauthn.finish_discoverable_authentication(&credential, ceremony, &[DiscoverableKey::from(&passkey)])
        }
    };
    let result = match result {
        Ok(r) => r,
        Err(WebauthnError::CredentialPossibleCompromise) => {
            audit_failure(&state, &pending, Some(&stored.user_id), &info, "passkey", "possible_cloned_authenticator").await?;
            return Err(failed(403, "This passkey can no longer be trusted. Use another way to sign in and remove it."));
        }
        Err(e) => {
            tracing::info!(error = %e, "passkey assertion refused");
            audit_failure(&state, &pending, Some(&stored.user_id), &info, "passkey", "assertion_refused").await?;
            return Err(failed(400, "The passkey could not be verified. Try again."));
        }
    };
    if pending.request.pinned_sub.as_deref().is_some_and(|pin| pin != stored.user_id) {
        audit_failure(&state, &pending, Some(&stored.user_id), &info, "passkey", "subject_mismatch").await?;
        return Err(failed(403, "This request is for another account."));
    }
    let user_id = stored.user_id.clone();
    let found = state
        .lookup(move |conn| match users::find_user(conn, &user_id)?.filter(|u| !u.disabled) {
            Some(user) => Ok(Some((factors::enrolled(conn, &user.id)?, user))),
            None => Ok(None),
        })
        .await?;
    let Some((enrolled, user)) = found else {
        return Err(failed(403, "This account cannot sign in."));
    };
    passkey.update_credential(&result);
    let updated = serde_json::to_string(&passkey).map_err(AppError::from)?;
    let proof = ProvenFactor { factor: Factor::Passkey, proven_at: now, user_verified: result.user_verified() };
    let current = session::current(&state, &req).await?;
    let (absolute, client_id, passkey_id) = (state.settings.session.absolute_timeout_secs, pending.client.id.clone(), stored.id.clone());
    let prepared = PreparedProof::joining(current, user, enrolled, proof, &info, absolute);
    let (token, active) = state
        .write(move |conn| {
            passkeys::record_use(conn, &passkey_id, &updated, now)?;
            let live = prepared.record(conn)?;
            let session = &prepared.after.session;
            audit::record(
                conn,
                now,
                "factor",
                "success",
                Subject { user_id: Some(&session.user_id), session_id: Some(&session.id), client_id: Some(&client_id) },
                &info,
                json!({ "factor": "passkey", "user_verified": proof.user_verified, "passkey": passkey_id }),
            )?;
            Ok((prepared.token, live.then_some(prepared.after)))
        })
        .await?;
    continue_json(&state, &req, &pending, token, active).await
}

/// `POST …/passkey/register/options`: a registration challenge for the signed-in user.
pub async fn register_options(state: web::Data<AppState>, req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse, OAuthError> {
    let pending = pending_for(&state, &req, path.into_inner()).await?;
    let webauthn = webauthn(&state)?;
    let Some(active) = pinned_session(&state, &req, &pending).await? else {
        return Err(failed(403, "Sign in first, then add a passkey."));
    };
    let user_id = active.user.id.clone();
    let stored = state.lookup(move |conn| passkeys::list_for_user(conn, &user_id)).await?;
    let exclude = stored.iter().map(parse_passkey).map(|p| p.map(|p| p.cred_id().clone())).collect::<Result<Vec<_>, _>>()?;
    let handle = Uuid::parse_str(&active.user.id).map_err(|e| AppError::Keys(e.to_string()))?;
    let display = active.user.name.clone().unwrap_or_else(|| active.user.username.clone());
    let (ccr, ceremony) = webauthn
        .start_passkey_registration(handle, &active.user.username, &display, Some(exclude))
        .map_err(|e| AppError::Keys(e.to_string()))?;
    let id = store_challenge(&state, &pending, "register", Some(active.user.id), serde_json::to_string(&ceremony)?).await?;
    Ok(HttpResponse::Ok().insert_header(("cache-control", "no-store")).json(json!({ "challenge_id": id, "options": ccr })))
}

/// `POST …/passkey/register`: stores the new passkey; its creation (with user verification)
/// counts as a passkey proof.
#[tracing::instrument(name = "passkey_register", level = "debug", skip_all)]
pub async fn register(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<Finish>,
) -> Result<HttpResponse, OAuthError> {
    let pending = pending_for(&state, &req, path.into_inner()).await?;
    let webauthn = webauthn(&state)?;
    let finish = body.into_inner();
    let info = ClientInfo::from_request(&req);
    let Some(active) = pinned_session(&state, &req, &pending).await? else {
        return Err(failed(403, "Sign in first, then add a passkey."));
    };
    let challenge = take(&state, &pending, &finish.challenge_id, &["register"]).await?;
    let Some(challenge) = challenge.filter(|c| c.user_id.as_deref() == Some(active.user.id.as_str())) else {
        audit_failure(&state, &pending, Some(&active.user.id), &info, "passkey", "challenge_expired_or_reused").await?;
        return Err(failed(400, "This passkey request expired or was already used. Try again."));
    };
    let ceremony: PasskeyRegistration = serde_json::from_str(&challenge.state).map_err(AppError::from)?;
    let credential = finish.registration().ok_or_else(|| failed(400, "The passkey response could not be read."))?;
    let passkey = match webauthn.finish_passkey_registration(&credential, &ceremony) {
        Ok(p) => p,
        Err(e) => {
            tracing::info!(error = %e, "passkey registration refused");
            audit_failure(&state, &pending, Some(&active.user.id), &info, "enrolment", "registration_refused").await?;
            return Err(failed(400, "The passkey could not be created. Try again."));
        }
    };
    let now = state.now();
    let name = match finish.name.trim() {
        "" => "Passkey".to_owned(),
        n => n.chars().take(64).collect(),
    };
    let stored = StoredPasskey {
        id: random_token(12),
        user_id: active.user.id.clone(),
        cred_id: B64.encode(passkey.cred_id()),
        name,
        credential: serde_json::to_string(&passkey).map_err(AppError::from)?,
        created_at: now,
        last_used_at: Some(now),
    };
    let proof = ProvenFactor { factor: Factor::Passkey, proven_at: now, user_verified: true };
    let (session_id, client_id) = (active.session.id.clone(), pending.client.id.clone());
    let idle = state.settings.session.idle_timeout_secs;
    let (token, active) = state
        .write(move |conn| {
            passkeys::insert(conn, &stored)?;
            let token = session::add_proof(conn, &session_id, &proof, &info)?;
            audit::record(
                conn,
                now,
                "enrolment",
                "success",
                Subject { user_id: Some(&stored.user_id), session_id: Some(&session_id), client_id: Some(&client_id) },
                &info,
                json!({ "factor": "passkey", "passkey": stored.id, "name": stored.name }),
            )?;
            let active = session::by_token_in(conn, &token, now, idle)?;
            Ok((token, active))
        })
        .await
        .map_err(|e| match e {
            AppError::Store(ladder_store::StoreError::Conflict(_)) => failed(409, "This passkey is already registered."),
            other => other.into(),
        })?;
    continue_json(&state, &req, &pending, token, active).await
}

async fn take(state: &AppState, pending: &Pending, id: &str, kinds: &[&'static str]) -> Result<Option<Challenge>, AppError> {
    let (id, interaction, now, kinds) = (id.to_owned(), pending.interaction.id.clone(), state.now(), kinds.to_vec());
    state
        .write(move |conn| {
            for kind in kinds {
                if let Some(c) = passkeys::take_challenge(conn, &id, &interaction, kind, now)? {
                    return Ok(Some(c));
                }
            }
            Ok(None)
        })
        .await
}

async fn audit_failure(
    state: &AppState,
    pending: &Pending,
    user_id: Option<&str>,
    info: &ClientInfo,
    kind: &'static str,
    error: &'static str,
) -> Result<(), AppError> {
    state.metrics.factor("passkey", "failure");
    let (now, user_id, client_id, info) = (state.now(), user_id.map(str::to_owned), pending.client.id.clone(), info.clone());
    let reason = pending.request.stepup_reason.clone();
    state
        .write(move |conn| {
            audit::record(
                conn,
                now,
                kind,
                "failure",
                Subject { user_id: user_id.as_deref(), client_id: Some(&client_id), ..Default::default() },
                &info,
                json!({ "factor": "passkey", "error": error, "reason": reason }),
            )
        })
        .await
}

/// Where the browser goes next (the RP, or the next step), with the rotated session cookie.
/// `active` is the session as the proof's transaction left it.
async fn continue_json(
    state: &AppState,
    req: &HttpRequest,
    pending: &Pending,
    token: String,
    active: Option<ActiveSession>,
) -> Result<HttpResponse, OAuthError> {
    state.metrics.factor("passkey", "success");
    let page_error = |e: crate::errors::PageError| failed(e.status.as_u16(), &e.message);
    let next = advance(state, req, pending, active, None).await.map_err(page_error)?;
    let (location, device) = leave_to(pending, next);
    let mut resp = HttpResponse::Ok();
    resp.insert_header(("cache-control", "no-store")).cookie(session_cookie(state, token));
    if let Some(cookie) = device {
        resp.cookie(cookie);
    }
    Ok(resp.json(json!({ "location": location })))
}

/// Challenges from the account page are not tied to an authorization request; they are tied to
/// the user (and taken once) under this pseudo-interaction.
const ACCOUNT: &str = "account";

/// Registration options for a passkey added from the account page.
pub async fn account_register_options(state: &AppState, user: &ladder_store::users::User) -> Result<HttpResponse, OAuthError> {
    let webauthn = webauthn(state)?;
    let user_id = user.id.clone();
    let stored = state.lookup(move |conn| passkeys::list_for_user(conn, &user_id)).await?;
    let exclude = stored.iter().map(parse_passkey).map(|p| p.map(|p| p.cred_id().clone())).collect::<Result<Vec<_>, _>>()?;
    let handle = Uuid::parse_str(&user.id).map_err(|e| AppError::Keys(e.to_string()))?;
    let display = user.name.clone().unwrap_or_else(|| user.username.clone());
    let (ccr, ceremony) = webauthn
        .start_passkey_registration(handle, &user.username, &display, Some(exclude))
        .map_err(|e| AppError::Keys(e.to_string()))?;
    let now = state.now();
    let challenge = Challenge {
        id: random_token(16),
        interaction_id: format!("{ACCOUNT}:{}", user.id),
        kind: "register".into(),
        user_id: Some(user.id.clone()),
        state: serde_json::to_string(&ceremony)?,
        created_at: now,
        expires_at: now + CHALLENGE_TTL,
        used_at: None,
    };
    let id = challenge.id.clone();
    state.write(move |conn| passkeys::insert_challenge(conn, &challenge)).await?;
    Ok(HttpResponse::Ok().insert_header(("cache-control", "no-store")).json(json!({ "challenge_id": id, "options": ccr })))
}

/// Stores a passkey created from the account page.
pub async fn account_register(
    state: &AppState,
    user: &ladder_store::users::User,
    session_id: &str,
    info: &ClientInfo,
    finish: Finish,
) -> Result<(), OAuthError> {
    let webauthn = webauthn(state)?;
    let now = state.now();
    let (cid, owner) = (finish.challenge_id.clone(), format!("{ACCOUNT}:{}", user.id));
    let challenge = state.write(move |conn| passkeys::take_challenge(conn, &cid, &owner, "register", now)).await?;
    let Some(challenge) = challenge else {
        return Err(failed(400, "This passkey request expired or was already used. Try again."));
    };
    let ceremony: PasskeyRegistration = serde_json::from_str(&challenge.state).map_err(AppError::from)?;
    let credential = finish.registration().ok_or_else(|| failed(400, "The passkey response could not be read."))?;
    let passkey = webauthn
        .finish_passkey_registration(&credential, &ceremony)
        .map_err(|_| failed(400, "The passkey could not be created. Try again."))?;
    let stored = StoredPasskey {
        id: random_token(12),
        user_id: user.id.clone(),
        cred_id: B64.encode(passkey.cred_id()),
        name: match finish.name.trim() {
            "" => "Passkey".to_owned(),
            n => n.chars().take(64).collect(),
        },
        credential: serde_json::to_string(&passkey).map_err(AppError::from)?,
        created_at: now,
        last_used_at: None,
    };
    let (info, sid) = (info.clone(), session_id.to_owned());
    state
        .write(move |conn| {
            passkeys::insert(conn, &stored)?;
            audit::record(
                conn,
                now,
                "enrolment",
                "success",
                Subject { user_id: Some(&stored.user_id), session_id: Some(&sid), client_id: None },
                &info,
                json!({ "factor": "passkey", "passkey": stored.id, "name": stored.name, "via": "account" }),
            )
        })
        .await
        .map_err(|e| match e {
            AppError::Store(ladder_store::StoreError::Conflict(_)) => failed(409, "This passkey is already registered."),
            other => other.into(),
        })?;
    Ok(())
}
