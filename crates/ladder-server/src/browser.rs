//! Browser-facing plumbing: the session and browser cookies, CSRF, client address.

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};

use crate::crypto::{constant_time_eq, random_token, sha256_hex};
use crate::state::AppState;

/// Where a request came from, recorded with proofs and audit events.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl ClientInfo {
    pub fn from_request(req: &HttpRequest) -> Self {
        ClientInfo {
            ip: req.peer_addr().map(|a| a.ip().to_string()),
            user_agent: req
                .headers()
                .get(actix_web::http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.chars().take(256).collect()),
        }
    }
}

fn build_cookie(state: &AppState, name: &'static str, value: String, max_age: Option<i64>) -> Cookie<'static> {
    let mut c = Cookie::build(name, value)
        .path("/")
        .http_only(true)
        .secure(state.cookies.secure)
        .same_site(SameSite::Lax)
        .finish();
    if let Some(secs) = max_age {
        c.set_max_age(CookieDuration::seconds(secs));
    }
    c
}

/// The session cookie carrying a fresh session token.
pub fn session_cookie(state: &AppState, token: String) -> Cookie<'static> {
    build_cookie(state, state.cookies.session, token, Some(state.settings.session.absolute_timeout_secs))
}

pub fn session_token(state: &AppState, req: &HttpRequest) -> Option<String> {
    req.cookie(state.cookies.session).map(|c| c.value().to_owned())
}

/// The per-browser secret that binds interactions to the browser that started them and doubles
/// as the CSRF token of its forms. Returns the value, and a cookie to set when it is new.
pub fn browser_key(state: &AppState, req: &HttpRequest) -> (String, Option<Cookie<'static>>) {
    match req.cookie(state.cookies.browser) {
        Some(c) if c.value().len() >= 22 => (c.value().to_owned(), None),
        _ => {
            let value = random_token(32);
            let cookie = build_cookie(state, state.cookies.browser, value.clone(), None);
            (value, Some(cookie))
        }
    }
}

pub fn browser_hash(key: &str) -> String {
    sha256_hex(key)
}

/// The form's CSRF field matches this browser's key, and the browser is the one bound to the
/// interaction.
pub fn check_csrf(state: &AppState, req: &HttpRequest, form_token: &str, bound_hash: &str) -> bool {
    let Some(cookie) = req.cookie(state.cookies.browser) else {
        return false;
    };
    constant_time_eq(cookie.value(), form_token) && constant_time_eq(&browser_hash(cookie.value()), bound_hash)
}
