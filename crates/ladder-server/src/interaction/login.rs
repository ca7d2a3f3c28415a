//! The password sign-in page. One generic failure message whether the username or the password was
//! wrong (no user enumeration); an unknown user costs the same argon2 work as a known one; failures
//! are throttled per account and per IP; success answers 303 (never re-POSTable).

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use ladder_core::{Factor, ProvenFactor, password};
use ladder_store::clients;
use ladder_store::interactions::{self, Interaction};
use ladder_store::throttles::{self, ThrottlePolicy};
use ladder_store::users;
use serde::Deserialize;
use serde_json::json;

use crate::audit::{self, Subject};
use crate::browser::{ClientInfo, browser_hash, check_csrf, session_cookie};
use crate::errors::{AppError, PageError};
use crate::grant::{self, AuthRequest};
use crate::state::AppState;

const GENERIC_FAILURE: &str = "That username and password don't match. Check them and try again.";

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    action: String,
    csrf: String,
    client_name: String,
    username: String,
    error: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

impl std::fmt::Debug for LoginForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginForm").field("username", &self.username).finish_non_exhaustive()
    }
}

fn expired() -> PageError {
    PageError::bad_request(
        "This sign-in has expired",
        "Too much time passed, or it was already completed. Go back to the application and start again.",
    )
}

/// The pending interaction, only in the browser that started it.
async fn load(state: &AppState, req: &HttpRequest, id: String) -> Result<(Interaction, AuthRequest, String), PageError> {
    let now = state.now();
    let interaction = state
        .read(move |conn| interactions::find_interaction(conn, &id, now))
        .await?
        .ok_or_else(expired)?;
    let browser = req.cookie(state.cookies.browser).map(|c| c.value().to_owned()).unwrap_or_default();
    if browser.is_empty() || browser_hash(&browser) != interaction.browser_hash {
        return Err(PageError::forbidden(
            "This sign-in belongs to another browser",
            "Start again from the application in this browser.",
        ));
    }
    let request: AuthRequest = serde_json::from_str(&interaction.request)
        .map_err(|e| PageError::from(AppError::Serialize(e)))?;
    let client_id = interaction.client_id.clone();
    let client_name = state
        .read(move |conn| clients::find_client(conn, &client_id))
        .await?
        .map(|c| c.name)
        .ok_or_else(expired)?;
    Ok((interaction, request, client_name))
}

fn render(page: LoginPage, status: StatusCode) -> Result<HttpResponse, PageError> {
    let html = page.render().map_err(AppError::from)?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(html))
}

