//! Registered relying parties.

use diesel::prelude::*;

use crate::db::native;
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
    settings: String,
}

/// The client settings kept as one JSON object (missing keys take their defaults).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ClientSettings {
    /// `client_secret_basic`, `client_secret_post`, `private_key_jwt` or `none`.
    pub token_endpoint_auth_method: String,
    /// The client's public keys (a JWK set, JSON) for `private_key_jwt`, or where to fetch them.
    pub jwks: Option<String>,
    pub jwks_uri: Option<String>,
    pub grant_types: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub backchannel_logout_uri: Option<String>,
    /// The `aud` of access tokens issued to it, when not Ladder's own userinfo.
    pub audience: Option<String>,
    /// Transaction values (by currency) above which the value-threshold risk signal fires.
    pub value_thresholds: std::collections::BTreeMap<String, f64>,
    /// JWS algorithm of its ID tokens (OIDC Dynamic Registration §2); unset means RS256.
    pub id_token_signed_response_alg: Option<String>,
    /// JWS algorithm of its access tokens; unset means ES256.
    pub access_token_signed_response_alg: Option<String>,
    /// Token lifetimes for this client, in seconds; absent ⇒ the global `[tokens]` setting.
    pub access_token_ttl_secs: Option<i64>,
    pub id_token_ttl_secs: Option<i64>,
    pub refresh_token_ttl_secs: Option<i64>,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            token_endpoint_auth_method: "client_secret_basic".into(),
            jwks: None,
            jwks_uri: None,
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            post_logout_redirect_uris: vec![],
            backchannel_logout_uri: None,
            audience: None,
            value_thresholds: Default::default(),
            id_token_signed_response_alg: None,
            access_token_signed_response_alg: None,
            access_token_ttl_secs: None,
            id_token_ttl_secs: None,
            refresh_token_ttl_secs: None,
        }
    }
}

/// A client as the rest of Ladder sees it: lists parsed, secret only as its hash.
#[derive(Clone, PartialEq, serde::Serialize)]
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
    pub settings: ClientSettings,
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
        let settings = serde_json::from_str(&r.settings)
            .map_err(|e| StoreError::Corrupt(format!("client {} settings: {e}", r.id)))?;
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
            settings,
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
            settings: serde_json::to_string(&c.settings).unwrap_or_else(|_| "{}".into()),
        }
    }
}

pub fn insert_client(conn: &mut Conn, client: &Client) -> Result<(), StoreError> {
    native!(conn => diesel::insert_into(clients::table)
        .values(ClientRow::from(client))
        .execute(conn))
        .map_err(|e| StoreError::from_insert(e, &format!("client `{}`", client.id)))?;
    Ok(())
}

pub fn find_client(conn: &mut Conn, id: &str) -> Result<Option<Client>, StoreError> {
    native!(conn => clients::table
        .find(id)
        .select(ClientRow::as_select())
        .get_result(conn)
        .optional())?
        .map(Client::try_from)
        .transpose()
}

pub fn list_clients(conn: &mut Conn) -> Result<Vec<Client>, StoreError> {
    native!(conn => clients::table
        .order(clients::name.asc())
        .select(ClientRow::as_select())
        .load(conn))?
        .into_iter()
        .map(Client::try_from)
        .collect()
}

/// Returns false when no such client.
pub fn delete_client(conn: &mut Conn, id: &str) -> Result<bool, StoreError> {
    Ok(native!(conn => diesel::delete(clients::table.find(id)).execute(conn))? > 0)
}

/// Remembers a client assertion's `jti` until it expires; false when it was already seen (replay).
pub fn remember_assertion(conn: &mut Conn, client_id: &str, jti: &str, expires_at: i64, now: i64) -> Result<bool, StoreError> {
    use crate::schema::client_assertions;
    native!(conn => diesel::delete(client_assertions::table.filter(client_assertions::expires_at.lt(now))).execute(conn))?;
    let inserted = native!(conn => diesel::insert_into(client_assertions::table)
        .values((
            client_assertions::client_id.eq(client_id),
            client_assertions::jti.eq(jti),
            client_assertions::expires_at.eq(expires_at),
        ))
        .execute(conn));
    match inserted {
        Ok(_) => Ok(true),
        Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Clients with a back-channel logout URI that hold a live grant from this session.
pub fn backchannel_clients_for_session(conn: &mut Conn, session_id: &str) -> Result<Vec<Client>, StoreError> {
    use crate::schema::grants;
    let ids: Vec<String> = native!(conn => grants::table
        .filter(grants::session_id.eq(session_id))
        .select(grants::client_id)
        .distinct()
        .load(conn))?;
    let mut out = Vec::new();
    for id in ids {
        if let Some(c) = find_client(conn, &id)?.filter(|c| c.settings.backchannel_logout_uri.is_some()) {
            out.push(c);
        }
    }
    Ok(out)
}

/// Replaces the stored client with `client` (same id).
pub fn update_client(conn: &mut Conn, client: &Client) -> Result<bool, StoreError> {
    let row = ClientRow::from(client);
    Ok(native!(conn => diesel::update(clients::table.find(&client.id))
        .set((
            clients::name.eq(row.name),
            clients::secret_hash.eq(row.secret_hash),
            clients::is_public.eq(row.is_public),
            clients::redirect_uris.eq(row.redirect_uris),
            clients::scopes.eq(row.scopes),
            clients::default_acr_values.eq(row.default_acr_values),
            clients::min_acr.eq(row.min_acr),
            clients::disabled.eq(row.disabled),
            clients::updated_at.eq(row.updated_at),
            clients::strict_acr.eq(row.strict_acr),
            clients::settings.eq(row.settings),
        ))
        .execute(conn))?
        == 1)
}
