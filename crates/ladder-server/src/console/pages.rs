//! The console's pages and actions.

use std::collections::BTreeMap;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use ladder_store::audit::{self, AuditEvent, Filter};
use ladder_store::clients;
use ladder_store::{StoreError, factors, passkeys, sessions, users};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Admin, Gate, check_form, destructive, everyday, gate, render};
use crate::audit::{Subject, record};
use crate::browser::ClientInfo;
use crate::errors::{AppError, PageError};
use crate::manage::{self, NewUser};
use crate::params::Params;
use crate::state::AppState;

macro_rules! open {
    ($state:expr, $req:expr, $need:expr, $back:expr) => {
        match gate(&$state, &$req, $need, $back).await? {
            Gate::Open(admin) => admin,
            Gate::Redirect(resp) => return Ok(resp),
        }
    };
}

fn query(req: &HttpRequest) -> Params {
    Params::parse(req.query_string().as_bytes())
}

fn q(params: &Params, name: &str) -> String {
    params.get(name).ok().flatten().unwrap_or_default().to_owned()
}

pub(super) fn back_to(location: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header((header::LOCATION, location.to_owned())).finish()
}

/// `YYYY-MM-DD HH:MM` in UTC.
pub(crate) fn time(at: i64) -> String {
    let secs = at.rem_euclid(86_400);
    format!("{} {:02}:{:02}", date(at), secs / 3600, secs % 3600 / 60)
}

/// `YYYY-MM-DD` in UTC, without a date library: days since the epoch to a civil date (Howard
/// Hinnant's algorithm).
pub(crate) fn date(at: i64) -> String {
    let z = at.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    format!("{:04}-{m:02}-{d:02}", yoe + era * 400 + i64::from(m <= 2))
}

/// Writes an admin action to the audit trail, in the transaction of the change.
pub(super) fn admin_event(conn: &mut ladder_store::Conn, admin: &Admin, info: &ClientInfo, now: i64, action: &str, detail: Value) -> Result<(), StoreError> {
    let mut detail = detail;
    detail["action"] = json!(action);
    detail["by"] = json!(admin.user.username);
    let subject = Subject { user_id: Some(&admin.user.id), session_id: Some(&admin.session.sid), client_id: None };
    record(conn, now, "admin", "success", subject, info, detail)
}

// ---- Dashboard ----

struct Tile {
    label: &'static str,
    value: String,
    note: String,
}

struct Rate {
    name: String,
    ok: u64,
    failed: u64,
    rate: String,
}

#[derive(Template)]
#[template(path = "console/dashboard.html")]
struct DashboardPage {
    nav: &'static str,
    admin: String,
    notice: Option<String>,
    tiles: Vec<Tile>,
    chart_svg: String,
    rates: Vec<Rate>,
}

fn detail_str(e: &AuditEvent, key: &str) -> Option<String> {
    serde_json::from_str::<Value>(&e.detail).ok()?.get(key)?.as_str().map(str::to_owned)
}

