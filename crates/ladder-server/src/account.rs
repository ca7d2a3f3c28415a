//! The signed-in user's own page (`/account`): ways they sign in, where they are signed in, and
//! remembered devices. It signs users in through Ladder like any relying party (see
//! `console::auth`); changing the password or a way to sign in first asks for a fresh sign-in at
//! the strongest level the user has (ASVS: re-authenticate before changing credentials).

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use ladder_core::{Factor, totp};
use ladder_store::{devices, factors, passkeys, sessions, users};
use serde::Deserialize;
use serde_json::json;

use crate::audit::{Subject, record};
use crate::browser::{ClientInfo, browser_key};
use crate::console::auth::{self, ConsoleSession, Need};
use crate::console::pages::{date, time};
use crate::errors::{AppError, PageError};
use crate::interaction::pages::{RecoveryCodesPage, TotpEnrolPage, totp_context};
use crate::interaction::totp::{self as totp_step, recovery_hash};
use crate::state::AppState;

const FRESH_SECS: i64 = 300;

struct Me {
    session: ConsoleSession,
    user: users::User,
    csrf: String,
    enrolled: Vec<Factor>,
}

enum Gate {
    Open(Box<Me>),
    Redirect(HttpResponse),
}

/// The strongest everyday level this user can prove: what "confirm it's you" asks for.
fn fresh_need(enrolled: &[Factor]) -> Need<'static> {
    let second = enrolled.iter().any(|f| matches!(f, Factor::Totp | Factor::Passkey));
    Need { acr: if second { ladder_core::levels::LOA2 } else { ladder_core::levels::LOA1 }, max_age: Some(FRESH_SECS) }
}

async fn gate(state: &AppState, req: &HttpRequest, fresh: bool, return_to: &str) -> Result<Gate, PageError> {
    let current = auth::current(state, req).await?;
    let enrolled = match &current {
        Some((_, u)) => {
            let id = u.id.clone();
            state.lookup(move |conn| factors::enrolled(conn, &id)).await?
        }
        None => vec![],
    };
    let need = if fresh { fresh_need(&enrolled) } else { Need { acr: ladder_core::levels::LOA1, max_age: None } };
    match current {
        Some((session, user)) if auth::satisfies(state, &session, need) => {
            let (csrf, _) = browser_key(state, req);
            Ok(Gate::Open(Box::new(Me { session, user, csrf, enrolled })))
        }
        _ => Ok(Gate::Redirect(auth::start(state, need, return_to)?)),
    }
}

macro_rules! me {
    ($state:expr, $req:expr, $fresh:expr, $back:expr) => {
        match gate(&$state, &$req, $fresh, $back).await? {
            Gate::Open(me) => me,
            Gate::Redirect(resp) => return Ok(resp),
        }
    };
}

fn html(page: &impl Template) -> Result<HttpResponse, PageError> {
    let body = page.render().map_err(AppError::from)?;
    Ok(HttpResponse::Ok().content_type("text/html; charset=utf-8").insert_header((header::CACHE_CONTROL, "no-store")).body(body))
}

fn back(notice: &str) -> HttpResponse {
    let location = format!("/account?done={}", url::form_urlencoded::byte_serialize(notice.as_bytes()).collect::<String>());
    HttpResponse::SeeOther().insert_header((header::LOCATION, location)).finish()
}

fn check_form(state: &AppState, req: &HttpRequest, token: &str) -> Result<(), PageError> {
    crate::console::check_form(state, req, token)
}

/// Audits a change the user made to their own account, in its transaction.
fn event(conn: &mut ladder_store::Conn, me: &Me, info: &ClientInfo, now: i64, kind: &str, detail: serde_json::Value) -> Result<(), ladder_store::StoreError> {
    let subject = Subject { user_id: Some(&me.user.id), session_id: Some(&me.session.sid), client_id: None };
    record(conn, now, kind, "success", subject, info, detail)
}

fn copy(me: &Me) -> Me {
    Me { session: me.session.clone(), user: me.user.clone(), csrf: String::new(), enrolled: me.enrolled.clone() }
}

struct PasskeyRow {
    id: String,
    name: String,
    added: String,
    last_used: Option<String>,
}

/// When the authenticator app was set up and last accepted a code.
struct TotpRow {
    added: String,
    last_used: Option<String>,
}

