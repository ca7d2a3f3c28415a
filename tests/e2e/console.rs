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
        ("grant_authorization_code", "on"),
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
    driver.wait_for_text("<title>Dashboard · Ladder</title>").await;
    driver.screenshot(&shots, "console-dashboard").await;

    driver.go(&app.url("/admin/clients/new")).await;
    driver.type_into("#name", "Chromium RP").await;
    driver.type_into("#redirect_uris", "https://chromium-rp.example/cb").await;
    driver.type_into("#scopes", "profile email").await;
    driver.click("#auth_method option[value=client_secret_post]").await;
    driver.click("input[name=grant_client_credentials]").await;
    driver.type_into("#access_token_ttl", "120").await;
    // Tall enough to see the whole form at once.
    driver.resize(1280, 2000).await;
    driver.screenshot(&shots, "console-client-form").await;
    driver.click(".console-form button[type=submit]").await;
    let page = driver.wait_for_text("is registered").await;
    assert!(page.contains("Chromium RP is registered") && page.contains("Client secret"), "{page}");
    driver.screenshot(&shots, "console-client-created").await;
    let clients = app.db.read(ladder_store::clients::list_clients).unwrap();
    let made = &clients.iter().find(|c| c.name == "Chromium RP").expect("registered").settings;
    assert_eq!((made.token_endpoint_auth_method.as_str(), made.access_token_ttl_secs), ("client_secret_post", Some(120)));
    assert_eq!(made.grant_types, ["authorization_code", "refresh_token", "client_credentials"]);
    driver.resize(1280, 900).await;

    driver.go(&app.url("/admin/clients")).await;
    let page = driver.wait_for_text("<title>Clients · Ladder</title>").await;
    assert!(page.contains("chromium-rp.example"), "{page}");
    driver.screenshot(&shots, "console-clients").await;
    for (path, title) in [("/admin/users", "Users"), ("/admin/audit", "Audit"), ("/admin/policy", "Policy"), ("/admin/sessions", "Sessions")] {
        driver.go(&app.url(path)).await;
        driver.wait_for_text(&format!("<title>{title} · Ladder</title>")).await;
        driver.screenshot(&shots, &format!("console{}", path.replace('/', "-"))).await;
    }
    driver.go(&app.url("/account")).await;
    driver.wait_for_text("Ways you sign in").await;
    driver.screenshot(&shots, "account").await;
    driver.resize(390, 2600).await;
    driver.go(&app.url("/admin/clients/new")).await;
    driver.wait_for_text("<title>Register a client · Ladder</title>").await;
    driver.screenshot(&shots, "console-client-form-phone").await;
    driver.resize(390, 844).await;
    driver.go(&app.url("/admin/clients")).await;
    driver.wait_for_text("<title>Clients · Ladder</title>").await;
    driver.screenshot(&shots, "console-clients-phone").await;
    driver.go(&app.url("/account")).await;
    driver.wait_for_text("Ways you sign in").await;
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
    let good = [
        ("csrf", csrf.as_str()),
        ("name", "Acme Renamed"),
        ("redirect_uris", "https://rp.example.test/new"),
        ("grant_authorization_code", "on"),
        ("min_acr", "urn:ladder:loa:2"),
    ];
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

/// A token request authenticated with the secret in the body (client_secret_post) or in a Basic
/// header; returns status and JSON body.
async fn token(
    app: &TestApp,
    client: &TestClient,
    by_post: bool,
    form: &[(&str, &str)],
) -> (StatusCode, serde_json::Value) {
    let secret = client.secret.clone().expect("a confidential client");
    let mut body: Vec<(&str, &str)> = form.to_vec();
    let req = reqwest::Client::new().post(app.url("/token"));
    let req = if by_post {
        body.extend([
            ("client_id", client.id.as_str()),
            ("client_secret", secret.as_str()),
        ]);
        req.form(&body)
    } else {
        req.basic_auth(&client.id, Some(&secret)).form(&body)
    };
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or_default())
}

/// The client id and secret shown once on the "is registered" page.
fn shown_client(page: &str) -> TestClient {
    let code = |label: &str| {
        text_between(
            page,
            &format!("{label}</dt><dd><code class=\"secret\">"),
            "</code>",
        )
        .map(str::to_owned)
    };
    TestClient {
        id: code("Client ID").expect("the client id"),
        secret: code("Client secret"),
    }
}

