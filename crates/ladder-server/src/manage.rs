//! Management operations shared by the CLI and the tests (and later the admin console):
//! input is validated here once, whoever calls.

use ladder_core::{AcrRequest, Factor, Levels, MaxAge, Plan, Prompt, Recency, Target, plan};
use ladder_store::clients::{self, Client, ClientSettings};
use ladder_store::{factors, sessions};
use ladder_store::users::{self, User};
use ladder_store::{Db, StoreError, keys, new_id};

use serde_json::json;

use crate::crypto::{ServerKey, random_token, sha256_hex};
use crate::errors::AppError;
use crate::signing::{self, Alg};

#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0} already exists")]
    Exists(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error(transparent)]
    App(#[from] AppError),
}

impl From<StoreError> for ManageError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => ManageError::Exists(what),
            other => ManageError::App(AppError::Store(other)),
        }
    }
}

pub struct NewUser {
    pub username: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub password: String,
    pub is_admin: bool,
}

fn validate_username(u: &str) -> Result<(), ManageError> {
    let ok = !u.is_empty()
        && u.chars().count() <= 64
        && u.chars().all(|c| !c.is_whitespace() && !c.is_control());
    if ok { Ok(()) } else { Err(ManageError::Invalid("a username is 1–64 characters without spaces".into())) }
}

pub fn add_user(db: &Db, new: NewUser, now: i64) -> Result<User, ManageError> {
    validate_username(&new.username)?;
    if new.password.chars().count() < 8 {
        return Err(ManageError::Invalid("a password needs at least 8 characters".into()));
    }
    if let Some(email) = &new.email
        && (!email.contains('@') || email.chars().any(char::is_whitespace))
    {
        return Err(ManageError::Invalid(format!("`{email}` is not an email address")));
    }
    let hash = ladder_core::password::hash_password(&new.password)
        .map_err(|e| ManageError::Invalid(e.to_string()))?;
    let user = User {
        id: new_id(),
        username: new.username,
        email: new.email,
        name: new.name,
        is_admin: new.is_admin,
        disabled: false,
        created_at: now,
        updated_at: now,
    };
    db.write(|conn| {
        users::insert_user(conn, &user)?;
        users::set_password(conn, &user.id, &hash, now)?;
        admin_event(conn, now, "user_created", Some(&user.id), None, json!({ "username": user.username, "admin": user.is_admin }))
    })?;
    Ok(user)
}

/// Disables the user and ends all their sessions.
pub fn disable_user(db: &Db, username: &str, now: i64) -> Result<(), ManageError> {
    let disabled = db.write(|conn| {
        let Some(user) = users::find_user_by_username(conn, username)? else { return Ok(false) };
        users::disable_user(conn, username, now)?;
        admin_event(conn, now, "user_disabled", Some(&user.id), None, json!({ "username": username }))?;
        Ok(true)
    })?;
    if disabled {
        Ok(())
    } else {
        Err(ManageError::NotFound(format!("user `{username}`")))
    }
}

/// Grants or revokes the admin role.
pub fn set_admin(db: &Db, username: &str, is_admin: bool, now: i64) -> Result<(), ManageError> {
    let done = db.write(|conn| {
        let Some(user) = users::find_user_by_username(conn, username)? else { return Ok(false) };
        users::set_admin(conn, &user.id, is_admin, now)?;
        let action = if is_admin { "admin_granted" } else { "admin_revoked" };
        admin_event(conn, now, action, Some(&user.id), None, json!({ "username": username }))?;
        Ok(true)
    })?;
    if done { Ok(()) } else { Err(ManageError::NotFound(format!("user `{username}`"))) }
}

pub struct NewClient {
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub public: bool,
    pub scopes: Vec<String>,
    /// Used when a request names no known level (space-separated, preference order).
    pub default_acr_values: Vec<String>,
    /// A level every token for this client must meet, whatever the request says.
    pub min_acr: Option<String>,
    /// Make the client's acr request (or default) essential: unmet ⇒ an error, never a lower acr.
    pub strict_acr: bool,
    /// Auth method, keys, grant types, logout URIs, audience. Public clients get method `none`.
    pub settings: ClientSettings,
}

