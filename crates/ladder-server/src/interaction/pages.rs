//! The step pages: which template a plan step gets, and what it shows.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;
use ladder_core::{Factor, Reason, Step, totp};
use ladder_store::{factors, users};

use super::Pending;
use crate::errors::{AppError, PageError};
use crate::session::ActiveSession;
use crate::state::AppState;
use crate::stepup::explain_to_user;

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub action: String,
    pub csrf: String,
    pub client_name: String,
    pub username: String,
    pub username_locked: bool,
    pub notice: Option<String>,
    pub error: Option<String>,
    /// The interaction's URL, when passkeys are available (the script derives its endpoints).
    pub passkey_base: Option<String>,
}

#[derive(Template)]
#[template(path = "passkey.html")]
pub struct PasskeyPage {
    pub csrf: String,
    pub client_name: String,
    pub reason: String,
    pub passkey_base: String,
}

#[derive(Template)]
#[template(path = "passkey_enrol.html")]
pub struct PasskeyEnrolPage {
    pub csrf: String,
    pub client_name: String,
    pub reason: String,
    pub passkey_base: String,
}

#[derive(Template)]
#[template(path = "totp.html")]
pub struct TotpPage {
    pub action: String,
    pub csrf: String,
    pub client_name: String,
    pub reason: String,
    pub error: Option<String>,
    pub recovery_allowed: bool,
}

#[derive(Template)]
#[template(path = "totp_enrol.html")]
pub struct TotpEnrolPage {
    pub action: String,
    pub csrf: String,
    pub client_name: String,
    pub reason: String,
    pub error: Option<String>,
    pub qr_png_base64: String,
    pub otpauth_uri: String,
    pub secret_base32: String,
}

#[derive(Template)]
#[template(path = "recovery_codes.html")]
pub struct RecoveryCodesPage {
    pub codes: Vec<String>,
    pub continue_url: String,
    pub client_name: String,
}

#[derive(Template)]
#[template(path = "notice.html")]
pub struct NoticePage {
    pub title: String,
    pub message: String,
    pub continue_url: String,
    pub continue_label: String,
}

/// An HTML page that must not be cached (it carries a CSRF token or secrets).
pub fn html(page: &impl Template, status: StatusCode) -> Result<HttpResponse, PageError> {
    let body = page.render().map_err(AppError::from)?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body))
}

pub fn csrf(state: &AppState, req: &HttpRequest) -> String {
    crate::browser::current_browser_key(state, req).unwrap_or_default()
}

/// Why the page is shown: the plan's reason, and the risk sentence when a signal raised the level.
#[derive(Debug, Clone, Copy)]
pub struct Shown<'a> {
    pub reason: &'a Reason,
    pub why: Option<&'a str>,
}

impl Shown<'_> {
    fn text(&self, client_name: &str) -> String {
        match self.why {
            Some(why) => format!("{why} {client_name} needs you to confirm it's you."),
            None => explain_to_user(self.reason, client_name),
        }
    }
}

