//! The account page: a user sees and changes their ways of signing in; changing the password or
//! removing a factor first asks for a fresh sign-in at their strongest level.

use reqwest::StatusCode;
use serde_json::json;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::prelude::{CreationChallengeResponse, Url};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use crate::harness::*;
use crate::stepup::{current_code, submit_code};

/// Follows Ladder's pages (password, TOTP) until back on an account page.
async fn through_ladder(app: &TestApp, browser: &Browser, mut html: String, password: &str, secret: Option<&[u8]>) -> String {
    for _ in 0..3 {
        let on_ladder = html.contains(r#"action="/interaction/"#);
        if on_ladder && html.contains(r#"name="password""#) {
            (_, html) = browser.submit_login(app, &html, "alice", password).await.page();
        } else if on_ladder && html.contains(r#"value="totp""#) {
            app.clock.advance(30);
            let resp = submit_code(app, browser, &html, &current_code(app, secret.expect("a TOTP secret")), false).await;
            (_, html) = browser.follow(app, resp).await.page();
        } else {
            break;
        }
    }
    html
}

async fn open(app: &TestApp, browser: &Browser, path: &str) -> String {
    browser.open(app, &app.url(path)).await.page().1
}

async fn post(app: &TestApp, browser: &Browser, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
    browser.http.post(app.url(path)).form(form).send().await.unwrap()
}

#[tokio::test]
async fn set_up_and_remove_an_authenticator_app_with_a_fresh_step_up() {
    let app = spawn_app().await;
    app.add_user("alice");
    let browser = Browser::new();
    let page = open(&app, &browser, "/account").await;
    let page = through_ladder(&app, &browser, page, PASSWORD, None).await;
    assert!(page.contains("Your account") && page.contains("not set up"), "{page}");
    let csrf = input_value(&page, "csrf");

    // Set it up from the account page.
    let html = open(&app, &browser, "/account/totp").await;
    let secret = text_between(&html, r#"<code class="secret">"#, "</code>").expect("the key");
    let secret = ladder_core::totp::secret_from_base32(secret).unwrap();
    app.clock.advance(1);
    let resp = post(&app, &browser, "/account/totp", &[("csrf", csrf.as_str()), ("code", &current_code(&app, &secret))]).await;
    let codes = resp.text().await.unwrap();
    assert!(codes.contains("Save your recovery codes"), "{codes}");
    let page = open(&app, &browser, "/account").await;
    assert!(page.contains("Authenticator app · on") && page.contains("10 left"), "{page}");

    // Removing it now needs loa:2, proven fresh: Ladder asks only for the TOTP code.
    let resp = post(&app, &browser, "/account/totp/remove", &[("csrf", csrf.as_str())]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let confirm = resp.headers()["location"].to_str().unwrap().to_owned();
    let html = open(&app, &browser, &confirm).await;
    assert!(html.contains(r#"value="totp""#) && !html.contains(r#"name="password""#), "only the missing factor:\n{html}");
    let html = through_ladder(&app, &browser, html, PASSWORD, Some(&secret)).await;
    assert!(html.contains("Remove your authenticator app?"), "{html}");
    let resp = post(&app, &browser, &form_action(&html), &[("csrf", input_value(&html, "csrf").as_str())]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let done = resp.headers()["location"].to_str().unwrap().to_owned();
    let page = open(&app, &browser, &done).await;
    assert!(page.contains("was removed") && page.contains("not set up"), "{page}");
    let events = app.db.read(|c| ladder_store::audit::list_events(c, 100)).unwrap();
    assert!(events.iter().any(|e| e.kind == "factor_removed" && e.detail.contains("totp")));

    // Forged forms change nothing.
    let resp = post(&app, &browser, "/account/sessions/others/end", &[("csrf", "forged-forged-forged-forged-forged")]).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn changing_the_password_reauthenticates_and_signs_out_other_sessions() {
    let app = spawn_app().await;
    app.add_user("alice");
    let client = app.add_client(false);
    let elsewhere = Browser::new();
    elsewhere.sign_in(&app, &app.authorize_url(&client, &[]), "alice").await;

    let browser = Browser::new();
    let page = open(&app, &browser, "/account").await;
    through_ladder(&app, &browser, page, PASSWORD, None).await;
    app.clock.advance(400);
    // Ten minutes later: the password form first asks for the password again.
    let html = open(&app, &browser, "/account/password").await;
    assert!(html.contains(r#"action="/interaction/"#), "{html}");
    let html = through_ladder(&app, &browser, html, PASSWORD, None).await;
    assert!(html.contains("Change your password"), "{html}");
    let csrf = input_value(&html, "csrf");
    let page = post(&app, &browser, "/account/password", &[("csrf", csrf.as_str()), ("new_password", "a brand new secret"), ("confirm", "something else")]).await.text().await.unwrap();
    assert!(page.contains("different"), "{page}");
    let resp = post(&app, &browser, "/account/password", &[("csrf", csrf.as_str()), ("new_password", "a brand new secret"), ("confirm", "a brand new secret")]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);

    let query = elsewhere.open(&app, &app.authorize_url(&client, &[("prompt", "none")])).await.rp();
    assert_eq!(param(&query, "error"), Some("login_required"), "other sessions ended");
    let fresh = Browser::new();
    let (_, html) = fresh.open(&app, &app.authorize_url(&client, &[])).await.page();
    let (_, html) = fresh.submit_login(&app, &html, "alice", PASSWORD).await.page();
    assert!(html.contains("don&#39;t match"), "the old password no longer works");
    let query = fresh.submit_login(&app, &html, "alice", "a brand new secret").await.rp();
    assert!(param(&query, "code").is_some());
    let events = app.db.read(|c| ladder_store::audit::list_events(c, 100)).unwrap();
    assert!(events.iter().any(|e| e.kind == "password_changed"));
}

#[tokio::test]
async fn add_a_passkey_from_the_account_page() {
    let app = spawn_localhost_app().await;
    app.add_user("alice");
    let browser = Browser::new();
    let page = open(&app, &browser, "/account").await;
    let page = through_ladder(&app, &browser, page, PASSWORD, None).await;
    assert!(page.contains("Add a passkey"), "{page}");
    let html = open(&app, &browser, "/account/passkey").await;
    let csrf = input_value(&html, "csrf");
    let csrf = if csrf.is_empty() { text_between(&html, "data-csrf=\"", "\"").unwrap().to_owned() } else { csrf };
    let call = |path: &'static str, body: serde_json::Value| {
        let req = browser.http.post(app.url(path)).header("x-csrf-token", csrf.clone()).json(&body);
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status();
            (status, resp.json::<serde_json::Value>().await.unwrap_or_default())
        }
    };
    let (status, answer) = call("/account/passkey/register/options", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let options: CreationChallengeResponse = serde_json::from_value(answer["options"].clone()).unwrap();
    let mut authenticator = SoftPasskey::new(true);
    let credential = authenticator.do_registration(Url::parse(&app.issuer).unwrap(), options).unwrap();
    let (status, done) = call("/account/passkey/register", json!({ "challenge_id": answer["challenge_id"], "credential": credential, "name": "Phone" })).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let page = open(&app, &browser, "/account").await;
    assert!(page.contains("Passkey “Phone”"), "{page}");
}

/// After alice signs in with her passkey two days on, her account page and the console's user list
/// say when it was added and when it was last used (and the admin's authenticator app likewise).
#[tokio::test]
async fn passkey_last_use_shows_on_the_account_and_console_pages() {
    use crate::passkeys::{alice_with_passkey, call, origin, widget};
    use webauthn_authenticator_rs::prelude::RequestChallengeResponse;
    let app = spawn_localhost_app().await;
    let client = app.add_client(false);
    let (_, mut authenticator, _) = alice_with_passkey(&app, &client).await;
    // The test clock starts at 2027-01-15 08:00 UTC.
    app.clock.advance(2 * 86_400);

    let browser = Browser::new();
    let html = open(&app, &browser, "/account").await;
    let (base, csrf) = widget(&html);
    let (status, answer) = call(
        &app,
        &browser,
        &format!("{base}/passkey/options"),
        &csrf,
        json!({ "username": "alice" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let options: RequestChallengeResponse =
        serde_json::from_value(answer["options"].clone()).unwrap();
    app.clock.advance(1);
    let credential = authenticator
        .do_authentication(origin(&app), options)
        .expect("assertion");
    let body = json!({ "challenge_id": answer["challenge_id"], "credential": credential });
    let (status, done) = call(&app, &browser, &format!("{base}/passkey"), &csrf, body).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let location = done["location"].as_str().unwrap();
    let location = if location.starts_with('/') {
        app.url(location)
    } else {
        location.to_owned()
    };
    let (_, page) = browser.open(&app, &location).await.page();
    assert!(page.contains("Ways you sign in"), "{page}");
    let row = text_between(&page, "Passkey “Laptop”", "</li>").expect("the passkey");
    assert!(
        row.contains("added 2027-01-15") && row.contains("last used 2027-01-17"),
        "{row}"
    );

    let root = app.add_user("root");
    ladder_server::manage::set_admin(&app.db, "root", true, app.now()).unwrap();
    let secret = app.enrol_totp(&root);
    let admin = Browser::new();
    let (_, html) = crate::console::console_sign_in(&app, &admin, "/admin/users", &secret).await;
    let when = |d: &str| format!(r#"<span class="when">{d}"#);
    let passkey =
        text_between(&html, "Passkey “Laptop”: added ", "</li>").expect("alice's passkey");
    assert!(
        passkey.starts_with(&when("2027-01-15"))
            && passkey.contains(&format!("last used {}", when("2027-01-17"))),
        "{passkey}"
    );
    let totp = text_between(&html, "Authenticator app: added ", "</li>")
        .expect("the admin's own authenticator");
    assert!(
        totp.starts_with(&when("2027-01-17"))
            && totp.contains(&format!("last used {}", when("2027-01-17"))),
        "{totp}"
    );
}