fn stored(app: &TestApp, id: &str) -> ladder_store::clients::Client {
    let id = id.to_owned();
    app.db
        .read(move |c| ladder_store::clients::find_client(c, &id))
        .unwrap()
        .expect("stored")
}

#[tokio::test]
async fn a_client_registered_through_the_form_gets_its_auth_method_grants_and_lifetimes() {
    let app = spawn_app().await;
    let secret = admin(&app);
    app.add_user("alice");
    let browser = Browser::new();
    let (_, html) = console_sign_in(&app, &browser, "/admin/clients/new", &secret).await;
    for legend in [
        "Identity",
        "Redirects",
        "Authentication",
        "Tokens",
        "Step-up",
    ] {
        assert!(
            html.contains(&format!("<legend>{legend}</legend>")),
            "{legend}:\n{html}"
        );
    }
    let csrf = input_value(&html, "csrf");
    let form = [
        ("csrf", csrf.as_str()),
        ("name", "Ledger"),
        ("redirect_uris", REDIRECT_URI),
        ("auth_method", "client_secret_post"),
        ("grant_authorization_code", "on"),
        ("grant_refresh_token", "on"),
        ("grant_client_credentials", "on"),
        ("scopes", "profile"),
        ("audience", "https://api.ledger.example"),
        ("access_token_ttl", "120"),
        ("id_token_ttl", "300"),
        ("refresh_token_ttl", "3600"),
        ("id_token_alg", "ES256"),
        ("access_token_alg", "EdDSA"),
    ];
    let page = post(&app, &browser, "/admin/clients/new", &form)
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Ledger is registered"), "{page}");
    let client = shown_client(&page);
    let s = stored(&app, &client.id).settings;
    assert_eq!(s.token_endpoint_auth_method, "client_secret_post");
    assert_eq!(
        s.grant_types,
        ["authorization_code", "refresh_token", "client_credentials"]
    );
    assert_eq!(
        (
            s.access_token_ttl_secs,
            s.id_token_ttl_secs,
            s.refresh_token_ttl_secs
        ),
        (Some(120), Some(300), Some(3600))
    );
    assert_eq!(
        (s.id_token_signed_response_alg.as_deref(), s.access_token_signed_response_alg.as_deref()),
        (Some("ES256"), Some("EdDSA"))
    );

    // It authenticates by post, and only by post.
    let cc = [("grant_type", "client_credentials"), ("scope", "profile")];
    let (status, body) = token(&app, &client, false, &cc).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client")),
        "{body}"
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("client_secret_post"),
        "{body}"
    );
    let (status, body) = token(&app, &client, true, &cc).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let at = jwt_claims(body["access_token"].as_str().unwrap());
    assert_eq!(body["expires_in"], 120);
    assert_eq!(jwt_header(body["access_token"].as_str().unwrap())["alg"], "EdDSA");
    assert_eq!(at["exp"].as_i64().unwrap(), app.now() + 120);
    assert_eq!(at["aud"], "https://api.ledger.example");

    // A person signs in: the access token, the ID token and the refresh token use its lifetimes.
    let query = Browser::new()
        .sign_in(&app, &app.authorize_url(&client, &[]), "alice")
        .await;
    let code = [
        ("grant_type", "authorization_code"),
        ("code", param(&query, "code").unwrap()),
        ("redirect_uri", REDIRECT_URI),
    ];
    let (status, body) = token(&app, &client, true, &code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["expires_in"], 120);
    assert_eq!(
        jwt_claims(body["access_token"].as_str().unwrap())["exp"]
            .as_i64()
            .unwrap(),
        app.now() + 120
    );
    let id = jwt_claims(body["id_token"].as_str().unwrap());
    assert_eq!(
        id["exp"].as_i64().unwrap() - id["iat"].as_i64().unwrap(),
        300
    );

    app.clock.advance(600);
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let (status, body) = token(
        &app,
        &client,
        true,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["expires_in"], 120, "refreshed tokens too");
    // Each refresh token lives an hour, not the global thirty days.
    app.clock.advance(3601);
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let (status, body) = token(
        &app,
        &client,
        true,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{body}"
    );

    let events = app
        .db
        .read(|c| ladder_store::audit::list_events(c, 200))
        .unwrap();
    let e = events.iter().find(|e| {
        e.kind == "admin"
            && e.detail.contains("client_registered")
            && e.detail.contains(r#""by":"root""#)
    });
    assert!(
        e.expect("audited with who")
            .detail
            .contains(r#""access_token_ttl_secs":120"#)
    );
}

#[tokio::test]
async fn invalid_client_forms_are_explained_and_nothing_is_saved() {
    let app = spawn_app().await;
    let secret = admin(&app);
    let browser = Browser::new();
    let (_, html) = console_sign_in(&app, &browser, "/admin/clients/new", &secret).await;
    let csrf = input_value(&html, "csrf");
    let before = app
        .db
        .read(ladder_store::clients::list_clients)
        .unwrap()
        .len();
    let grant = ("grant_authorization_code", "on");
    let cases: [(&[(&str, &str)], &str); 9] = [
        (&[grant, ("id_token_alg", "HS256")], "ID token algorithm `HS256`; use one of RS256, ES256, EdDSA"),
        (
            &[grant, ("access_token_ttl", "ten minutes")],
            "whole number of seconds",
        ),
        (
            &[grant, ("access_token_ttl", "0")],
            "between 1 and 86400 seconds",
        ),
        (
            &[grant, ("id_token_ttl", "999999999")],
            "ID token lifetime must be between",
        ),
        (
            &[
                grant,
                ("access_token_ttl", "600"),
                ("refresh_token_ttl", "60"),
            ],
            "at least the access token lifetime",
        ),
        (
            &[grant, ("auth_method", "private_key_jwt")],
            "needs the client",
        ),
        (
            &[
                grant,
                ("auth_method", "private_key_jwt"),
                ("jwks", "{not a key set"),
            ],
            "not a valid JWK set",
        ),
        (
            &[("auth_method", "none"), ("grant_client_credentials", "on")],
            "public client cannot use client_credentials",
        ),
        (&[("scopes", "profile")], "at least one grant type"),
    ];
    for (extra, expected) in cases {
        let mut form = vec![
            ("csrf", csrf.as_str()),
            ("name", "Broken"),
            ("redirect_uris", REDIRECT_URI),
        ];
        form.extend_from_slice(extra);
        let resp = post(&app, &browser, "/admin/clients/new", &form).await;
        assert_eq!(resp.status(), StatusCode::OK, "{expected}");
        let page = resp.text().await.unwrap();
        let alert = text_between(&page, r#"<div class="alert" role="alert">"#, "</div>")
            .unwrap_or_else(|| panic!("{expected}: no alert\n{page}"));
        assert!(alert.contains(expected), "{expected}: {alert}");
        assert!(page.contains(r#"value="Broken""#), "the values are kept");
    }
    assert_eq!(
        app.db
            .read(ladder_store::clients::list_clients)
            .unwrap()
            .len(),
        before,
        "nothing saved"
    );
}

#[tokio::test]
async fn editing_a_client_changes_its_method_grants_and_lifetimes() {
    let app = spawn_app().await;
    let secret = admin(&app);
    let client = app.add_client(false);
    let browser = Browser::new();
    let edit = format!("/admin/clients/{}/edit", client.id);
    let (_, html) = console_sign_in(&app, &browser, &edit, &secret).await;
    assert!(
        html.contains(r#"<option value="client_secret_basic" selected>"#),
        "prefilled:\n{html}"
    );
    assert!(
        html.contains(r#"name="grant_refresh_token" value="on" checked"#),
        "{html}"
    );
    let csrf = input_value(&html, "csrf");
    let form = |csrf: &str, extra: &[(&'static str, &'static str)]| {
        let mut f = vec![
            ("csrf".to_owned(), csrf.to_owned()),
            ("name".into(), "Acme".into()),
            ("redirect_uris".into(), REDIRECT_URI.into()),
        ];
        f.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        f
    };
    let send = |f: Vec<(String, String)>| browser.http.post(app.url(&edit)).form(&f).send();

    // Without this browser's CSRF token: refused, nothing changed.
    let forged = form(
        "forged-forged-forged-forged-forged",
        &[
            ("auth_method", "client_secret_post"),
            ("grant_client_credentials", "on"),
        ],
    );
    assert_eq!(send(forged).await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(
        stored(&app, &client.id).settings.token_endpoint_auth_method,
        "client_secret_basic"
    );

    // Invalid changes are explained; nothing is saved.
    for (extra, expected) in [
        (
            &[("auth_method", "none"), ("grant_authorization_code", "on")][..],
            "cannot switch to method none",
        ),
        (
            &[
                ("grant_client_credentials", "on"),
                ("access_token_ttl", "90"),
                ("refresh_token_ttl", "30"),
            ][..],
            "at least the access token lifetime",
        ),
        (
            &[
                ("grant_client_credentials", "on"),
                ("audience", "two words"),
            ][..],
            "without spaces",
        ),
    ] {
        let resp = send(form(&csrf, extra)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let page = resp.text().await.unwrap();
        assert!(page.contains(expected), "{expected}:\n{page}");
    }
    assert_eq!(
        stored(&app, &client.id).settings.access_token_ttl_secs,
        None
    );

    // Now by post, for itself only, with 90-second access tokens; the secret stays.
    let good = form(
        &csrf,
        &[
            ("auth_method", "client_secret_post"),
            ("grant_client_credentials", "on"),
            ("access_token_ttl", "90"),
            ("scopes", "profile"),
        ],
    );
    let resp = send(good).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let s = stored(&app, &client.id).settings;
    assert_eq!(
        (
            s.token_endpoint_auth_method.as_str(),
            s.grant_types.as_slice()
        ),
        ("client_secret_post", &["client_credentials".to_owned()][..])
    );
    let cc = [("grant_type", "client_credentials"), ("scope", "profile")];
    assert_eq!(
        token(&app, &client, false, &cc).await.0,
        StatusCode::UNAUTHORIZED,
        "no longer by Basic"
    );
    let (status, body) = token(&app, &client, true, &cc).await;
    assert_eq!(
        (status, body["expires_in"].as_i64()),
        (StatusCode::OK, Some(90)),
        "{body}"
    );
    let code = [
        ("grant_type", "authorization_code"),
        ("code", "x"),
        ("redirect_uri", REDIRECT_URI),
    ];
    assert_eq!(
        token(&app, &client, true, &code).await.1["error"],
        "unauthorized_client"
    );

    // private_key_jwt drops the shared secret; back to a secret method issues a new one, shown once.
    let jwks = r#"{"keys":[{"kty":"EC","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YilurN5VmcXsDl3gBQ_3cZ3CXSq0zEq0WM","kid":"1"}]}"#;
    let mut f = form(
        &csrf,
        &[
            ("auth_method", "private_key_jwt"),
            ("grant_client_credentials", "on"),
        ],
    );
    f.push(("jwks".into(), jwks.into()));
    assert_eq!(send(f).await.unwrap().status(), StatusCode::SEE_OTHER);
    assert!(stored(&app, &client.id).secret_hash.is_none());
    assert_eq!(
        token(&app, &client, true, &cc).await.0,
        StatusCode::UNAUTHORIZED,
        "the old secret is gone"
    );
    let back = [
        ("auth_method", "client_secret_basic"),
        ("grant_client_credentials", "on"),
        ("scopes", "profile"),
    ];
    let page = send(form(&csrf, &back))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let fresh = shown_client(&page);
    assert!(fresh.secret.is_some(), "{page}");
    assert_eq!(token(&app, &fresh, false, &cc).await.0, StatusCode::OK);

    let events = app
        .db
        .read(|c| ladder_store::audit::list_events(c, 200))
        .unwrap();
    let updates: Vec<_> = events
        .iter()
        .filter(|e| e.kind == "admin" && e.detail.contains("client_updated"))
        .collect();
    assert_eq!(
        updates.len(),
        3,
        "one per saved edit, none for refused ones"
    );
    assert!(updates.iter().all(|e| e.detail.contains(r#""by":"root""#)));

    // The console's own client is not for editing: every administrator's sign-in depends on it.
    let own = app.url("/admin/clients/ladder-console/edit");
    let resp = browser.http.get(&own).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = browser.http.post(&own).form(&form(&csrf, &[("grant_authorization_code", "on")])).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_clients_lifetime_is_still_capped_where_the_level_lapses() {
    // loa:1 lasts five minutes here; the client asks for hour-long access tokens.
    let app = spawn_app_with(|s| s.levels[0].max_age_secs = Some(300)).await;
    let client = app.add_client_with(false, |c| c.settings.access_token_ttl_secs = Some(3600));
    app.add_user("alice");
    let query = Browser::new()
        .sign_in(&app, &app.authorize_url(&client, &[]), "alice")
        .await;
    let (status, body) = app
        .exchange(&client, param(&query, "code").unwrap(), &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let proof = jwt_claims(body["id_token"].as_str().unwrap())["auth_time"]
        .as_i64()
        .unwrap();
    let exp = jwt_claims(body["access_token"].as_str().unwrap())["exp"]
        .as_i64()
        .unwrap();
    assert_eq!(exp, proof + 301, "the lapse, not now + 3600");
    assert_eq!(body["expires_in"].as_i64().unwrap(), exp - app.now());
}