impl NewClient {
    pub fn new(name: &str, redirect_uris: Vec<String>, public: bool, scopes: Vec<String>) -> Self {
        NewClient {
            name: name.into(),
            redirect_uris,
            public,
            scopes,
            default_acr_values: vec![],
            min_acr: None,
            strict_acr: false,
            settings: ClientSettings::default(),
        }
    }
}

const AUTH_METHODS: [&str; 4] = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"];
const GRANT_TYPES: [&str; 3] = ["authorization_code", "refresh_token", "client_credentials"];

/// Checks a client's protocol settings, filling in what follows from public/confidential.
fn validate_settings(public: bool, s: &mut ClientSettings) -> Result<(), ManageError> {
    let invalid = |m: String| Err(ManageError::Invalid(m));
    if public {
        s.token_endpoint_auth_method = "none".into();
    } else if s.token_endpoint_auth_method == "none" {
        return invalid("a confidential client cannot use token_endpoint_auth_method none".into());
    }
    if !AUTH_METHODS.contains(&s.token_endpoint_auth_method.as_str()) {
        return invalid(format!("unknown auth method `{}`; use one of {}", s.token_endpoint_auth_method, AUTH_METHODS.join(", ")));
    }
    if s.token_endpoint_auth_method == "private_key_jwt" {
        match (&s.jwks, &s.jwks_uri) {
            (None, None) => return invalid("private_key_jwt needs the client's keys (--jwks-file or --jwks-uri)".into()),
            (Some(j), _) if josekit::jwk::JwkSet::from_bytes(j.as_bytes()).is_err() => {
                return invalid("the client's JWKS is not a valid JWK set".into());
            }
            _ => {}
        }
    }
    if let Some(uri) = &s.jwks_uri {
        validate_backchannel_or_jwks_uri(uri, "jwks_uri")?;
    }
    for g in &s.grant_types {
        if !GRANT_TYPES.contains(&g.as_str()) {
            return invalid(format!("unknown grant type `{g}`; use one of {}", GRANT_TYPES.join(", ")));
        }
    }
    if public && s.grant_types.iter().any(|g| g == "client_credentials") {
        return invalid("a public client cannot use client_credentials".into());
    }
    for uri in &s.post_logout_redirect_uris {
        validate_redirect_uri(uri)?;
    }
    if let Some(uri) = &s.backchannel_logout_uri {
        validate_backchannel_or_jwks_uri(uri, "backchannel_logout_uri")?;
    }
    for (what, alg) in [("ID token", &s.id_token_signed_response_alg), ("access token", &s.access_token_signed_response_alg)] {
        if let Some(a) = alg
            && Alg::parse(a).is_none()
        {
            let known: Vec<&str> = Alg::ALL.iter().map(|a| a.as_str()).collect();
            return invalid(format!("unknown {what} algorithm `{a}`; use one of {}", known.join(", ")));
        }
    }
    Ok(())
}

/// Server-to-server URIs: https, or http on loopback (for local development and tests).
fn validate_backchannel_or_jwks_uri(raw: &str, what: &str) -> Result<(), ManageError> {
    let url = url::Url::parse(raw).map_err(|_| ManageError::Invalid(format!("{what} `{raw}` is not an absolute URL")))?;
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    if url.fragment().is_some() || !(url.scheme() == "https" || (url.scheme() == "http" && loopback)) {
        return Err(ManageError::Invalid(format!("{what} `{raw}` must be https (http only on loopback), without fragment")));
    }
    Ok(())
}

/// A redirect URI must be absolute, without fragment (RFC 6749 §3.1.2); plain http only on
/// loopback (RFC 8252 §7.3); private-use schemes (RFC 8252 §7.1) need a dot, as in
/// `com.example.app:/callback`.
pub fn validate_redirect_uri(raw: &str) -> Result<(), ManageError> {
    let invalid = |why: &str| ManageError::Invalid(format!("redirect URI `{raw}` {why}"));
    let url = url::Url::parse(raw).map_err(|_| invalid("is not an absolute URL"))?;
    if url.fragment().is_some() || raw.contains('#') {
        return Err(invalid("must not contain a fragment"));
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" => match url.host_str() {
            Some("localhost" | "127.0.0.1" | "[::1]") => Ok(()),
            _ => Err(invalid("must use https (plain http is allowed on loopback only)")),
        },
        s if s.contains('.') => Ok(()),
        _ => Err(invalid("must use https, loopback http, or a reverse-domain private scheme")),
    }
}