/// A bar chart of the last seven days, drawn on the server (no script needed).
fn chart(days: &[(String, u64, u64)]) -> String {
    let max = days.iter().map(|(_, a, b)| a.max(b)).copied().max().unwrap_or(0).max(1) as f64;
    let (w, h, pad) = (700.0, 180.0, 24.0);
    let slot = (w - pad) / days.len().max(1) as f64;
    let mut svg = format!(r#"<svg viewBox="0 0 {w} {h}" role="img" aria-label="Sign-ins and step-ups per day">"#);
    for (i, (label, logins, stepups)) in days.iter().enumerate() {
        let x = pad + i as f64 * slot;
        let bar = (slot - 16.0) / 2.0;
        for (j, (v, class)) in [(*logins, "bar-login"), (*stepups, "bar-stepup")].iter().enumerate() {
            let bh = (*v as f64 / max) * (h - 2.0 * pad);
            svg.push_str(&format!(
                r#"<rect class="{class}" x="{:.1}" y="{:.1}" width="{bar:.1}" height="{bh:.1}"><title>{v}</title></rect>"#,
                x + 4.0 + j as f64 * bar,
                h - pad - bh
            ));
        }
        svg.push_str(&format!(r#"<text x="{:.1}" y="{:.1}">{label}</text>"#, x + 4.0, h - 6.0));
    }
    svg.push_str("</svg>");
    svg
}

pub async fn dashboard(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, PageError> {
    let admin = open!(state, req, everyday(&state), "/admin");
    let now = state.now();
    let since = now - 7 * 86_400;
    let events = state
        .read(move |conn| audit::search(conn, &Filter { since: Some(since), ..Filter::default() }, 0, 50_000))
        .await?;
    let day = |at: i64| (now - at) / 86_400;
    let mut per_day = [(0u64, 0u64); 7];
    let (mut logins, mut stepups, mut failures, mut unmet) = (0, 0, 0, 0);
    let mut rates: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for e in &events {
        let recent = now - e.at <= 86_400;
        let d = day(e.at).clamp(0, 6) as usize;
        match (e.kind.as_str(), e.outcome.as_str()) {
            ("login", "success") => {
                per_day[d].0 += 1;
                logins += u64::from(recent);
            }
            ("stepup", "success") => {
                per_day[d].1 += 1;
                stepups += u64::from(recent);
            }
            ("stepup", "unmet") => unmet += u64::from(recent),
            (_, "failure") => failures += u64::from(recent),
            _ => {}
        }
        let ok = e.outcome == "success";
        if matches!(e.kind.as_str(), "login" | "stepup") && matches!(e.outcome.as_str(), "success" | "unmet") {
            let level = detail_str(e, "achieved_acr").or_else(|| detail_str(e, "target")).unwrap_or_default();
            let entry = rates.entry(format!("level {level}")).or_default();
            if ok { entry.0 += 1 } else { entry.1 += 1 }
        }
        if (e.kind == "factor" || e.kind == "stepup" || e.kind == "login") && matches!(e.outcome.as_str(), "success" | "failure")
            && let Some(f) = detail_str(e, "factor")
        {
            let entry = rates.entry(format!("factor {f}")).or_default();
            if ok { entry.0 += 1 } else { entry.1 += 1 }
        }
    }
    let days: Vec<(String, u64, u64)> = (0..7)
        .rev()
        .map(|d| (time(now - d as i64 * 86_400)[5..10].to_owned(), per_day[d].0, per_day[d].1))
        .collect();
    let page = DashboardPage {
        nav: "dashboard",
        admin: admin.user.username.clone(),
        notice: None,
        tiles: vec![
            Tile { label: "Sign-ins", value: logins.to_string(), note: "last 24 hours".into() },
            Tile { label: "Step-ups", value: stepups.to_string(), note: "last 24 hours".into() },
            Tile { label: "Failed attempts", value: failures.to_string(), note: "last 24 hours".into() },
            Tile { label: "Unmet requirements", value: unmet.to_string(), note: "last 24 hours".into() },
        ],
        chart_svg: chart(&days),
        rates: rates
            .into_iter()
            .map(|(name, (ok, failed))| {
                let total = ok + failed;
                let rate = if total == 0 { "—".into() } else { format!("{:.0}%", ok as f64 * 100.0 / total as f64) };
                Rate { name, ok, failed, rate }
            })
            .collect(),
    };
    render(&admin, &page)
}

// ---- Clients ----

struct ClientRow {
    id: String,
    name: String,
    kind: &'static str,
    min_acr: String,
    redirect_uris: String,
    disabled: bool,
}

#[derive(Template)]
#[template(path = "console/clients.html")]
struct ClientsPage {
    nav: &'static str,
    admin: String,
    notice: Option<String>,
    csrf: String,
    query: String,
    clients: Vec<ClientRow>,
}

pub async fn clients(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, PageError> {
    let admin = open!(state, req, everyday(&state), "/admin/clients");
    let params = query(&req);
    let search = q(&params, "q").to_lowercase();
    let all = state.read(clients::list_clients).await?;
    let rows = all
        .into_iter()
        .filter(|c| c.id != super::auth::CONSOLE_CLIENT_ID)
        .filter(|c| search.is_empty() || c.name.to_lowercase().contains(&search) || c.id.to_lowercase().contains(&search))
        .map(|c| ClientRow {
            kind: if c.is_public { "public" } else { "confidential" },
            min_acr: c.min_acr.clone().unwrap_or_else(|| "—".into()),
            redirect_uris: c.redirect_uris.join(" "),
            disabled: c.disabled,
            id: c.id,
            name: c.name,
        })
        .collect();
    let notice = (!q(&params, "done").is_empty()).then(|| "Done.".to_owned());
    let page = ClientsPage { nav: "clients", admin: admin.user.username.clone(), notice, csrf: admin.csrf.clone(), query: q(&params, "q"), clients: rows };
    render(&admin, &page)
}

#[derive(Template)]
#[template(path = "console/client_created.html")]
pub(super) struct ClientCreatedPage {
    nav: &'static str,
    admin: String,
    notice: Option<String>,
    name: String,
    client_id: String,
    secret: Option<String>,
}

impl ClientCreatedPage {
    pub(super) fn new(
        admin: &Admin,
        client: &clients::Client,
        secret: Option<String>,
        notice: Option<String>,
    ) -> Self {
        ClientCreatedPage {
            nav: "clients",
            admin: admin.user.username.clone(),
            notice,
            name: client.name.clone(),
            client_id: client.id.clone(),
            secret,
        }
    }
}

/// A cheap copy of what the audit needs from the administrator (closures run on another thread).
pub(super) fn admin_ref(admin: &Admin) -> Admin {
    Admin { session: admin.session.clone(), user: admin.user.clone(), csrf: String::new(), new_cookie: None }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

#[derive(Template)]
#[template(path = "console/confirm.html")]
struct ConfirmPage {
    nav: &'static str,
    admin: String,
    notice: Option<String>,
    csrf: String,
    heading: String,
    message: String,
    action: String,
    button: String,
    back: String,
}

/// A destructive action asked without a fresh enough sign-in goes through this page, which
/// itself demands one.
fn needs_confirmation(action: &str, id: &str) -> HttpResponse {
    back_to(&format!("/admin/confirm?action={action}&id={}", url_escape(id)))
}

fn url_escape(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub async fn confirm(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, PageError> {
    let back = format!("/admin/confirm?{}", req.query_string());
    let admin = open!(state, req, destructive(&state), &back);
    let params = query(&req);
    let (action, id) = (q(&params, "action"), q(&params, "id"));
    let (heading, message, path, button, back) = match action.as_str() {
        "delete-client" => (
            "Delete this client?".to_owned(),
            format!("Client {id} will stop working at once: its users can no longer sign in to it and its tokens stop being accepted."),
            format!("/admin/clients/{}/delete", url_escape(&id)),
            "Delete client",
            "/admin/clients",
        ),
        "rotate-keys" => (
            "Rotate the signing keys?".to_owned(),
            "New tokens will be signed with new keys at once. Tokens already issued keep verifying with the old keys, which stay published.".into(),
            "/admin/keys/rotate".to_owned(),
            "Rotate keys",
            "/admin/policy",
        ),
        "reset-factors" => (
            "Reset this user's factors?".to_owned(),
            "Their authenticator app, recovery codes and passkeys are removed and their sessions end. Their password stays.".into(),
            format!("/admin/users/{}/reset-factors", url_escape(&id)),
            "Reset factors",
            "/admin/users",
        ),
        _ => return Err(PageError::bad_request("Unknown action", "Go back to the console and try again.")),
    };
    let page = ConfirmPage {
        nav: match action.as_str() {
            "delete-client" => "clients",
            "rotate-keys" => "policy",
            _ => "users",
        },
        admin: admin.user.username.clone(),
        notice: Some("You confirmed it's you; now confirm the action.".into()),
        csrf: admin.csrf.clone(),
        heading,
        message,
        action: path,
        button: button.into(),
        back: back.into(),
    };
    render(&admin, &page)
}

pub async fn client_delete(state: web::Data<AppState>, req: HttpRequest, path: web::Path<String>, form: web::Form<CsrfForm>) -> Result<HttpResponse, PageError> {
    let id = path.into_inner();
    let admin = open!(state, req, everyday(&state), "/admin/clients");
    check_form(&state, &req, &form.csrf)?;
    if !super::auth::satisfies(&state, &admin.session, destructive(&state)) {
        return Ok(needs_confirmation("delete-client", &id));
    }
    if id == super::auth::CONSOLE_CLIENT_ID {
        return Err(PageError::bad_request("That client cannot be deleted", "The console needs it to sign you in."));
    }
    let (info, now, who) = (ClientInfo::from_request(&req), state.now(), admin_ref(&admin));
    let deleted = id.clone();
    let removed = state
        .write(move |conn| {
            let removed = clients::delete_client(conn, &id)?;
            if removed {
                admin_event(conn, &who, &info, now, "client_deleted", json!({ "client": id }))?;
            }
            Ok(removed)
        })
        .await?;
    // After the commit, so no request in between can cache the old row again.
    state.clients.forget(&deleted);
    if !removed {
        return Err(PageError::bad_request("No such client", "It may have been deleted already."));
    }
    Ok(back_to("/admin/clients?done=1"))
}

/// Disable, enable, or give a confidential client a new secret (shown once).
pub async fn client_action(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    let (id, action) = path.into_inner();
    let admin = open!(state, req, everyday(&state), "/admin/clients");
    check_form(&state, &req, &form.csrf)?;
    if id == super::auth::CONSOLE_CLIENT_ID {
        return Err(PageError::bad_request("That client is Ladder's own", "The console needs it to sign you in."));
    }
    let secret = (action == "rotate-secret").then(crate::crypto::new_client_secret);
    let (info, now, who, act, s) = (ClientInfo::from_request(&req), state.now(), admin_ref(&admin), action.clone(), secret.clone());
    let updated = state
        .write(move |conn| {
            let Some(mut client) = clients::find_client(conn, &id)? else { return Ok(None) };
            match act.as_str() {
                "disable" => client.disabled = true,
                "enable" => client.disabled = false,
                "rotate-secret" if !client.is_public && client.secret_hash.is_some() => {
                    client.secret_hash = s.as_deref().map(crate::crypto::sha256_hex);
                }
                _ => return Ok(None),
            }
            client.updated_at = now;
            clients::update_client(conn, &client)?;
            admin_event(conn, &who, &info, now, &format!("client_{}", act.replace('-', "_")), json!({ "client": client.id }))?;
            Ok(Some(client))
        })
        .await?;
    let Some(client) = updated else {
        return Err(PageError::bad_request("Nothing was changed", "Unknown client or action."));
    };
    state.clients.forget(&client.id);
    match secret {
        Some(secret) => {
            let page = ClientCreatedPage::new(
                &admin,
                &client,
                Some(secret),
                Some("The old secret no longer works.".into()),
            );
            render(&admin, &page)
        }
        None => Ok(back_to("/admin/clients?done=1")),
    }
}

/// Rotates the signing keys (destructive: asks for a fresh sign-in).
pub async fn keys_rotate(state: web::Data<AppState>, req: HttpRequest, form: web::Form<CsrfForm>) -> Result<HttpResponse, PageError> {
    let admin = open!(state, req, everyday(&state), "/admin/policy");
    check_form(&state, &req, &form.csrf)?;
    if !super::auth::satisfies(&state, &admin.session, destructive(&state)) {
        return Ok(needs_confirmation("rotate-keys", "all"));
    }
    let (db, key, now) = (state.db.clone(), state.server_key.clone(), state.now());
    let rotated = web::block(move || manage::rotate_keys(&db, &key, None, now))
        .await
        .map_err(|e| AppError::Blocking(e.to_string()))?
        .map_err(|e| AppError::Keys(e.to_string()))?;
    state.keys.reload().await;
    let (info, who) = (ClientInfo::from_request(&req), admin_ref(&admin));
    let kids: Vec<String> = rotated.iter().map(|k| k.kid.clone()).collect();
    state.write(move |conn| admin_event(conn, &who, &info, now, "keys_rotated_from_console", json!({ "new": kids }))).await?;
    Ok(back_to("/admin/policy?done=1"))
}

// ---- Users ----

struct UserRow {
    id: String,
    username: String,
    email: String,
    factors: String,
    /// Each authenticator with when it was added and last used, where recorded.
    factor_dates: Vec<FactorDates>,
    is_admin: bool,
    disabled: bool,
}

struct FactorDates {
    label: String,
    added: String,
    last_used: Option<String>,
}

/// The user's TOTP authenticator and passkeys, oldest first.
fn factor_dates(
    totp: Option<factors::TotpCredential>,
    keys: &[passkeys::StoredPasskey],
) -> Vec<FactorDates> {
    let totp = totp.filter(|t| t.confirmed).map(|t| FactorDates {
        label: "Authenticator app".into(),
        added: date(t.created_at),
        last_used: t.last_used_at.map(time),
    });
    let keys = keys.iter().map(|p| FactorDates {
        label: format!("Passkey “{}”", p.name),
        added: date(p.created_at),
        last_used: p.last_used_at.map(time),
    });
    totp.into_iter().chain(keys).collect()
}

#[derive(Template)]
#[template(path = "console/users.html")]
struct UsersPage {
    nav: &'static str,
    admin: String,
    notice: Option<String>,
    csrf: String,
    query: String,
    users: Vec<UserRow>,
    prev_page: Option<i64>,
    next_page: Option<i64>,
}

const PAGE: i64 = 50;

pub async fn users(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, PageError> {
    let admin = open!(state, req, everyday(&state), "/admin/users");
    let params = query(&req);
    let search = q(&params, "q");
    let page_no = q(&params, "page").parse::<i64>().unwrap_or(0).max(0);
    let s = search.clone();
    let rows = state
        .read(move |conn| {
            let found = users::search_users(conn, &s, page_no * PAGE, PAGE + 1)?;
            let mut rows = Vec::new();
            for u in found {
                let mut f: Vec<String> = factors::enrolled(conn, &u.id)?.iter().map(|f| f.to_string()).collect();
                let keys = passkeys::list_for_user(conn, &u.id)?;
                if keys.len() > 1 {
                    f.push(format!("{} passkeys", keys.len()));
                }
                rows.push(UserRow {
                    factors: f.join(", "),
                    factor_dates: factor_dates(factors::find_totp(conn, &u.id)?, &keys),
                    email: u.email.clone().unwrap_or_default(),
                    id: u.id,
                    username: u.username,
                    is_admin: u.is_admin,
                    disabled: u.disabled,
                });
            }
            Ok(rows)
        })
        .await?;
    let more = rows.len() as i64 > PAGE;
    let notice = (!q(&params, "done").is_empty()).then(|| "Done.".to_owned());
    let page = UsersPage {
        nav: "users",
        admin: admin.user.username.clone(),
        notice,
        csrf: admin.csrf.clone(),
        query: search,
        users: rows.into_iter().take(PAGE as usize).collect(),
        prev_page: (page_no > 0).then_some(page_no - 1),
        next_page: more.then_some(page_no + 1),
    };
    render(&admin, &page)
}

#[derive(Deserialize)]
pub struct UserForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

pub async fn user_create(state: web::Data<AppState>, req: HttpRequest, form: web::Form<UserForm>) -> Result<HttpResponse, PageError> {
    let admin = open!(state, req, everyday(&state), "/admin/users");
    let form = form.into_inner();
    check_form(&state, &req, &form.csrf)?;
    let new = NewUser {
        username: form.username.trim().to_owned(),
        email: Some(form.email.trim().to_owned()).filter(|e| !e.is_empty()),
        name: None,
        password: form.password,
        is_admin: false,
    };
    let (db, now) = (state.db.clone(), state.now());
    let _permit = state.hashing.acquire().await.map_err(|e| AppError::Blocking(e.to_string()))?;
    let created = web::block(move || manage::add_user(&db, new, now)).await.map_err(|e| AppError::Blocking(e.to_string()))?;
    match created {
        Ok(user) => {
            let (info, who) = (ClientInfo::from_request(&req), admin_ref(&admin));
            state.write(move |conn| admin_event(conn, &who, &info, now, "user_created", json!({ "user": user.username }))).await?;
            Ok(back_to("/admin/users?done=1"))
        }
        Err(manage::ManageError::App(e)) => Err(e.into()),
        Err(e) => Err(PageError::bad_request("The user could not be created", e.to_string())),
    }
}

pub async fn user_action(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    let (id, action) = path.into_inner();
    let admin = open!(state, req, everyday(&state), "/admin/users");
    check_form(&state, &req, &form.csrf)?;
    if action == "reset-factors" && !super::auth::satisfies(&state, &admin.session, destructive(&state)) {
        return Ok(needs_confirmation("reset-factors", &id));
    }
    if id == admin.user.id && matches!(action.as_str(), "disable" | "revoke-admin") {
        return Err(PageError::bad_request("Not on yourself", "Another administrator has to do that."));
    }
    let (info, now, who, act) = (ClientInfo::from_request(&req), state.now(), admin_ref(&admin), action.clone());
    let done = state
        .write(move |conn| {
            let Some(user) = users::find_user(conn, &id)? else { return Ok(false) };
            match act.as_str() {
                "disable" => {
                    users::disable_user(conn, &user.username, now)?;
                }
                "enable" => {
                    users::enable_user(conn, &id, now)?;
                }
                "grant-admin" => {
                    users::set_admin(conn, &id, true, now)?;
                }
                "revoke-admin" => {
                    users::set_admin(conn, &id, false, now)?;
                }
                "reset-factors" => {
                    factors::delete_totp(conn, &id)?;
                    for p in passkeys::list_for_user(conn, &id)? {
                        passkeys::delete(conn, &id, &p.id)?;
                    }
                    sessions::end_user_sessions(conn, &id, None, now)?;
                }
                _ => return Ok(false),
            }
            admin_event(conn, &who, &info, now, &format!("user_{}", act.replace('-', "_")), json!({ "user": user.username }))?;
            Ok(true)
        })
        .await?;
    if !done {
        return Err(PageError::bad_request("Nothing was changed", "Unknown user or action."));
    }
    Ok(back_to("/admin/users?done=1"))
}

// ---- Sessions ----

struct SessionRow {
    id: String,
    username: String,
    level: String,
    factors: String,
    ip: String,
    started: String,
    last_seen: String,
}

#[derive(Template)]
#[template(path = "console/sessions.html")]
struct SessionsPage {
    nav: &'static str,
    admin: String,
    notice: Option<String>,
    csrf: String,
    sessions: Vec<SessionRow>,
}

pub async fn sessions(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, PageError> {
    let admin = open!(state, req, everyday(&state), "/admin/sessions");
    let (now, idle, levels) = (state.now(), state.settings.session.idle_timeout_secs, state.policy.levels.clone());
    let rows = state
        .read(move |conn| {
            let mut rows = Vec::new();
            for s in sessions::list_live(conn, now, idle, 500)? {
                let proofs = sessions::proven_factors(conn, &s.id)?;
                let username = users::find_user(conn, &s.user_id)?.map(|u| u.username).unwrap_or_default();
                rows.push(SessionRow {
                    level: levels.achieved(&proofs, now).map(|l| l.name().to_owned()).unwrap_or_else(|| "—".into()),
                    factors: proofs.iter().map(|p| p.factor.to_string()).collect::<Vec<_>>().join(", "),
                    ip: s.ip.clone().unwrap_or_default(),
                    started: time(s.created_at),
                    last_seen: time(s.last_seen_at),
                    id: s.id,
                    username,
                });
            }
            Ok(rows)
        })
        .await?;
    let notice = (!q(&query(&req), "done").is_empty()).then(|| "Session revoked.".to_owned());
    let page = SessionsPage { nav: "sessions", admin: admin.user.username.clone(), notice, csrf: admin.csrf.clone(), sessions: rows };
    render(&admin, &page)
}

pub async fn session_revoke(state: web::Data<AppState>, req: HttpRequest, path: web::Path<String>, form: web::Form<CsrfForm>) -> Result<HttpResponse, PageError> {
    let id = path.into_inner();
    let admin = open!(state, req, everyday(&state), "/admin/sessions");
    check_form(&state, &req, &form.csrf)?;
    let (info, now, who) = (ClientInfo::from_request(&req), state.now(), admin_ref(&admin));
    state
        .write(move |conn| {
            sessions::end_session(conn, &id, now)?;
            admin_event(conn, &who, &info, now, "session_revoked", json!({ "session": id }))
        })
        .await?;
    Ok(back_to("/admin/sessions?done=1"))
}

// ---- Audit ----

struct EventRow {
    seq: i64,
    at: String,
    kind: String,
    outcome: String,
    user: String,
    client: String,
    ip: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    nav: &'static str,
    admin: String,
    notice: Option<String>,
    user: String,
    client: String,
    outcome: String,
    since: String,
    filter_query: String,
    events: Vec<EventRow>,
    prev_page: Option<i64>,
    next_page: Option<i64>,
}

/// The filter from the query string; the username is resolved to an id.
async fn audit_filter(state: &AppState, params: &Params) -> Result<Filter, AppError> {
    let now = state.now();
    let since = q(params, "since");
    let since = if since.is_empty() {
        None
    } else if let Ok(epoch) = since.parse::<i64>() {
        Some(epoch)
    } else {
        let (n, unit) = since.split_at(since.len().saturating_sub(1));
        let n = n.parse::<i64>().unwrap_or(0);
        Some(now - n * match unit { "m" => 60, "h" => 3600, "d" => 86_400, _ => 1 })
    };
    let username = q(params, "user");
    let user_id = if username.is_empty() {
        None
    } else {
        let u = username.clone();
        Some(state.read(move |conn| users::find_user_by_username(conn, &u)).await?.map(|u| u.id).unwrap_or(username))
    };
    let opt = |s: String| Some(s).filter(|s| !s.is_empty());
    Ok(Filter { user_id, client_id: opt(q(params, "client")), kind: opt(q(params, "kind")), outcome: opt(q(params, "outcome")), since, until: None })
}

fn filter_query(params: &Params) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for k in ["user", "client", "outcome", "since", "kind"] {
        let v = q(params, k);
        if !v.is_empty() {
            ser.append_pair(k, &v);
        }
    }
    ser.finish()
}

pub async fn audit(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, PageError> {
    let admin = open!(state, req, everyday(&state), "/admin/audit");
    let params = query(&req);
    let filter = audit_filter(&state, &params).await?;
    let page_no = q(&params, "page").parse::<i64>().unwrap_or(0).max(0);
    let events = state.read(move |conn| audit::search(conn, &filter, page_no * PAGE, PAGE + 1)).await?;
    let more = events.len() as i64 > PAGE;
    let names: BTreeMap<String, String> = {
        let ids: Vec<String> = events.iter().filter_map(|e| e.user_id.clone()).collect();
        state
            .read(move |conn| {
                let mut m = BTreeMap::new();
                for id in ids {
                    if let Some(u) = users::find_user(conn, &id)? {
                        m.insert(id, u.username);
                    }
                }
                Ok(m)
            })
            .await?
    };
    let rows = events
        .into_iter()
        .take(PAGE as usize)
        .map(|e| EventRow {
            seq: e.seq,
            at: time(e.at),
            user: e.user_id.as_ref().and_then(|id| names.get(id).cloned()).unwrap_or_default(),
            client: e.client_id.unwrap_or_default(),
            ip: e.ip.unwrap_or_default(),
            kind: e.kind,
            outcome: e.outcome,
            detail: e.detail,
        })
        .collect();
    let page = AuditPage {
        nav: "audit",
        admin: admin.user.username.clone(),
        notice: None,
        user: q(&params, "user"),
        client: q(&params, "client"),
        outcome: q(&params, "outcome"),
        since: q(&params, "since"),
        filter_query: filter_query(&params),
        events: rows,
        prev_page: (page_no > 0).then_some(page_no - 1),
        next_page: more.then_some(page_no + 1),
    };
    render(&admin, &page)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() }
}

pub async fn audit_export(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, PageError> {
    let back = format!("/admin/audit?{}", req.query_string());
    let _admin = open!(state, req, everyday(&state), &back);
    let params = query(&req);
    let filter = audit_filter(&state, &params).await?;
    let events = state.read(move |conn| audit::search(conn, &filter, 0, 100_000)).await?;
    if q(&params, "format") == "json" {
        let body: Vec<Value> = events.iter().map(|e| e.to_json()).collect();
        return Ok(HttpResponse::Ok()
            .insert_header((header::CONTENT_DISPOSITION, "attachment; filename=\"ladder-audit.json\""))
            .json(body));
    }
    let mut out = String::from("seq,at,kind,outcome,user_id,client_id,ip,detail\n");
    for e in &events {
        let o = |v: &Option<String>| csv_field(v.as_deref().unwrap_or_default());
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{}\n",
            e.seq, e.at, csv_field(&e.kind), csv_field(&e.outcome), o(&e.user_id), o(&e.client_id), o(&e.ip), csv_field(&e.detail)
        ));
    }
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((header::CONTENT_DISPOSITION, "attachment; filename=\"ladder-audit.csv\""))
        .body(out))
}

// ---- Policy ----

struct LevelRow {
    rank: u8,
    name: String,
    rule: String,
    freshness: String,
    enrol: String,
    aliases: String,
}

#[derive(Template)]
#[template(path = "console/policy.html")]
struct PolicyPage {
    nav: &'static str,
    admin: String,
    notice: Option<String>,
    csrf: String,
    levels: Vec<LevelRow>,
    scope_rules: Vec<(String, String)>,
    risk_rules: Vec<(String, String)>,
}

pub async fn policy(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, PageError> {
    let admin = open!(state, req, everyday(&state), "/admin/policy");
    let levels = state
        .policy
        .levels
        .iter()
        .map(|l| LevelRow {
            rank: l.rank(),
            name: l.name().to_owned(),
            rule: serde_json::to_value(l.rule()).ok().and_then(|v| v.as_str().map(|s| s.replace('_', " "))).unwrap_or_default(),
            freshness: l.max_age_secs().map_or_else(|| "—".into(), |s| format!("{} min", s / 60)),
            enrol: l.enroll_on_demand().iter().map(|f| f.to_string()).collect::<Vec<_>>().join(", "),
            aliases: l.aliases().join(" "),
        })
        .collect();
    let notice = (!q(&query(&req), "done").is_empty()).then(|| "Signing keys rotated.".to_owned());
    let page = PolicyPage {
        nav: "policy",
        admin: admin.user.username.clone(),
        notice,
        csrf: admin.csrf.clone(),
        levels,
        scope_rules: state.policy.scope_rules.iter().map(|r| (r.scope.clone(), r.level.clone())).collect(),
        risk_rules: state.settings.risk.rules.iter().map(|r| (r.signal.as_str().replace('_', " "), r.level.clone())).collect(),
    };
    render(&admin, &page)
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_dates() {
        assert_eq!(super::time(0), "1970-01-01 00:00");
        assert_eq!(super::time(951_782_400 + 3_661), "2000-02-29 01:01");
        assert_eq!(super::date(1_800_000_000), "2027-01-15");
    }
}
