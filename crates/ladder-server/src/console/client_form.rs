//! Registering and editing a client from the console. The form only gathers input: every rule is
//! `client_rules`, the same the CLI applies, so the two cannot drift apart.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use ladder_store::clients::{self, Client, ClientSettings};
use serde::Deserialize;
use serde_json::json;

use super::pages::{ClientCreatedPage, admin_event, admin_ref, back_to};
use super::{Admin, Gate, check_form, everyday, gate, render};
use crate::browser::ClientInfo;
use crate::client_rules::{self, Invalid};
use crate::errors::{AppError, PageError};
use crate::manage::{self, NewClient};
use crate::state::AppState;

macro_rules! open {
    ($state:expr, $req:expr, $need:expr, $back:expr) => {
        match gate(&$state, &$req, $need, $back).await? {
            Gate::Open(admin) => admin,
            Gate::Redirect(resp) => return Ok(resp),
        }
    };
}

/// The form as posted. Every field is text (a checkbox is present or absent), so no input can
/// fail to parse before the rules get to explain what is wrong with it.
#[derive(Deserialize, Default)]
pub struct ClientForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    redirect_uris: String,
    #[serde(default)]
    post_logout_redirect_uris: String,
    /// `none` makes a public client.
    #[serde(default)]
    auth_method: String,
    /// Older form posts said public/confidential here instead of naming a method.
    #[serde(default)]
    kind: String,
    #[serde(default)]
    jwks: String,
    #[serde(default)]
    jwks_uri: String,
    #[serde(default)]
    scopes: String,
    #[serde(default)]
    audience: String,
    #[serde(default)]
    grant_authorization_code: Option<String>,
    #[serde(default)]
    grant_refresh_token: Option<String>,
    #[serde(default)]
    grant_client_credentials: Option<String>,
    #[serde(default)]
    access_token_ttl: String,
    #[serde(default)]
    id_token_ttl: String,
    #[serde(default)]
    refresh_token_ttl: String,
    /// Blank: RS256 ID tokens and ES256 access tokens.
    #[serde(default)]
    id_token_alg: String,
    #[serde(default)]
    access_token_alg: String,
    #[serde(default)]
    default_acr: String,
    #[serde(default)]
    min_acr: String,
}

impl ClientForm {
    fn blank() -> Self {
        ClientForm {
            auth_method: "client_secret_basic".into(),
            grant_authorization_code: Some("on".into()),
            grant_refresh_token: Some("on".into()),
            ..ClientForm::default()
        }
    }

    fn of(client: &Client) -> Self {
        let s = &client.settings;
        let has = |g: &str| {
            s.grant_types
                .iter()
                .any(|t| t == g)
                .then(|| "on".to_owned())
        };
        let secs = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
        ClientForm {
            csrf: String::new(),
            name: client.name.clone(),
            redirect_uris: client.redirect_uris.join("\n"),
            post_logout_redirect_uris: s.post_logout_redirect_uris.join("\n"),
            auth_method: s.token_endpoint_auth_method.clone(),
            kind: String::new(),
            jwks: s.jwks.clone().unwrap_or_default(),
            jwks_uri: s.jwks_uri.clone().unwrap_or_default(),
            scopes: client
                .scopes
                .iter()
                .filter(|s| *s != "openid")
                .cloned()
                .collect::<Vec<_>>()
                .join(" "),
            audience: s.audience.clone().unwrap_or_default(),
            grant_authorization_code: has("authorization_code"),
            grant_refresh_token: has("refresh_token"),
            grant_client_credentials: has("client_credentials"),
            access_token_ttl: secs(s.access_token_ttl_secs),
            id_token_ttl: secs(s.id_token_ttl_secs),
            refresh_token_ttl: secs(s.refresh_token_ttl_secs),
            id_token_alg: s.id_token_signed_response_alg.clone().unwrap_or_default(),
            access_token_alg: s.access_token_signed_response_alg.clone().unwrap_or_default(),
            default_acr: client.default_acr_values.clone().unwrap_or_default(),
            min_acr: client.min_acr.clone().unwrap_or_default(),
        }
    }

