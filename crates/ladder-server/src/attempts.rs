//! Failed-attempt throttling for every guessable factor (passwords, TOTP codes, recovery codes):
//! counted per account and per client IP in the database, so locks survive restarts and hold
//! across nodes. Locks grow with each further failure.

use ladder_store::throttles::{self, ThrottlePolicy};
use ladder_store::{Conn, StoreError};

use crate::browser::ClientInfo;
use crate::errors::AppError;
use crate::state::AppState;

/// The two counters one attempt is charged to.
#[derive(Debug, Clone)]
pub struct AttemptKeys {
    pub account: String,
    pub ip: String,
}

impl AttemptKeys {
    /// `kind` separates factors: a TOTP lock does not lock the password and vice versa.
    pub fn new(kind: &str, account: &str, client: &ClientInfo) -> Self {
        AttemptKeys {
            account: format!("{kind}:user:{}", account.to_lowercase()),
            ip: format!("{kind}:ip:{}", client.ip.as_deref().unwrap_or("unknown")),
        }
    }
}

/// Seconds to wait before trying again, if locked.
pub async fn locked_for(state: &AppState, keys: &AttemptKeys) -> Result<Option<i64>, AppError> {
    let (keys, now) = (keys.clone(), state.now());
    state.lookup(move |conn| locked_for_in(conn, &keys, now)).await
}

/// `locked_for` inside a caller's round trip.
pub fn locked_for_in(conn: &mut Conn, keys: &AttemptKeys, now: i64) -> Result<Option<i64>, StoreError> {
    Ok(throttles::locked_for(conn, &keys.account, now)?.max(throttles::locked_for(conn, &keys.ip, now)?))
}

/// Counts a failure against both keys, inside the write transaction that audits it; a failure
/// that starts a lock is audited as a lockout.
pub fn record_failure(
    conn: &mut Conn,
    policies: &Policies,
    keys: &AttemptKeys,
    user_id: Option<&str>,
    info: &ClientInfo,
    now: i64,
) -> Result<(), StoreError> {
    for (key, policy) in [(&keys.account, &policies.account), (&keys.ip, &policies.ip)] {
        if let Some(secs) = throttles::record_failure(conn, key, policy, now)? {
            let subject = crate::audit::Subject { user_id, ..Default::default() };
            let detail = serde_json::json!({ "counter": key, "locked_for_secs": secs });
            crate::audit::record(conn, now, "lockout", "locked", subject, info, detail)?;
        }
    }
    Ok(())
}

/// A success clears the account's counter (the IP's keeps counting, against spraying).
pub fn record_success(conn: &mut Conn, keys: &AttemptKeys) -> Result<(), StoreError> {
    throttles::clear(conn, &keys.account)
}

#[derive(Debug, Clone, Copy)]
pub struct Policies {
    pub account: ThrottlePolicy,
    pub ip: ThrottlePolicy,
}

pub fn policies(state: &AppState) -> Policies {
    let l = &state.settings.login;
    let policy = |max_failures| ThrottlePolicy {
        max_failures,
        window: l.failure_window_secs,
        base_lock: l.lock_secs,
        max_lock: l.max_lock_secs,
    };
    Policies { account: policy(l.max_failures_per_user), ip: policy(l.max_failures_per_ip) }
}

pub fn human_wait(secs: i64) -> String {
    match secs {
        s if s <= 60 => format!("{s} seconds"),
        s => format!("{} minutes", (s + 59) / 60),
    }
}
