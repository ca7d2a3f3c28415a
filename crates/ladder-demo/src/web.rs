//! The web front end: pages and forms. It signs people in with Ladder (`oidc.rs`) and does every
//! banking action by calling the bank's API (`api_client.rs`). When the API answers with an RFC 9470
//! challenge, the front end keeps the action, sends the browser to Ladder with the challenge's
//! `acr_values` and `max_age`, and on return calls the API again with the new token.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use ladder_guard::LOA1;
use openidconnect::reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api_client::{self, ApiOutcome};
use crate::bank::Account;
use crate::challenge::StepUp;
use crate::money::Money;
use crate::oidc::AuthRequest;
use crate::session::{self, Flash, FlashKind, PendingAction, Session, SignedIn, Step};
use crate::state::AppState;
use crate::time::now;
use crate::views::{Dashboard, ErrorPage, Landing, render};

type Data = web::Data<AppState>;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .route("/login", web::get().to(login))
        .route("/callback", web::get().to(callback))
        .route("/transfer", web::post().to(transfer))
        .route("/payees", web::post().to(add_payee))
        .route("/payees/{id}/remove", web::post().to(remove_payee))
        .route("/logout", web::post().to(logout))
        .route("/static/acme.css", web::get().to(stylesheet));
}

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(include_str!("../static/acme.css"))
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

fn error_page(status: StatusCode, title: &str, message: &str, detail: String) -> HttpResponse {
    render(
        &ErrorPage {
            title: title.into(),
            message: message.into(),
            detail,
        },
        status,
    )
}

fn ladder_unreachable(state: &AppState, e: &anyhow::Error) -> HttpResponse {
    tracing::warn!(error = %format!("{e:#}"), "talking to Ladder failed");
    error_page(
        StatusCode::BAD_GATEWAY,
        "Ladder did not answer",
        &format!(
            "Acme Bank could not reach its identity provider at {}. Is Ladder running?",
            state.config.issuer
        ),
        format!("{e:#}"),
    )
}

/// The API refuses tokens Ladder has just issued: most likely the client was registered without
/// the API as its audience.
fn misconfigured(state: &AppState, why: &str) -> HttpResponse {
    tracing::warn!(%why, "the API refuses fresh tokens");
    error_page(
        StatusCode::BAD_GATEWAY,
        "The bank's API refuses your sign-in",
        &format!(
            "Ladder signed you in, but the API does not accept the access token. Register the client \
             with --audience {} (ladder-demo seed does), then sign in again.",
            state.config.api_audience
        ),
        why.to_owned(),
    )
}

/// Saves the session and answers with `response`, setting the cookie.
fn respond(
    state: &AppState,
    id: &str,
    session: Session,
    mut response: HttpResponse,
) -> HttpResponse {
    state.sessions.save(id, session);
    let _ = response.add_cookie(&session::cookie(id, state.config.secure_cookies()));
    response
}

fn threshold(state: &AppState) -> String {
    state.config.transfer_threshold.to_string()
}

async fn index(state: Data, req: HttpRequest) -> HttpResponse {
    let Some((id, mut session)) = state.sessions.load(&req) else {
        return render(
            &Landing {
                flash: None,
                threshold: threshold(&state),
            },
            StatusCode::OK,
        );
    };
    let flash = session.flash.take();
    let Some(mut user) = session.user.clone() else {
        let page = render(
            &Landing {
                flash: flash.map(Into::into),
                threshold: threshold(&state),
            },
            StatusCode::OK,
        );
        return respond(&state, &id, session, page);
    };
    let outcome = api_client::call(&state, &mut user, Method::GET, "/account", None).await;
    session.user = Some(user.clone());
    let response = match outcome {
        Ok(ApiOutcome::Ok(body)) => match serde_json::from_value::<Account>(body) {
            Ok(account) => render(
                &Dashboard::new(
                    session.csrf.clone(),
                    &user.identity,
                    &account,
                    flash,
                    threshold(&state),
                    state.config.step_up_max_age,
                ),
                StatusCode::OK,
            ),
            Err(e) => error_page(
                StatusCode::BAD_GATEWAY,
                "Unexpected answer",
                "The bank's API answered oddly.",
                e.to_string(),
            ),
        },
        // Tokens this fresh should work: the API and the client registration disagree. Say so
        // rather than send the browser round in circles.
        Ok(ApiOutcome::SignInAgain(why)) if user.just_arrived() => misconfigured(&state, &why),
        // The session's tokens are no longer good: sign in again, quietly.
        Ok(ApiOutcome::SignInAgain(_) | ApiOutcome::StepUp(_)) => {
            session.user = None;
            return start(
                &state,
                id,
                session,
                AuthRequest {
                    acr_values: vec![LOA1.into()],
                    ..Default::default()
                },
            )
            .await;
        }
        Ok(ApiOutcome::Refused(why)) => error_page(
            StatusCode::BAD_GATEWAY,
            "The bank is unavailable",
            &why,
            String::new(),
        ),
        Err(e) => error_page(
            StatusCode::BAD_GATEWAY,
            "The bank is unavailable",
            "Its API did not answer.",
            format!("{e:#}"),
        ),
    };
    respond(&state, &id, session, response)
}

