//! Browser sessions: an opaque random cookie naming an entry in an in-memory map (a demo needs no
//! more; restart the process and everyone signs in again). The map holds the user's tokens, the
//! authorization request in flight, and the action waiting for a step-up.

use std::collections::HashMap;
use std::sync::Mutex;

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite};
use openidconnect::CsrfToken;

use crate::money::Money;
use crate::oidc::AuthRequest;
use crate::time::now;

pub const COOKIE: &str = "acme_session";
/// A session unused for this long is forgotten.
const IDLE_SECS: i64 = 8 * 3600;

/// What the user asked for before the bank sent them to Ladder for a stronger sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PendingAction {
    Transfer { payee_id: String, amount: Money },
    AddPayee { name: String, account: String },
    RemovePayee { id: String },
}

impl PendingAction {
    /// "the transfer of $1,500.00", for messages about it.
    pub fn describe(&self) -> String {
        match self {
            PendingAction::Transfer { amount, .. } => format!("the transfer of ${amount}"),
            PendingAction::AddPayee { name, .. } => format!("adding {name} as a payee"),
            PendingAction::RemovePayee { .. } => "removing the payee".to_owned(),
        }
    }
}

/// An authorization request in flight: checked and spent when the browser returns.
#[derive(Debug, Clone)]
pub struct PendingLogin {
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub request: AuthRequest,
    pub started_at: i64,
}

/// What the validated ID token says about the user and their authentication.
#[derive(Debug, Clone)]
pub struct Identity {
    pub sub: String,
    pub display_name: Option<String>,
    pub acr: Option<String>,
    pub amr: Vec<String>,
    pub auth_time: Option<i64>,
}

#[derive(Clone)]
pub struct Tokens {
    pub id_token: String,
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub access_expires_at: Option<i64>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("access_expires_at", &self.access_expires_at)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct SignedIn {
    pub identity: Identity,
    pub tokens: Tokens,
    /// When these tokens arrived; a refusal right after sign-in is a set-up problem, not expiry.
    pub since: i64,
}

impl SignedIn {
    pub fn just_arrived(&self) -> bool {
        now() - self.since < 60
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashKind {
    Success,
    Error,
    Info,
}

/// One line of the "what happened" list; `code` is protocol text shown as such (a header, a URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub text: String,
    pub code: Option<String>,
}

impl Step {
    pub fn new(text: impl Into<String>) -> Step {
        Step {
            text: text.into(),
            code: None,
        }
    }

    pub fn with_code(text: impl Into<String>, code: impl Into<String>) -> Step {
        Step {
            text: text.into(),
            code: Some(code.into()),
        }
    }
}

/// A message shown once on the next page, with the protocol steps behind it.
#[derive(Debug, Clone)]
pub struct Flash {
    pub kind: FlashKind,
    pub title: String,
    pub body: String,
    pub steps: Vec<Step>,
}

impl Flash {
    pub fn new(kind: FlashKind, title: impl Into<String>, body: impl Into<String>) -> Flash {
        Flash {
            kind,
            title: title.into(),
            body: body.into(),
            steps: Vec::new(),
        }
    }

    pub fn with_steps(mut self, steps: Vec<Step>) -> Flash {
        self.steps = steps;
        self
    }
}

#[derive(Debug, Clone)]
pub struct Session {
    /// Sent back in every form, so another site cannot post on the user's behalf.
    pub csrf: String,
    pub user: Option<SignedIn>,
    pub pending: Option<PendingLogin>,
    pub flash: Option<Flash>,
    last_seen: i64,
}

#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The request's session, if its cookie names a live one.
    pub fn load(&self, req: &HttpRequest) -> Option<(String, Session)> {
        let id = req.cookie(COOKIE)?.value().to_owned();
        let session = self
            .map()
            .get(&id)
            .filter(|s| now() - s.last_seen < IDLE_SECS)
            .cloned()?;
        Some((id, session))
    }

    /// The request's session, or a new empty one (saved only by [`Sessions::save`]).
    pub fn load_or_new(&self, req: &HttpRequest) -> (String, Session) {
        self.load(req).unwrap_or_else(|| {
            let session = Session {
                csrf: CsrfToken::new_random().secret().clone(),
                user: None,
                pending: None,
                flash: None,
                last_seen: now(),
            };
            (new_id(), session)
        })
    }

    pub fn save(&self, id: &str, mut session: Session) {
        let now = now();
        session.last_seen = now;
        let mut map = self.map();
        map.retain(|_, s| now - s.last_seen < IDLE_SECS);
        map.insert(id.to_owned(), session);
    }

    pub fn remove(&self, id: &str) {
        self.map().remove(id);
    }
}

/// 128 random bits, base64url.
pub fn new_id() -> String {
    CsrfToken::new_random().secret().clone()
}

/// The session cookie: HttpOnly, and SameSite=Lax so it comes along when Ladder redirects back.
pub fn cookie(id: &str, secure: bool) -> Cookie<'static> {
    Cookie::build(COOKIE, id.to_owned())
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Lax)
        .finish()
}
