//! The token endpoint: RFC 6749 §3.2, §4.1.3–4.1.4 (authorization_code), §6 (refresh_token, rotated
//! on every use per RFC 9700 §4.14), §4.4 (client_credentials); PKCE (RFC 7636 §4.5–4.6); OIDC Core
//! §3.1.3 (ID token); RFC 9068 (JWT access tokens). Codes are single-use: consumed atomically; a
//! replayed code, or a reused refresh token, revokes every token of its grant.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use ladder_store::clients::Client;
use ladder_store::codes::{self, AuthorizationCode, Redemption};
use ladder_store::grants::{self, Grant};
use ladder_store::{Conn, StoreError, new_sequential_id, users};

use crate::audit;
use crate::browser::ClientInfo;
use crate::client_auth;
use crate::crypto::{constant_time_eq, s256, secret_key};
use crate::errors::OAuthError;
use crate::params::Params;
use crate::state::AppState;
use crate::tokens::{self, Lifetimes, Minted};

#[tracing::instrument(name = "token", level = "debug", skip_all)]
pub async fn token(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> Result<HttpResponse, OAuthError> {
    let params = form_params(&req, &body)?;
    let client = client_auth::authenticate(&state, &req, &params).await?;
    let grant_type = params.get("grant_type").ok().flatten();
    if let Some(g) = grant_type
        && matches!(g, "authorization_code" | "refresh_token" | "client_credentials")
        && !client.settings.grant_types.iter().any(|t| t == g)
    {
        return Err(OAuthError::new("unauthorized_client", format!("This client may not use the {g} grant.")));
    }
    let info = ClientInfo::from_request(&req);
    // The audience is settled before any code or refresh token is spent.
    let aud = tokens::audience(&state, &client, params.get("resource").ok().flatten())?;
    match grant_type {
        Some("authorization_code") => authorization_code(&state, &client, &params, &info, aud).await,
        Some("refresh_token") => refresh(&state, &client, &params, &info, aud).await,
        Some("client_credentials") => client_credentials(&state, &client, &params, aud).await,
        Some(_) => Err(OAuthError::new("unsupported_grant_type", "This grant type is not supported.")),
        None => Err(OAuthError::invalid_request("The grant_type parameter is missing.")),
    }
}

/// A form-encoded body with each parameter at most once (RFC 6749 §3.2).
pub fn form_params(req: &HttpRequest, body: &[u8]) -> Result<Params, OAuthError> {
    let form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return Err(OAuthError::invalid_request("The request body must be form-encoded."));
    }
    let params = Params::parse(body);
    if let Some(name) = params.first_duplicate() {
        return Err(OAuthError::invalid_request(format!("The `{name}` parameter is repeated.")));
    }
    Ok(params)
}

/// A parameter the request cannot do without.
pub fn required<'a>(params: &'a Params, name: &str) -> Result<&'a str, OAuthError> {
    params
        .get(name)
        .ok()
        .flatten()
        .ok_or_else(|| OAuthError::invalid_request(format!("The {name} parameter is missing.")))
}