/// Starts an authorization request and sends the browser to Ladder.
async fn start(
    state: &AppState,
    id: String,
    mut session: Session,
    request: AuthRequest,
) -> HttpResponse {
    match state.rp.start(request).await {
        Ok((url, pending)) => {
            session.pending = Some(pending);
            respond(state, &id, session, see_other(&url))
        }
        Err(e) => ladder_unreachable(state, &e),
    }
}

async fn login(state: Data, req: HttpRequest) -> HttpResponse {
    let (id, session) = state.sessions.load_or_new(&req);
    // Sign-in asks for the lowest level; stronger proofs are asked for when an action needs them.
    start(
        &state,
        id,
        session,
        AuthRequest {
            acr_values: vec![LOA1.into()],
            ..Default::default()
        },
    )
    .await
}

#[derive(Debug, Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

async fn callback(state: Data, req: HttpRequest, query: web::Query<CallbackQuery>) -> HttpResponse {
    let lost = || {
        error_page(
            StatusCode::BAD_REQUEST,
            "This sign-in has expired",
            "Acme Bank has no record of sending you to Ladder from this browser. Start again from the home page.",
            String::new(),
        )
    };
    let Some((old_id, mut session)) = state.sessions.load(&req) else {
        return lost();
    };
    let Some(pending) = session.pending.take() else {
        return lost();
    };
    // Ladder forgets an unfinished sign-in after 15 minutes (interaction_ttl_secs); so do we.
    if query.state.as_deref() != Some(pending.state.as_str()) || now() - pending.started_at > 900 {
        return lost();
    }
    // RFC 9207: the response says who sent it; refuse one from another issuer (mix-up attacks).
    if let Some(iss) = &query.iss
        && iss.trim_end_matches('/') != state.config.issuer
    {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Wrong issuer",
            "The sign-in response came from an unexpected issuer.",
            iss.clone(),
        );
    }
    let action = pending.request.action.clone();
    let Some(code) = query.code.clone() else {
        let error = query.error.clone().unwrap_or_else(|| "no code".into());
        let what = action.as_ref().map_or_else(String::new, |a| {
            format!(" Nothing was done about {}.", a.describe())
        });
        let explanation = match error.as_str() {
            "unmet_authentication_requirements" => {
                "Ladder could not reach the level this needs for your account."
            }
            "access_denied" => "The sign-in was cancelled.",
            "login_required" | "interaction_required" => "Ladder needs you to sign in again.",
            _ => "Ladder did not sign you in.",
        };
        let mut steps = pending.request.steps.clone();
        let detail = query
            .error_description
            .as_deref()
            .map_or_else(String::new, |d| format!(" ({d})"));
        steps.push(Step::with_code(
            "Ladder answered with an error:",
            format!("error={error}{detail}"),
        ));
        session.flash = Some(
            Flash::new(FlashKind::Error, explanation, what.trim().to_owned()).with_steps(steps),
        );
        return respond(&state, &old_id, session, see_other("/"));
    };
    let (identity, tokens) = match state.rp.finish(code, &pending).await {
        Ok(done) => done,
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "sign-in failed");
            return error_page(
                StatusCode::BAD_GATEWAY,
                "Sign-in failed",
                "Ladder's answer could not be accepted.",
                format!("{e:#}"),
            );
        }
    };
    tracing::info!(sub = %identity.sub, acr = ?identity.acr, amr = ?identity.amr, "signed in");
    // A new session id at every sign-in, so a planted cookie never inherits one.
    state.sessions.remove(&old_id);
    let id = session::new_id();
    let mut steps = pending.request.steps.clone();
    steps.push(Step::with_code(
        "Ladder sent you back with a code; the new ID token says",
        format!(
            "acr {}, amr [{}]",
            identity.acr.as_deref().unwrap_or("(none)"),
            identity.amr.join(", ")
        ),
    ));
    let level = identity.acr.clone().unwrap_or_default();
    session.user = Some(SignedIn {
        identity,
        tokens,
        since: now(),
    });
    match action {
        Some(action) => perform(&state, id, session, action, Some(steps)).await,
        None => {
            session.flash = Some(Flash::new(
                FlashKind::Info,
                "You are signed in",
                format!("Ladder signed you in at {level}."),
            ));
            respond(&state, &id, session, see_other("/"))
        }
    }
}

