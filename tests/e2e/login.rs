//! The sign-in page: generic failures, throttling, CSRF and browser binding, single use, cookies,
//! and disabled users.

use reqwest::StatusCode;

use crate::harness::*;

async fn login_page(app: &TestApp, browser: &Browser, client: &TestClient) -> String {
    let (status, html) = browser.open(app, &app.authorize_url(client, &[])).await.page();
    assert_eq!(status, StatusCode::OK);
    html
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_message() {
    let app = spawn_app().await;
    app.add_user("alice");
    let client = app.add_client(false);
    let browser = Browser::new();
    let html = login_page(&app, &browser, &client).await;
    let (s1, wrong_password) = browser.submit_login(&app, &html, "alice", "not the password").await.page();
    let (s2, unknown_user) = browser.submit_login(&app, &html, "mallory", PASSWORD).await.page();
    assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK));
    let message = "That username and password don&#39;t match";
    assert!(wrong_password.contains(message) && unknown_user.contains(message), "{wrong_password}");
    // The same interaction still completes with the right password.
    let query = browser.submit_login(&app, &html, "alice", PASSWORD).await.rp();
    assert!(param(&query, "code").is_some());
}

#[tokio::test]
async fn repeated_failures_lock_the_account_for_a_while() {
    let app = spawn_app().await;
    app.add_user("alice");
    let client = app.add_client(false);
    let browser = Browser::new();
    let html = login_page(&app, &browser, &client).await;
    for _ in 0..5 {
        let (status, _) = browser.submit_login(&app, &html, "alice", "guess").await.page();
        assert_eq!(status, StatusCode::OK);
    }
    // Locked now: even the right password is refused, without checking it.
    let (status, page) = browser.submit_login(&app, &html, "alice", PASSWORD).await.page();
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(page.contains("Too many failed attempts"), "{page}");
    // The lock is per account: another user from elsewhere is unaffected... and it expires.
    app.clock.advance(31);
    let query = browser.submit_login(&app, &html, "alice", PASSWORD).await.rp();
    assert!(param(&query, "code").is_some());
}

