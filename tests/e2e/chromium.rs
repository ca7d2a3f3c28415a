//! A real browser: headless Chromium, driven through chromedriver (WebDriver over HTTP), with a
//! virtual WebAuthn authenticator added through the DevTools protocol (`WebAuthn.enable`,
//! `WebAuthn.addVirtualAuthenticator`). It signs in with a password, is asked for loa:3, creates a
//! passkey on the page by pressing its button, and lands on the relying party with a code.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Where they are
//! missing the test says so and passes only outside CI.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::*;

pub(crate) struct Driver {
    child: Child,
    base: String,
    http: reqwest::Client,
    session: String,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Ending the session makes chromedriver close the browser; killed first, chromedriver
        // would leave Chromium's processes running with no parent.
        if !self.session.is_empty() {
            end_session(&self.base, &self.session);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `DELETE /session/{id}`, blocking (from `Drop`), answered once the browser has quit.
fn end_session(base: &str, session: &str) {
    use std::io::{Read, Write};
    let Some(addr) = base.strip_prefix("http://") else { return };
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else { return };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!("DELETE /session/{session} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    // The answer's first bytes mean the browser is gone (chromedriver may keep the connection).
    if stream.write_all(request.as_bytes()).is_ok() {
        let _ = stream.read(&mut [0; 512]);
    }
}

impl Driver {
    pub(crate) async fn start() -> Option<Driver> {
        let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let profile = tempfile::tempdir().unwrap();
        let mut driver = Driver { child, base, http, session: String::new(), _profile: profile };
        for _ in 0..100 {
            if driver.http.get(format!("{}/status", driver.base)).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            // Finding an element waits up to 10 s for it (the page after a submit may still be loading).
            "timeouts": { "implicit": 10000 },
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                    format!("--user-data-dir={}", driver._profile.path().display()),
                ]
            }
        }}});
        let created = driver.call("POST", "/session", caps).await;
        driver.session = created["sessionId"].as_str().expect("a WebDriver session").to_owned();
        Some(driver)
    }

    /// One WebDriver command; a WebDriver error fails the test with its message. A starved
    /// renderer can make chromedriver time out, so commands that change nothing are retried.
    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        let retriable = method == "GET" || path.ends_with("/element");
        for attempt in 1.. {
            let req = match method {
                "GET" => self.http.get(&url),
                _ => self.http.post(&url).json(&body),
            };
            let resp: Value = req.send().await.unwrap().json().await.unwrap();
            let value = resp["value"].clone();
            let Some(error) = value.get("error").and_then(Value::as_str) else { return value };
            if !(retriable && attempt < 3) {
                panic!("WebDriver {method} {path} failed: {error}: {}", value["message"]);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        unreachable!()
    }

    async fn session(&self, method: &str, path: &str, body: Value) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body).await
    }

    pub(crate) async fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.session("POST", "/goog/cdp/execute", json!({ "cmd": cmd, "params": params })).await
    }

    pub(crate) async fn go(&self, url: &str) {
        self.session("POST", "/url", json!({ "url": url })).await;
    }

    pub(crate) async fn url(&self) -> String {
        self.session("GET", "/url", Value::Null).await.as_str().unwrap_or_default().to_owned()
    }

    pub(crate) async fn find(&self, css: &str) -> String {
        let found = self.session("POST", "/element", json!({ "using": "css selector", "value": css })).await;
        found.as_object().and_then(|o| o.values().next()).and_then(Value::as_str).unwrap_or_else(|| panic!("no element {css}: {found}")).to_owned()
    }

    /// Types `text` into an empty field and checks it arrived (an untyped required field would
    /// make the next click's submit stop silently).
    pub(crate) async fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        self.session("POST", &format!("/element/{el}/clear"), json!({})).await;
        self.session("POST", &format!("/element/{el}/value"), json!({ "text": text })).await;
        let typed = self.session("GET", &format!("/element/{el}/property/value"), Value::Null).await;
        assert_eq!(typed.as_str(), Some(text), "typed into {css}");
    }

    pub(crate) async fn click(&self, css: &str) {
        let el = self.find(css).await;
        self.session("POST", &format!("/element/{el}/click"), json!({})).await;
    }

    pub(crate) async fn page_source(&self) -> String {
        self.session("GET", "/source", Value::Null).await.as_str().unwrap_or_default().to_owned()
    }

    /// Saves a PNG of the viewport (for looking at while developing: set LADDER_SCREENSHOTS=DIR).
    pub(crate) async fn screenshot(&self, dir: &std::path::Path, name: &str) {
        use base64::Engine;
        let b64 = self.session("GET", "/screenshot", Value::Null).await;
        let bytes = base64::engine::general_purpose::STANDARD.decode(b64.as_str().unwrap_or_default()).unwrap_or_default();
        assert!(bytes.starts_with(b"\x89PNG"), "a PNG screenshot");
        std::fs::write(dir.join(format!("{name}.png")), bytes).unwrap();
    }

    pub(crate) async fn resize(&self, width: u32, height: u32) {
        self.session("POST", "/window/rect", json!({ "width": width, "height": height })).await;
    }

    /// Reads `read` every 100 ms until `done` holds and returns what it read, for up to 30 s: the
    /// whole suite runs in parallel on two cores, a page load behind it has taken more than 10 s
    /// in CI, and a starved chromedriver can answer a navigation before the document is parsed.
    async fn wait_until(&self, read: impl AsyncFn() -> String, done: impl Fn(&str) -> bool, what: &str) -> String {
        for _ in 0..300 {
            let value = read().await;
            if done(&value) {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("never {what}; at {} showing:\n{}", self.url().await, self.page_source().await);
    }

    /// Waits until the page shows `text` and returns the page.
    pub(crate) async fn wait_for_text(&self, text: &str) -> String {
        self.wait_until(async || self.page_source().await, |page| page.contains(text), &format!("showed {text:?}")).await
    }

    /// Waits until the browser is on a URL starting with `prefix`.
    pub(crate) async fn wait_for_url(&self, prefix: &str) -> String {
        self.wait_until(async || self.url().await, |url| url.starts_with(prefix), &format!("reached {prefix}")).await
    }
}

/// A relying party's callback on loopback: answers 200 so the browser settles there.
async fn callback_server() -> String {
    let hits: Arc<Mutex<u32>> = Arc::default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = actix_web::HttpServer::new(move || {
        let hits = hits.clone();
        actix_web::App::new().route(
            "/callback",
            actix_web::web::get().to(move || {
                *hits.lock().unwrap() += 1;
                async { actix_web::HttpResponse::Ok().content_type("text/html").body("<p>back at the app</p>") }
            }),
        )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    format!("http://localhost:{port}/callback")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_creates_a_passkey_during_a_step_up() {
    let Some(driver) = Driver::start().await else {
        assert!(std::env::var_os("CI").is_none(), "chromium and chromedriver are required in CI");
        eprintln!("skipping: chromedriver is not installed");
        return;
    };
    let app = spawn_localhost_app().await;
    app.add_user("alice");
    let callback = callback_server().await;
    let client = app.add_client_with(false, |c| c.redirect_uris = vec![callback.clone()]);
    let authorize = |extra: &[(&str, &str)]| {
        let mut url = url::Url::parse(&app.authorize_url(&client, extra)).unwrap();
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| if k == "redirect_uri" { (k.into_owned(), callback.clone()) } else { (k.into_owned(), v.into_owned()) })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
        url.to_string()
    };

    driver.cdp("WebAuthn.enable", json!({})).await;
    let added = driver
        .cdp(
            "WebAuthn.addVirtualAuthenticator",
            json!({ "options": {
                "protocol": "ctap2", "transport": "internal", "hasResidentKey": true,
                "hasUserVerification": true, "isUserVerified": true, "automaticPresenceSimulation": true
            }}),
        )
        .await;
    assert!(added["authenticatorId"].is_string(), "{added}");

    // Password first (the real form, typed and submitted).
    driver.go(&authorize(&[])).await;
    driver.type_into("#username", "alice").await;
    driver.type_into("#password", PASSWORD).await;
    driver.click("button[type=submit]").await;
    driver.wait_for_url(&callback).await;

    // loa:3: the page offers to create a passkey; pressing the button runs WebAuthn in the page.
    driver.go(&authorize(&[("acr_values", "urn:ladder:loa:3")])).await;
    driver.wait_for_text("Create a passkey").await;
    driver.type_into("#passkey-name", "Chromium").await;
    driver.click("[data-passkey-start]").await;
    let landed = driver.wait_for_url(&callback).await;
    let query: Vec<(String, String)> = url::Url::parse(&landed).unwrap().query_pairs().into_owned().collect();
    let code = param(&query, "code").expect("a code");

    let form = [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", callback.as_str())];
    let resp = reqwest::Client::new()
        .post(app.url("/token"))
        .basic_auth(&client.id, client.secret.as_deref())
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    let id = jwt_claims(body["id_token"].as_str().unwrap());
    assert_eq!(id["acr"], "urn:ladder:loa:3");
    assert_eq!(id["amr"], json!(["pwd", "hwk", "user", "mfa"]));
    let stored = app.db.read(|c| {
        let alice = ladder_store::users::find_user_by_username(c, "alice")?.unwrap();
        ladder_store::passkeys::list_for_user(c, &alice.id)
    });
    assert_eq!(stored.unwrap()[0].name, "Chromium");
}