/// Calls the API for `action`. A step-up challenge sends the browser to Ladder with the action kept;
/// `after_step_up` holds the story so far when this is the call after that round trip.
async fn perform(
    state: &AppState,
    id: String,
    mut session: Session,
    action: PendingAction,
    after_step_up: Option<Vec<Step>>,
) -> HttpResponse {
    let Some(mut user) = session.user.clone() else {
        return see_other("/login");
    };
    let (method, path, body) = api_request(&action);
    let call = format!("{method} /api{path}");
    let outcome = api_client::call(state, &mut user, method, &path, body.as_ref()).await;
    let acr = user.identity.acr.clone().unwrap_or_else(|| "(none)".into());
    let user_arrived_now = user.just_arrived() && after_step_up.is_none();
    session.user = Some(user);
    let mut steps = after_step_up.clone().unwrap_or_default();
    let flash = match outcome {
        Ok(ApiOutcome::Ok(answer)) => {
            if after_step_up.is_some() {
                steps.push(Step::new(format!(
                    "Acme Bank called {call} again with the new access token: accepted."
                )));
            }
            Flash::new(
                FlashKind::Success,
                success_title(&action),
                success_body(&action, &answer),
            )
            .with_steps(steps)
        }
        Ok(ApiOutcome::StepUp(challenge)) if after_step_up.is_none() => {
            return step_up(state, id, session, action, &call, &acr, challenge).await;
        }
        Ok(ApiOutcome::StepUp(challenge)) => {
            steps.push(Step::with_code(
                format!("{call} was refused again:"),
                challenge.raw,
            ));
            Flash::new(
                FlashKind::Error,
                "That still needs a stronger sign-in",
                format!(
                    "Ladder signed you in at {acr}, which is not enough for {}. Nothing was done.",
                    action.describe()
                ),
            )
            .with_steps(steps)
        }
        Ok(ApiOutcome::SignInAgain(why)) if user_arrived_now => {
            let page = misconfigured(state, &why);
            return respond(state, &id, session, page);
        }
        Ok(ApiOutcome::SignInAgain(why)) if after_step_up.is_none() => {
            tracing::info!(%why, "token refused; signing in again");
            let request = AuthRequest {
                acr_values: vec![LOA1.into()],
                action: Some(action),
                ..Default::default()
            };
            return start(state, id, session, request).await;
        }
        Ok(ApiOutcome::SignInAgain(why)) => Flash::new(
            FlashKind::Error,
            "The bank did not accept your sign-in",
            why,
        )
        .with_steps(steps),
        Ok(ApiOutcome::Refused(why)) => {
            Flash::new(FlashKind::Error, "Not done", why).with_steps(steps)
        }
        Err(e) => Flash::new(
            FlashKind::Error,
            "The bank's API did not answer",
            format!("{e:#}"),
        ),
    };
    session.flash = Some(flash);
    respond(state, &id, session, see_other("/"))
}

/// RFC 9470 on the client side: ask Ladder for exactly what the API's challenge names.
async fn step_up(
    state: &AppState,
    id: String,
    session: Session,
    action: PendingAction,
    call: &str,
    acr: &str,
    challenge: StepUp,
) -> HttpResponse {
    let mut asked = vec![format!("acr_values={}", challenge.acr_values.join(" "))];
    if let Some(max_age) = challenge.max_age {
        asked.push(format!("max_age={max_age}"));
    }
    let steps = vec![
        Step::new(format!(
            "Acme Bank called {call} with your access token (acr {acr})."
        )),
        Step::with_code(
            "The API refused it with 401 and",
            format!("WWW-Authenticate: {}", challenge.raw),
        ),
        Step::with_code("Acme Bank sent you to Ladder asking for", asked.join("&")),
    ];
    tracing::info!(challenge = %challenge.raw, "step-up required");
    let request = AuthRequest {
        acr_values: challenge.acr_values,
        max_age: challenge.max_age,
        action: Some(action),
        steps,
    };
    start(state, id, session, request).await
}

