//! PostgreSQL going away during a run. The shared test server cannot be stopped (other tests use
//! it), so this node reaches it through a TCP proxy that can cut every connection and refuse new
//! ones, then let them through again: to Ladder that is a database stop and start.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::harness::*;

/// Forwards to `upstream` while up; going down closes every forwarded connection and drops new ones
/// as soon as they are accepted.
struct Proxy {
    addr: SocketAddr,
    up: watch::Sender<bool>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (up, _) = watch::channel(true);
        let state = up.subscribe();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if !*state.borrow() {
                    continue;
                }
                tokio::spawn(forward(inbound, upstream.clone(), state.clone()));
            }
        });
        Proxy { addr, up }
    }

    fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }
}

async fn forward(mut inbound: TcpStream, upstream: String, mut state: watch::Receiver<bool>) {
    let Ok(mut outbound) = TcpStream::connect(upstream).await else { return };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
        _ = state.wait_for(|up| !*up) => {}
    }
}

/// A request answered during the outage: a 503 with `Retry-After`, quickly.
async fn assert_unavailable(what: &str, req: reqwest::RequestBuilder) -> Value {
    let started = Instant::now();
    let resp = req.timeout(Duration::from_secs(20)).send().await.unwrap_or_else(|e| panic!("{what}: {e}"));
    let elapsed = started.elapsed();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE, "{what}");
    assert_eq!(resp.headers()["retry-after"], "1", "{what}");
    assert!(elapsed < Duration::from_secs(8), "{what} took {elapsed:?}");
    let text = resp.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