pub async fn show(state: web::Data<AppState>, req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse, PageError> {
    let (interaction, request, client_name) = load(&state, &req, path.into_inner()).await?;
    let csrf = req.cookie(state.cookies.browser).map(|c| c.value().to_owned()).unwrap_or_default();
    render(
        LoginPage {
            action: format!("/interaction/{}", interaction.id),
            csrf,
            client_name,
            username: request.login_hint.unwrap_or_default(),
            error: None,
        },
        StatusCode::OK,
    )
}

#[tracing::instrument(name = "login", skip_all)]
pub async fn submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, PageError> {
    let form = form.into_inner();
    let (interaction, request, client_name) = load(&state, &req, path.into_inner()).await?;
    if !check_csrf(&state, &req, &form.csrf, &interaction.browser_hash) {
        return Err(PageError::forbidden(
            "This form has expired",
            "The page was open too long or came from elsewhere. Go back to the application and start again.",
        ));
    }
    let client = ClientInfo::from_request(&req);
    let page = |error: String| LoginPage {
        action: format!("/interaction/{}", interaction.id),
        csrf: form.csrf.clone(),
        client_name: client_name.clone(),
        username: form.username.clone(),
        error: Some(error),
    };

    let username = form.username.trim().to_owned();
    let (user_key, ip_key) = (
        format!("login:user:{}", username.to_lowercase()),
        format!("login:ip:{}", client.ip.as_deref().unwrap_or("unknown")),
    );
    let now = state.now();
    let (uk, ik) = (user_key.clone(), ip_key.clone());
    let locked = state
        .read(move |conn| Ok(throttles::locked_for(conn, &uk, now)?.max(throttles::locked_for(conn, &ik, now)?)))
        .await?;
    if let Some(wait) = locked {
        return render(
            page(format!("Too many failed attempts. Wait {} and try again.", human_wait(wait))),
            StatusCode::TOO_MANY_REQUESTS,
        );
    }

    let lookup = username.clone();
    let found = state
        .read(move |conn| {
            let Some(user) = users::find_user_by_username(conn, &lookup)? else { return Ok(None) };
            let hash = users::find_password_hash(conn, &user.id)?;
            Ok(Some((user, hash)))
        })
        .await?;
    // Same argon2 cost whether or not the account exists or can sign in.
    let phc = found
        .as_ref()
        .and_then(|(_, h)| h.clone())
        .unwrap_or_else(|| password::dummy_hash().to_owned());
    let matched = state.verify_password(form.password.clone(), phc).await?;
    let user = found.map(|(u, _)| u).filter(|u| matched && !u.disabled);

    let Some(user) = user else {
        let policy_user = throttle_policy(&state, state.settings.login.max_failures_per_user);
        let policy_ip = throttle_policy(&state, state.settings.login.max_failures_per_ip);
        let (client_id, info) = (interaction.client_id.clone(), client.clone());
        state
            .write(move |conn| {
                throttles::record_failure(conn, &user_key, &policy_user, now)?;
                throttles::record_failure(conn, &ip_key, &policy_ip, now)?;
                audit::record(
                    conn,
                    now,
                    "login",
                    "failure",
                    Subject { client_id: Some(&client_id), ..Default::default() },
                    &info,
                    json!({ "factor": "password" }),
                )
            })
            .await?;
        return render(page(GENERIC_FAILURE.into()), StatusCode::OK);
    };

    let previous = crate::session::current(&state, &req).await?.map(|s| s.session.id);
    let proof = ProvenFactor { factor: Factor::Password, proven_at: now, user_verified: false };
    let (issuer, code_ttl, absolute) =
        (state.issuer.clone(), state.settings.tokens.code_ttl_secs, state.settings.session.absolute_timeout_secs);
    let interaction_id = interaction.id.clone();
    let result = state
        .write(move |conn| {
            // The interaction completes once: a second submit finds it gone.
            if !interactions::delete_interaction(conn, &interaction_id)? {
                return Ok(None);
            }
            throttles::clear(conn, &user_key)?;
            let (session_id, token) =
                crate::session::start(conn, &user.id, previous.as_deref(), &proof, &client, absolute)?;
            audit::record(
                conn,
                now,
                "login",
                "success",
                Subject { user_id: Some(&user.id), session_id: Some(&session_id), client_id: Some(&request.client_id) },
                &client,
                json!({ "factor": "password", "acr": grant::achieved_acr(&[proof]) }),
            )?;
            let location =
                grant::issue_code(conn, &request, &user.id, &session_id, &[proof], &issuer, code_ttl, now)?;
            Ok(Some((location, token)))
        })
        .await?;
    let Some((location, token)) = result else {
        return Err(expired());
    };
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .cookie(session_cookie(&state, token))
        .finish())
}

fn throttle_policy(state: &AppState, max_failures: i32) -> ThrottlePolicy {
    let l = &state.settings.login;
    ThrottlePolicy { max_failures, window: l.failure_window_secs, base_lock: l.lock_secs, max_lock: l.max_lock_secs }
}

fn human_wait(secs: i64) -> String {
    match secs {
        s if s <= 60 => format!("{s} seconds"),
        s => format!("{} minutes", (s + 59) / 60),
    }
}
