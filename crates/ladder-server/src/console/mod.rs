//! The admin console (`/admin`): clients, users, sessions, audit, policy and a dashboard, for
//! administrators signed in through Ladder itself (see `auth`). Every form carries the browser's
//! CSRF token; every change is audited with the administrator who made it; destructive actions
//! (deleting a client, resetting a user's factors) first ask for a fresh, stronger sign-in.

pub mod auth;
mod client_form;
pub(crate) mod pages;

use actix_web::cookie::Cookie;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use ladder_store::users::User;

use crate::browser::browser_key;
use crate::crypto::constant_time_eq;
use crate::errors::{AppError, PageError};
use crate::state::AppState;
use auth::{ConsoleSession, Need};

/// The administrator a console request acts as.
pub struct Admin {
    pub session: ConsoleSession,
    pub user: User,
    pub csrf: String,
    new_cookie: Option<Cookie<'static>>,
}

/// A console request either has its administrator or must go (re)authenticate first.
pub enum Gate {
    Open(Box<Admin>),
    Redirect(HttpResponse),
}

pub fn everyday(state: &AppState) -> Need<'_> {
    Need { acr: &state.settings.console.level, max_age: None }
}

pub fn destructive(state: &AppState) -> Need<'_> {
    Need { acr: &state.settings.console.destructive_level, max_age: Some(state.settings.console.destructive_max_age_secs) }
}

/// Checks the console session against `need`; otherwise starts a sign-in that returns to `return_to`.
pub async fn gate(state: &AppState, req: &HttpRequest, need: Need<'_>, return_to: &str) -> Result<Gate, PageError> {
    match auth::current(state, req).await? {
        Some((session, user)) if user.is_admin && auth::satisfies(state, &session, need) => {
            let (csrf, new_cookie) = browser_key(state, req);
            Ok(Gate::Open(Box::new(Admin { session, user, csrf, new_cookie })))
        }
        _ => Ok(Gate::Redirect(auth::start(state, need, return_to)?)),
    }
}

/// A console form's CSRF token must be this browser's.
pub fn check_form(state: &AppState, req: &HttpRequest, token: &str) -> Result<(), PageError> {
    let cookie = req.cookie(state.cookies.browser).map(|c| c.value().to_owned()).unwrap_or_default();
    if cookie.is_empty() || !constant_time_eq(&cookie, token) {
        return Err(PageError::forbidden("This form has expired", "Reload the page and try again."));
    }
    Ok(())
}

pub fn render(admin: &Admin, page: &impl Template) -> Result<HttpResponse, PageError> {
    let body = page.render().map_err(AppError::from)?;
    let mut resp = HttpResponse::Ok();
    resp.content_type("text/html; charset=utf-8").insert_header(("cache-control", "no-store"));
    if let Some(c) = &admin.new_cookie {
        resp.cookie(c.clone());
    }
    Ok(resp.body(body))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    use client_form::*;
    use pages::*;
    cfg.route("/admin", web::get().to(dashboard))
        .route("/admin/callback", web::get().to(auth::callback))
        .route("/admin/clients", web::get().to(clients))
        .route("/admin/clients/new", web::get().to(client_form))
        .route("/admin/clients/new", web::post().to(client_create))
        .route("/admin/clients/{id}/delete", web::post().to(client_delete))
        .route("/admin/clients/{id}/edit", web::get().to(client_edit_form))
        .route("/admin/clients/{id}/edit", web::post().to(client_update))
        .route("/admin/clients/{id}/{action}", web::post().to(client_action))
        .route("/admin/keys/rotate", web::post().to(keys_rotate))
        .route("/admin/users", web::get().to(users))
        .route("/admin/users/new", web::post().to(user_create))
        .route("/admin/users/{id}/{action}", web::post().to(user_action))
        .route("/admin/sessions", web::get().to(sessions))
        .route("/admin/sessions/{id}/revoke", web::post().to(session_revoke))
        .route("/admin/audit", web::get().to(audit))
        .route("/admin/audit/export", web::get().to(audit_export))
        .route("/admin/policy", web::get().to(policy))
        .route("/admin/confirm", web::get().to(confirm));
}
