//! `spawn_app()` and the tools tests drive it with.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use base64::Engine;
use ladder_core::Clock;
use ladder_server::crypto::ServerKey;
use ladder_server::manage::{self, NewClient, NewUser};
use ladder_server::settings::Settings;
use ladder_server::startup::SharedState;
use ladder_store::Db;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl,
    Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
};
use reqwest::StatusCode;
use serde_json::Value;

pub use self::text::*;

mod text {
    /// The text between two markers of a page.
    pub fn text_between<'a>(html: &'a str, start: &str, end: &str) -> Option<&'a str> {
        let s = html.find(start)? + start.len();
        let e = s + html[s..].find(end)?;
        Some(&html[s..e])
    }
}

pub const REDIRECT_URI: &str = "https://rp.example.test/callback";
pub const PASSWORD: &str = "correct horse battery";

/// A clock tests can move.
#[derive(Debug)]
pub struct TestClock(AtomicI64);

impl TestClock {
    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

pub struct TestApp {
    pub issuer: String,
    /// Where this node listens (the issuer, except for a peer node).
    pub base: String,
    pub database_url: String,
    pub metrics_url: String,
    pub policy: ladder_server::settings::Policy,
    pub db: Db,
    pub clock: Arc<TestClock>,
    pub state: SharedState,
    pub server_key: ServerKey,
    _dir: tempfile::TempDir,
}

pub struct TestClient {
    pub id: String,
    pub secret: Option<String>,
}

/// The database for one test: SQLite in a temp dir, or a new schema on the PostgreSQL server.
fn test_database_url(dir: &tempfile::TempDir) -> String {
    match std::env::var("LADDER_TEST_DATABASE_URL") {
        Ok(base) if !base.is_empty() => {
            let schema = format!("t_{}", uuid_like());
            let admin = Db::connect(&base, 1).expect("connect to LADDER_TEST_DATABASE_URL");
            admin.batch_execute(&format!("CREATE SCHEMA {schema}")).expect("create test schema");
            let sep = if base.contains('?') { '&' } else { '?' };
            format!("{base}{sep}options=-csearch_path%3D{schema}")
        }
        _ => format!("sqlite://{}", dir.path().join("ladder.db").display()),
    }
}

fn uuid_like() -> String {
    let mut b = [0u8; 8];
    openssl::rand::rand_bytes(&mut b).unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    spawn("127.0.0.1", configure).await
}

/// An app whose issuer is http://localhost:PORT: WebAuthn needs a domain, not an IP address.
pub async fn spawn_localhost_app() -> TestApp {
    spawn("localhost", |_| {}).await
}

/// A second node of the same deployment: same database, same server key, same issuer.
pub async fn spawn_peer(of: &TestApp) -> TestApp {
    let peer = Peer { database_url: of.database_url.clone(), server_key: of.server_key.clone(), issuer: of.issuer.clone() };
    spawn_node("127.0.0.1", Some(peer), |_| {}).await
}

struct Peer {
    database_url: String,
    server_key: ServerKey,
    issuer: String,
}

async fn spawn(host: &str, configure: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_node(host, None, configure).await
}

async fn spawn_node(host: &str, peer: Option<Peer>, configure: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut settings = Settings::default();
    settings.server.issuer = format!("http://{host}:{port}");
    settings.server.workers = 1;
    settings.database.url = test_database_url(&dir);
    // A peer serves the same issuer from its own port.
    let base = settings.server.issuer.clone();
    if let Some(p) = &peer {
        settings.server.issuer = p.issuer.clone();
        settings.database.url = p.database_url.clone();
    }
    settings.database.pool_size = 4;
    settings.security.server_key_file = dir.path().join("server.key").display().to_string();
    configure(&mut settings);
    settings.validate().unwrap();
    let issuer = settings.server.issuer.clone();
    let database_url = settings.database.url.clone();
    let policy = settings.policy().unwrap();
    let clock = Arc::new(TestClock(AtomicI64::new(1_800_000_000)));
    let db = Db::connect(&settings.database.url, settings.database.pool_size).unwrap();
    let server_key = peer.map_or_else(|| ServerKey::generate().0, |p| p.server_key);
    let state = ladder_server::build_state(settings, db.clone(), server_key.clone(), clock.clone()).unwrap();
    let state = SharedState::new(state);
    let server = ladder_server::run(state.clone(), listener).unwrap();
    tokio::spawn(server);
    let metrics_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let metrics_url = format!("http://{}/metrics", metrics_listener.local_addr().unwrap());
    tokio::spawn(ladder_server::startup::run_metrics(state.clone(), metrics_listener).unwrap());
    TestApp { issuer, base, database_url, metrics_url, policy, db, clock, state, server_key, _dir: dir }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    pub fn add_user(&self, username: &str) -> String {
        let user = manage::add_user(
            &self.db,
            NewUser {
                username: username.into(),
                email: Some(format!("{username}@example.com")),
                name: Some(format!("{username} Example")),
                password: PASSWORD.into(),
                is_admin: false,
            },
            self.now(),
        )
        .unwrap();
        user.id
    }

    /// Gives the user a confirmed TOTP credential, as an earlier enrolment would have; returns
    /// the secret.
    pub fn enrol_totp(&self, user_id: &str) -> Vec<u8> {
        let mut secret = vec![0u8; 20];
        openssl::rand::rand_bytes(&mut secret).unwrap();
        let context = ladder_server::interaction::pages::totp_context(user_id);
        let sealed = self.server_key.encrypt(&context, &secret).unwrap();
        let now = self.now();
        self.db
            .write(|c| {
                ladder_store::factors::upsert_pending_totp(c, user_id, &sealed, now)?;
                ladder_store::factors::accept_totp_step(c, user_id, 1, true, now)?;
                Ok(())
            })
            .unwrap();
        secret
    }

    pub fn add_client(&self, public: bool) -> TestClient {
        self.add_client_with(public, |_| {})
    }

    pub fn add_client_with(&self, public: bool, configure: impl FnOnce(&mut NewClient)) -> TestClient {
        let scopes = vec!["profile".into(), "email".into(), "payments:write".into()];
        let mut new = NewClient::new("Acme <Bank>", vec![REDIRECT_URI.into()], public, scopes);
        configure(&mut new);
        let (client, secret) = manage::add_client(&self.db, &self.policy.levels, new, self.now()).unwrap();
        TestClient { id: client.id, secret }
    }

    pub fn authorize_url(&self, client: &TestClient, extra: &[(&str, &str)]) -> String {
        let mut url = url::Url::parse(&self.url("/authorize")).unwrap();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("client_id", &client.id)
                .append_pair("redirect_uri", REDIRECT_URI)
                .append_pair("response_type", "code")
                .append_pair("scope", "openid profile")
                .append_pair("state", "st-123")
                .append_pair("nonce", "n-456");
            for (k, v) in extra {
                q.append_pair(k, v);
            }
        }
        url.to_string()
    }

