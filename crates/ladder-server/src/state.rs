//! What every handler shares: settings, the database, the clock, keys and pre-serialized documents.

use std::sync::Arc;

use ladder_core::Clock;
use ladder_store::clients::{self, Client};
use ladder_store::{Conn, Db, StoreError};
use tokio::sync::Semaphore;

use crate::client_cache::ClientCache;
use crate::crypto::ServerKey;
use crate::errors::AppError;
use crate::settings::{Policy, Settings};
use crate::signing::KeyCache;
use crate::verified_tokens::VerifiedTokens;

pub struct AppState {
    pub settings: Settings,
    /// Levels and scope rules, validated once.
    pub policy: Policy,
    /// `settings.server.issuer`, normalised (no trailing slash).
    pub issuer: String,
    pub db: Db,
    pub clock: Arc<dyn Clock>,
    pub server_key: ServerKey,
    pub keys: KeyCache,
    pub clients: std::sync::Arc<ClientCache>,
    /// Access tokens whose signatures were already checked (introspection, userinfo).
    pub verified: VerifiedTokens,
    /// The discovery document, serialized once at start-up.
    pub discovery_json: String,
    /// Bounds concurrent password hashing (argon2 is CPU- and memory-heavy by design).
    pub hashing: Semaphore,
    pub cookies: CookieNames,
    /// Outbound HTTP (client JWKS, back-channel logout), with short timeouts.
    pub http: reqwest::Client,
    /// The WebAuthn relying party; None when the issuer has no domain (passkeys need one).
    pub webauthn: Option<webauthn_rs::Webauthn>,
    pub metrics: crate::metrics::Metrics,
}

/// `__Host-` cookies need Secure, which needs https; plain names are used on an http issuer.
#[derive(Debug, Clone)]
pub struct CookieNames {
    pub session: &'static str,
    pub browser: &'static str,
    pub device: &'static str,
    pub secure: bool,
}

impl CookieNames {
    pub fn for_issuer(https: bool) -> Self {
        if https {
            CookieNames {
                session: "__Host-ladder_session",
                browser: "__Host-ladder_browser",
                device: "__Host-ladder_device",
                secure: true,
            }
        } else {
            CookieNames { session: "ladder_session", browser: "ladder_browser", device: "ladder_device", secure: false }
        }
    }
}

impl AppState {
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// Runs a few lookups by key: on SQLite at once, on this worker (`Db::read_if_idle`: they
    /// cost less than the hop to a blocking thread and back); on PostgreSQL, whose reads cross the
    /// network, or when no SQLite connection is idle, as `read` does. Scans and lists use `read`.
    pub async fn lookup<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Conn) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, AppError> {
        match self.db.read_if_idle(f) {
            Ok(result) => result.map_err(AppError::from),
            Err(f) => self.read(f).await,
        }
    }

    /// Runs reads on the blocking pool so a slow query never stalls an async worker.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Conn) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, AppError> {
        let db = self.db.clone();
        actix_web::web::block(move || db.read(f))
            .await
            .map_err(|e| AppError::Blocking(e.to_string()))?
            .map_err(AppError::from)
    }

    /// Runs `f` in one write transaction off the async workers (`Db::write_async`: on SQLite, the
    /// writer thread that commits the transactions queued together; on PostgreSQL, the blocking pool).
    pub async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Conn) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, AppError> {
        self.db.write_async(f).await.map_err(AppError::from)
    }

    /// A registered client, from the cache when it was read in the last few seconds.
    pub async fn client(&self, id: &str) -> Result<Option<Client>, AppError> {
        self.client_unless_refused(id, |_| true).await
    }

    /// The cached client when `accepts` it; otherwise read again. A refusal must never rest on a
    /// copy that may predate a change made elsewhere (a secret rotated by the CLI, a redirect URI
    /// added or a client re-enabled on another node).
    pub async fn client_unless_refused(
        &self,
        id: &str,
        accepts: impl FnOnce(&Client) -> bool,
    ) -> Result<Option<Client>, AppError> {
        match self.clients.get(id, self.now()) {
            Some(c) if accepts(&c) => Ok(Some(c)),
            _ => self.fresh_client(id).await,
        }
    }

    /// A registered client read from the database now (and cached).
    pub async fn fresh_client(&self, id: &str) -> Result<Option<Client>, AppError> {
        let id = id.to_owned();
        let found = self.lookup(move |conn| clients::find_client(conn, &id)).await?;
        if let Some(c) = &found {
            self.clients.put(c, self.now());
        }
        Ok(found)
    }

    /// Verifies a password against a PHC hash on the blocking pool, at most N at once.
    pub async fn verify_password(&self, password: String, phc: String) -> Result<bool, AppError> {
        let _permit = self.hashing.acquire().await.map_err(|e| AppError::Blocking(e.to_string()))?;
        actix_web::web::block(move || ladder_core::password::verify_password(&password, &phc))
            .await
            .map_err(|e| AppError::Blocking(e.to_string()))
    }
}