    fn method(&self) -> &str {
        match (self.auth_method.trim(), self.kind.as_str()) {
            ("", "public") => "none",
            ("", _) => "client_secret_basic",
            (m, _) => m,
        }
    }

    fn is_public(&self) -> bool {
        self.method() == "none"
    }

    /// The protocol settings the form asks for, over `base` (what the form does not show stays).
    fn settings(&self, base: ClientSettings) -> Result<ClientSettings, Invalid> {
        let text = |v: &str| Some(v.trim().to_owned()).filter(|v| !v.is_empty());
        let grants = [
            ("authorization_code", &self.grant_authorization_code),
            ("refresh_token", &self.grant_refresh_token),
            ("client_credentials", &self.grant_client_credentials),
        ];
        Ok(ClientSettings {
            token_endpoint_auth_method: self.method().to_owned(),
            jwks: text(&self.jwks),
            jwks_uri: text(&self.jwks_uri),
            grant_types: grants
                .iter()
                .filter(|(_, on)| on.is_some())
                .map(|(g, _)| (*g).to_owned())
                .collect(),
            post_logout_redirect_uris: lines(&self.post_logout_redirect_uris),
            audience: text(&self.audience),
            access_token_ttl_secs: client_rules::parse_lifetime(
                "access token",
                &self.access_token_ttl,
            )?,
            id_token_ttl_secs: client_rules::parse_lifetime("ID token", &self.id_token_ttl)?,
            refresh_token_ttl_secs: client_rules::parse_lifetime(
                "refresh token",
                &self.refresh_token_ttl,
            )?,
            id_token_signed_response_alg: text(&self.id_token_alg),
            access_token_signed_response_alg: text(&self.access_token_alg),
            ..base
        })
    }

    fn min_acr(&self) -> Option<String> {
        Some(self.min_acr.trim().to_owned()).filter(|m| !m.is_empty())
    }

    fn default_acr(&self) -> Vec<String> {
        self.default_acr
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }
}

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[derive(Template)]
#[template(path = "console/client_form.html")]
struct ClientFormPage {
    nav: &'static str,
    admin: String,
    notice: Option<String>,
    heading: String,
    action: String,
    submit: String,
    csrf: String,
    error: Option<String>,
    /// Editing: public/confidential is fixed once registered.
    editing: bool,
    form: ClientForm,
    levels: Vec<String>,
    global_access: i64,
    global_id: i64,
    global_refresh: i64,
}

fn form_page(
    state: &AppState,
    admin: &Admin,
    form: ClientForm,
    error: Option<String>,
) -> ClientFormPage {
    let t = &state.settings.tokens;
    ClientFormPage {
        nav: "clients",
        admin: admin.user.username.clone(),
        notice: None,
        heading: "Register a client".into(),
        action: "/admin/clients/new".into(),
        submit: "Register client".into(),
        csrf: admin.csrf.clone(),
        error,
        editing: false,
        form,
        levels: state
            .policy
            .levels
            .iter()
            .map(|l| l.name().to_owned())
            .collect(),
        global_access: t.access_token_ttl_secs,
        global_id: t.id_token_ttl_secs,
        global_refresh: t.refresh_token_ttl_secs,
    }
}

fn edit_page(
    state: &AppState,
    admin: &Admin,
    id: &str,
    form: ClientForm,
    error: Option<String>,
) -> ClientFormPage {
    ClientFormPage {
        heading: format!("Edit {}", form.name),
        action: format!("/admin/clients/{id}/edit"),
        submit: "Save changes".into(),
        editing: true,
        ..form_page(state, admin, form, error)
    }
}

/// Sentences start with a capital and end with a full stop on a page.
fn sentence(e: impl std::fmt::Display) -> String {
    let e = e.to_string();
    let mut chars = e.chars();
    let first = chars
        .next()
        .map(|c| c.to_uppercase().collect::<String>())
        .unwrap_or_default();
    let end = if e.ends_with('.') { "" } else { "." };
    format!("{first}{}{end}", chars.as_str())
}

