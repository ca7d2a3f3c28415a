//! The admin console: administrators sign in through Ladder itself at loa:2, every form needs the
//! browser's CSRF token, every change is audited with who made it, and destructive actions ask for
//! a fresh sign-in first.

use reqwest::StatusCode;

use crate::harness::*;
use crate::stepup::{current_code, submit_code};

/// An administrator with a password and TOTP.
fn admin(app: &TestApp) -> Vec<u8> {
    let id = app.add_user("root");
    ladder_server::manage::set_admin(&app.db, "root", true, app.now()).unwrap();
    app.enrol_totp(&id)
}

/// Opens `path` and signs in through the pages Ladder shows on the way; returns the final page.
pub async fn console_sign_in(app: &TestApp, browser: &Browser, path: &str, secret: &[u8]) -> (StatusCode, String) {
    let (_, mut html) = browser.open(app, &app.url(path)).await.page();
    for _ in 0..3 {
        let on_ladder_page = html.contains(r#"action="/interaction/"#);
        if on_ladder_page && html.contains(r#"name="password""#) {
            (_, html) = browser.submit_login(app, &html, "root", PASSWORD).await.page();
        } else if on_ladder_page && html.contains(r#"value="totp""#) {
            app.clock.advance(30);
            let resp = submit_code(app, browser, &html, &current_code(app, secret), false).await;
            (_, html) = browser.follow(app, resp).await.page();
        } else {
            break;
        }
    }
    let status = if html.contains("console-nav") { StatusCode::OK } else { StatusCode::FORBIDDEN };
    (status, html)
}

async fn post(app: &TestApp, browser: &Browser, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
    browser.http.post(app.url(path)).form(form).send().await.unwrap()
}

#[tokio::test]
async fn admins_sign_in_at_loa2_and_others_are_refused() {
    let app = spawn_app().await;
    let secret = admin(&app);
    let browser = Browser::new();
    let (status, html) = console_sign_in(&app, &browser, "/admin", &secret).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("Dashboard") && html.contains("Sign-ins"), "{html}");
    assert!(html.contains("<svg"), "a server-drawn chart");

    // A user who is not an administrator gets a clear refusal.
    let bob = app.add_user("bob");
    let bob_secret = app.enrol_totp(&bob);
    let other = Browser::new();
    let (_, html) = other.open(&app, &app.url("/admin")).await.page();
    let (_, html) = other.submit_login(&app, &html, "bob", PASSWORD).await.page();
    app.clock.advance(30);
    let resp = submit_code(&app, &other, &html, &current_code(&app, &bob_secret), false).await;
    let (status, html) = other.follow(&app, resp).await.page();
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(html.contains("not an administrator"), "{html}");
    // And nothing of the console is reachable without signing in.
    let resp = Browser::new().http.get(app.url("/admin/clients")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(resp.headers()["location"].to_str().unwrap().contains("/authorize?client_id=ladder-console"));
}

#[tokio::test]
async fn register_and_delete_a_client_with_csrf_and_a_fresh_step_up() {
    let app = spawn_app().await;
    let secret = admin(&app);
    let browser = Browser::new();
    let (_, html) = console_sign_in(&app, &browser, "/admin/clients/new", &secret).await;
    assert!(html.contains("Register a client"), "{html}");
    let csrf = input_value(&html, "csrf");

    let form = [
        ("csrf", csrf.as_str()),
        ("name", "Payroll"),
        ("redirect_uris", "https://payroll.example/cb"),
        ("kind", "confidential"),
        ("scopes", "profile"),
        ("min_acr", "urn:ladder:loa:2"),
    ];
    let forged = [("csrf", "forged-forged-forged-forged-forged"), ("name", "Evil"), ("redirect_uris", "https://evil.example/cb")];
    assert_eq!(post(&app, &browser, "/admin/clients/new", &forged).await.status(), StatusCode::FORBIDDEN);
    let resp = post(&app, &browser, "/admin/clients/new", &form).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let page = resp.text().await.unwrap();
    assert!(page.contains("Payroll is registered") && page.contains("Client secret"), "{page}");
    let clients = app.db.read(ladder_store::clients::list_clients).unwrap();
    let payroll = clients.iter().find(|c| c.name == "Payroll").expect("registered");
    assert_eq!(payroll.min_acr.as_deref(), Some("urn:ladder:loa:2"));

    // An invalid form comes back with the error and the values kept.
    let bad = [("csrf", csrf.as_str()), ("name", "Bad"), ("redirect_uris", "http://bad.example/cb"), ("kind", "public")];
    let page = post(&app, &browser, "/admin/clients/new", &bad).await.text().await.unwrap();
    assert!(page.contains("https") && page.contains("Bad"), "{page}");

    // Ten minutes later, deleting asks for a fresh sign-in first.
    app.clock.advance(600);
    let delete = format!("/admin/clients/{}/delete", payroll.id);
    let resp = post(&app, &browser, &delete, &[("csrf", csrf.as_str())]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let confirm = resp.headers()["location"].to_str().unwrap().to_owned();
    assert!(confirm.starts_with("/admin/confirm"), "{confirm}");
    let (_, html) = browser.open(&app, &app.url(&confirm)).await.page();
    assert!(html.contains(r#"name="password""#), "re-authentication first:\n{html}");
    let (_, html) = browser.submit_login(&app, &html, "root", PASSWORD).await.page();
    assert!(html.contains("Delete this client?"), "{html}");
    let resp = post(&app, &browser, &form_action(&html), &[("csrf", input_value(&html, "csrf").as_str())]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(app.db.read(|c| ladder_store::clients::find_client(c, &payroll.id)).unwrap().is_none());

    // Both changes are in the audit, with who made them.
    let events = app.db.read(|c| ladder_store::audit::list_events(c, 200)).unwrap();
    for action in ["client_registered", "client_deleted"] {
        let e = events.iter().find(|e| e.kind == "admin" && e.detail.contains(action)).unwrap_or_else(|| panic!("{action}"));
        assert!(e.detail.contains(r#""by":"root""#), "{}", e.detail);
    }
}

#[tokio::test]
async fn users_sessions_audit_and_policy_pages() {
    let app = spawn_app().await;
    let secret = admin(&app);
    let browser = Browser::new();
    let (_, html) = console_sign_in(&app, &browser, "/admin/users", &secret).await;
    let csrf = input_value(&html, "csrf");
    let resp = post(&app, &browser, "/admin/users/new", &[("csrf", csrf.as_str()), ("username", "carol"), ("email", "carol@example.com"), ("password", "a long password")]).await;
    let status = resp.status();
    assert_eq!(status, StatusCode::SEE_OTHER, "{}", resp.text().await.unwrap());
    let carol = app.db.read(|c| ladder_store::users::find_user_by_username(c, "carol")).unwrap().expect("created");

    // carol signs in somewhere; the console sees and revokes that session.
    let client = app.add_client(false);
    let carols = Browser::new();
    let (_, login) = carols.open(&app, &app.authorize_url(&client, &[])).await.page();
    carols.submit_login(&app, &login, "carol", "a long password").await.rp();
    let (_, html) = browser.open(&app, &app.url("/admin/sessions")).await.page();
    assert!(html.contains("carol"), "{html}");
    let live = app.db.read(|c| ladder_store::sessions::latest_live_for_user(c, &carol.id, app.now(), 3600)).unwrap().unwrap();
    let resp = post(&app, &browser, &format!("/admin/sessions/{}/revoke", live.id), &[("csrf", csrf.as_str())]).await;
    let status = resp.status();
    assert_eq!(status, StatusCode::SEE_OTHER, "{}", resp.text().await.unwrap());
    let query = carols.open(&app, &app.authorize_url(&client, &[("prompt", "none")])).await.rp();
    assert_eq!(param(&query, "error"), Some("login_required"));

    // Disable, make admin, reset factors (fresh enough right after sign-in: no extra step).
    for action in ["disable", "enable", "grant-admin", "revoke-admin", "reset-factors"] {
        let resp = post(&app, &browser, &format!("/admin/users/{}/{action}", carol.id), &[("csrf", csrf.as_str())]).await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{action}");
        assert_eq!(resp.headers()["location"], "/admin/users?done=1", "{action}");
    }
    let (_, html) = browser.open(&app, &app.url("/admin/users?q=car")).await.page();
    assert!(html.contains("carol@example.com") && !html.contains("root@example.com"), "search filters");

    let (_, html) = browser.open(&app, &app.url("/admin/audit?user=carol")).await.page();
    assert!(html.contains("user_disable") || html.contains("session_revoked") || html.contains("login"), "{html}");
    let csv = browser.http.get(app.url("/admin/audit/export?format=csv")).send().await.unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(csv.text().await.unwrap().starts_with("seq,at,kind,outcome"));
    let json: serde_json::Value = browser.http.get(app.url("/admin/audit/export?format=json&outcome=success")).send().await.unwrap().json().await.unwrap();
    assert!(json.as_array().unwrap().iter().all(|e| e["outcome"] == "success"));

    let (_, html) = browser.open(&app, &app.url("/admin/policy")).await.page();
    assert!(html.contains("urn:ladder:loa:3") && html.contains("payments:write"), "{html}");
}

/// A real browser: an administrator signs in with the password and TOTP forms, registers a client
/// through the console's form, and the pages render (screenshots go to the test's temp dir, or to
/// LADDER_SCREENSHOTS when set, to look at).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_admin_registers_a_client() {
    use crate::chromium::Driver;
    let Some(driver) = Driver::start().await else {
        assert!(std::env::var_os("CI").is_none(), "chromium and chromedriver are required in CI");
        return;
    };
    let temp = tempfile::tempdir().unwrap();
    let shots = std::env::var_os("LADDER_SCREENSHOTS").map(std::path::PathBuf::from).unwrap_or_else(|| temp.path().to_owned());
    let app = spawn_localhost_app().await;
    let secret = admin(&app);

    driver.go(&app.url("/admin")).await;
    driver.type_into("#username", "root").await;
    driver.type_into("#password", PASSWORD).await;
    driver.click("button[type=submit]").await;
    app.clock.advance(30);
    driver.type_into("#code", &current_code(&app, &secret)).await;
    driver.click("form button[type=submit]").await;
    driver.wait_for_url(&app.url("/admin")).await;
    let page = driver.page_source().await;
    assert!(page.contains("Dashboard"), "{page}");
    driver.screenshot(&shots, "console-dashboard").await;

    driver.go(&app.url("/admin/clients/new")).await;
    driver.type_into("#name", "Chromium RP").await;
    driver.type_into("#redirect_uris", "https://chromium-rp.example/cb").await;
    driver.type_into("#scopes", "profile email").await;
    driver.screenshot(&shots, "console-client-form").await;
    driver.click(".console-form button[type=submit]").await;
    for _ in 0..50 {
        if driver.page_source().await.contains("is registered") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let page = driver.page_source().await;
    assert!(page.contains("Chromium RP is registered") && page.contains("Client secret"), "{page}");
    driver.screenshot(&shots, "console-client-created").await;

    driver.go(&app.url("/admin/clients")).await;
    assert!(driver.page_source().await.contains("chromium-rp.example"));
    driver.screenshot(&shots, "console-clients").await;
    for path in ["/admin/users", "/admin/audit", "/admin/policy", "/admin/sessions"] {
        driver.go(&app.url(path)).await;
        let page = driver.page_source().await;
        assert!(page.contains("console-nav"), "{path}: {page}");
        driver.screenshot(&shots, &format!("console{}", path.replace('/', "-"))).await;
    }
    driver.go(&app.url("/account")).await;
    assert!(driver.page_source().await.contains("Ways you sign in"));
    driver.screenshot(&shots, "account").await;
    driver.resize(390, 844).await;
    driver.go(&app.url("/admin/clients")).await;
    driver.screenshot(&shots, "console-clients-phone").await;
    driver.go(&app.url("/account")).await;
    driver.screenshot(&shots, "account-phone").await;
    assert!(std::fs::metadata(shots.join("console-clients-phone.png")).unwrap().len() > 1000);
}

#[tokio::test]
async fn edit_disable_rotate_secret_and_rotate_keys() {
    let app = spawn_app().await;
    let secret = admin(&app);
    let client = app.add_client(false);
    let browser = Browser::new();
    let (_, html) = console_sign_in(&app, &browser, &format!("/admin/clients/{}/edit", client.id), &secret).await;
    assert!(html.contains("Save changes") && html.contains(REDIRECT_URI), "prefilled:\n{html}");
    let csrf = input_value(&html, "csrf");
    let edit = format!("/admin/clients/{}/edit", client.id);
    let bad = [("csrf", csrf.as_str()), ("name", "Acme"), ("redirect_uris", "http://not-https.example/cb")];
    let page = post(&app, &browser, &edit, &bad).await.text().await.unwrap();
    assert!(page.contains("https"), "{page}");
    let good = [("csrf", csrf.as_str()), ("name", "Acme Renamed"), ("redirect_uris", "https://rp.example.test/new"), ("min_acr", "urn:ladder:loa:2")];
    assert_eq!(post(&app, &browser, &edit, &good).await.status(), StatusCode::SEE_OTHER);
    let stored = app.db.read(|c| ladder_store::clients::find_client(c, &client.id)).unwrap().unwrap();
    assert_eq!((stored.name.as_str(), stored.redirect_uris[0].as_str()), ("Acme Renamed", "https://rp.example.test/new"));
    assert_eq!(stored.min_acr.as_deref(), Some("urn:ladder:loa:2"));

    // A new secret is shown once; the old one stops working.
    let page = post(&app, &browser, &format!("/admin/clients/{}/rotate-secret", client.id), &[("csrf", csrf.as_str())]).await.text().await.unwrap();
    assert!(page.contains("old secret no longer works"), "{page}");
    let token = |secret: String| {
        let url = app.url("/token");
        let id = client.id.clone();
        async move {
            reqwest::Client::new().post(url).basic_auth(id, Some(secret)).form(&[("grant_type", "authorization_code"), ("code", "x")]).send().await.unwrap().status()
        }
    };
    assert_eq!(token(client.secret.clone().unwrap()).await, StatusCode::UNAUTHORIZED);
    let fresh = text_between(&page, "Client secret</dt><dd><code class=\"secret\">", "</code>").expect("the new secret").to_owned();
    assert_eq!(token(fresh).await, StatusCode::BAD_REQUEST, "authenticates; the code is what is wrong");

    // Disabled clients cannot start a sign-in.
    assert_eq!(post(&app, &browser, &format!("/admin/clients/{}/disable", client.id), &[("csrf", csrf.as_str())]).await.status(), StatusCode::SEE_OTHER);
    let resp = Browser::new().http.get(app.authorize_url(&client, &[])).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    // Rotating keys right after signing in (fresh enough) rotates at once.
    let before = app.db.read(ladder_store::keys::list_all).unwrap().len();
    let resp = post(&app, &browser, "/admin/keys/rotate", &[("csrf", csrf.as_str())]).await;
    assert_eq!(resp.headers()["location"], "/admin/policy?done=1");
    assert_eq!(app.db.read(ladder_store::keys::list_all).unwrap().len(), before + 3, "one new key per algorithm");
}
