//! Registered relying parties.

use diesel::prelude::*;

use crate::schema::clients;
use crate::{Conn, StoreError};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = clients)]
struct ClientRow {
    id: String,
    name: String,
    secret_hash: Option<String>,
    is_public: bool,
    redirect_uris: String,
    scopes: String,
    default_acr_values: Option<String>,
    min_acr: Option<String>,
    disabled: bool,
    created_at: i64,
    updated_at: i64,
    strict_acr: bool,
}

/// A client as the rest of Ladder sees it: lists parsed, secret only as its hash.
#[derive(Clone, PartialEq, Eq, serde::Serialize)]
pub struct Client {
    pub id: String,
    pub name: String,
    #[serde(skip)]
    pub secret_hash: Option<String>,
    pub is_public: bool,
    pub redirect_uris: Vec<String>,
    pub scopes: Vec<String>,
    pub default_acr_values: Option<String>,
    pub min_acr: Option<String>,
    /// The client's acr request (or default) is always essential.
    pub strict_acr: bool,
    pub disabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("id", &self.id).field("name", &self.name).finish_non_exhaustive()
    }
}

impl TryFrom<ClientRow> for Client {
    type Error = StoreError;
    fn try_from(r: ClientRow) -> Result<Self, StoreError> {
        let redirect_uris = serde_json::from_str(&r.redirect_uris)
            .map_err(|e| StoreError::Corrupt(format!("client {} redirect_uris: {e}", r.id)))?;
        Ok(Client {
            id: r.id,
            name: r.name,
            secret_hash: r.secret_hash,
            is_public: r.is_public,
            redirect_uris,
            scopes: r.scopes.split_whitespace().map(str::to_owned).collect(),
            default_acr_values: r.default_acr_values,
            min_acr: r.min_acr,
            strict_acr: r.strict_acr,
            disabled: r.disabled,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

impl From<&Client> for ClientRow {
    fn from(c: &Client) -> Self {
        ClientRow {
            id: c.id.clone(),
            name: c.name.clone(),
            secret_hash: c.secret_hash.clone(),
            is_public: c.is_public,
            redirect_uris: serde_json::to_string(&c.redirect_uris).unwrap_or_else(|_| "[]".into()),
            scopes: c.scopes.join(" "),
            default_acr_values: c.default_acr_values.clone(),
            min_acr: c.min_acr.clone(),
            disabled: c.disabled,
            created_at: c.created_at,
            updated_at: c.updated_at,
            strict_acr: c.strict_acr,
        }
    }
}

pub fn insert_client(conn: &mut Conn, client: &Client) -> Result<(), StoreError> {
    diesel::insert_into(clients::table)
        .values(ClientRow::from(client))
        .execute(conn)
        .map_err(|e| StoreError::from_insert(e, &format!("client `{}`", client.id)))?;
    Ok(())
}

pub fn find_client(conn: &mut Conn, id: &str) -> Result<Option<Client>, StoreError> {
    clients::table
        .find(id)
        .select(ClientRow::as_select())
        .first(conn)
        .optional()?
        .map(Client::try_from)
        .transpose()
}

pub fn list_clients(conn: &mut Conn) -> Result<Vec<Client>, StoreError> {
    clients::table
        .order(clients::name.asc())
        .select(ClientRow::as_select())
        .load(conn)?
        .into_iter()
        .map(Client::try_from)
        .collect()
}

/// Returns false when no such client.
pub fn delete_client(conn: &mut Conn, id: &str) -> Result<bool, StoreError> {
    Ok(diesel::delete(clients::table.find(id)).execute(conn)? > 0)
}
