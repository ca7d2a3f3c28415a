//! Management operations shared by the CLI and the tests (and later the admin console):
//! input is validated here once, whoever calls.

use ladder_core::{AcrRequest, Factor, Levels, MaxAge, Plan, Prompt, Recency, Target, plan};
use ladder_store::clients::{self, Client, ClientSettings};
use ladder_store::{factors, sessions};
use ladder_store::users::{self, User};
use ladder_store::{Db, StoreError, keys, new_id};

use serde_json::json;

use crate::client_rules::{self, Invalid};
use crate::crypto::{ServerKey, new_client_secret, random_identifier, sha256_hex};
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

impl From<Invalid> for ManageError {
    fn from(e: Invalid) -> Self {
        ManageError::Invalid(e.0)
    }
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

/// Registers a client; returns it and, for confidential clients, the secret (shown once).
pub fn add_client(
    db: &Db,
    levels: &Levels,
    new: NewClient,
    now: i64,
) -> Result<(Client, Option<String>), ManageError> {
    let mut client = Client {
        id: random_identifier(16),
        name: new.name,
        secret_hash: None,
        is_public: new.public,
        redirect_uris: new.redirect_uris,
        scopes: new.scopes,
        default_acr_values: (!new.default_acr_values.is_empty())
            .then(|| new.default_acr_values.join(" ")),
        min_acr: new.min_acr,
        strict_acr: new.strict_acr,
        settings: new.settings,
        disabled: false,
        created_at: now,
        updated_at: now,
    };
    client_rules::check(levels, &mut client)?;
    let secret = needs_secret(&client).then(new_client_secret);
    client.secret_hash = secret.as_deref().map(sha256_hex);
    db.write(|conn| {
        clients::insert_client(conn, &client)?;
        admin_event(
            conn,
            now,
            "client_registered",
            None,
            Some(&client.id),
            json!({ "name": client.name, "redirect_uris": client.redirect_uris }),
        )
    })?;
    Ok((client, secret))
}

/// Clients that sign assertions with their own keys have no shared secret to leak; public ones
/// have none at all.
pub fn needs_secret(client: &Client) -> bool {
    !client.is_public && client.settings.token_endpoint_auth_method != "private_key_jwt"
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