/// The page for `step`, optionally with an error from the previous attempt.
#[allow(clippy::too_many_arguments)]
pub async fn render_step(
    state: &AppState,
    req: &HttpRequest,
    pending: &Pending,
    step: Step,
    shown: Shown<'_>,
    session: Option<&ActiveSession>,
    enrolled: &[Factor],
    error: Option<(String, StatusCode)>,
) -> Result<HttpResponse, PageError> {
    let client_name = pending.client.name.clone();
    let (error, status) = match error {
        Some((e, s)) => (Some(e), s),
        None => (None, StatusCode::OK),
    };
    match step {
        Step::Prove(Factor::Password) => {
            let username = locked_username(state, pending, session).await?;
            let page = LoginPage {
                action: format!("{}/password", pending.url()),
                csrf: csrf(state, req),
                username_locked: username.is_some(),
                username: username.or_else(|| pending.request.login_hint.clone()).unwrap_or_default(),
                notice: session.map(|_| shown.text(&client_name)),
                client_name,
                error,
                passkey_base: state.webauthn.is_some().then(|| pending.url()),
            };
            html(&page, status)
        }
        Step::Prove(Factor::Totp | Factor::RecoveryCode) => {
            let page = TotpPage {
                action: format!("{}/totp", pending.url()),
                csrf: csrf(state, req),
                reason: shown.text(&client_name),
                client_name,
                error,
                recovery_allowed: enrolled.contains(&Factor::RecoveryCode),
            };
            html(&page, status)
        }
        Step::EnrolThenProve(Factor::Totp) => {
            let session = session.ok_or_else(|| AppError::Policy("enrolment without a session".into()))?;
            render_enrolment(state, req, pending, session, shown, error.map(|e| (e, status))).await
        }
        Step::Prove(Factor::Passkey) | Step::EnrolThenProve(Factor::Passkey) if state.webauthn.is_none() => Err(PageError {
            status: StatusCode::NOT_IMPLEMENTED,
            title: "Passkeys are not available here",
            message: format!(
                "{client_name} asked for a passkey, and this Ladder server is not set up for passkeys. \
                 Go back to the application and choose another way to continue."
            ),
        }),
        Step::Prove(Factor::Passkey) => {
            let page = PasskeyPage {
                csrf: csrf(state, req),
                reason: shown.text(&client_name),
                client_name,
                passkey_base: pending.url(),
            };
            html(&page, status)
        }
        Step::EnrolThenProve(_) => {
            let page = PasskeyEnrolPage {
                csrf: csrf(state, req),
                reason: shown.text(&client_name),
                client_name,
                passkey_base: pending.url(),
            };
            html(&page, status)
        }
    }
}

/// The username to show fixed on the password page: the signed-in user re-authenticating, or
/// the user the request is pinned to.
async fn locked_username(state: &AppState, pending: &Pending, session: Option<&ActiveSession>) -> Result<Option<String>, AppError> {
    if let Some(s) = session {
        return Ok(Some(s.user.username.clone()));
    }
    let Some(pin) = pending.request.pinned_sub.clone() else { return Ok(None) };
    state.lookup(move |conn| Ok(users::find_user(conn, &pin)?.map(|u| u.username))).await
}

/// The TOTP enrolment page. A new secret is drawn on first display and kept pending (encrypted)
/// until a valid code confirms it; an error re-shows the same secret.
pub async fn render_enrolment(
    state: &AppState,
    req: &HttpRequest,
    pending: &Pending,
    session: &ActiveSession,
    shown: Shown<'_>,
    error: Option<(String, StatusCode)>,
) -> Result<HttpResponse, PageError> {
    let user_id = session.user.id.clone();
    let context = totp_context(&user_id);
    let secret = match &error {
        Some(_) => {
            let uid = user_id.clone();
            let stored = state.lookup(move |conn| factors::find_totp(conn, &uid)).await?;
            match stored.filter(|t| !t.confirmed) {
                Some(t) => Some(state.server_key.decrypt(&context, &t.secret_enc).map_err(|e| AppError::Keys(e.to_string()))?),
                None => None,
            }
        }
        None => None,
    };
    let secret = match secret {
        Some(s) => s,
        None => {
            let mut fresh = vec![0u8; totp::SECRET_BYTES];
            openssl::rand::rand_bytes(&mut fresh).map_err(|e| AppError::Keys(e.to_string()))?;
            let sealed = state.server_key.encrypt(&context, &fresh).map_err(|e| AppError::Keys(e.to_string()))?;
            let now = state.now();
            state.write(move |conn| factors::upsert_pending_totp(conn, &user_id, &sealed, now)).await?;
            fresh
        }
    };
    let enrolment = totp::enrolment(&secret, &state.settings.totp.issuer_label, &session.user.username)
        .map_err(|e| AppError::Keys(e.to_string()))?;
    let client_name = pending.client.name.clone();
    let (error, status) = match error {
        Some((e, s)) => (Some(e), s),
        None => (None, StatusCode::OK),
    };
    let page = TotpEnrolPage {
        action: format!("{}/totp/enrol", pending.url()),
        csrf: csrf(state, req),
        reason: format!(
            "{} Set up an authenticator app to add a second step to your sign-in.",
            shown.text(&client_name)
        ),
        client_name,
        error,
        qr_png_base64: enrolment.qr_png_base64,
        otpauth_uri: enrolment.uri,
        secret_base32: enrolment.secret_base32,
    };
    html(&page, status)
}

/// The associated data a user's TOTP secret is sealed under.
pub fn totp_context(user_id: &str) -> String {
    format!("totp:{user_id}")
}