/// An authorization request in the outage. When the client is known from memory, the request is
/// answered the OAuth way: back to the client with `temporarily_unavailable` (RFC 6749 §4.1.2.1);
/// when even the client cannot be read, with a 503 page. Never a sign-in page or a code.
async fn authorize_unavailable(http: &reqwest::Client, url: &str) {
    let started = Instant::now();
    let resp = http.get(url).timeout(Duration::from_secs(20)).send().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(8), "authorize took {:?}", started.elapsed());
    match resp.status() {
        StatusCode::SERVICE_UNAVAILABLE => assert_eq!(resp.headers()["retry-after"], "1"),
        StatusCode::SEE_OTHER | StatusCode::FOUND => {
            let location = resp.headers()["location"].to_str().unwrap().to_owned();
            let query: Vec<(String, String)> =
                url::Url::parse(&location).unwrap().query_pairs().into_owned().collect();
            assert!(location.starts_with(REDIRECT_URI), "{location}");
            assert_eq!(param(&query, "error"), Some("temporarily_unavailable"), "{location}");
            assert!(param(&query, "code").is_none(), "{location}");
        }
        other => panic!("authorize answered {other} in the outage"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_and_started_mid_run() {
    let Some(base) = std::env::var("LADDER_TEST_DATABASE_URL").ok().filter(|u| !u.is_empty()) else {
        println!("note: db_outage runs on PostgreSQL only (set LADDER_TEST_DATABASE_URL); skipped on SQLite");
        return;
    };
    let target = url::Url::parse(&base).unwrap();
    let upstream = format!("{}:{}", target.host_str().unwrap(), target.port().unwrap_or(5432));
    let proxy = Proxy::start(upstream).await;
    let app = spawn_app_with(|s| {
        let mut url = url::Url::parse(&s.database.url).unwrap();
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(proxy.addr.port())).unwrap();
        s.database.url = url.to_string();
    })
    .await;
    app.add_user("alice");
    let client = app.add_client(false);
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();

    // Before: a code issued and kept; a sign-in page open in another browser.
    let kept = Browser::new().sign_in(&app, &app.authorize_url(&client, &[]), "alice").await;
    let kept = param(&kept, "code").unwrap().to_owned();
    let browser = Browser::new();
    let (_, login_page) = browser.open(&app, &app.authorize_url(&client, &[])).await.page();

    proxy.set_up(false);
    // In the gap: pages and JSON endpoints answer 503 quickly; nothing is answered wrongly.
    authorize_unavailable(&http, &app.authorize_url(&client, &[])).await;
    let form =
        [("csrf", input_value(&login_page, "csrf")), ("username", "alice".into()), ("password", PASSWORD.into())];
    assert_unavailable("password", browser.http.post(app.url(&form_action(&login_page))).form(&form)).await;
    let exchange = [("grant_type", "authorization_code"), ("code", kept.as_str()), ("redirect_uri", REDIRECT_URI)];
    let secret = client.secret.as_deref();
    let body =
        assert_unavailable("token", http.post(app.url("/token")).basic_auth(&client.id, secret).form(&exchange)).await;
    assert_eq!(body["error"], "temporarily_unavailable");
    // What needs no database still answers.
    let discovery = http.get(app.url("/.well-known/openid-configuration")).send().await.unwrap();
    assert_eq!(discovery.status(), StatusCode::OK);

    proxy.set_up(true);
    // After: the node reconnects by itself, no restart.
    let started = Instant::now();
    loop {
        let resp = http.get(app.authorize_url(&client, &[])).send().await.unwrap();
        let to_rp = resp.headers().get("location").is_some_and(|l| l.to_str().unwrap().starts_with(REDIRECT_URI));
        let status = resp.status();
        let body = resp.text().await.unwrap();
        // Back up: the sign-in page again.
        if status == StatusCode::OK && body.contains(r#"action="/interaction/"#) {
            break;
        }
        assert!(status == StatusCode::SERVICE_UNAVAILABLE || to_rp, "{status}: {body}");
        assert!(started.elapsed() < Duration::from_secs(30), "not reconnected after {:?}", started.elapsed());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The code refused in the gap was not spent: it works once, and only once.
    assert_eq!(app.exchange(&client, &kept, &[]).await.0, StatusCode::OK);
    assert_eq!(app.exchange(&client, &kept, &[]).await.0, StatusCode::BAD_REQUEST);
    // The sign-in left open during the outage completes, and so does a new one with its exchange.
    let query = browser.submit_login(&app, &login_page, "alice", PASSWORD).await.rp();
    let (status, tokens) = app.exchange(&client, param(&query, "code").unwrap(), &[]).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let query = Browser::new().sign_in(&app, &app.authorize_url(&client, &[]), "alice").await;
    assert_eq!(app.exchange(&client, param(&query, "code").unwrap(), &[]).await.0, StatusCode::OK);
}

/// The connection a request already holds is cut mid-request: the error is "unavailable" (a 503
/// with Retry-After), not an internal error (a 500).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_cut_mid_request_is_unavailability() {
    let Some(base) = std::env::var("LADDER_TEST_DATABASE_URL").ok().filter(|u| !u.is_empty()) else {
        println!("note: db_outage runs on PostgreSQL only (set LADDER_TEST_DATABASE_URL); skipped on SQLite");
        return;
    };
    let target = url::Url::parse(&base).unwrap();
    let proxy = Proxy::start(format!("{}:{}", target.host_str().unwrap(), target.port().unwrap_or(5432))).await;
    let app = spawn_app_with(|s| {
        let mut url = url::Url::parse(&s.database.url).unwrap();
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(proxy.addr.port())).unwrap();
        s.database.url = url.to_string();
    })
    .await;
    let (db, up) = (app.db.clone(), proxy.up.clone());
    let result = tokio::task::spawn_blocking(move || {
        db.read(|conn| {
            ladder_store::users::count_users(conn)?;
            up.send_replace(false);
            std::thread::sleep(Duration::from_millis(300));
            ladder_store::users::count_users(conn)
        })
    })
    .await
    .unwrap();
    assert!(matches!(result, Err(ladder_store::StoreError::Unavailable(_))), "{result:?}");
}
