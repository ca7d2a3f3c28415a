//! OpenID Connect Back-Channel Logout 1.0: when a session ends, each client that received tokens
//! from it and registered a `backchannel_logout_uri` is sent a signed logout token. Deliveries are
//! queued in the database and sent by a background task with growing delays, so a slow or broken
//! client never holds up the user, and any node can finish what another started.

use actix_web::web;
use ladder_store::clients::Client;
use ladder_store::logout;
use serde_json::{Map, json};

use crate::crypto::random_token;
use crate::errors::AppError;
use crate::signing::{Alg, KeySet};
use crate::state::AppState;

const MAX_ATTEMPTS: i32 = 6;
const BATCH: i64 = 20;

/// The logout token for one client (§2.4): no nonce, a `sid` and/or `sub`, the logout event.
pub fn logout_token(state: &AppState, keys: &KeySet, client: &Client, sub: &str, sid: &str, now: i64) -> Result<String, AppError> {
    let mut c = Map::new();
    c.insert("iss".into(), json!(state.issuer));
    c.insert("aud".into(), json!(client.id));
    c.insert("iat".into(), json!(now));
    c.insert("exp".into(), json!(now + 120));
    c.insert("jti".into(), json!(random_token(16)));
    c.insert("sub".into(), json!(sub));
    c.insert("sid".into(), json!(sid));
    c.insert("events".into(), json!({ "http://schemas.openid.net/event/backchannel-logout": {} }));
    keys.sign(Alg::RS256, "logout+jwt", c)
}

/// Seconds before attempt `n + 1`: 5 s, 10 s, 20 s … capped at ten minutes.
fn backoff(attempts: i32) -> i64 {
    (5i64 << attempts.clamp(0, 7)).min(600)
}

/// Sends every delivery that is due; each is claimed first so two nodes never both send it.
pub async fn deliver_due(state: &AppState) -> Result<(), AppError> {
    let now = state.now();
    let due = state.read(move |conn| logout::due(conn, now, MAX_ATTEMPTS, BATCH)).await?;
    for d in due {
        let (id, attempts, retry_at) = (d.id.clone(), d.attempts, now + backoff(d.attempts));
        if !state.write(move |conn| logout::claim(conn, &id, attempts, retry_at)).await? {
            continue;
        }
        let sent = state
            .http
            .post(&d.uri)
            .header("cache-control", "no-store")
            .form(&[("logout_token", d.logout_token.as_str())])
            .send()
            .await;
        let id = d.id.clone();
        match sent {
            Ok(resp) if resp.status().is_success() => {
                state.write(move |conn| logout::mark_delivered(conn, &id, now)).await?;
            }
            Ok(resp) => {
                let error = format!("HTTP {}", resp.status());
                tracing::warn!(client_id = %d.client_id, %error, "back-channel logout refused; will retry");
                state.write(move |conn| logout::mark_failed(conn, &id, &error)).await?;
            }
            Err(e) => {
                let error = e.to_string();
                tracing::warn!(client_id = %d.client_id, %error, "back-channel logout failed; will retry");
                state.write(move |conn| logout::mark_failed(conn, &id, &error)).await?;
            }
        }
    }
    Ok(())
}

/// Tries the queue now rather than at the next tick (a logout just queued something).
pub fn deliver_soon(state: &web::Data<AppState>) {
    let state = state.clone();
    tokio::spawn(async move {
        if let Err(e) = deliver_due(&state).await {
            tracing::warn!(error = %e, "back-channel logout delivery");
        }
    });
}

/// The background sender: checks the queue every second for as long as the server runs.
pub fn spawn_worker(state: web::Data<AppState>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            if let Err(e) = deliver_due(&state).await {
                tracing::warn!(error = %e, "back-channel logout worker");
            }
        }
    });
}
