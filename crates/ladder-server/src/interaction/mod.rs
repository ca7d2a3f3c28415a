//! Ladder's own pages while an authorization request is pending. `GET /interaction/{id}` asks the
//! step-up plan what is still missing and shows that one step (password, TOTP, TOTP enrolment);
//! each step's POST records its proof and moves on, until the plan is satisfied and the browser is
//! sent back to the relying party with a code.

pub mod pages;
pub mod passkey;
pub mod password;
pub mod totp;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use ladder_core::{Factor, Plan, Reason, Step};
use ladder_store::clients::{self, Client};
use ladder_store::interactions::{self, Interaction};
use ladder_store::{Conn, StoreError};
use serde_json::json;

use crate::audit::{self, Subject};
use crate::browser::{ClientInfo, browser_hash, check_csrf};
use crate::endpoints::authorize::unmet;
use crate::errors::{AppError, PageError};
use crate::grant::{self, AuthRequest, Grant, redirect_with};
use crate::session::{self, ActiveSession};
use crate::state::AppState;
use crate::stepup::{self, Evaluation};

/// One pending request, loaded and checked.
pub struct Pending {
    pub interaction: Interaction,
    pub request: AuthRequest,
    pub client: Client,
}

impl Pending {
    pub fn url(&self) -> String {
        format!("/interaction/{}", self.interaction.id)
    }
}

fn expired() -> PageError {
    PageError::bad_request(
        "This sign-in has expired",
        "Too much time passed, or it was already completed. Go back to the application and start again.",
    )
}

/// The pending interaction, only in the browser that started it.
pub async fn load(state: &AppState, req: &HttpRequest, id: String) -> Result<Pending, PageError> {
    Ok(load_with(state, req, id, |_| Ok(())).await?.0)
}

/// `load`, and what `also` reads, in one round trip.
async fn load_with<T: Send + 'static>(
    state: &AppState,
    req: &HttpRequest,
    id: String,
    also: impl FnOnce(&mut Conn) -> Result<T, StoreError> + Send + 'static,
) -> Result<(Pending, T), PageError> {
    let (now, cache) = (state.now(), state.clients.clone());
    let found = state
        .lookup(move |conn| {
            let Some(interaction) = interactions::find_interaction(conn, &id, now)? else { return Ok(None) };
            // The client as /authorize and /token see it (cached for a few seconds).
            let client = match cache.get(&interaction.client_id, now) {
                Some(c) => c,
                None => {
                    let Some(c) = clients::find_client(conn, &interaction.client_id)? else { return Ok(None) };
                    cache.put(&c, now);
                    c
                }
            };
            Ok(Some((interaction, client, also(conn)?)))
        })
        .await?;
    let (interaction, client, also) = found.ok_or_else(expired)?;
    let browser = req.cookie(state.cookies.browser).map(|c| c.value().to_owned()).unwrap_or_default();
    if browser.is_empty() || browser_hash(&browser) != interaction.browser_hash {
        return Err(PageError::forbidden(
            "This sign-in belongs to another browser",
            "Start again from the application in this browser.",
        ));
    }
    let request: AuthRequest = serde_json::from_str(&interaction.request).map_err(AppError::from)?;
    Ok((Pending { interaction, request, client }, also))
}

/// Loads the interaction for a form POST and checks its CSRF token.
pub async fn load_for_post(state: &AppState, req: &HttpRequest, id: String, csrf: &str) -> Result<Pending, PageError> {
    Ok(load_for_post_with(state, req, id, csrf, |_| Ok(())).await?.0)
}

/// `load_for_post`, and what `also` reads (nothing of it is used unless the CSRF token is
/// right), in one round trip.
pub async fn load_for_post_with<T: Send + 'static>(
    state: &AppState,
    req: &HttpRequest,
    id: String,
    csrf: &str,
    also: impl FnOnce(&mut Conn) -> Result<T, StoreError> + Send + 'static,
) -> Result<(Pending, T), PageError> {
    let (pending, also) = load_with(state, req, id, also).await?;
    if !check_csrf(state, req, csrf, &pending.interaction.browser_hash) {
        return Err(PageError::forbidden(
            "This form has expired",
            "The page was open too long or came from elsewhere. Go back to the application and start again.",
        ));
    }
    Ok((pending, also))
}

/// The signed-in user this interaction continues (if the request is pinned, only that user), or
/// None: the flow starts over at sign-in.
pub async fn pinned_session(state: &AppState, req: &HttpRequest, pending: &Pending) -> Result<Option<ActiveSession>, AppError> {
    Ok(session::current(state, req).await?.filter(|s| is_pinned_user(&pending.request, s)))
}