async fn authorization_code(
    state: &AppState,
    client: &Client,
    params: &Params,
    info: &ClientInfo,
    aud: String,
) -> Result<HttpResponse, OAuthError> {
    let code = required(params, "code")?;
    let redirect_uri = params.get("redirect_uri").ok().flatten();
    let verifier = params.get("code_verifier").ok().flatten();
    if let Some(v) = verifier {
        // RFC 7636 §4.1: 43–128 characters of the unreserved set.
        let valid = (43..=128).contains(&v.len())
            && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
        if !valid {
            return Err(OAuthError::invalid_request("The code_verifier is malformed."));
        }
    }

    let (hash, now) = (secret_key(code), state.now());
    let with_refresh = client.settings.grant_types.iter().any(|g| g == "refresh_token");
    let minter = Minter::new(state, client, aud, with_refresh).await;
    let (h, bound) = (hash.clone(), client.clone());
    let (redirect_uri, verifier) = (redirect_uri.map(str::to_owned), verifier.map(str::to_owned));
    // Redeeming, checking, signing and recording in one transaction: the code is spent whatever
    // the outcome, and a successful exchange costs one commit.
    let exchange = state
        .write(move |conn| {
            let code = match codes::redeem_code(conn, &h, now)? {
                Redemption::Redeemed(c) => c,
                Redemption::Replayed(c) => return Ok(Exchange::Replayed(Box::new(c))),
                Redemption::Unknown => return Ok(Exchange::Refused(OAuthError::invalid_grant("The authorization code is invalid."))),
            };
            if let Err(e) = check_code(&code, &bound, redirect_uri.as_deref(), verifier.as_deref(), now) {
                return Ok(Exchange::Refused(e));
            }
            if users::find_user(conn, &code.user_id)?.is_none_or(|u| u.disabled) {
                return Ok(Exchange::Refused(OAuthError::invalid_grant("The user can no longer sign in.")));
            }
            let grant = Grant {
                id: new_sequential_id(),
                client_id: bound.id.clone(),
                user_id: Some(code.user_id.clone()),
                session_id: Some(code.session_id.clone()),
                code_hash: Some(h),
                scope: code.scope.clone(),
                acr: Some(code.acr.clone()),
                amr: code.amr.clone(),
                auth_time: Some(code.auth_time),
                acr_expires_at: code.acr_expires_at,
                created_at: now,
                revoked_at: None,
                revoked_reason: None,
                access_expires_at: None,
            };
            let minted = match minter.mint(&grant, Family::New, code.nonce.as_deref(), now) {
                Ok(m) => m,
                Err(e) => return Ok(Exchange::Refused(e)),
            };
            let refresh = minter.record(conn, &grant, &minted, Family::New, now)?;
            Ok(Exchange::Issued { minted, refresh, scope: grant.scope })
        })
        .await?;
    match exchange {
        Exchange::Issued { minted, refresh, scope } => Ok(respond(state, &minted, refresh.as_deref(), &scope, now)),
        Exchange::Replayed(c) => {
            revoke_replayed(state, &c, &hash, info).await?;
            Err(OAuthError::invalid_grant("The authorization code was already used."))
        }
        Exchange::Refused(e) => Err(e),
    }
}

/// How a code exchange ended inside its transaction.
enum Exchange {
    Issued { minted: Minted, refresh: Option<String>, scope: String },
    Replayed(Box<AuthorizationCode>),
    Refused(OAuthError),
}

/// How the tokens being issued relate to the grant rows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    /// A new grant (a code redeemed): its row is written with the tokens.
    New,
    /// A refresh of a grant already stored.
    Existing,
    /// No family to revoke as a whole (client_credentials: one access token, no refresh, no user).
    /// Nothing is written: the token speaks for itself, and gets a row only if it is revoked
    /// (`grants::revoke_access_token`), as a grant's access tokens do.
    None,
}

/// What minting needs, settled before any transaction.
struct Minter {
    issuer: String,
    keys: std::sync::Arc<crate::signing::KeySet>,
    ttl: Lifetimes,
    access_alg: crate::signing::Alg,
    id_alg: crate::signing::Alg,
    aud: String,
    with_refresh: bool,
}

impl Minter {
    async fn new(state: &AppState, client: &Client, aud: String, with_refresh: bool) -> Self {
        Minter {
            issuer: state.issuer.clone(),
            keys: state.keys.get().await,
            ttl: Lifetimes::for_client(&state.settings.tokens, &client.settings),
            access_alg: tokens::access_token_alg(client),
            id_alg: tokens::id_token_alg(client),
            aud,
            with_refresh,
        }
    }

    /// Signs the grant's tokens (no database work).
    fn mint(&self, grant: &Grant, family: Family, nonce: Option<&str>, now: i64) -> Result<Minted, OAuthError> {
        let exp = tokens::access_expiry(self.ttl.access, grant, now).ok_or_else(tokens::lapsed)?;
        let (keys, stored) = (&self.keys, family != Family::None);
        let (access_token, jti) =
            tokens::mint_access_token(&self.issuer, keys, self.access_alg, grant, stored, &grant.scope, &self.aud, exp, now)?;
        let id_token = tokens::mint_id_token(&self.issuer, &self.keys, self.id_alg, grant, nonce, self.ttl.id, now)?;
        let access_kid = self.keys.active_kid(self.access_alg).cloned().unwrap_or_else(|| "".into());
        Ok(Minted { access_token, access_kid, jti, access_expires_at: exp, id_token })
    }

