//! The audit trail of security events (append-only).

use diesel::prelude::*;

use crate::schema::audit_events;
use crate::{Conn, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, serde::Serialize)]
#[diesel(table_name = audit_events)]
pub struct AuditEvent {
    pub id: String,
    pub at: i64,
    pub kind: String,
    pub outcome: String,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub client_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// JSON object.
    pub detail: String,
}

pub fn insert_event(conn: &mut Conn, event: &AuditEvent) -> Result<(), StoreError> {
    diesel::insert_into(audit_events::table).values(event).execute(conn)?;
    Ok(())
}

/// Newest first.
pub fn list_events(conn: &mut Conn, limit: i64) -> Result<Vec<AuditEvent>, StoreError> {
    Ok(audit_events::table
        .order((audit_events::at.desc(), audit_events::id.desc()))
        .limit(limit)
        .select(AuditEvent::as_select())
        .load(conn)?)
}
