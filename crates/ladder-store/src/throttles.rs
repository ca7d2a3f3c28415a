//! Failed-attempt counters for guessable secrets. Stored in the database so lockouts survive a
//! restart and are shared by every node.

use diesel::prelude::*;

use crate::db::native;
use crate::schema::throttles;
use crate::{Conn, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// The failure within `window` seconds that locks: the 5th, with 5.
    pub max_failures: i32,
    pub window: i64,
    /// First lock length; doubles with each further failure while locked out.
    pub base_lock: i64,
    pub max_lock: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = throttles)]
struct Row {
    failures: i32,
    window_start: i64,
    locked_until: i64,
}

/// Seconds until `key` may try again, or None when it may try now.
pub fn locked_for(conn: &mut Conn, key: &str, now: i64) -> Result<Option<i64>, StoreError> {
    let row: Option<Row> =
        native!(conn => throttles::table.find(key).select(Row::as_select()).get_result(conn).optional())?;
    Ok(row.and_then(|r| (r.locked_until > now).then_some(r.locked_until - now)))
}

/// Counts one failure; returns the lock (in seconds) it caused, if any. Call in a write transaction.
pub fn record_failure(
    conn: &mut Conn,
    key: &str,
    policy: &ThrottlePolicy,
    now: i64,
) -> Result<Option<i64>, StoreError> {
    let row: Option<Row> =
        native!(conn => throttles::table.find(key).select(Row::as_select()).get_result(conn).optional())?;
    let (failures, window_start) = match row {
        Some(r) if now - r.window_start < policy.window || r.locked_until > now => (r.failures + 1, r.window_start),
        _ => (1, now),
    };
    let over = failures - policy.max_failures + 1;
    let lock = (over > 0).then(|| {
        let doublings = (over - 1).min(20) as u32;
        policy.base_lock.saturating_mul(1 << doublings).min(policy.max_lock)
    });
    let locked_until = lock.map_or(0, |l| now + l);
    let values = (
        throttles::failures.eq(failures),
        throttles::window_start.eq(window_start),
        throttles::locked_until.eq(locked_until),
    );
    if row.is_some() {
        native!(conn => diesel::update(throttles::table.find(key)).set(values).execute(conn))?;
    } else {
        native!(conn => diesel::insert_into(throttles::table).values((throttles::key.eq(key), values)).execute(conn))?;
    }
    Ok(lock)
}

pub fn clear(conn: &mut Conn, key: &str) -> Result<(), StoreError> {
    native!(conn => diesel::delete(throttles::table.find(key)).execute(conn))?;
    Ok(())
}

/// Failures counted for `key` in a window that started after `since` (0 when none).
pub fn recent_failures(conn: &mut Conn, key: &str, since: i64) -> Result<u32, StoreError> {
    let row: Option<Row> = native!(conn => throttles::table.find(key).select(Row::as_select()).get_result(conn).optional())?;
    Ok(row.filter(|r| r.window_start >= since || r.locked_until > since).map_or(0, |r| r.failures.max(0) as u32))
}