fn api_request(action: &PendingAction) -> (Method, String, Option<Value>) {
    match action {
        PendingAction::Transfer { payee_id, amount } => (
            Method::POST,
            "/transfer".into(),
            Some(json!({ "payee_id": payee_id, "amount": amount })),
        ),
        PendingAction::AddPayee { name, account } => (
            Method::POST,
            "/payees".into(),
            Some(json!({ "name": name, "account": account })),
        ),
        PendingAction::RemovePayee { id } => (Method::DELETE, format!("/payees/{id}"), None),
    }
}

fn success_title(action: &PendingAction) -> &'static str {
    match action {
        PendingAction::Transfer { .. } => "Money sent",
        PendingAction::AddPayee { .. } => "Payee added",
        PendingAction::RemovePayee { .. } => "Payee removed",
    }
}

fn success_body(action: &PendingAction, answer: &Value) -> String {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    match action {
        PendingAction::Transfer { amount, .. } => {
            format!(
                "${amount} is on its way to {}.",
                text(&answer["transfer"]["payee"])
            )
        }
        PendingAction::AddPayee { .. } => format!(
            "{} can now receive transfers.",
            text(&answer["payee"]["name"])
        ),
        PendingAction::RemovePayee { .. } => format!(
            "{} is no longer on your list.",
            text(&answer["removed"]["name"])
        ),
    }
}

/// The signed-in session behind a form post, with its CSRF token checked.
fn form_session(
    state: &AppState,
    req: &HttpRequest,
    csrf: &str,
) -> Result<(String, Session), Box<HttpResponse>> {
    let Some((id, session)) = state.sessions.load(req) else {
        return Err(Box::new(see_other("/")));
    };
    if session.user.is_none() {
        return Err(Box::new(see_other("/")));
    }
    if session.csrf != csrf {
        return Err(Box::new(error_page(
            StatusCode::FORBIDDEN,
            "This form has expired",
            "Reload the page and try again.",
            String::new(),
        )));
    }
    Ok((id, session))
}

fn flash_back(
    state: &AppState,
    id: &str,
    mut session: Session,
    title: &str,
    body: &str,
) -> HttpResponse {
    session.flash = Some(Flash::new(FlashKind::Error, title, body));
    respond(state, id, session, see_other("/"))
}

#[derive(Debug, Deserialize)]
struct TransferForm {
    csrf: String,
    payee_id: String,
    amount: String,
}

async fn transfer(state: Data, req: HttpRequest, form: web::Form<TransferForm>) -> HttpResponse {
    let (id, session) = match form_session(&state, &req, &form.csrf) {
        Ok(s) => s,
        Err(page) => return *page,
    };
    let Some(amount) = Money::parse(&form.amount).filter(|a| a.cents() > 0) else {
        return flash_back(
            &state,
            &id,
            session,
            "Check the amount",
            "Enter an amount such as 250 or 1,500.00.",
        );
    };
    let action = PendingAction::Transfer {
        payee_id: form.payee_id.clone(),
        amount,
    };
    perform(&state, id, session, action, None).await
}

#[derive(Debug, Deserialize)]
struct PayeeForm {
    csrf: String,
    name: String,
    account: String,
}

async fn add_payee(state: Data, req: HttpRequest, form: web::Form<PayeeForm>) -> HttpResponse {
    let (id, session) = match form_session(&state, &req, &form.csrf) {
        Ok(s) => s,
        Err(page) => return *page,
    };
    let action = PendingAction::AddPayee {
        name: form.name.trim().to_owned(),
        account: form.account.trim().to_owned(),
    };
    perform(&state, id, session, action, None).await
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn remove_payee(
    state: Data,
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> HttpResponse {
    let (id, session) = match form_session(&state, &req, &form.csrf) {
        Ok(s) => s,
        Err(page) => return *page,
    };
    perform(
        &state,
        id,
        session,
        PendingAction::RemovePayee {
            id: path.into_inner(),
        },
        None,
    )
    .await
}

/// Ends the local session, then Ladder's (RP-Initiated Logout), which sends the browser back here.
async fn logout(state: Data, req: HttpRequest, form: web::Form<CsrfForm>) -> HttpResponse {
    let (id, session) = match form_session(&state, &req, &form.csrf) {
        Ok(s) => s,
        Err(page) => return *page,
    };
    state.sessions.remove(&id);
    let Some(user) = session.user else {
        return see_other("/");
    };
    match state.rp.logout_url(&user.tokens.id_token).await {
        Ok(Some(url)) => see_other(&url),
        Ok(None) => see_other("/"),
        Err(e) => ladder_unreachable(&state, &e),
    }
}
