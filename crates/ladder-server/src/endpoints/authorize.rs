//! The authorization endpoint: OAuth 2.0 (RFC 6749 §3.1, §4.1.1–4.1.2), OpenID Connect Core §3.1.2
//! (GET and POST, prompt, max_age, id_token_hint, login_hint), PKCE (RFC 7636, S256 only),
//! RFC 9207 (`iss` in the response) and the redirect rules of RFC 9700 §4.1.
//!
//! The checks run once, in order. Until the client and its redirect URI are validated, errors are
//! shown as a page; after that, they are redirected to the RP.

// AuthorizeError carries the redirect it may need; errors are the rare path, so size is no concern.
#![allow(clippy::result_large_err)]

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use ladder_store::clients::Client;
use ladder_store::interactions::{self, Interaction};

use ladder_core::{AcrRequest, Factor, MaxAge, Plan, Reason, SessionView, reauth_reason};
use serde_json::json;

use crate::audit::{self, Subject};
use crate::browser::{ClientInfo, browser_hash, browser_key};
use crate::crypto::new_ordered_token;
use crate::errors::{AppError, OAuthError, error_page};
use crate::grant::{self, AuthRequest, Grant, redirect_with};
use crate::params::Params;
use crate::session::{self, ActiveSession};
use crate::state::AppState;
use crate::stepup::{self, Evaluation};

/// What an authorization request may carry (an ID token hint or a `claims` object fits easily).
const MAX_PARAMS: usize = 50;
const MAX_VALUE: usize = 8192;
/// How deeply the `claims` JSON may nest (its real shape is three levels deep).
const MAX_CLAIMS_DEPTH: usize = 6;