/// `GET /admin/clients/new`
pub async fn client_form(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let admin = open!(state, req, everyday(&state), "/admin/clients/new");
    render(
        &admin,
        &form_page(&state, &admin, ClientForm::blank(), None),
    )
}

/// `POST /admin/clients/new`: registered through `manage::add_client`, as the CLI does.
pub async fn client_create(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<ClientForm>,
) -> Result<HttpResponse, PageError> {
    let admin = open!(state, req, everyday(&state), "/admin/clients/new");
    let form = form.into_inner();
    check_form(&state, &req, &form.csrf)?;
    let settings = match form.settings(ClientSettings::default()) {
        Ok(s) => s,
        Err(e) => return render(&admin, &form_page(&state, &admin, form, Some(sentence(e)))),
    };
    let mut new = NewClient::new(
        &form.name,
        lines(&form.redirect_uris),
        form.is_public(),
        form.scopes.split_whitespace().map(str::to_owned).collect(),
    );
    new.default_acr_values = form.default_acr();
    new.min_acr = form.min_acr();
    new.settings = settings;
    let (db, levels, now) = (state.db.clone(), state.policy.levels.clone(), state.now());
    let created = web::block(move || manage::add_client(&db, &levels, new, now))
        .await
        .map_err(|e| AppError::Blocking(e.to_string()))?;
    match created {
        Ok((client, secret)) => {
            let (info, who) = (ClientInfo::from_request(&req), admin_ref(&admin));
            let detail = json!({ "client": client.id, "name": client.name, "settings": audited(&client.settings) });
            state
                .write(move |conn| admin_event(conn, &who, &info, now, "client_registered", detail))
                .await?;
            let page = ClientCreatedPage::new(&admin, &client, secret, None);
            render(&admin, &page)
        }
        Err(manage::ManageError::App(e)) => Err(e.into()),
        Err(e) => render(&admin, &form_page(&state, &admin, form, Some(sentence(e)))),
    }
}

/// What the audit keeps of a client's settings: everything but the key material.
fn audited(s: &ClientSettings) -> serde_json::Value {
    json!({
        "token_endpoint_auth_method": s.token_endpoint_auth_method,
        "jwks_uri": s.jwks_uri,
        "grant_types": s.grant_types,
        "audience": s.audience,
        "access_token_ttl_secs": s.access_token_ttl_secs,
        "id_token_ttl_secs": s.id_token_ttl_secs,
        "refresh_token_ttl_secs": s.refresh_token_ttl_secs,
        "id_token_signed_response_alg": s.id_token_signed_response_alg,
        "access_token_signed_response_alg": s.access_token_signed_response_alg,
    })
}

/// The client to edit; never the console's own, which every administrator's sign-in depends on.
async fn find(state: &AppState, id: &str) -> Result<Client, PageError> {
    if id == super::auth::CONSOLE_CLIENT_ID {
        return Err(PageError::bad_request(
            "That client is Ladder's own",
            "The console needs it to sign you in.",
        ));
    }
    let lookup = id.to_owned();
    state
        .lookup(move |conn| clients::find_client(conn, &lookup))
        .await?
        .ok_or_else(|| PageError::bad_request("No such client", "It may have been deleted."))
}

/// `GET /admin/clients/{id}/edit`: the form, filled in.
pub async fn client_edit_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let id = path.into_inner();
    let admin = open!(
        state,
        req,
        everyday(&state),
        &format!("/admin/clients/{id}/edit")
    );
    let client = find(&state, &id).await?;
    render(
        &admin,
        &edit_page(&state, &admin, &id, ClientForm::of(&client), None),
    )
}