#[tokio::test]
async fn login_form_requires_the_csrf_token_of_the_browser_that_started() {
    let app = spawn_app().await;
    app.add_user("alice");
    let client = app.add_client(false);
    let browser = Browser::new();
    let html = login_page(&app, &browser, &client).await;
    let action = form_action(&html);

    let resp = browser
        .http
        .post(app.url(&action))
        .form(&[("csrf", "forged-token-forged-token-forged"), ("username", "alice"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    // Another browser (no cookie) replaying the whole form, token included, is refused too.
    let csrf = input_value(&html, "csrf");
    let other = Browser::new();
    let resp = other
        .http
        .post(app.url(&action))
        .form(&[("csrf", csrf.as_str()), ("username", "alice"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let page = action.trim_end_matches("/password");
    let resp = other.http.get(app.url(page)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_interaction_completes_once_and_expires() {
    let app = spawn_app().await;
    app.add_user("alice");
    let client = app.add_client(false);
    let browser = Browser::new();
    let html = login_page(&app, &browser, &client).await;
    browser.submit_login(&app, &html, "alice", PASSWORD).await.rp();
    let (status, page) = browser.submit_login(&app, &html, "alice", PASSWORD).await.page();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("expired"), "{page}");

    let browser = Browser::new();
    let html = login_page(&app, &browser, &client).await;
    app.clock.advance(901);
    let (status, _) = browser.submit_login(&app, &html, "alice", PASSWORD).await.page();
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn session_cookie_is_httponly_lax_and_rotates() {
    let app = spawn_app().await;
    app.add_user("alice");
    let client = app.add_client(false);
    let browser = Browser::new();
    let html = login_page(&app, &browser, &client).await;
    let action = form_action(&html);
    let csrf = input_value(&html, "csrf");
    let resp = browser
        .http
        .post(app.url(&action))
        .form(&[("csrf", csrf.as_str()), ("username", "alice"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("ladder_session="))
        .expect("a session cookie");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"), "{cookie}");
}

#[tokio::test]
async fn login_hint_prefills_the_username() {
    let app = spawn_app().await;
    let client = app.add_client(false);
    let (_, html) = Browser::new().open(&app, &app.authorize_url(&client, &[("login_hint", "alice")])).await.page();
    assert_eq!(input_value(&html, "username"), "alice");
}

#[tokio::test]
async fn disabling_a_user_ends_their_sessions_and_blocks_login() {
    let app = spawn_app().await;
    app.add_user("alice");
    let client = app.add_client(false);
    let browser = Browser::new();
    browser.sign_in(&app, &app.authorize_url(&client, &[]), "alice").await;
    let query = browser.open(&app, &app.authorize_url(&client, &[("prompt", "none")])).await.rp();
    assert!(param(&query, "code").is_some(), "signed in before");

    ladder_server::manage::disable_user(&app.db, "alice", app.now()).unwrap();
    let query = browser.open(&app, &app.authorize_url(&client, &[("prompt", "none")])).await.rp();
    assert_eq!(param(&query, "error"), Some("login_required"));
    let html = login_page(&app, &browser, &client).await;
    let (_, page) = browser.submit_login(&app, &html, "alice", PASSWORD).await.page();
    assert!(page.contains("don&#39;t match"), "a disabled user cannot sign in");
}

#[tokio::test]
async fn a_code_for_a_user_disabled_since_is_refused() {
    let app = spawn_app().await;
    app.add_user("alice");
    let client = app.add_client(false);
    let query = Browser::new().sign_in(&app, &app.authorize_url(&client, &[]), "alice").await;
    ladder_server::manage::disable_user(&app.db, "alice", app.now()).unwrap();
    let (status, body) = app.exchange(&client, param(&query, "code").unwrap(), &[]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
}

/// Wall time of one password POST, answer read to its end.
async fn timed_attempt(app: &TestApp, browser: &Browser, html: &str, username: &str) -> std::time::Duration {
    let form =
        [("csrf", input_value(html, "csrf")), ("username", username.into()), ("password", "a wrong guess".into())];
    let started = std::time::Instant::now();
    let resp = browser.http.post(app.url(&form_action(html))).form(&form).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let page = resp.text().await.unwrap();
    let elapsed = started.elapsed();
    assert!(page.contains("That username and password don&#39;t match"), "{page}");
    elapsed
}

fn median(mut v: Vec<std::time::Duration>) -> std::time::Duration {
    v.sort();
    v[v.len() / 2]
}

/// Enumeration by timing: an unknown username must cost what a known one with a wrong password
/// costs (argon2 runs either way). The bound is loose so a busy machine cannot fail it, yet skipping
/// the hash for unknown users (a few ms against tens) breaks it by far.
#[tokio::test]
async fn unknown_users_take_as_long_as_wrong_passwords() {
    let app = spawn_app_with(|s| {
        s.login.max_failures_per_user = 1_000_000;
        s.login.max_failures_per_ip = 1_000_000;
    })
    .await;
    app.add_user("alice");
    let client = app.add_client(false);
    let browser = Browser::new();
    let html = login_page(&app, &browser, &client).await;
    // Warm up (the dummy hash is computed on first use).
    for name in ["alice", "nobody-0"] {
        timed_attempt(&app, &browser, &html, name).await;
    }
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for i in 0..15 {
        // Alternate which goes first, so drift in machine load hits both alike.
        let unknown_name = format!("nobody-{i}");
        if i % 2 == 0 {
            known.push(timed_attempt(&app, &browser, &html, "alice").await);
            unknown.push(timed_attempt(&app, &browser, &html, &unknown_name).await);
        } else {
            unknown.push(timed_attempt(&app, &browser, &html, &unknown_name).await);
            known.push(timed_attempt(&app, &browser, &html, "alice").await);
        }
    }
    let (k, u) = (median(known), median(unknown));
    let (small, large) = if k < u { (k, u) } else { (u, k) };
    assert!(small.as_secs_f64() >= 0.5 * large.as_secs_f64(), "median known {k:?}, unknown {u:?}: not flat");
    println!("median wrong password {k:?}, unknown user {u:?}");
}
