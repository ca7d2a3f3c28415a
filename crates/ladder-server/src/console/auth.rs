//! The console signs its administrators in the way any relying party does: through Ladder's own
//! `/authorize` (code + PKCE S256), asking for the console's level — and again, with a fresh
//! `max_age`, before destructive actions. The result is kept in a cookie sealed with the server key
//! (so every node reads it), tied to the Ladder session it came from.

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use ladder_store::clients::{self, Client, ClientSettings};
use ladder_store::codes::{self, Redemption};
use ladder_store::{Conn, StoreError, sessions, users};
use serde::{Deserialize, Serialize};

use crate::crypto::{random_token, s256, secret_key};
use crate::errors::{AppError, PageError};
use crate::grant::redirect_with;
use crate::params::Params;
use crate::state::AppState;

pub const CONSOLE_CLIENT_ID: &str = "ladder-console";
const SEAL: &str = "console-session";
const FLOW_SEAL: &str = "console-flow";

/// What the console session cookie proves.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConsoleSession {
    pub user_id: String,
    /// The Ladder session it came from: ending that ends this.
    pub sid: String,
    pub acr: String,
    pub auth_time: i64,
    pub exp: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Flow {
    state: String,
    verifier: String,
    return_to: String,
}

/// What a page needs from the signed-in administrator.
#[derive(Debug, Clone, Copy)]
pub struct Need<'a> {
    pub acr: &'a str,
    pub max_age: Option<i64>,
}

/// The console's own client: public, PKCE, redirecting only to the console.
pub fn ensure_client(conn: &mut Conn, issuer: &str, now: i64) -> Result<(), StoreError> {
    let redirect_uris = vec![format!("{issuer}/admin/callback")];
    match clients::find_client(conn, CONSOLE_CLIENT_ID)? {
        Some(mut c) if c.redirect_uris != redirect_uris => {
            c.redirect_uris = redirect_uris;
            c.updated_at = now;
            clients::update_client(conn, &c).map(|_| ())
        }
        Some(_) => Ok(()),
        None => clients::insert_client(
            conn,
            &Client {
                id: CONSOLE_CLIENT_ID.into(),
                name: "Ladder console".into(),
                secret_hash: None,
                is_public: true,
                redirect_uris,
                scopes: vec!["openid".into()],
                default_acr_values: None,
                min_acr: None,
                strict_acr: false,
                disabled: false,
                created_at: now,
                updated_at: now,
                settings: ClientSettings {
                    token_endpoint_auth_method: "none".into(),
                    grant_types: vec!["authorization_code".into()],
                    ..ClientSettings::default()
                },
            },
        ),
    }
}

fn cookie_name(state: &AppState, base: &'static str) -> String {
    if state.cookies.secure { format!("__Host-{base}") } else { base.to_owned() }
}