/// Registers a client; returns it and, for confidential clients, the secret (shown once).
pub fn add_client(db: &Db, levels: &Levels, new: NewClient, now: i64) -> Result<(Client, Option<String>), ManageError> {
    for acr in new.default_acr_values.iter().chain(&new.min_acr) {
        if levels.resolve(acr).is_none() {
            return Err(ManageError::Invalid(format!(
                "`{acr}` is not a configured level; known: {}",
                levels.acr_values_supported().join(", ")
            )));
        }
    }
    if new.name.trim().is_empty() {
        return Err(ManageError::Invalid("a client needs a name".into()));
    }
    if new.redirect_uris.is_empty() {
        return Err(ManageError::Invalid("a client needs at least one redirect URI".into()));
    }
    if new.redirect_uris.len() > 20 || new.settings.post_logout_redirect_uris.len() > 20 {
        return Err(ManageError::Invalid("a client may register at most 20 redirect URIs of each kind".into()));
    }
    for uri in &new.redirect_uris {
        validate_redirect_uri(uri)?;
    }
    let mut scopes = vec!["openid".to_owned()];
    for s in new.scopes.iter().flat_map(|s| s.split_whitespace()) {
        if !scopes.iter().any(|x| x == s) {
            scopes.push(s.to_owned());
        }
    }
    let mut settings = new.settings;
    validate_settings(new.public, &mut settings)?;
    // Clients that sign assertions with their own keys have no shared secret to leak.
    let secret = (!new.public && settings.token_endpoint_auth_method != "private_key_jwt").then(|| random_token(32));
    let client = Client {
        id: random_token(16),
        name: new.name.trim().to_owned(),
        secret_hash: secret.as_deref().map(sha256_hex),
        is_public: new.public,
        redirect_uris: new.redirect_uris,
        scopes,
        default_acr_values: (!new.default_acr_values.is_empty()).then(|| new.default_acr_values.join(" ")),
        min_acr: new.min_acr,
        strict_acr: new.strict_acr,
        settings,
        disabled: false,
        created_at: now,
        updated_at: now,
    };
    db.write(|conn| {
        clients::insert_client(conn, &client)?;
        admin_event(conn, now, "client_registered", None, Some(&client.id), json!({ "name": client.name, "redirect_uris": client.redirect_uris }))
    })?;
    Ok((client, secret))
}

pub fn remove_client(db: &Db, id: &str, now: i64) -> Result<(), ManageError> {
    let removed = db.write(|conn| {
        let removed = clients::delete_client(conn, id)?;
        if removed {
            admin_event(conn, now, "client_removed", None, Some(id), json!({}))?;
        }
        Ok(removed)
    })?;
    if removed {
        Ok(())
    } else {
        Err(ManageError::NotFound(format!("client `{id}`")))
    }
}

/// Makes a new active key for each algorithm (or just `only`); old keys keep verifying.
pub fn rotate_keys(db: &Db, server_key: &ServerKey, only: Option<Alg>, now: i64) -> Result<Vec<keys::SigningKey>, ManageError> {
    let algs: Vec<Alg> = only.map_or_else(|| Alg::ALL.to_vec(), |a| vec![a]);
    let mut created = Vec::new();
    for alg in algs {
        let key = db.write(|conn| {
            let key = signing::rotate(conn, alg, server_key, now).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            admin_event(conn, now, "key_rotated", None, None, json!({ "kid": key.kid, "alg": key.alg }))?;
            Ok(key)
        })?;
        created.push(key);
    }
    Ok(created)
}