/// The stored client changed as the form asks, checked by the same rules as registration.
fn edited(state: &AppState, mut client: Client, form: &ClientForm) -> Result<Client, Invalid> {
    if form.is_public() != client.is_public {
        return Err(Invalid(if client.is_public {
            "a public client stays public (method none); register a new confidential client instead"
                .into()
        } else {
            "a confidential client cannot switch to method none; register a new public client instead".into()
        }));
    }
    client.settings = form.settings(client.settings)?;
    client.name = form.name.clone();
    client.redirect_uris = lines(&form.redirect_uris);
    client.scopes = form.scopes.split_whitespace().map(str::to_owned).collect();
    let defaults = form.default_acr();
    client.default_acr_values = (!defaults.is_empty()).then(|| defaults.join(" "));
    client.min_acr = form.min_acr();
    client_rules::check(&state.policy.levels, &mut client)?;
    client.updated_at = state.now();
    Ok(client)
}

/// `POST /admin/clients/{id}/edit`. Public stays public and confidential stays confidential; a
/// switch to a secret-based method issues a secret (shown once), a switch to private_key_jwt
/// drops the secret.
pub async fn client_update(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<ClientForm>,
) -> Result<HttpResponse, PageError> {
    let id = path.into_inner();
    let admin = open!(
        state,
        req,
        everyday(&state),
        &format!("/admin/clients/{id}/edit")
    );
    let form = form.into_inner();
    check_form(&state, &req, &form.csrf)?;
    let mut client = match edited(&state, find(&state, &id).await?, &form) {
        Ok(c) => c,
        Err(e) => {
            return render(
                &admin,
                &edit_page(&state, &admin, &id, form, Some(sentence(e))),
            );
        }
    };
    let secret = (manage::needs_secret(&client) && client.secret_hash.is_none())
        .then(crate::crypto::new_client_secret);
    if let Some(s) = &secret {
        client.secret_hash = Some(crate::crypto::sha256_hex(s));
    } else if !manage::needs_secret(&client) {
        client.secret_hash = None;
    }
    let (info, now, who) = (
        ClientInfo::from_request(&req),
        state.now(),
        admin_ref(&admin),
    );
    let detail = json!({
        "client": client.id,
        "redirect_uris": client.redirect_uris,
        "settings": audited(&client.settings),
        "secret_issued": secret.is_some(),
    });
    let stored = client.clone();
    state
        .write(move |conn| {
            clients::update_client(conn, &stored)?;
            admin_event(conn, &who, &info, now, "client_updated", detail)
        })
        .await?;
    // After the commit, so no request in between can cache the old registration again.
    state.clients.forget(&client.id);
    match secret {
        Some(secret) => {
            let notice = Some("It now authenticates with a secret.".to_owned());
            render(
                &admin,
                &ClientCreatedPage::new(&admin, &client, Some(secret), notice),
            )
        }
        None => Ok(back_to("/admin/clients?done=1")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_to_settings() {
        let form = ClientForm {
            auth_method: "client_secret_post".into(),
            grant_client_credentials: Some("on".into()),
            access_token_ttl: "120".into(),
            audience: "  https://api.example  ".into(),
            ..ClientForm::default()
        };
        let s = form.settings(ClientSettings::default()).unwrap();
        assert_eq!(s.token_endpoint_auth_method, "client_secret_post");
        assert_eq!(s.grant_types, ["client_credentials"]);
        assert_eq!(
            (s.access_token_ttl_secs, s.refresh_token_ttl_secs),
            (Some(120), None)
        );
        assert_eq!(s.audience.as_deref(), Some("https://api.example"));
        let bad = ClientForm {
            refresh_token_ttl: "soon".into(),
            ..ClientForm::default()
        };
        assert!(
            bad.settings(ClientSettings::default())
                .unwrap_err()
                .0
                .contains("whole number")
        );
    }

    #[test]
    fn older_posts_name_the_kind() {
        let public = ClientForm {
            kind: "public".into(),
            ..ClientForm::default()
        };
        assert!(public.is_public());
        assert_eq!(ClientForm::default().method(), "client_secret_basic");
    }

    #[test]
    fn errors_read_as_sentences() {
        assert_eq!(sentence("a client needs a name"), "A client needs a name.");
    }
}