fn cookie(state: &AppState, base: &'static str, value: String, max_age: i64) -> Cookie<'static> {
    let mut c = Cookie::build(cookie_name(state, base), value)
        .path("/")
        .http_only(true)
        .secure(state.cookies.secure)
        .same_site(SameSite::Lax)
        .finish();
    c.set_max_age(CookieDuration::seconds(max_age));
    c
}

fn unseal<T: for<'de> Deserialize<'de>>(state: &AppState, req: &HttpRequest, base: &'static str, context: &str) -> Option<T> {
    let raw = req.cookie(&cookie_name(state, base))?;
    let bytes = state.server_key.decrypt(context, raw.value()).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn seal<T: Serialize>(state: &AppState, context: &str, value: &T) -> Result<String, AppError> {
    let json = serde_json::to_vec(value)?;
    state.server_key.encrypt(context, &json).map_err(|e| AppError::Keys(e.to_string()))
}

/// The user behind this request, if the console session still holds (not expired, its Ladder
/// session live, the user still enabled). The console additionally requires the admin role.
pub async fn current(state: &AppState, req: &HttpRequest) -> Result<Option<(ConsoleSession, ladder_store::users::User)>, AppError> {
    let Some(session) = unseal::<ConsoleSession>(state, req, "ladder_console", SEAL) else { return Ok(None) };
    let now = state.now();
    if session.exp <= now {
        return Ok(None);
    }
    let (sid, user_id) = (session.sid.clone(), session.user_id.clone());
    let user = state
        .lookup(move |conn| {
            let live = sessions::find_session(conn, &sid)?.is_some_and(|s| s.ended_at.is_none() && s.expires_at > now);
            if !live {
                return Ok(None);
            }
            Ok(users::find_user(conn, &user_id)?.filter(|u| !u.disabled))
        })
        .await?;
    Ok(user.map(|u| (session, u)))
}

/// Whether the console session is strong and fresh enough for `need`.
pub fn satisfies(state: &AppState, session: &ConsoleSession, need: Need<'_>) -> bool {
    let levels = &state.policy.levels;
    let have = levels.resolve(&session.acr).map(|l| l.rank());
    let want = levels.resolve(need.acr).map(|l| l.rank());
    let strong = matches!((have, want), (Some(h), Some(w)) if h >= w);
    let fresh = need.max_age.is_none_or(|m| state.now() - session.auth_time <= m);
    strong && fresh
}

/// Sends the browser through Ladder's `/authorize` for `need`, to come back to `return_to`.
pub fn start(state: &AppState, need: Need<'_>, return_to: &str) -> Result<HttpResponse, AppError> {
    let flow = Flow { state: random_token(16), verifier: random_token(32), return_to: return_to.to_owned() };
    let mut pairs: Vec<(&str, String)> = vec![
        ("client_id", CONSOLE_CLIENT_ID.into()),
        ("redirect_uri", format!("{}/admin/callback", state.issuer)),
        ("response_type", "code".into()),
        ("scope", "openid".into()),
        ("state", flow.state.clone()),
        ("code_challenge", s256(&flow.verifier)),
        ("code_challenge_method", "S256".into()),
        ("acr_values", need.acr.into()),
    ];
    if let Some(m) = need.max_age {
        pairs.push(("max_age", m.to_string()));
    }
    let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let location = redirect_with(&format!("{}/authorize", state.issuer), &refs);
    let sealed = seal(state, FLOW_SEAL, &flow)?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .cookie(cookie(state, "ladder_console_flow", sealed, 900))
        .finish())
}

/// Only console and account paths are valid places to come back to (no open redirect).
fn safe_return(path: &str) -> &str {
    let ours = path.starts_with("/admin") || path.starts_with("/account");
    if ours && !path.starts_with("//") { path } else { "/account" }
}

/// `GET /admin/callback`: the console's redirect URI. Redeems the code in-process, with the same
/// bindings the token endpoint checks (client, redirect URI, PKCE, expiry, single use).
pub async fn callback(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, PageError> {
    let params = Params::parse(req.query_string().as_bytes());
    let get = |n: &str| params.get(n).ok().flatten().map(str::to_owned);
    let flow: Flow = unseal(&state, &req, "ladder_console_flow", FLOW_SEAL)
        .ok_or_else(|| PageError::bad_request("This sign-in has expired", "Open the console again."))?;
    if get("state").as_deref() != Some(flow.state.as_str()) {
        return Err(PageError::bad_request("This sign-in has expired", "Open the console again."));
    }
    if let Some(error) = get("error") {
        let message = match error.as_str() {
            "unmet_authentication_requirements" => {
                "The console needs a stronger sign-in than your account can give (set up a second factor first)."
            }
            _ => "Signing in to the console did not complete.",
        };
        return Err(PageError::forbidden("Could not sign in to the console", message));
    }
    let code = get("code").ok_or_else(|| PageError::bad_request("This sign-in has expired", "Open the console again."))?;
    let (now, redirect_uri) = (state.now(), format!("{}/admin/callback", state.issuer));
    let redeemed = state.write(move |conn| codes::redeem_code(conn, &secret_key(&code), now)).await?;
    let Redemption::Redeemed(code) = redeemed else {
        return Err(PageError::bad_request("This sign-in has expired", "Open the console again."));
    };
    let bound = code.client_id == CONSOLE_CLIENT_ID
        && code.redirect_uri == redirect_uri
        && code.expires_at > now
        && code.code_challenge.as_deref() == Some(s256(&flow.verifier).as_str());
    if !bound {
        return Err(PageError::bad_request("This sign-in has expired", "Open the console again."));
    }
    let user_id = code.user_id.clone();
    let user = state.lookup(move |conn| users::find_user(conn, &user_id)).await?;
    let for_console = safe_return(&flow.return_to).starts_with("/admin");
    if !user.is_some_and(|u| !u.disabled && (u.is_admin || !for_console)) {
        return Err(PageError::forbidden(
            "This account is not an administrator",
            "Ask an administrator to grant you access (ladder user grant-admin NAME).",
        ));
    }
    let session = ConsoleSession {
        user_id: code.user_id,
        sid: code.session_id,
        acr: code.acr,
        auth_time: code.auth_time,
        exp: now + state.settings.console.session_secs,
    };
    let sealed = seal(&state, SEAL, &session)?;
    let mut gone = cookie(&state, "ladder_console_flow", String::new(), 0);
    gone.set_max_age(CookieDuration::ZERO);
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, safe_return(&flow.return_to).to_owned()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .cookie(cookie(&state, "ladder_console", sealed, state.settings.console.session_secs))
        .cookie(gone)
        .finish())
}
