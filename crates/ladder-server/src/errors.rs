//! One protocol error type, rendered per DESIGN §5: JSON for back-channel endpoints, a redirect
//! for /authorize (only once the redirect URI is validated), or a readable HTML page.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use askama::Template;
use ladder_store::StoreError;

/// Internal failures: logged with the request's span, shown without detail.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("blocking task failed: {0}")]
    Blocking(String),
    #[error("key handling: {0}")]
    Keys(String),
    #[error("step-up policy: {0}")]
    Policy(String),
    #[error("serialization: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error("template: {0}")]
    Template(#[from] askama::Error),
}

/// An OAuth 2.0 / OpenID Connect error (RFC 6749 §4.1.2.1, §5.2; OIDC Core §3.1.2.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub code: &'static str,
    pub description: String,
    pub status: StatusCode,
    /// `WWW-Authenticate` challenge for 401s (RFC 6749 §5.2, RFC 6750 §3).
    pub challenge: Option<String>,
}

impl OAuthError {
    pub fn new(code: &'static str, description: impl Into<String>) -> Self {
        let status = match code {
            "invalid_client" | "invalid_token" => StatusCode::UNAUTHORIZED,
            "server_error" => StatusCode::INTERNAL_SERVER_ERROR,
            "temporarily_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
            "insufficient_scope" => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        };
        OAuthError { code, description: description.into(), status, challenge: None }
    }
    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new("invalid_request", d)
    }
    pub fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new("invalid_grant", d)
    }
    pub fn invalid_client(d: impl Into<String>) -> Self {
        Self::new("invalid_client", d)
    }
    pub fn server_error() -> Self {
        Self::new("server_error", "The server met an unexpected condition.")
    }

    fn json_body(&self) -> serde_json::Value {
        serde_json::json!({ "error": self.code, "error_description": self.description })
    }
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.description)
    }
}

impl From<AppError> for OAuthError {
    fn from(e: AppError) -> Self {
        tracing::error!(error = %e, "internal error");
        match e {
            AppError::Store(StoreError::Unavailable(_)) => {
                OAuthError::new("temporarily_unavailable", "The service is busy; try again shortly.")
            }
            _ => OAuthError::server_error(),
        }
    }
}

impl From<serde_json::Error> for OAuthError {
    fn from(e: serde_json::Error) -> Self {
        AppError::from(e).into()
    }
}

/// Back-channel endpoints answer errors as JSON, never cached.
impl ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn error_response(&self) -> HttpResponse {
        let mut resp = HttpResponse::build(self.status);
        resp.insert_header((header::CACHE_CONTROL, "no-store"));
        if let Some(challenge) = &self.challenge {
            resp.insert_header((header::WWW_AUTHENTICATE, challenge.as_str()));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            resp.insert_header((header::RETRY_AFTER, "1"));
        }
        resp.json(self.json_body())
    }
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub title: String,
    pub message: String,
    pub detail: Option<String>,
}

/// Renders a readable error page; falls back to plain text if the template itself fails.
pub fn error_page(status: StatusCode, title: &str, message: &str, detail: Option<&str>) -> HttpResponse {
    let page = ErrorPage { title: title.into(), message: message.into(), detail: detail.map(str::to_owned) };
    match page.render() {
        Ok(html) => HttpResponse::build(status)
            .insert_header((header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(html),
        Err(_) => HttpResponse::build(status).body(format!("{title}: {message}")),
    }
}

/// An error on a page the user sees (interaction pages): a readable HTML page.
#[derive(Debug)]
pub struct PageError {
    pub status: StatusCode,
    pub title: &'static str,
    pub message: String,
}

impl PageError {
    pub fn bad_request(title: &'static str, message: impl Into<String>) -> Self {
        PageError { status: StatusCode::BAD_REQUEST, title, message: message.into() }
    }
    pub fn forbidden(title: &'static str, message: impl Into<String>) -> Self {
        PageError { status: StatusCode::FORBIDDEN, title, message: message.into() }
    }
}

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.title, self.message)
    }
}

impl From<AppError> for PageError {
    fn from(e: AppError) -> Self {
        tracing::error!(error = %e, "internal error");
        if matches!(e, AppError::Store(StoreError::Unavailable(_))) {
            return PageError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                title: "Ladder is busy",
                message: "Too many requests are being handled right now. Please try again in a moment.".into(),
            };
        }
        PageError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            title: "Something went wrong",
            message: "Ladder could not complete this request. Please try again in a moment.".into(),
        }
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn error_response(&self) -> HttpResponse {
        let mut resp = error_page(self.status, self.title, &self.message, None);
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}
