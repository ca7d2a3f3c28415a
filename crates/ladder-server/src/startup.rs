//! Building the application: state from settings, the route table, middleware, and the HTTP server
//! on a listener the caller bound (port 0 in tests).

use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::http::header;
use actix_web::middleware::DefaultHeaders;
use actix_web::{App, HttpResponse, HttpServer, get, web};
use askama::Template;
use ladder_core::Clock;
use ladder_store::Db;
use secrecy::ExposeSecret;
use tokio::sync::Semaphore;
use tracing_actix_web::TracingLogger;

use crate::crypto::ServerKey;
use crate::endpoints::{authorize, discovery, end_session, introspect, jwks, revoke, token, userinfo};
use crate::errors::AppError;
use crate::interaction::{self, passkey, password, totp};
use crate::settings::Settings;
use crate::signing::{self, KeyCache};
use crate::state::{AppState, CookieNames};

/// Strict by default: our pages load only our own CSS and scripts, and are never framed.
const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self' http: https:; frame-ancestors 'none'; base-uri 'none'";

const STYLESHEET: &str = include_str!("../../../static/ladder.css");
const PASSKEY_JS: &str = include_str!("../../../static/passkey.js");

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    App(#[from] AppError),
    #[error(transparent)]
    Store(#[from] ladder_store::StoreError),
    #[error("server key: {0}")]
    ServerKey(String),
    #[error(transparent)]
    Settings(#[from] crate::settings::SettingsError),
    #[error("outbound HTTP client: {0}")]
    Http(String),
    #[error("cannot listen: {0}")]
    Io(#[from] std::io::Error),
}

/// Where the server key came from, so the CLI can tell the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Configured,
    Environment,
    File(String),
    Generated(String),
}

/// The server key: settings, then `LADDER_SERVER_KEY`, then the key file; a first local run
/// generates the file (several nodes must instead share one configured key).
pub fn resolve_server_key(settings: &Settings) -> Result<(ServerKey, KeySource), StartError> {
    let bad = |e: crate::crypto::KeyError| StartError::ServerKey(e.to_string());
    if let Some(k) = &settings.security.server_key {
        return Ok((ServerKey::from_encoded(k.expose_secret()).map_err(bad)?, KeySource::Configured));
    }
    if let Ok(k) = std::env::var("LADDER_SERVER_KEY") {
        return Ok((ServerKey::from_encoded(&k).map_err(bad)?, KeySource::Environment));
    }
    let path = Path::new(&settings.security.server_key_file);
    match std::fs::read_to_string(path) {
        Ok(k) => Ok((ServerKey::from_encoded(&k).map_err(bad)?, KeySource::File(path.display().to_string()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (key, encoded) = ServerKey::generate();
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            write_private(path, &encoded)?;
            Ok((key, KeySource::Generated(path.display().to_string())))
        }
        Err(e) => Err(StartError::ServerKey(format!("cannot read {}: {e}", path.display()))),
    }
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(contents.as_bytes())
}

/// Connects, migrates, makes sure signing keys exist, and assembles the shared state.
pub fn build_state(
    settings: Settings,
    db: Db,
    server_key: ServerKey,
    clock: Arc<dyn Clock>,
) -> Result<AppState, StartError> {
    let policy = settings.policy()?;
    db.migrate()?;
    let now = clock.now();
    let sk = server_key.clone();
    db.write(|conn| signing::ensure_keys(conn, &sk, now).map_err(|e| ladder_store::StoreError::Corrupt(e.to_string())))?;
    let issuer_for_console = settings.server.issuer.clone();
    db.write(|conn| crate::console::auth::ensure_client(conn, &issuer_for_console, now))?;
    let keys = KeyCache::load(db.clone(), server_key.clone())?;
    let issuer = settings.server.issuer.clone();
    let discovery_json = discovery::document(&issuer, &policy.levels.acr_values_supported()).to_string();
    let webauthn = build_webauthn(&settings)?;
    let mut policy = policy;
    if webauthn.is_none() {
        // Without a WebAuthn relying party nobody can enrol a passkey; plans must not offer it.
        policy.levels = policy.levels.without_enrolment(ladder_core::Factor::Passkey);
    }
    let permits = match settings.security.hashing_concurrency {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
        n => n,
    };
    Ok(AppState {
        cookies: CookieNames::for_issuer(settings.issuer_is_https()),
        issuer,
        db,
        clock,
        server_key,
        keys,
        clients: Default::default(),
        verified: Default::default(),
        discovery_json,
        hashing: Semaphore::new(permits),
        http: reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| StartError::Http(e.to_string()))?,
        webauthn,
        metrics: Default::default(),
        policy,
        settings,
    })
}

/// The WebAuthn relying party for this issuer. WebAuthn needs a domain: an IP-literal issuer
/// (e.g. http://127.0.0.1:8080) runs without passkeys, and says so; use http://localhost:PORT.
fn build_webauthn(settings: &Settings) -> Result<Option<webauthn_rs::Webauthn>, StartError> {
    let (rp_id, origin) = settings.webauthn.resolve(&settings.server.issuer)?;
    if rp_id.parse::<std::net::IpAddr>().is_ok() || rp_id.starts_with('[') {
        tracing::warn!(%rp_id, "passkeys are off: WebAuthn needs a domain; use http://localhost:PORT for local runs");
        return Ok(None);
    }
    let built = webauthn_rs::WebauthnBuilder::new(&rp_id, &origin)
        .and_then(|b| b.rp_name(&settings.webauthn.rp_name).build());
    match built {
        Ok(w) => Ok(Some(w)),
        Err(e) => Err(StartError::Settings(crate::settings::SettingsError::Invalid(format!(
            "webauthn: rp_id `{rp_id}` and origin `{origin}` do not fit together: {e}"
        )))),
    }
}

/// The route table.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(discovery::openid_configuration)
        .service(jwks::jwks)
        .service(
            web::resource("/authorize")
                .route(web::get().to(authorize::authorize_get))
                .route(web::post().to(authorize::authorize_post)),
        )
        .service(web::resource("/token").route(web::post().to(token::token)))
        .service(web::resource("/introspect").route(web::post().to(introspect::introspect)))
        .service(web::resource("/revoke").route(web::post().to(revoke::revoke)))
        .service(
            web::resource("/end_session")
                .route(web::get().to(end_session::end_session))
                .route(web::post().to(end_session::end_session)),
        )
        .service(web::resource("/end_session/confirm").route(web::post().to(end_session::confirm)))
        .service(
            web::resource("/userinfo")
                .route(web::get().to(userinfo::userinfo_get))
                .route(web::post().to(userinfo::userinfo_post)),
        )
        // After the fixed paths, and in one scope: a path with a `{segment}` is matched with a
        // regular expression, so /token and /userinfo never try them and an interaction page
        // tries one.
        .service(
            web::scope("/interaction/{id}")
                .service(web::resource("").route(web::get().to(interaction::show)))
                .service(web::resource("/password").route(web::post().to(password::submit)))
                .service(web::resource("/totp").route(web::post().to(totp::verify)))
                .service(web::resource("/totp/enrol").route(web::post().to(totp::enrol)))
                .service(web::resource("/passkey/options").route(web::post().to(passkey::sign_in_options)))
                .service(web::resource("/passkey").route(web::post().to(passkey::sign_in)))
                .service(web::resource("/passkey/register/options").route(web::post().to(passkey::register_options)))
                .service(web::resource("/passkey/register").route(web::post().to(passkey::register))),
        )
        .configure(crate::console::routes)
        .configure(crate::account::routes)
        .service(stylesheet)
        .service(passkey_script)
        .service(home);
}

/// The state as handlers share it.
pub type SharedState = web::Data<AppState>;

/// Starts serving on `listener` (and the back-channel logout sender); the returned server runs
/// when awaited or spawned. Call inside a Tokio runtime.
pub fn run(state: web::Data<AppState>, listener: TcpListener) -> Result<Server, StartError> {
    let workers = match state.settings.server.workers {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
        n => n,
    };
    // Blocking work is database calls (at most one per pooled connection at once) and password
    // hashes (bounded by their semaphore); threads beyond that would only wait, each with its
    // stack and malloc arena (measured: ~40 threads and +20 MB RSS under load with the default of
    // 512 / workers).
    let blocking_threads = state.db.pool_size() as usize + state.hashing.available_permits() + 2;
    crate::backchannel::spawn_worker(state.clone());
    crate::maintenance::spawn(state.clone());
    if !state.settings.audit.mirror_file.is_empty() {
        crate::audit_mirror::spawn(state.clone(), state.settings.audit.mirror_file.clone().into());
    }
    let server = HttpServer::new(move || {
        App::new()
            .wrap(
                DefaultHeaders::new()
                    .add((header::CONTENT_SECURITY_POLICY, CSP))
                    .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                    .add((header::X_FRAME_OPTIONS, "DENY"))
                    .add((header::REFERRER_POLICY, "no-referrer")),
            )
            .wrap_fn(|req, srv| {
                use actix_web::dev::Service;
                let arrival = crate::access_log::Arrival::of(&req);
                let fut = srv.call(req);
                async move {
                    let outcome = fut.await;
                    arrival.finish(&outcome);
                    outcome
                }
            })
            .wrap(TracingLogger::<crate::access_log::AccessLog>::new())
            .app_data(state.clone())
            .app_data(web::FormConfig::default().limit(16 * 1024).error_handler(|err, _| {
                crate::errors::PageError::bad_request("The form could not be read", err.to_string()).into()
            }))
            .app_data(web::PayloadConfig::new(64 * 1024))
            .configure(routes)
            .default_service(web::to(not_found))
    })
    .workers(workers)
    .worker_max_blocking_threads(blocking_threads)
    .listen(listener)?
    .run();
    Ok(server)
}

/// Serves `/metrics` on its own listener (kept off the public port).
pub fn run_metrics(state: SharedState, listener: TcpListener) -> Result<Server, StartError> {
    Ok(HttpServer::new(move || {
        App::new().app_data(state.clone()).route("/metrics", web::get().to(crate::metrics::scrape))
    })
    .workers(1)
    .listen(listener)?
    .run())
}

async fn not_found() -> HttpResponse {
    crate::errors::error_page(
        actix_web::http::StatusCode::NOT_FOUND,
        "Page not found",
        "There is nothing at this address.",
        None,
    )
}

#[get("/static/ladder.css")]
async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(STYLESHEET)
}

#[get("/static/passkey.js")]
async fn passkey_script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(PASSKEY_JS)
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    issuer: String,
}

#[get("/")]
async fn home(state: web::Data<AppState>) -> Result<HttpResponse, crate::errors::PageError> {
    let html = HomePage { issuer: state.issuer.clone() }.render().map_err(AppError::from)?;
    Ok(HttpResponse::Ok().content_type("text/html; charset=utf-8").body(html))
}