pub fn is_pinned_user(request: &AuthRequest, session: &ActiveSession) -> bool {
    request.pinned_sub.as_deref().is_none_or(|pin| pin == session.user.id)
}

/// Where the flow stands.
pub enum Next {
    /// Completed: send the browser to the RP with its code (and, for a browser new to this user,
    /// the cookie that remembers it as their device).
    Done { location: String, device: Option<actix_web::cookie::Cookie<'static>> },
    /// Failed (e.g. unmet requirements): send the browser to the RP with the error.
    Leave(String),
    /// Show this step; `why` is the risk sentence when a signal raised the level.
    Step { step: Step, reason: Reason, why: Option<String>, session: Option<Box<ActiveSession>>, enrolled: Vec<Factor> },
}

/// Asks the plan what is missing for the (pinned) session; completes the request when nothing is.
pub async fn advance(
    state: &AppState,
    req: &HttpRequest,
    pending: &Pending,
    active: Option<ActiveSession>,
) -> Result<Next, PageError> {
    let active = active.filter(|s| is_pinned_user(&pending.request, s));
    let Some(active) = active else {
        let first = Step::Prove(Factor::Password);
        return Ok(Next::Step { step: first, reason: Reason::NoSession, why: None, session: None, enrolled: vec![] });
    };
    let enrolled = active.enrolled.clone();
    let now = state.now();
    let moment = crate::risk::Moment::InFlow;
    let risk = crate::risk::assess(state, req, &pending.request, Some(&active), &pending.client, moment).await?;
    let evaluation =
        stepup::evaluate(&state.policy, &pending.client, &pending.request, &active.proofs, &enrolled, &risk.raises, now)
            .map_err(|e| AppError::Policy(e.to_string()))?;
    match &evaluation.plan {
        Plan::Satisfied => {
            let (location, device) = complete(state, req, pending, active, &evaluation, &risk).await?;
            Ok(Next::Done { location, device })
        }
        Plan::Unreachable => fail_unmet(state, req, pending, &active, &evaluation).await.map(Next::Leave),
        Plan::Prove { reason, steps, .. } => match steps.first() {
            Some(step) => Ok(Next::Step {
                step: *step,
                reason: reason.clone(),
                why: stepup::risk_reason(&evaluation.target),
                session: Some(Box::new(active)),
                enrolled,
            }),
            None => fail_unmet(state, req, pending, &active, &evaluation).await.map(Next::Leave),
        },
    }
}

/// Issues the code (once: the interaction is deleted in the same transaction), audits the outcome
/// and remembers the browser as the user's device, in one transaction.
async fn complete(
    state: &AppState,
    req: &HttpRequest,
    pending: &Pending,
    active: ActiveSession,
    evaluation: &Evaluation,
    risk: &crate::risk::Assessment,
) -> Result<(String, Option<actix_web::cookie::Cookie<'static>>), PageError> {
    let now = state.now();
    let Some(grant) = Grant::from_proofs(&evaluation.target, &state.policy.levels, &active.proofs, now) else {
        return Ok((fail_unmet(state, req, pending, &active, evaluation).await?, None));
    };
    let visit = crate::risk::DeviceVisit::new(state, req);
    let (issuer, ttl) = (state.issuer.clone(), state.settings.tokens.code_ttl_secs);
    let (request, id) = (pending.request.clone(), pending.interaction.id.clone());
    let info = ClientInfo::from_request(req);
    let kind = if request.stepup_reason.is_some() { "stepup" } else { "login" };
    let detail = json!({
        "reason": request.stepup_reason,
        "requested_acr": request.acr.values(),
        "achieved_acr": grant.acr,
        "amr": grant.amr,
        "raised_by": stepup::raise_reasons(&evaluation.target),
        "signals": crate::endpoints::authorize::signal_kinds(&risk.signals),
    });
    let (level, started) = (evaluation.target.level.name().to_owned(), request.requested_at);
    for s in &risk.signals {
        state.metrics.signal(s.kind.as_str());
    }
    let (location, visit) = state
        .write(move |conn| {
            if !interactions::delete_interaction(conn, &id)? {
                return Ok((None, None));
            }
            audit::record(
                conn,
                now,
                kind,
                "success",
                Subject { user_id: Some(&active.user.id), session_id: Some(&active.session.id), client_id: Some(&request.client_id) },
                &info,
                detail,
            )?;
            let location = grant::issue_code(conn, &request, &active.user.id, &active.session.id, &grant, &issuer, ttl, now)?;
            let new_device = visit.record(conn, &active.user.id, now)?;
            Ok((Some(location), new_device.then_some(visit)))
        })
        .await?;
    state.metrics.authentication(kind, &level, "success", now - started);
    Ok((location.ok_or_else(expired)?, visit.map(|v| v.cookie(state))))
}

/// The user cannot reach what this request requires: tell the RP (OIDC Core §3.1.2.6).
async fn fail_unmet(
    state: &AppState,
    req: &HttpRequest,
    pending: &Pending,
    active: &ActiveSession,
    evaluation: &Evaluation,
) -> Result<String, PageError> {
    let now = state.now();
    let (request, id) = (pending.request.clone(), pending.interaction.id.clone());
    let (user_id, session_id) = (active.user.id.clone(), active.session.id.clone());
    let info = ClientInfo::from_request(req);
    let detail = json!({
        "reason": request.stepup_reason,
        "requested_acr": request.acr.values(),
        "essential": evaluation.target.is_essential(),
        "target": evaluation.target.level.name(),
        "raised_by": stepup::raise_reasons(&evaluation.target),
    });
    state.metrics.authentication("stepup", evaluation.target.level.name(), "unmet", 0);
    let error = unmet();
    let mut pairs = vec![("error", error.code), ("error_description", error.description.as_str())];
    if let Some(s) = &request.state {
        pairs.push(("state", s));
    }
    pairs.push(("iss", &state.issuer));
    let location = redirect_with(&request.redirect_uri, &pairs);
    state
        .write(move |conn| {
            interactions::delete_interaction(conn, &id)?;
            audit::record(
                conn,
                now,
                "stepup",
                "unmet",
                Subject { user_id: Some(&user_id), session_id: Some(&session_id), client_id: Some(&request.client_id) },
                &info,
                detail,
            )
        })
        .await?;
    Ok(location)
}

pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// After a step's proof: straight to the RP when nothing else is missing, else to the next page.
/// `active` is the session as the proof's transaction left it (`session::by_token_in`).
pub async fn after_step(
    state: &AppState,
    req: &HttpRequest,
    pending: &Pending,
    token: String,
    active: Option<ActiveSession>,
) -> Result<HttpResponse, PageError> {
    let (location, device) = leave_to(pending, advance(state, req, pending, active).await?);
    let mut resp = see_other(&location);
    resp.add_cookie(&crate::browser::session_cookie(state, token)).map_err(|e| AppError::Blocking(e.to_string()))?;
    if let Some(cookie) = device {
        resp.add_cookie(&cookie).map_err(|e| AppError::Blocking(e.to_string()))?;
    }
    Ok(resp)
}

/// Where the browser goes after a step, and — when the request completed — the cookie that
/// remembers this browser as the user's device.
pub fn leave_to(pending: &Pending, next: Next) -> (String, Option<actix_web::cookie::Cookie<'static>>) {
    match next {
        Next::Done { location, device } => (location, device),
        Next::Leave(location) => (location, None),
        Next::Step { .. } => (pending.url(), None),
    }
}

/// `GET /interaction/{id}`: the page for the next step, or the way out.
pub async fn show(state: web::Data<AppState>, req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse, PageError> {
    let (pending, active) = load_with(&state, &req, path.into_inner(), session::current_reader(&state, &req)).await?;
    page(&state, &req, &pending, active).await
}

/// The page for the interaction's next step, or the way out: what `GET /interaction/{id}` shows,
/// and what `/authorize` shows at once for the interaction it has just started (one round trip
/// fewer for every sign-in and step-up).
pub async fn page(
    state: &AppState,
    req: &HttpRequest,
    pending: &Pending,
    active: Option<ActiveSession>,
) -> Result<HttpResponse, PageError> {
    match advance(state, req, pending, active).await? {
        Next::Step { step, reason, why, session, enrolled } => {
            let shown = pages::Shown { reason: &reason, why: why.as_deref() };
            pages::render_step(state, req, pending, step, shown, session.as_deref(), &enrolled, None).await
        }
        done => {
            let (location, device) = leave_to(pending, done);
            let mut resp = see_other(&location);
            if let Some(cookie) = device {
                resp.add_cookie(&cookie).map_err(|e| AppError::Blocking(e.to_string()))?;
            }
            Ok(resp)
        }
    }
}
