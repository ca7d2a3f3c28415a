//! Pending authorization requests while the user is on Ladder's pages.

use diesel::prelude::*;

use crate::db::native;
use crate::schema::interactions;
use crate::{Conn, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = interactions)]
pub struct Interaction {
    pub id: String,
    pub browser_hash: String,
    pub client_id: String,
    pub request: String,
    pub created_at: i64,
    pub expires_at: i64,
}

pub fn insert_interaction(conn: &mut Conn, i: &Interaction) -> Result<(), StoreError> {
    native!(conn => diesel::insert_into(interactions::table).values(i).execute(conn))?;
    Ok(())
}

/// The interaction if it exists and has not expired.
pub fn find_interaction(conn: &mut Conn, id: &str, now: i64) -> Result<Option<Interaction>, StoreError> {
    Ok(native!(conn => interactions::table
        .find(id)
        .filter(interactions::expires_at.gt(now))
        .select(Interaction::as_select())
        .get_result(conn)
        .optional())?)
}

/// Removes the interaction; true when this call removed it (so it completes once).
pub fn delete_interaction(conn: &mut Conn, id: &str) -> Result<bool, StoreError> {
    Ok(native!(conn => diesel::delete(interactions::table.find(id)).execute(conn))? > 0)
}
