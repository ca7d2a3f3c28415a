//! Management operations shared by the CLI and the tests (and later the admin console):
//! input is validated here once, whoever calls.

use ladder_store::clients::{self, Client};
use ladder_store::users::{self, User};
use ladder_store::{Db, StoreError, keys, new_id};

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
        users::set_password(conn, &user.id, &hash, now)
    })?;
    Ok(user)
}

/// Disables the user and ends all their sessions.
pub fn disable_user(db: &Db, username: &str, now: i64) -> Result<(), ManageError> {
    if db.write(|conn| users::disable_user(conn, username, now))? {
        Ok(())
    } else {
        Err(ManageError::NotFound(format!("user `{username}`")))
    }
}

pub struct NewClient {
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub public: bool,
    pub scopes: Vec<String>,
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
pub fn add_client(db: &Db, new: NewClient, now: i64) -> Result<(Client, Option<String>), ManageError> {
    if new.name.trim().is_empty() {
        return Err(ManageError::Invalid("a client needs a name".into()));
    }
    if new.redirect_uris.is_empty() {
        return Err(ManageError::Invalid("a client needs at least one redirect URI".into()));
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
    let secret = (!new.public).then(|| random_token(32));
    let client = Client {
        id: random_token(16),
        name: new.name.trim().to_owned(),
        secret_hash: secret.as_deref().map(sha256_hex),
        is_public: new.public,
        redirect_uris: new.redirect_uris,
        scopes,
        default_acr_values: None,
        min_acr: None,
        strict_acr: false,
        disabled: false,
        created_at: now,
        updated_at: now,
    };
    db.write(|conn| clients::insert_client(conn, &client))?;
    Ok((client, secret))
}

pub fn remove_client(db: &Db, id: &str) -> Result<(), ManageError> {
    if db.write(|conn| clients::delete_client(conn, id))? {
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
            signing::rotate(conn, alg, server_key, now).map_err(|e| StoreError::Corrupt(e.to_string()))
        })?;
        created.push(key);
    }
    Ok(created)
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