fn json_depth(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Array(a) => 1 + a.iter().map(json_depth).max().unwrap_or(0),
        serde_json::Value::Object(o) => 1 + o.values().map(json_depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// A redirect URI that exactly matches one registered for the client, with the request's state.
#[derive(Debug, Clone)]
pub struct ValidatedRedirect {
    uri: String,
    state: Option<String>,
}

/// An authorization error, redirected only when a validated redirect URI exists.
#[derive(Debug)]
pub struct AuthorizeError {
    error: OAuthError,
    redirect: Option<ValidatedRedirect>,
    issuer: String,
}

impl std::fmt::Display for AuthorizeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl ResponseError for AuthorizeError {
    fn status_code(&self) -> StatusCode {
        if self.redirect.is_some() { StatusCode::SEE_OTHER } else { self.error.status }
    }

    fn error_response(&self) -> HttpResponse {
        match &self.redirect {
            Some(r) => {
                let mut pairs = vec![("error", self.error.code), ("error_description", self.error.description.as_str())];
                if let Some(s) = &r.state {
                    pairs.push(("state", s));
                }
                pairs.push(("iss", &self.issuer));
                HttpResponse::SeeOther()
                    .insert_header((header::LOCATION, redirect_with(&r.uri, &pairs)))
                    .insert_header((header::CACHE_CONTROL, "no-store"))
                    .finish()
            }
            None if self.error.status == StatusCode::SERVICE_UNAVAILABLE => {
                let mut resp = error_page(self.error.status, "Ladder is busy", "Please try again in a moment.", None);
                resp.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
                resp
            }
            None => error_page(
                self.error.status,
                "This sign-in link is not valid",
                &format!(
                    "{} For your safety Ladder did not send you back to the application.",
                    self.error.description
                ),
                Some(self.error.code),
            ),
        }
    }
}

pub async fn authorize_get(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, AuthorizeError> {
    let params = Params::parse(req.query_string().as_bytes());
    authorize(&state, &req, params).await
}

pub async fn authorize_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, AuthorizeError> {
    let form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return Err(page_error(&state, "invalid_request", "A POST to /authorize must be form-encoded."));
    }
    authorize(&state, &req, Params::parse(&body)).await
}

#[tracing::instrument(name = "authorize", level = "debug", skip_all)]
async fn authorize(state: &AppState, req: &HttpRequest, params: Params) -> Result<HttpResponse, AuthorizeError> {
    // Limits first: nothing a client sends is trusted enough to redirect to until it fits them.
    if let Some(problem) = params.over_limit(MAX_PARAMS, MAX_VALUE) {
        return Err(page_error(state, "invalid_request", &problem));
    }
    let client = check_client(state, &params, false).await?;
    let (client, redirect) = match check_redirect_uri(state, &client, &params) {
        Ok(redirect) => (client, redirect),
        // The cached registration may predate a redirect URI added elsewhere: read it again
        // before refusing.
        Err(_) => {
            let client = check_client(state, &params, true).await?;
            let redirect = check_redirect_uri(state, &client, &params)?;
            (client, redirect)
        }
    };
    let fail = |error: OAuthError| AuthorizeError {
        error,
        redirect: Some(redirect.clone()),
        issuer: state.issuer.clone(),
    };

    check_duplicates(&params).map_err(fail)?;
    check_response_type(&params).map_err(fail)?;
    check_response_mode(&params).map_err(fail)?;
    check_request_object(&params).map_err(fail)?;
    let scope = check_scope(&client, &params).map_err(fail)?;
    let code_challenge = check_pkce(&client, &params).map_err(fail)?;
    let prompt = check_prompt(&params).map_err(fail)?;
    let max_age = check_max_age(&params).map_err(fail)?;
    let token_hint = check_id_token_hint(state, &client, &params).await.map_err(fail)?;
    let (acr, claims_sub) = check_acr(&params).map_err(fail)?;
    let subject_hint = check_subject_hints(token_hint, claims_sub).map_err(fail)?;

    let mut request = AuthRequest {
        client_id: client.id.clone(),
        redirect_uri: redirect.uri.clone(),
        scope,
        state: redirect.state.clone(),
        nonce: param(&params, "nonce").map_err(fail)?,
        code_challenge,
        prompt_none: prompt.none,
        prompt_login: prompt.login,
        max_age,
        login_hint: param(&params, "login_hint").map_err(fail)?,
        acr,
        pinned_sub: subject_hint.clone(),
        subject_hint,
        requested_at: state.now(),
        stepup_reason: None,
        authorization_details: check_authorization_details(&params).map_err(fail)?,
        risk: vec![],
    };
    let internal = |e: AppError| internal(state, e, &redirect);

    let current = session::current(state, req).await.map_err(internal)?;
    let enrolled = current.as_ref().map_or_else(|| Factor::ALL.to_vec(), |c| c.enrolled.clone());
    let proofs = current.as_ref().map(|c| c.proofs.clone()).unwrap_or_default();
    let now = state.now();
    let risk = crate::risk::assess(state, req, &request, current.as_ref(), &client, crate::risk::Moment::Arrival)
        .await
        .map_err(internal)?;
    request.risk = risk.raises.clone();
    let evaluation = stepup::evaluate(&state.policy, &client, &request, &proofs, &enrolled, &risk.raises, now)
        .map_err(|e| internal(AppError::Policy(e.to_string())))?;
    let view = current.as_ref().map(|c| SessionView { subject: &c.user.id, proofs: &c.proofs });
    let reason = reauth_reason(view.as_ref(), request.subject_hint.as_deref(), &evaluation.target, &stepup::recency(&request), now);

    if evaluation.target.unmet || (current.is_some() && evaluation.plan == Plan::Unreachable) {
        audit_unmet(state, req, &request, current.as_ref(), &evaluation).await.map_err(internal)?;
        return Err(fail(unmet()));
    }
    match (reason, current) {
        (None, Some(active)) => {
            complete_silently(state, &request, &evaluation, active).await.map_err(internal)
        }
        (Some(reason), _) if request.prompt_none => Err(fail(OAuthError::new(
            reason.prompt_none_error(),
            "The user must interact with Ladder, and prompt=none forbids showing a page.",
        ))),
        (Some(reason), current) => {
            // A step-up continues the signed-in user; a mismatching hint starts a fresh sign-in.
            if let Some(active) = current.as_ref().filter(|_| reason != Reason::IdTokenHintMismatch) {
                request.pinned_sub = Some(active.user.id.clone());
                request.stepup_reason = Some(reason.to_string());
            }
            start_interaction(state, req, &client, request, current.as_ref(), &evaluation, &risk)
                .await
                .map_err(internal)
        }
        (None, None) => Err(internal(AppError::Policy("no reason to sign in without a session".into()))),
    }
}

/// The checks of an authorization request that need neither the client nor the server's state, in
/// the order `authorize` runs them (the fuzzing entry point for authorize parameters).
pub fn check_params(params: &Params) -> Result<(), OAuthError> {
    if let Some(problem) = params.over_limit(MAX_PARAMS, MAX_VALUE) {
        return Err(OAuthError::invalid_request(problem));
    }
    check_duplicates(params)?;
    check_response_type(params)?;
    check_response_mode(params)?;
    check_request_object(params)?;
    check_prompt(params)?;
    check_max_age(params)?;
    let (_, claims_sub) = check_acr(params)?;
    check_subject_hints(None, claims_sub)?;
    check_authorization_details(params)?;
    Ok(())
}

fn page_error(state: &AppState, code: &'static str, description: &str) -> AuthorizeError {
    let mut error = OAuthError::new(code, description);
    error.status = StatusCode::BAD_REQUEST;
    AuthorizeError { error, redirect: None, issuer: state.issuer.clone() }
}

fn internal(state: &AppState, e: AppError, redirect: &ValidatedRedirect) -> AuthorizeError {
    AuthorizeError { error: OAuthError::from(e), redirect: Some(redirect.clone()), issuer: state.issuer.clone() }
}

fn param(params: &Params, name: &str) -> Result<Option<String>, OAuthError> {
    params
        .get(name)
        .map(|v| v.map(str::to_owned))
        .map_err(|d| OAuthError::invalid_request(format!("The `{}` parameter is repeated.", d.0)))
}

async fn check_client(state: &AppState, params: &Params, fresh: bool) -> Result<Client, AuthorizeError> {
    let id = match params.get("client_id") {
        Ok(Some(id)) => id.to_owned(),
        Ok(None) => return Err(page_error(state, "invalid_request", "The request has no client_id.")),
        Err(_) => return Err(page_error(state, "invalid_request", "The client_id parameter is repeated.")),
    };
    let found = state.client_unless_refused(&id, |c| !fresh && !c.disabled).await;
    let found = found.map_err(|e| AuthorizeError {
        error: OAuthError::from(e),
        redirect: None,
        issuer: state.issuer.clone(),
    })?;
    match found {
        Some(c) if !c.disabled => Ok(c),
        _ => Err(page_error(state, "invalid_client", "The application that sent you here is not registered.")),
    }
}

/// Exact string match against the registered URIs (RFC 9700 §2.1): no prefix, no normalisation.
fn check_redirect_uri(state: &AppState, client: &Client, params: &Params) -> Result<ValidatedRedirect, AuthorizeError> {
    let uri = match params.get("redirect_uri") {
        Ok(Some(uri)) => uri,
        Ok(None) => return Err(page_error(state, "invalid_request", "The request has no redirect_uri.")),
        Err(_) => return Err(page_error(state, "invalid_request", "The redirect_uri parameter is repeated.")),
    };
    if !client.redirect_uris.iter().any(|r| r == uri) {
        return Err(page_error(
            state,
            "invalid_request",
            "The redirect_uri is not registered for this application.",
        ));
    }
    // A repeated state cannot be echoed faithfully; the duplicate check reports it next.
    let state_param = params.get("state").ok().flatten().map(str::to_owned);
    Ok(ValidatedRedirect { uri: uri.to_owned(), state: state_param })
}

fn check_duplicates(params: &Params) -> Result<(), OAuthError> {
    match params.first_duplicate() {
        Some(name) => Err(OAuthError::invalid_request(format!("The `{name}` parameter is repeated."))),
        None => Ok(()),
    }
}

fn check_response_type(params: &Params) -> Result<(), OAuthError> {
    match param(params, "response_type")?.as_deref() {
        Some("code") => Ok(()),
        None => Err(OAuthError::invalid_request("The response_type parameter is missing.")),
        Some(_) => Err(OAuthError::new(
            "unsupported_response_type",
            "Only the authorization code flow (response_type=code) is supported.",
        )),
    }
}

fn check_response_mode(params: &Params) -> Result<(), OAuthError> {
    match param(params, "response_mode")?.as_deref() {
        None | Some("query") => Ok(()),
        Some(_) => Err(OAuthError::invalid_request("Only response_mode=query is supported.")),
    }
}

/// Request objects are not supported and discovery says so (OIDC Core §6.1–6.2).
fn check_request_object(params: &Params) -> Result<(), OAuthError> {
    if param(params, "request")?.is_some() {
        return Err(OAuthError::new("request_not_supported", "Request objects are not supported."));
    }
    if param(params, "request_uri")?.is_some() {
        return Err(OAuthError::new("request_uri_not_supported", "The request_uri parameter is not supported."));
    }
    Ok(())
}

fn check_scope(client: &Client, params: &Params) -> Result<Vec<String>, OAuthError> {
    let requested = param(params, "scope")?.unwrap_or_default();
    let requested: Vec<&str> = requested.split(' ').filter(|s| !s.is_empty()).collect();
    if !requested.contains(&"openid") {
        return Err(OAuthError::new("invalid_scope", "The openid scope is required."));
    }
    let mut granted = vec!["openid".to_owned()];
    for s in requested {
        // Scopes the client is not registered for are dropped (RFC 6749 §3.3 lets us narrow).
        let allowed = client.scopes.iter().any(|c| c == s);
        if allowed && !granted.iter().any(|g| g == s) {
            granted.push(s.to_owned());
        }
    }
    Ok(granted)
}

/// PKCE: S256 only (`plain` refused); required for public clients (RFC 9700 §2.1.1).
fn check_pkce(client: &Client, params: &Params) -> Result<Option<String>, OAuthError> {
    let challenge = param(params, "code_challenge")?;
    let method = param(params, "code_challenge_method")?;
    match (&challenge, method.as_deref()) {
        (None, Some(_)) => Err(OAuthError::invalid_request("code_challenge_method was sent without code_challenge.")),
        (Some(_), None | Some("plain")) => Err(OAuthError::invalid_request(
            "Only code_challenge_method=S256 is supported; plain is refused.",
        )),
        (Some(_), Some(m)) if m != "S256" => {
            Err(OAuthError::invalid_request("Only code_challenge_method=S256 is supported."))
        }
        (Some(c), Some(_)) => {
            // base64url(SHA-256) is exactly 43 characters.
            let valid = c.len() == 43 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if valid { Ok(challenge) } else { Err(OAuthError::invalid_request("The code_challenge is malformed.")) }
        }
        (None, None) if client.is_public => {
            Err(OAuthError::invalid_request("Public clients must use PKCE (code_challenge with S256)."))
        }
        (None, None) => Ok(None),
    }
}

fn check_prompt(params: &Params) -> Result<ladder_core::Prompt, OAuthError> {
    param(params, "prompt")?
        .unwrap_or_default()
        .parse()
        .map_err(|e: ladder_core::prompt::PromptError| OAuthError::invalid_request(format!("{e}.")))
}

fn check_max_age(params: &Params) -> Result<Option<MaxAge>, OAuthError> {
    match param(params, "max_age")? {
        None => Ok(None),
        Some(v) => v
            .parse::<MaxAge>()
            .map(Some)
            .map_err(|_| OAuthError::invalid_request("max_age must be a non-negative integer number of seconds.")),
    }
}

/// An `id_token_hint` must be an ID token Ladder issued to this client; expiry does not matter.
async fn check_id_token_hint(state: &AppState, client: &Client, params: &Params) -> Result<Option<String>, OAuthError> {
    let Some(hint) = param(params, "id_token_hint")? else {
        return Ok(None);
    };
    let keys = state.keys.get().await;
    let invalid = || OAuthError::invalid_request("The id_token_hint is not an ID token issued by this provider.");
    let (_, claims) = keys.verify(&hint).map_err(|_| invalid())?;
    let iss_ok = claims.get("iss").and_then(|v| v.as_str()) == Some(state.issuer.as_str());
    let aud_ok = match claims.get("aud") {
        Some(serde_json::Value::String(a)) => a == &client.id,
        Some(serde_json::Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(client.id.as_str())),
        _ => false,
    };
    let sub = claims.get("sub").and_then(|v| v.as_str());
    match sub {
        Some(sub) if iss_ok && aud_ok => Ok(Some(sub.to_owned())),
        _ => Err(invalid()),
    }
}

pub fn unmet() -> OAuthError {
    OAuthError::new(
        "unmet_authentication_requirements",
        "The user cannot meet the authentication level this request requires.",
    )
}

fn check_acr(params: &Params) -> Result<(AcrRequest, Option<String>), OAuthError> {
    let acr_values = param(params, "acr_values")?;
    let claims = param(params, "claims")?;
    if let Some(c) = &claims
        && serde_json::from_str::<serde_json::Value>(c).is_ok_and(|v| json_depth(&v) > MAX_CLAIMS_DEPTH)
    {
        return Err(OAuthError::invalid_request(format!("The claims parameter nests deeper than {MAX_CLAIMS_DEPTH} levels.")));
    }
    let acr = AcrRequest::from_params(acr_values.as_deref(), claims.as_deref())
        .map_err(|e| OAuthError::invalid_request(format!("{e}.")))?;
    // claims.id_token.sub.value names the user the RP expects (OIDC Core §5.5.1).
    let sub = claims
        .as_deref()
        .and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok())
        .and_then(|c| c.pointer("/id_token/sub/value").and_then(|v| v.as_str()).map(str::to_owned));
    Ok((acr, sub))
}

/// RFC 9396: `authorization_details` is a JSON array of objects, each with a `type`.
fn check_authorization_details(params: &Params) -> Result<Option<String>, OAuthError> {
    let Some(raw) = param(params, "authorization_details")? else { return Ok(None) };
    let valid = serde_json::from_str::<serde_json::Value>(&raw)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .is_some_and(|a| a.iter().all(|d| d.get("type").is_some_and(|t| t.is_string())));
    if !valid {
        return Err(OAuthError::new(
            "invalid_authorization_details",
            "authorization_details must be a JSON array of objects with a type.",
        ));
    }
    Ok(Some(raw))
}

fn check_subject_hints(token_hint: Option<String>, claims_sub: Option<String>) -> Result<Option<String>, OAuthError> {
    match (token_hint, claims_sub) {
        (Some(a), Some(b)) if a != b => {
            Err(OAuthError::invalid_request("id_token_hint and claims.id_token.sub name different users."))
        }
        (a, b) => Ok(a.or(b)),
    }
}

/// The session already satisfies the request: issue a code without showing a page.
async fn complete_silently(
    state: &AppState,
    request: &AuthRequest,
    evaluation: &Evaluation,
    active: ActiveSession,
) -> Result<HttpResponse, AppError> {
    let (issuer, ttl, now) = (state.issuer.clone(), state.settings.tokens.code_ttl_secs, state.now());
    let grant = Grant::from_proofs(&evaluation.target, &state.policy.levels, &active.proofs, now)
        .ok_or_else(|| AppError::Policy("a satisfied plan without a reportable acr".into()))?;
    let request = request.clone();
    let location = state
        .write(move |conn| {
            grant::issue_code(conn, &request, &active.user.id, &active.session.id, &grant, &issuer, ttl, now)
        })
        .await?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

/// Saves the request and sends the browser to Ladder's pages for it.
async fn start_interaction(
    state: &AppState,
    req: &HttpRequest,
    client: &Client,
    request: AuthRequest,
    current: Option<&ActiveSession>,
    evaluation: &Evaluation,
    risk: &crate::risk::Assessment,
) -> Result<HttpResponse, AppError> {
    let (key, new_cookie) = browser_key(state, req);
    let now = state.now();
    let interaction = Interaction {
        id: new_ordered_token(18),
        browser_hash: browser_hash(&key),
        client_id: client.id.clone(),
        request: serde_json::to_string(&request)?,
        created_at: now,
        expires_at: now + state.settings.tokens.interaction_ttl_secs,
    };
    let stored = interaction.clone();
    let started = request.stepup_reason.as_ref().zip(current).map(|(reason, active)| {
        (
            active.user.id.clone(),
            active.session.id.clone(),
            json!({
                "reason": reason,
                "requested_acr": request.acr.values(),
                "essential": evaluation.target.is_essential(),
                "target": evaluation.target.level.name(),
                "raised_by": stepup::raise_reasons(&evaluation.target),
                "signals": signal_kinds(&risk.signals),
                "plan": evaluation.plan,
            }),
        )
    });
    let info = ClientInfo::from_request(req);
    state
        .write(move |conn| {
            interactions::insert_interaction(conn, &interaction)?;
            if let Some((user_id, session_id, detail)) = started {
                audit::record(
                    conn,
                    now,
                    "stepup",
                    "started",
                    Subject { user_id: Some(&user_id), session_id: Some(&session_id), client_id: Some(&interaction.client_id) },
                    &info,
                    detail,
                )?;
            }
            Ok(())
        })
        .await?;
    let pending = crate::interaction::Pending { interaction: stored, request, client: client.clone() };
    let mut resp = if req.method() == actix_web::http::Method::GET {
        // The first page at once, rather than a redirect to it (`GET /interaction/{id}` shows the same,
        // reading the risk again). Read at arrival, the signals are those of this moment and more.
        match crate::interaction::page(state, req, &pending, current.cloned(), Some(risk.clone())).await {
            Ok(resp) => resp,
            Err(page) => page.error_response(),
        }
    } else {
        // After a form POST, a redirect: reloading the page must not post the request again.
        HttpResponse::SeeOther()
            .insert_header((header::LOCATION, pending.url()))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish()
    };
    if let Some(c) = new_cookie {
        resp.add_cookie(&c).map_err(|e| AppError::Blocking(e.to_string()))?;
    }
    Ok(resp)
}

async fn audit_unmet(
    state: &AppState,
    req: &HttpRequest,
    request: &AuthRequest,
    current: Option<&ActiveSession>,
    evaluation: &Evaluation,
) -> Result<(), AppError> {
    state.metrics.authentication("stepup", evaluation.target.level.name(), "unmet", 0);
    let info = ClientInfo::from_request(req);
    let (user_id, session_id) = (current.map(|c| c.user.id.clone()), current.map(|c| c.session.id.clone()));
    let client_id = request.client_id.clone();
    let detail = json!({
        "requested_acr": request.acr.values(),
        "essential": evaluation.target.is_essential(),
        "target": evaluation.target.level.name(),
        "raised_by": stepup::raise_reasons(&evaluation.target),
        "ignored": evaluation.target.ignored,
    });
    let now = state.now();
    state
        .write(move |conn| {
            audit::record(
                conn,
                now,
                "stepup",
                "unmet",
                Subject { user_id: user_id.as_deref(), session_id: session_id.as_deref(), client_id: Some(&client_id) },
                &info,
                detail,
            )
        })
        .await
}

pub fn signal_kinds(signals: &[ladder_core::risk::Signal]) -> Vec<&'static str> {
    signals.iter().map(|s| s.kind.as_str()).collect()
}
