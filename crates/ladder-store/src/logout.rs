//! Back-channel logout deliveries: queued in the database so a slow or failing RP never blocks the
//! user, and retried with growing delays by whichever node gets to them.

use diesel::prelude::*;

use crate::db::native;
use crate::schema::logout_deliveries;
use crate::{Conn, StoreError, new_sequential_id};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = logout_deliveries)]
pub struct Delivery {
    pub id: String,
    pub client_id: String,
    pub uri: String,
    pub logout_token: String,
    pub attempts: i32,
    pub next_attempt_at: i64,
    pub delivered_at: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
}

pub fn enqueue(conn: &mut Conn, client_id: &str, uri: &str, logout_token: &str, now: i64) -> Result<(), StoreError> {
    native!(conn => diesel::insert_into(logout_deliveries::table)
        .values((
            logout_deliveries::id.eq(new_sequential_id()),
            logout_deliveries::client_id.eq(client_id),
            logout_deliveries::uri.eq(uri),
            logout_deliveries::logout_token.eq(logout_token),
            logout_deliveries::attempts.eq(0),
            logout_deliveries::next_attempt_at.eq(now),
            logout_deliveries::created_at.eq(now),
        ))
        .execute(conn))?;
    Ok(())
}

/// Undelivered deliveries due now, oldest first, at most `limit`, below `max_attempts`.
pub fn due(conn: &mut Conn, now: i64, max_attempts: i32, limit: i64) -> Result<Vec<Delivery>, StoreError> {
    Ok(native!(conn => logout_deliveries::table
        .filter(logout_deliveries::delivered_at.is_null())
        .filter(logout_deliveries::next_attempt_at.le(now))
        .filter(logout_deliveries::attempts.lt(max_attempts))
        .order(logout_deliveries::next_attempt_at.asc())
        .limit(limit)
        .select(Delivery::as_select())
        .load(conn))?)
}

/// Claims a due delivery for one attempt (so two nodes do not both send it); true when claimed.
pub fn claim(conn: &mut Conn, id: &str, attempts_seen: i32, retry_at: i64) -> Result<bool, StoreError> {
    Ok(native!(conn => diesel::update(
        logout_deliveries::table.find(id).filter(logout_deliveries::attempts.eq(attempts_seen)),
    )
    .set((logout_deliveries::attempts.eq(attempts_seen + 1), logout_deliveries::next_attempt_at.eq(retry_at)))
    .execute(conn))?
        == 1)
}

pub fn mark_delivered(conn: &mut Conn, id: &str, now: i64) -> Result<(), StoreError> {
    let delivered = logout_deliveries::delivered_at.eq(now);
    native!(conn => diesel::update(logout_deliveries::table.find(id)).set(delivered).execute(conn))?;
    Ok(())
}

pub fn mark_failed(conn: &mut Conn, id: &str, error: &str) -> Result<(), StoreError> {
    let failed = logout_deliveries::last_error.eq(error);
    native!(conn => diesel::update(logout_deliveries::table.find(id)).set(failed).execute(conn))?;
    Ok(())
}

pub fn list_for_client(conn: &mut Conn, client_id: &str) -> Result<Vec<Delivery>, StoreError> {
    Ok(native!(conn => logout_deliveries::table
        .filter(logout_deliveries::client_id.eq(client_id))
        .select(Delivery::as_select())
        .load(conn))?)
}
