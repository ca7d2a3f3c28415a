//! Browser-facing plumbing: the session and browser cookies, CSRF, client address.

use actix_web::HttpMessage;
use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};

use std::net::IpAddr;

use ladder_core::risk::same_network;

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
        let trusted = req
            .app_data::<actix_web::web::Data<AppState>>()
            .map(|s| s.settings.server.trusted_proxies.clone())
            .unwrap_or_default();
        ClientInfo {
            ip: client_ip(req, &trusted).map(|ip| ip.to_string()),
            user_agent: req
                .headers()
                .get(actix_web::http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.chars().take(256).collect()),
        }
    }
}

/// `a.b.c.d`, `a.b.c.d/n`, or the IPv6 equivalents, as (network, prefix length).
pub fn parse_cidr(text: &str) -> Option<(IpAddr, u8)> {
    let (addr, len) = match text.split_once('/') {
        Some((a, l)) => (a.parse::<IpAddr>().ok()?, l.parse::<u8>().ok()?),
        None => {
            let a = text.parse::<IpAddr>().ok()?;
            (a, if a.is_ipv4() { 32 } else { 128 })
        }
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((addr, len))
}

fn trusted(ip: IpAddr, proxies: &[String]) -> bool {
    proxies.iter().filter_map(|p| parse_cidr(p)).any(|(net, len)| same_network(ip, net, len, len))
}

/// The client's address: the peer, or — when the peer is a trusted proxy — the rightmost
/// `X-Forwarded-For` entry that is not itself a trusted proxy (entries further left are
/// whatever the client claimed, and are never believed).
pub fn client_ip(req: &HttpRequest, proxies: &[String]) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    if !trusted(peer, proxies) {
        return Some(peer);
    }
    let forwarded: Vec<IpAddr> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    Some(forwarded.into_iter().rev().find(|ip| !trusted(*ip, proxies)).unwrap_or(peer))
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
            // A page rendered into the same response carries it as its CSRF token.
            req.extensions_mut().insert(IssuedBrowserKey(value.clone()));
            (value, Some(cookie))
        }
    }
}

/// A browser key set by the response being built (the request did not carry one yet).
#[derive(Clone)]
struct IssuedBrowserKey(String);

/// The browser's key: its cookie, or the one this response is setting.
pub fn current_browser_key(state: &AppState, req: &HttpRequest) -> Option<String> {
    match req.cookie(state.cookies.browser) {
        Some(c) if c.value().len() >= 22 => Some(c.value().to_owned()),
        _ => req.extensions().get::<IssuedBrowserKey>().map(|k| k.0.clone()),
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

/// The long-lived cookie that makes this browser a known device of a user (400 days, the most
/// browsers keep a cookie).
pub fn device_cookie(state: &AppState, token: String) -> Cookie<'static> {
    build_cookie(state, state.cookies.device, token, Some(400 * 24 * 3600))
}

pub fn device_token(state: &AppState, req: &HttpRequest) -> Option<String> {
    req.cookie(state.cookies.device).map(|c| c.value().to_owned())
}
