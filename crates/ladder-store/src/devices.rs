//! Devices a user has signed in from, known by a long-lived cookie (stored hashed).

use diesel::prelude::*;

use crate::db::native;
use crate::prepared::prepared;
use crate::schema::devices;
use crate::{Conn, StoreError, new_sequential_id};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = devices)]
pub struct Device {
    pub id: String,
    pub user_id: String,
    #[serde(skip)]
    pub token_hash: String,
    pub user_agent: Option<String>,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub forgotten_at: Option<i64>,
}

pub fn insert(conn: &mut Conn, user_id: &str, token_hash: &str, user_agent: Option<&str>, now: i64) -> Result<(), StoreError> {
    native!(conn => diesel::insert_into(devices::table)
        .values((
            devices::id.eq(new_sequential_id()),
            devices::user_id.eq(user_id),
            devices::token_hash.eq(token_hash),
            devices::user_agent.eq(user_agent),
            devices::created_at.eq(now),
            devices::last_seen_at.eq(now),
        ))
        .execute(conn))?;
    Ok(())
}

/// The user's remembered (not forgotten) device behind this cookie, if any.
pub fn find_known(conn: &mut Conn, user_id: &str, token_hash: &str) -> Result<Option<Device>, StoreError> {
    Ok(native!(conn => devices::table
        .filter(devices::token_hash.eq(token_hash))
        .filter(devices::user_id.eq(user_id))
        .filter(devices::forgotten_at.is_null())
        .select(Device::as_select())
        .get_result(conn)
        .optional())?)
}

pub fn touch(conn: &mut Conn, id: &str, now: i64) -> Result<(), StoreError> {
    struct Touch;
    // Read back (`RETURNING`) so that it stays prepared (`prepared.rs`).
    let touch = diesel::update(devices::table.find(id)).set(devices::last_seen_at.eq(now)).returning(devices::id);
    native!(conn => prepared::<Touch, _>(touch).get_result::<String>(conn).optional())?;
    Ok(())
}

pub fn list_for_user(conn: &mut Conn, user_id: &str) -> Result<Vec<Device>, StoreError> {
    Ok(native!(conn => devices::table
        .filter(devices::user_id.eq(user_id))
        .filter(devices::forgotten_at.is_null())
        .order(devices::last_seen_at.desc())
        .select(Device::as_select())
        .load(conn))?)
}

/// Forgets one of the user's devices: it counts as new again. False when it is not theirs.
pub fn forget(conn: &mut Conn, user_id: &str, id: &str, now: i64) -> Result<bool, StoreError> {
    Ok(native!(conn => diesel::update(devices::table.find(id).filter(devices::user_id.eq(user_id)))
        .set(devices::forgotten_at.eq(now))
        .execute(conn))?
        == 1)
}
