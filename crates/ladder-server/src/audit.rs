//! Writing security events. Callers write them inside the transaction of the change they record.

use ladder_store::audit::{self, NewEvent};
use ladder_store::grants::Grant;
use ladder_store::{Conn, StoreError, new_sequential_id};
use serde_json::{Value, json};

use crate::browser::ClientInfo;

/// Who and what an event is about.
#[derive(Debug, Default, Clone)]
pub struct Subject<'a> {
    pub user_id: Option<&'a str>,
    pub session_id: Option<&'a str>,
    pub client_id: Option<&'a str>,
}

pub fn record(
    conn: &mut Conn,
    now: i64,
    kind: &str,
    outcome: &str,
    subject: Subject<'_>,
    client: &ClientInfo,
    detail: Value,
) -> Result<(), StoreError> {
    audit::insert_event(
        conn,
        &NewEvent {
            id: new_sequential_id(),
            at: now,
            kind: kind.into(),
            outcome: outcome.into(),
            user_id: subject.user_id.map(str::to_owned),
            session_id: subject.session_id.map(str::to_owned),
            client_id: subject.client_id.map(str::to_owned),
            ip: client.ip.clone(),
            user_agent: client.user_agent.clone(),
            detail: detail.to_string(),
        },
    )
}

/// A token family (grant) revoked as a whole, and why: code replay, refresh-token reuse, or the
/// client's own revocation request.
pub fn grant_revoked(conn: &mut Conn, now: i64, grant: &Grant, client: &ClientInfo, reason: &str) -> Result<(), StoreError> {
    record(
        conn,
        now,
        "token",
        "revoked",
        Subject {
            user_id: grant.user_id.as_deref(),
            session_id: grant.session_id.as_deref(),
            client_id: Some(&grant.client_id),
        },
        client,
        json!({ "grant": grant.id, "reason": reason }),
    )
}