    /// Writes the rows of what `mint` signed for a grant; returns the new refresh token, if any.
    /// The access token has no row: it names the grant, which is kept as long as the token lives.
    fn record(&self, conn: &mut Conn, grant: &Grant, minted: &Minted, family: Family, now: i64) -> Result<Option<String>, StoreError> {
        debug_assert!(family != Family::None, "a client's own token is not recorded");
        let access_expires_at = minted.access_expires_at;
        if family == Family::New {
            grants::insert_grant(conn, &Grant { access_expires_at: Some(access_expires_at), ..grant.clone() })?;
        } else {
            grants::extend_access(conn, &grant.id, access_expires_at)?;
        }
        self.with_refresh.then(|| tokens::new_refresh_token(conn, &grant.id, self.ttl.refresh, now)).transpose()
    }
}

/// Mints the tokens of a grant already settled, and records them for a refreshed grant (a
/// client's own token is not recorded).
async fn issue(state: &AppState, minter: Minter, grant: Grant, family: Family, now: i64) -> Result<HttpResponse, OAuthError> {
    let minted = minter.mint(&grant, family, None, now)?;
    if family == Family::None {
        return Ok(respond(state, &minted, None, &grant.scope, now));
    }
    let (refresh, minted, scope) = state
        .write(move |conn| Ok((minter.record(conn, &grant, &minted, family, now)?, minted, grant.scope)))
        .await?;
    Ok(respond(state, &minted, refresh.as_deref(), &scope, now))
}

/// The token response; the access token is remembered as verified (Ladder signed it), so its
/// first use at userinfo or introspection skips the signature check.
fn respond(state: &AppState, minted: &Minted, refresh: Option<&str>, scope: &str, now: i64) -> HttpResponse {
    state.verified.remember(&minted.access_token, &minted.access_kid, minted.access_expires_at, now);
    tokens::response(minted, refresh, scope, now)
}

/// RFC 6749 §4.1.2 / RFC 9700 §4.5: a replayed code revokes what was issued from it.
async fn revoke_replayed(state: &AppState, code: &AuthorizationCode, hash: &str, info: &ClientInfo) -> Result<(), OAuthError> {
    tracing::warn!(client_id = %code.client_id, "authorization code replayed; revoking its grant");
    let (hash, now, info) = (hash.to_owned(), state.now(), info.clone());
    state
        .write(move |conn| {
            for g in grants::grants_for_code(conn, &hash)? {
                if grants::revoke_grant(conn, &g.id, "code_replay", now)? {
                    audit::grant_revoked(conn, now, &g, &info, "code_replay")?;
                }
            }
            Ok(())
        })
        .await?;
    Ok(())
}

/// Everything the code was bound to must match the redemption (RFC 6749 §4.1.3, RFC 7636 §4.6).
fn check_code(
    code: &AuthorizationCode,
    client: &Client,
    redirect_uri: Option<&str>,
    verifier: Option<&str>,
    now: i64,
) -> Result<(), OAuthError> {
    if code.client_id != client.id {
        return Err(OAuthError::invalid_grant("The authorization code was issued to another client."));
    }
    if now >= code.expires_at {
        return Err(OAuthError::invalid_grant("The authorization code has expired."));
    }
    if redirect_uri != Some(code.redirect_uri.as_str()) {
        return Err(OAuthError::invalid_grant("The redirect_uri does not match the authorization request."));
    }
    match (&code.code_challenge, verifier) {
        (Some(challenge), Some(v)) if constant_time_eq(&s256(v), challenge) => Ok(()),
        (Some(_), Some(_)) => Err(OAuthError::invalid_grant("The code_verifier does not match the code_challenge.")),
        (Some(_), None) => Err(OAuthError::invalid_grant("The code_verifier is missing.")),
        (None, Some(_)) => Err(OAuthError::invalid_grant(
            "A code_verifier was sent but the authorization request had no code_challenge.",
        )),
        (None, None) => Ok(()),
    }
}

