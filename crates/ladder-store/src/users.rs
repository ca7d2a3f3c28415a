//! Users and their password credentials.

use diesel::prelude::*;

use crate::db::native;
use crate::schema::{password_credentials, sessions, users};
use crate::{Conn, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, serde::Serialize)]
#[diesel(table_name = users)]
pub struct User {
    pub id: String,
    pub username: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub is_admin: bool,
    pub disabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

#[cfg(test)]
impl User {
    /// An enabled user with nothing else set, for the store's unit tests.
    pub(crate) fn for_test(id: &str, username: &str) -> User {
        User {
            id: id.into(),
            username: username.into(),
            email: None,
            name: None,
            is_admin: false,
            disabled: false,
            created_at: 0,
            updated_at: 0,
        }
    }
}

pub fn insert_user(conn: &mut Conn, user: &User) -> Result<(), StoreError> {
    native!(conn => diesel::insert_into(users::table)
        .values(user)
        .execute(conn))
        .map_err(|e| StoreError::from_insert(e, &format!("user `{}`", user.username)))?;
    Ok(())
}

pub fn find_user_by_username(conn: &mut Conn, username: &str) -> Result<Option<User>, StoreError> {
    Ok(native!(conn => users::table
        .filter(users::username.eq(username))
        .select(User::as_select())
        .get_result(conn)
        .optional())?)
}

pub fn find_user(conn: &mut Conn, id: &str) -> Result<Option<User>, StoreError> {
    Ok(native!(conn => users::table.find(id).select(User::as_select()).get_result(conn).optional())?)
}

pub fn list_users(conn: &mut Conn) -> Result<Vec<User>, StoreError> {
    Ok(native!(conn => users::table.order(users::username.asc()).select(User::as_select()).load(conn))?)
}

/// Disables the user and ends every session they have; returns false when no such user.
pub fn disable_user(conn: &mut Conn, username: &str, now: i64) -> Result<bool, StoreError> {
    let Some(user) = find_user_by_username(conn, username)? else {
        return Ok(false);
    };
    native!(conn => diesel::update(users::table.find(&user.id))
        .set((users::disabled.eq(true), users::updated_at.eq(now)))
        .execute(conn))?;
    native!(conn => diesel::update(sessions::table.filter(sessions::user_id.eq(&user.id)).filter(sessions::ended_at.is_null()))
        .set(sessions::ended_at.eq(now))
        .execute(conn))?;
    Ok(true)
}

/// Sets (or replaces) the user's password hash.
pub fn set_password(conn: &mut Conn, user_id: &str, phc_hash: &str, now: i64) -> Result<(), StoreError> {
    let updated = native!(conn => diesel::update(password_credentials::table.find(user_id))
        .set((password_credentials::phc_hash.eq(phc_hash), password_credentials::updated_at.eq(now)))
        .execute(conn))?;
    if updated == 0 {
        native!(conn => diesel::insert_into(password_credentials::table)
            .values((
                password_credentials::user_id.eq(user_id),
                password_credentials::phc_hash.eq(phc_hash),
                password_credentials::created_at.eq(now),
                password_credentials::updated_at.eq(now),
            ))
            .execute(conn))?;
    }
    Ok(())
}

pub fn find_password_hash(conn: &mut Conn, user_id: &str) -> Result<Option<String>, StoreError> {
    Ok(native!(conn => password_credentials::table
        .find(user_id)
        .select(password_credentials::phc_hash)
        .get_result(conn)
        .optional())?)
}

pub fn count_users(conn: &mut Conn) -> Result<i64, StoreError> {
    Ok(native!(conn => users::table.count().get_result(conn))?)
}

/// A page of users whose username, email or name contains `query` (case-insensitive), by username.
pub fn search_users(conn: &mut Conn, query: &str, offset: i64, limit: i64) -> Result<Vec<User>, StoreError> {
    let pattern = format!("%{}%", query.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
    let lower = |c| diesel::dsl::sql::<diesel::sql_types::Text>(&format!("lower(coalesce({c}, ''))"));
    Ok(native!(conn => users::table
        .filter(
            lower("username")
                .like(pattern.clone())
                .escape('\\')
                .or(lower("email").like(pattern.clone()).escape('\\'))
                .or(lower("name").like(pattern).escape('\\')),
        )
        .order(users::username.asc())
        .offset(offset)
        .limit(limit)
        .select(User::as_select())
        .load(conn))?)
}

pub fn set_admin(conn: &mut Conn, user_id: &str, is_admin: bool, now: i64) -> Result<bool, StoreError> {
    Ok(native!(conn => diesel::update(users::table.find(user_id))
        .set((users::is_admin.eq(is_admin), users::updated_at.eq(now)))
        .execute(conn))?
        == 1)
}

/// Re-enables a disabled user (their old sessions stay ended).
pub fn enable_user(conn: &mut Conn, user_id: &str, now: i64) -> Result<bool, StoreError> {
    Ok(native!(conn => diesel::update(users::table.find(user_id))
        .set((users::disabled.eq(false), users::updated_at.eq(now)))
        .execute(conn))?
        == 1)
}