    /// Exchanges a code with client_secret_basic; returns status and JSON body.
    pub async fn exchange(&self, client: &TestClient, code: &str, extra: &[(&str, &str)]) -> (StatusCode, Value) {
        let mut form = vec![("grant_type", "authorization_code"), ("code", code), ("redirect_uri", REDIRECT_URI)];
        form.extend_from_slice(extra);
        let mut req = reqwest::Client::new().post(self.url("/token")).form(&form);
        if let Some(secret) = &client.secret {
            req = req.basic_auth(&client.id, Some(secret));
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

/// A browser: keeps cookies, follows nothing by itself.
pub struct Browser {
    pub http: reqwest::Client,
}

/// Where a navigation ended.
#[derive(Debug)]
pub enum Landing {
    /// Redirected back to the relying party: the query parameters.
    Rp(Vec<(String, String)>),
    /// A Ladder page: status and HTML.
    Page(StatusCode, String),
}

impl Landing {
    pub fn rp(self) -> Vec<(String, String)> {
        match self {
            Landing::Rp(q) => q,
            Landing::Page(status, html) => panic!("expected a redirect to the RP, got a {status} page:\n{html}"),
        }
    }

    pub fn page(self) -> (StatusCode, String) {
        match self {
            Landing::Page(s, h) => (s, h),
            Landing::Rp(q) => panic!("expected a Ladder page, got a redirect to the RP: {q:?}"),
        }
    }
}

pub fn param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

impl Browser {
    pub fn new() -> Self {
        Browser {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    /// The same browser (cookie jar) seen through a proxy that reports `client_ip`.
    pub fn behind_proxy(jar: std::sync::Arc<reqwest::cookie::Jar>, client_ip: &str) -> Self {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("x-forwarded-for", client_ip.parse().unwrap());
        Browser {
            http: reqwest::Client::builder()
                .cookie_provider(jar)
                .default_headers(headers)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    /// Follows Ladder's redirects until the browser lands on a page or is sent to the RP.
    pub async fn follow(&self, app: &TestApp, mut resp: reqwest::Response) -> Landing {
        loop {
            if resp.status().is_redirection() {
                let location = resp.headers()["location"].to_str().unwrap().to_owned();
                if location.starts_with(REDIRECT_URI) {
                    let url = url::Url::parse(&location).unwrap();
                    return Landing::Rp(url.query_pairs().into_owned().collect());
                }
                let next = if location.starts_with('/') { app.url(&location) } else { location };
                resp = self.http.get(next).send().await.unwrap();
            } else {
                let status = resp.status();
                return Landing::Page(status, resp.text().await.unwrap());
            }
        }
    }

    pub async fn open(&self, app: &TestApp, url: &str) -> Landing {
        if url.starts_with(REDIRECT_URI) {
            let url = url::Url::parse(url).unwrap();
            return Landing::Rp(url.query_pairs().into_owned().collect());
        }
        let resp = self.http.get(url).send().await.unwrap();
        self.follow(app, resp).await
    }

    /// Submits the sign-in form found in `html`, a second after the page was shown (a person
    /// takes time to type; proofs from the request's own second do not count as fresh).
    pub async fn submit_login(&self, app: &TestApp, html: &str, username: &str, password: &str) -> Landing {
        app.clock.advance(1);
        let action = form_action(html);
        let csrf = input_value(html, "csrf");
        let resp = self
            .http
            .post(app.url(&action))
            .form(&[("csrf", csrf.as_str()), ("username", username), ("password", password)])
            .send()
            .await
            .unwrap();
        if resp.status().is_redirection() {
            assert_eq!(resp.status(), StatusCode::SEE_OTHER, "credential POSTs answer 303");
        }
        self.follow(app, resp).await
    }

    /// Authorizes, signs in on the page shown, and returns the RP's query parameters.
    pub async fn sign_in(&self, app: &TestApp, url: &str, username: &str) -> Vec<(String, String)> {
        let (status, html) = self.open(app, url).await.page();
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains(r#"name="password""#), "expected the sign-in form:\n{html}");
        self.submit_login(app, &html, username, PASSWORD).await.rp()
    }
}

pub fn form_action(html: &str) -> String {
    attr_after(html, "<form", "action").expect("a form with an action")
}

pub fn input_value(html: &str, name: &str) -> String {
    attr_after(html, &format!(r#"name="{name}""#), "value")
        .or_else(|| {
            // value="" may come before name="": search the enclosing tag.
            let at = html.find(&format!(r#"name="{name}""#))?;
            let start = html[..at].rfind('<')?;
            let end = at + html[at..].find('>')?;
            attr_after(&html[start..end], "<", "value")
        })
        .unwrap_or_default()
}

/// The `href` of the page's primary link-button (e.g. "Continue to …").
pub fn primary_link(html: &str) -> String {
    attr_after(html, "button button-primary", "href").expect("a primary link")
}

fn attr_after(html: &str, marker: &str, attr: &str) -> Option<String> {
    let at = html.find(marker)?;
    let tag_end = at + html[at..].find('>')?;
    let tag_start = html[..at].rfind('<').unwrap_or(at);
    let tag = &html[tag_start..tag_end];
    let key = format!(r#"{attr}=""#);
    let v = tag.find(&key)? + key.len();
    let len = tag[v..].find('"')?;
    Some(tag[v..v + len].to_owned())
}

/// The claims of a JWT, decoded without verification (tests verify separately).
pub fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

pub fn jwt_header(token: &str) -> Value {
    let header = token.split('.').next().expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

pub type Rp = CoreClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointMaybeSet, EndpointMaybeSet>;

/// A relying party built by discovery, as a real application would.
pub async fn relying_party(app: &TestApp, client: &TestClient) -> (Rp, reqwest::Client) {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let metadata = CoreProviderMetadata::discover_async(IssuerUrl::new(app.issuer.clone()).unwrap(), &http)
        .await
        .expect("discovery");
    let rp = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(client.id.clone()),
        client.secret.clone().map(ClientSecret::new),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT_URI.into()).unwrap());
    (rp, http)
}

/// An authorization request made by the RP library (PKCE S256, nonce, state).
pub struct RpRequest {
    pub url: String,
    pub state: CsrfToken,
    pub nonce: Nonce,
    pub verifier: PkceCodeVerifier,
}

pub fn rp_request(rp: &Rp, extra: &[(&str, &str)]) -> RpRequest {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut req = rp
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge);
    for (k, v) in extra {
        req = req.add_extra_param(*k, *v);
    }
    let (url, state, nonce) = req.url();
    RpRequest { url: url.to_string(), state, nonce, verifier }
}

pub fn code_of(query: &[(String, String)]) -> AuthorizationCode {
    AuthorizationCode::new(param(query, "code").expect("a code in the response").to_owned())
}