/// RFC 6749 §6 with rotation: each refresh token works once; presenting a rotated one again means
/// it leaked, so the whole family is revoked (RFC 9700 §4.14.2). The grant's acr, amr and
/// auth_time are kept as they were: a refresh never raises them.
async fn refresh(
    state: &AppState,
    client: &Client,
    params: &Params,
    info: &ClientInfo,
    aud: String,
) -> Result<HttpResponse, OAuthError> {
    let token = required(params, "refresh_token")?;
    let (hash, now) = (secret_key(token), state.now());
    let (client_id, info2) = (client.id.clone(), info.clone());
    let outcome = state
        .write(move |conn| {
            let Some(rt) = grants::find_refresh_token(conn, &hash)? else { return Ok(Err("unknown")) };
            let Some(grant) = grants::find_grant(conn, &rt.grant_id)? else { return Ok(Err("unknown")) };
            if grant.client_id != client_id {
                return Ok(Err("another client"));
            }
            if grant.revoked_at.is_some() {
                return Ok(Err("revoked"));
            }
            if rt.expires_at <= now {
                return Ok(Err("expired"));
            }
            if rt.used_at.is_some() || !grants::use_refresh_token(conn, &hash, now)? {
                grants::revoke_grant(conn, &grant.id, "refresh_token_reuse", now)?;
                audit::grant_revoked(conn, now, &grant, &info2, "refresh_token_reuse")?;
                return Ok(Err("reused"));
            }
            if let Some(user_id) = &grant.user_id
                && users::find_user(conn, user_id)?.is_none_or(|u| u.disabled)
            {
                return Ok(Err("user disabled"));
            }
            Ok(Ok(grant))
        })
        .await?;
    let mut grant = match outcome {
        Ok(g) => g,
        Err("reused") => {
            return Err(OAuthError::invalid_grant("The refresh token was already used; its grant has been revoked."));
        }
        Err("user disabled") => return Err(OAuthError::invalid_grant("The user can no longer sign in.")),
        Err(_) => return Err(OAuthError::invalid_grant("The refresh token is invalid, expired or revoked.")),
    };
    // A narrower scope may be asked for this access token (RFC 6749 §6), never a wider one.
    if let Some(scope) = params.get("scope").ok().flatten() {
        let granted: Vec<&str> = grant.scope.split(' ').collect();
        if scope.split(' ').any(|s| !s.is_empty() && !granted.contains(&s)) {
            return Err(OAuthError::new("invalid_scope", "The scope exceeds what was originally granted."));
        }
        grant.scope = scope.split(' ').filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" ");
    }
    let minter = Minter::new(state, client, aud, true).await;
    issue(state, minter, grant, Family::Existing, now).await
}

/// RFC 6749 §4.4: a confidential client acting for itself. A JWT access token with the client as
/// subject; no ID token, no refresh token, no acr (no user authenticated).
async fn client_credentials(state: &AppState, client: &Client, params: &Params, aud: String) -> Result<HttpResponse, OAuthError> {
    if client.is_public {
        return Err(OAuthError::new("unauthorized_client", "Public clients cannot use client_credentials."));
    }
    let requested = params.get("scope").ok().flatten().unwrap_or_default();
    let mut scope = Vec::new();
    for s in requested.split(' ').filter(|s| !s.is_empty()) {
        if s == "openid" || !client.scopes.iter().any(|c| c == s) {
            return Err(OAuthError::new("invalid_scope", format!("The client may not request `{s}`.")));
        }
        if !scope.contains(&s) {
            scope.push(s);
        }
    }
    let now = state.now();
    let grant = Grant {
        id: new_sequential_id(),
        client_id: client.id.clone(),
        user_id: None,
        session_id: None,
        code_hash: None,
        scope: scope.join(" "),
        acr: None,
        amr: "[]".into(),
        auth_time: None,
        acr_expires_at: None,
        created_at: now,
        revoked_at: None,
        revoked_reason: None,
        access_expires_at: None,
    };
    let minter = Minter::new(state, client, aud, false).await;
    issue(state, minter, grant, Family::None, now).await
}