/// Retires a published (non-active) key: it leaves the JWKS.
pub fn retire_key(db: &Db, kid: &str, now: i64) -> Result<(), ManageError> {
    let retired = db.write(|conn| {
        let retired = keys::retire_key(conn, kid, now)?;
        if retired {
            admin_event(conn, now, "key_retired", None, None, json!({ "kid": kid }))?;
        }
        Ok(retired)
    })?;
    if retired { Ok(()) } else { Err(ManageError::NotFound(format!("published (non-active) key `{kid}`"))) }
}

/// Every management change is audited, in the same transaction as the change.
fn admin_event(
    conn: &mut ladder_store::Conn,
    now: i64,
    action: &str,
    user_id: Option<&str>,
    client_id: Option<&str>,
    mut detail: serde_json::Value,
) -> Result<(), StoreError> {
    detail["action"] = json!(action);
    let subject = crate::audit::Subject { user_id, session_id: None, client_id };
    crate::audit::record(conn, now, "admin", "success", subject, &crate::browser::ClientInfo::default(), detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uri_rules() {
        for ok in ["https://rp.example/cb", "http://127.0.0.1:9000/cb", "http://localhost/cb", "com.example.app:/cb"] {
            assert!(validate_redirect_uri(ok).is_ok(), "{ok}");
        }
        for bad in ["http://rp.example/cb", "https://rp.example/cb#frag", "/relative", "javascript:alert(1)"] {
            assert!(validate_redirect_uri(bad).is_err(), "{bad}");
        }
    }
}

/// What `ladder policy explain` prints: the same evaluation the server runs for this request.
#[derive(Debug, serde::Serialize)]
pub struct Explanation {
    pub client_id: String,
    pub username: String,
    /// The session whose proofs were used (the user's latest live one), if any.
    pub session_id: Option<String>,
    pub proven: Vec<String>,
    pub enrolled: Vec<Factor>,
    pub target: Target,
    pub plan: Plan,
}

pub struct ExplainRequest {
    pub client_id: String,
    pub username: String,
    pub scopes: Vec<String>,
    pub acr_values: Vec<String>,
    pub essential: bool,
    pub max_age: Option<i64>,
    pub prompt_login: bool,
}

pub fn explain(db: &Db, policy: &crate::settings::Policy, idle_timeout: i64, req: ExplainRequest, now: i64) -> Result<Explanation, ManageError> {
    let (client, user, session, proofs, enrolled) = db.read(|conn| {
        let client = clients::find_client(conn, &req.client_id)?;
        let user = ladder_store::users::find_user_by_username(conn, &req.username)?;
        let Some(user) = user else { return Ok((client, None, None, vec![], vec![])) };
        let session = sessions::latest_live_for_user(conn, &user.id, now, idle_timeout)?;
        let proofs = match &session {
            Some(s) => sessions::proven_factors(conn, &s.id)?,
            None => vec![],
        };
        let enrolled = factors::enrolled(conn, &user.id)?;
        Ok((client, Some(user), session, proofs, enrolled))
    })?;
    let client = client.ok_or_else(|| ManageError::NotFound(format!("client `{}`", req.client_id)))?;
    let user = user.ok_or_else(|| ManageError::NotFound(format!("user `{}`", req.username)))?;
    let acr = AcrRequest::new(req.acr_values, req.essential);
    let mut scopes = vec!["openid".to_owned()];
    scopes.extend(req.scopes.into_iter().filter(|s| client.scopes.contains(s) && s != "openid"));
    let max_age = match req.max_age {
        Some(secs) => Some(MaxAge::from_secs(secs).ok_or_else(|| ManageError::Invalid("max-age must be ≥ 0".into()))?),
        None => None,
    };
    let target = crate::stepup::target(policy, &client, &acr, &scopes, &enrolled)
        .map_err(|e| ManageError::Invalid(e.to_string()))?;
    let recency = Recency::new(max_age, Prompt { login: req.prompt_login, ..Prompt::default() }, now);
    let plan = plan(&target, &proofs, &enrolled, &recency, now);
    Ok(Explanation {
        client_id: client.id,
        username: user.username,
        session_id: session.map(|s| s.id),
        proven: proofs.iter().map(|p| format!("{} ({}s ago)", p.factor, now - p.proven_at)).collect(),
        enrolled,
        target,
        plan,
    })
}