struct SessionRow {
    agent: String,
    ip: String,
    started: String,
    current: bool,
}

struct DeviceRow {
    id: String,
    agent: String,
    seen: String,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    username: String,
    notice: Option<String>,
    csrf: String,
    has_totp: bool,
    totp: Option<TotpRow>,
    recovery_left: i64,
    passkeys: Vec<PasskeyRow>,
    passkeys_available: bool,
    sessions: Vec<SessionRow>,
    devices: Vec<DeviceRow>,
}

fn agent(ua: Option<&str>) -> String {
    let ua = ua.unwrap_or("Unknown browser");
    let name = ["Firefox", "Edg", "Chrome", "Safari", "curl"].into_iter().find(|b| ua.contains(b)).unwrap_or("Browser");
    if name == "Edg" { "Edge".into() } else { name.to_owned() }
}

pub async fn show(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, PageError> {
    let me = me!(state, req, false, "/account");
    let (user_id, sid, now, idle) = (me.user.id.clone(), me.session.sid.clone(), state.now(), state.settings.session.idle_timeout_secs);
    let (recovery_left, totp, keys, live, known) = state
        .read(move |conn| {
            let live: Vec<_> = sessions::list_live(conn, now, idle, 1000)?.into_iter().filter(|s| s.user_id == user_id).collect();
            Ok((
                factors::unused_recovery_codes(conn, &user_id)?,
                factors::find_totp(conn, &user_id)?.filter(|t| t.confirmed),
                passkeys::list_for_user(conn, &user_id)?,
                live,
                devices::list_for_user(conn, &user_id)?,
            ))
        })
        .await?;
    let params = crate::params::Params::parse(req.query_string().as_bytes());
    let page = AccountPage {
        username: me.user.username.clone(),
        notice: params.get("done").ok().flatten().map(str::to_owned),
        csrf: me.csrf.clone(),
        has_totp: me.enrolled.contains(&Factor::Totp),
        totp: totp.map(|t| TotpRow {
            added: date(t.created_at),
            last_used: t.last_used_at.map(time),
        }),
        recovery_left,
        passkeys: keys
            .into_iter()
            .map(|p| PasskeyRow {
                id: p.id,
                name: p.name,
                added: date(p.created_at),
                last_used: p.last_used_at.map(time),
            })
            .collect(),
        passkeys_available: state.webauthn.is_some(),
        sessions: live
            .into_iter()
            .map(|s| SessionRow {
                agent: agent(s.user_agent.as_deref()),
                ip: s.ip.clone().unwrap_or_default(),
                started: date(s.created_at),
                current: s.id == sid,
            })
            .collect(),
        devices: known.into_iter().map(|d| DeviceRow { id: d.id, agent: agent(d.user_agent.as_deref()), seen: date(d.last_seen_at) }).collect(),
    };
    html(&page)
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

#[derive(Template)]
#[template(path = "account_confirm.html")]
struct ConfirmPage {
    heading: String,
    message: String,
    action: String,
    button: String,
    csrf: String,
}

/// A change asked for without a fresh sign-in comes back through here after one.
fn confirm_first(action: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header((header::LOCATION, format!("/account/confirm?action={action}"))).finish()
}

pub async fn confirm(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, PageError> {
    let here = format!("/account/confirm?{}", req.query_string());
    let me = me!(state, req, true, &here);
    let params = crate::params::Params::parse(req.query_string().as_bytes());
    let action = params.get("action").ok().flatten().unwrap_or_default().to_owned();
    let (heading, message, button) = match action.as_str() {
        "totp/remove" => ("Remove your authenticator app?", "Its recovery codes go too. You can set it up again any time.", "Remove"),
        "recovery-codes" => ("Make new recovery codes?", "Your old codes stop working.", "Make new codes"),
        a if a.starts_with("passkeys/") && a.ends_with("/remove") => ("Remove this passkey?", "It will no longer sign you in.", "Remove"),
        _ => return Err(PageError::bad_request("Unknown action", "Go back to your account.")),
    };
    html(&ConfirmPage {
        heading: heading.into(),
        message: message.into(),
        action: format!("/account/{action}"),
        button: button.into(),
        csrf: me.csrf.clone(),
    })
}

pub async fn remove_totp(state: web::Data<AppState>, req: HttpRequest, form: web::Form<CsrfForm>) -> Result<HttpResponse, PageError> {
    let me = me!(state, req, false, "/account");
    check_form(&state, &req, &form.csrf)?;
    if !auth::satisfies(&state, &me.session, fresh_need(&me.enrolled)) {
        return Ok(confirm_first("totp/remove"));
    }
    let (info, now, who) = (ClientInfo::from_request(&req), state.now(), copy(&me));
    state
        .write(move |conn| {
            factors::delete_totp(conn, &who.user.id)?;
            event(conn, &who, &info, now, "factor_removed", json!({ "factor": "totp" }))
        })
        .await?;
    Ok(back("Your authenticator app was removed."))
}

pub async fn remove_passkey(state: web::Data<AppState>, req: HttpRequest, path: web::Path<String>, form: web::Form<CsrfForm>) -> Result<HttpResponse, PageError> {
    let id = path.into_inner();
    let me = me!(state, req, false, "/account");
    check_form(&state, &req, &form.csrf)?;
    if !auth::satisfies(&state, &me.session, fresh_need(&me.enrolled)) {
        return Ok(confirm_first(&format!("passkeys/{id}/remove")));
    }
    let (info, now, who) = (ClientInfo::from_request(&req), state.now(), copy(&me));
    let removed = state
        .write(move |conn| {
            let removed = passkeys::delete(conn, &who.user.id, &id)?;
            if removed {
                event(conn, &who, &info, now, "factor_removed", json!({ "factor": "passkey", "passkey": id }))?;
            }
            Ok(removed)
        })
        .await?;
    Ok(back(if removed { "The passkey was removed." } else { "That passkey was already gone." }))
}

pub async fn new_recovery_codes(state: web::Data<AppState>, req: HttpRequest, form: web::Form<CsrfForm>) -> Result<HttpResponse, PageError> {
    let me = me!(state, req, false, "/account");
    check_form(&state, &req, &form.csrf)?;
    if !auth::satisfies(&state, &me.session, fresh_need(&me.enrolled)) {
        return Ok(confirm_first("recovery-codes"));
    }
    if !me.enrolled.contains(&Factor::Totp) {
        return Err(PageError::bad_request("No authenticator app", "Recovery codes come with an authenticator app; set one up first."));
    }
    let codes = totp_step::new_recovery_codes()?;
    let (info, now, who, c) = (ClientInfo::from_request(&req), state.now(), copy(&me), codes.clone());
    state
        .write(move |conn| {
            let hashes: Vec<String> = c.iter().map(|code| recovery_hash(&who.user.id, code)).collect();
            factors::replace_recovery_codes(conn, &who.user.id, &hashes, now)?;
            event(conn, &who, &info, now, "enrolment", json!({ "factor": "recovery_code", "count": hashes.len() }))
        })
        .await?;
    html(&RecoveryCodesPage { codes, continue_url: "/account".into(), client_name: "your account".into() })
}

/// `GET /account/totp`: an authenticator-app enrolment (after a fresh sign-in).
pub async fn totp_form(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, PageError> {
    let me = me!(state, req, true, "/account/totp");
    if me.enrolled.contains(&Factor::Totp) {
        return Ok(back("Your authenticator app is already set up."));
    }
    let mut secret = vec![0u8; totp::SECRET_BYTES];
    openssl::rand::rand_bytes(&mut secret).map_err(|e| AppError::Keys(e.to_string()))?;
    let sealed = state.server_key.encrypt(&totp_context(&me.user.id), &secret).map_err(|e| AppError::Keys(e.to_string()))?;
    let (user_id, now) = (me.user.id.clone(), state.now());
    state.write(move |conn| factors::upsert_pending_totp(conn, &user_id, &sealed, now)).await?;
    totp_page(&state, &me, &secret, None, StatusCode::OK)
}

fn totp_page(state: &AppState, me: &Me, secret: &[u8], error: Option<String>, status: StatusCode) -> Result<HttpResponse, PageError> {
    let e = totp::enrolment(secret, &state.settings.totp.issuer_label, &me.user.username).map_err(|e| AppError::Keys(e.to_string()))?;
    let page = TotpEnrolPage {
        action: "/account/totp".into(),
        csrf: me.csrf.clone(),
        client_name: "your account".into(),
        reason: "Add a second step to your sign-in with an authenticator app.".into(),
        error,
        qr_png_base64: e.qr_png_base64,
        otpauth_uri: e.uri,
        secret_base32: e.secret_base32,
    };
    let body = page.render().map_err(AppError::from)?;
    Ok(HttpResponse::build(status).content_type("text/html; charset=utf-8").insert_header((header::CACHE_CONTROL, "no-store")).body(body))
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
}

pub async fn totp_confirm(state: web::Data<AppState>, req: HttpRequest, form: web::Form<CodeForm>) -> Result<HttpResponse, PageError> {
    let me = me!(state, req, true, "/account/totp");
    let form = form.into_inner();
    check_form(&state, &req, &form.csrf)?;
    let (user_id, now) = (me.user.id.clone(), state.now());
    let pending = state.lookup(move |conn| factors::find_totp(conn, &user_id)).await?.filter(|t| !t.confirmed);
    let Some(pending) = pending else { return Ok(back("Start the set-up again.")) };
    let secret = state.server_key.decrypt(&totp_context(&me.user.id), &pending.secret_enc).map_err(|e| AppError::Keys(e.to_string()))?;
    let Some(step) = totp::check(&secret, &form.code, now) else {
        return totp_page(&state, &me, &secret, Some("That code isn't right. Enter the code your app shows now.".into()), StatusCode::OK);
    };
    let codes = totp_step::new_recovery_codes()?;
    let (info, who, c) = (ClientInfo::from_request(&req), copy(&me), codes.clone());
    let confirmed = state
        .write(move |conn| {
            if !factors::accept_totp_step(conn, &who.user.id, step, true, now)? {
                return Ok(false);
            }
            let hashes: Vec<String> = c.iter().map(|code| recovery_hash(&who.user.id, code)).collect();
            factors::replace_recovery_codes(conn, &who.user.id, &hashes, now)?;
            event(conn, &who, &info, now, "enrolment", json!({ "factor": "totp", "via": "account" }))?;
            Ok(true)
        })
        .await?;
    if !confirmed {
        return Ok(back("Start the set-up again."));
    }
    html(&RecoveryCodesPage { codes, continue_url: "/account".into(), client_name: "your account".into() })
}

#[derive(Template)]
#[template(path = "account_password.html")]
struct PasswordPage {
    csrf: String,
    error: Option<String>,
}

pub async fn password_form(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, PageError> {
    let me = me!(state, req, true, "/account/password");
    html(&PasswordPage { csrf: me.csrf.clone(), error: None })
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    confirm: String,
}

pub async fn change_password(state: web::Data<AppState>, req: HttpRequest, form: web::Form<PasswordForm>) -> Result<HttpResponse, PageError> {
    let me = me!(state, req, true, "/account/password");
    let form = form.into_inner();
    check_form(&state, &req, &form.csrf)?;
    let error = if form.new_password.chars().count() < 8 {
        Some("Use at least 8 characters.")
    } else if form.new_password != form.confirm {
        Some("The two passwords are different.")
    } else {
        None
    };
    if let Some(e) = error {
        return html(&PasswordPage { csrf: me.csrf.clone(), error: Some(e.into()) });
    }
    let _permit = state.hashing.acquire().await.map_err(|e| AppError::Blocking(e.to_string()))?;
    let password = form.new_password;
    let hash = web::block(move || ladder_core::password::hash_password(&password))
        .await
        .map_err(|e| AppError::Blocking(e.to_string()))?
        .map_err(|e| AppError::Keys(e.to_string()))?;
    let (info, now, who) = (ClientInfo::from_request(&req), state.now(), copy(&me));
    state
        .write(move |conn| {
            users::set_password(conn, &who.user.id, &hash, now)?;
            // Anyone else holding a session learned nothing from the old password any more.
            let ended = sessions::end_user_sessions(conn, &who.user.id, Some(&who.session.sid), now)?;
            event(conn, &who, &info, now, "password_changed", json!({ "other_sessions_ended": ended }))
        })
        .await?;
    Ok(back("Your password was changed; your other sessions were signed out."))
}

pub async fn end_other_sessions(state: web::Data<AppState>, req: HttpRequest, form: web::Form<CsrfForm>) -> Result<HttpResponse, PageError> {
    let me = me!(state, req, false, "/account");
    check_form(&state, &req, &form.csrf)?;
    let (info, now, who) = (ClientInfo::from_request(&req), state.now(), copy(&me));
    state
        .write(move |conn| {
            let ended = sessions::end_user_sessions(conn, &who.user.id, Some(&who.session.sid), now)?;
            event(conn, &who, &info, now, "logout", json!({ "other_sessions_ended": ended }))
        })
        .await?;
    Ok(back("You were signed out everywhere else."))
}

pub async fn forget_device(state: web::Data<AppState>, req: HttpRequest, path: web::Path<String>, form: web::Form<CsrfForm>) -> Result<HttpResponse, PageError> {
    let id = path.into_inner();
    let me = me!(state, req, false, "/account");
    check_form(&state, &req, &form.csrf)?;
    let (info, now, who) = (ClientInfo::from_request(&req), state.now(), copy(&me));
    state
        .write(move |conn| {
            if devices::forget(conn, &who.user.id, &id, now)? {
                event(conn, &who, &info, now, "device_forgotten", json!({ "device": id }))?;
            }
            Ok(())
        })
        .await?;
    Ok(back("That device will be treated as new next time."))
}

/// `GET /account/passkey`: the passkey creation page (after a fresh sign-in); its script talks to
/// the two JSON endpoints below.
pub async fn passkey_form(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, PageError> {
    let me = me!(state, req, true, "/account/passkey");
    if state.webauthn.is_none() {
        return Err(PageError::bad_request("Passkeys are not available here", "This server is not set up for passkeys."));
    }
    html(&crate::interaction::pages::PasskeyEnrolPage {
        csrf: me.csrf.clone(),
        client_name: "your account".into(),
        reason: "Sign in with a fingerprint, face or screen lock instead of typing codes.".into(),
        passkey_base: "/account".into(),
    })
}

/// The signed-in, freshly re-authenticated user for a JSON call from the passkey script.
async fn me_for_json(state: &AppState, req: &HttpRequest) -> Result<Me, crate::errors::OAuthError> {
    let refuse = |m: &str| {
        let mut e = crate::errors::OAuthError::invalid_request(m);
        e.status = StatusCode::FORBIDDEN;
        e
    };
    let token = req.headers().get(crate::interaction::passkey::CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
    check_form(state, req, token).map_err(|_| refuse("This page has expired. Reload it."))?;
    match gate(state, req, true, "/account/passkey").await.map_err(|e| refuse(&e.message))? {
        Gate::Open(me) => Ok(*me),
        Gate::Redirect(_) => Err(refuse("Confirm it's you first: reload this page.")),
    }
}

pub async fn passkey_options(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, crate::errors::OAuthError> {
    let me = me_for_json(&state, &req).await?;
    crate::interaction::passkey::account_register_options(&state, &me.user).await
}

pub async fn passkey_register(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<crate::interaction::passkey::Finish>,
) -> Result<HttpResponse, crate::errors::OAuthError> {
    let me = me_for_json(&state, &req).await?;
    let info = ClientInfo::from_request(&req);
    crate::interaction::passkey::account_register(&state, &me.user, &me.session.sid, &info, body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(json!({ "location": "/account?done=Your%20passkey%20was%20added." })))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/account", web::get().to(show))
        .route("/account/confirm", web::get().to(confirm))
        .route("/account/totp", web::get().to(totp_form))
        .route("/account/totp", web::post().to(totp_confirm))
        .route("/account/totp/remove", web::post().to(remove_totp))
        .route("/account/recovery-codes", web::post().to(new_recovery_codes))
        .route("/account/passkeys/{id}/remove", web::post().to(remove_passkey))
        .route("/account/passkey", web::get().to(passkey_form))
        .route("/account/passkey/register/options", web::post().to(passkey_options))
        .route("/account/passkey/register", web::post().to(passkey_register))
        .route("/account/password", web::get().to(password_form))
        .route("/account/password", web::post().to(change_password))
        .route("/account/sessions/others/end", web::post().to(end_other_sessions))
        .route("/account/devices/{id}/forget", web::post().to(forget_device));
}
