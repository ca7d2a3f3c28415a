//! Passkeys end to end with a software authenticator driving the real endpoints: enrolled during a
//! step-up to loa:3, used as a step-up factor and as the first factor; replayed challenges and
//! foreign origins refused.

use reqwest::StatusCode;
use serde_json::{Value, json};
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse, Url};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use crate::harness::*;

const LOA3: &str = "urn:ladder:loa:3";

/// The passkey widget of a page: its endpoint base and CSRF token.
pub(crate) fn widget(html: &str) -> (String, String) {
    let tag = text_between(html, "<div class=\"passkey\"", ">").expect("a passkey widget");
    let attr = |name: &str| text_between(tag, &format!("{name}=\""), "\"").unwrap().to_owned();
    (attr("data-base"), attr("data-csrf"))
}

pub(crate) async fn call(app: &TestApp, browser: &Browser, path: &str, csrf: &str, body: Value) -> (StatusCode, Value) {
    let resp = browser
        .http
        .post(app.url(path))
        .header("x-csrf-token", csrf)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

pub(crate) fn origin(app: &TestApp) -> Url {
    Url::parse(&app.issuer).unwrap()
}

/// Registers a passkey from a "Create a passkey" page; returns the response of the finish call.
async fn register(app: &TestApp, browser: &Browser, html: &str, authenticator: &mut SoftPasskey) -> (StatusCode, Value, Value) {
    let (base, csrf) = widget(html);
    let (status, answer) = call(app, browser, &format!("{base}/passkey/register/options"), &csrf, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let options: CreationChallengeResponse = serde_json::from_value(answer["options"].clone()).unwrap();
    let credential = authenticator.do_registration(origin(app), options).expect("registration");
    let body = json!({ "challenge_id": answer["challenge_id"], "credential": credential, "name": "Laptop" });
    let (status, done) = call(app, browser, &format!("{base}/passkey/register"), &csrf, body.clone()).await;
    (status, done, body)
}

async fn tokens_for(app: &TestApp, client: &TestClient, browser: &Browser, location: &str) -> (Value, Value) {
    let query = browser.open(app, location).await.rp();
    let (status, body) = app.exchange(client, param(&query, "code").unwrap(), &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (jwt_claims(body["id_token"].as_str().unwrap()), jwt_claims(body["access_token"].as_str().unwrap()))
}

/// alice signs in with her password and enrols a passkey inside a loa:3 step-up.
pub(crate) async fn alice_with_passkey(app: &TestApp, client: &TestClient) -> (Browser, SoftPasskey, Value) {
    app.add_user("alice");
    let browser = Browser::new();
    browser.sign_in(app, &app.authorize_url(client, &[]), "alice").await;
    app.clock.advance(5);
    let (status, html) = browser.open(app, &app.authorize_url(client, &[("acr_values", LOA3)])).await.page();
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Create a passkey"), "{html}");
    let mut authenticator = SoftPasskey::new(true);
    let (status, done, _) = register(app, &browser, &html, &mut authenticator).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let (id, _) = tokens_for(app, client, &browser, done["location"].as_str().unwrap()).await;
    (browser, authenticator, id)
}

#[tokio::test]
async fn passkey_enrolled_during_step_up_reaches_loa3() {
    let app = spawn_localhost_app().await;
    let client = app.add_client(false);
    let (_, _, id) = alice_with_passkey(&app, &client).await;
    assert_eq!(id["acr"], LOA3);
    assert_eq!(id["amr"], json!(["pwd", "hwk", "user", "mfa"]));
    assert_eq!(id["auth_time"].as_i64().unwrap(), app.now());
    let events = app.db.read(|c| ladder_store::audit::list_events(c, 50)).unwrap();
    assert!(events.iter().any(|e| e.kind == "enrolment" && e.outcome == "success" && e.detail.contains("passkey")));
}

#[tokio::test]
async fn registration_challenge_is_single_use() {
    let app = spawn_localhost_app().await;
    app.add_user("alice");
    let client = app.add_client(false);
    let browser = Browser::new();
    browser.sign_in(&app, &app.authorize_url(&client, &[]), "alice").await;
    let (_, html) = browser.open(&app, &app.authorize_url(&client, &[("acr_values", LOA3)])).await.page();
    let mut authenticator = SoftPasskey::new(true);
    let (status, _, body) = register(&app, &browser, &html, &mut authenticator).await;
    assert_eq!(status, StatusCode::OK);
    let (base, csrf) = widget(&html);
    let (status, answer) = call(&app, &browser, &format!("{base}/passkey/register"), &csrf, body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
}

#[tokio::test]
async fn passkey_step_up_and_replayed_or_foreign_assertions() {
    let app = spawn_localhost_app().await;
    let client = app.add_client(false);
    let (_, mut authenticator, _) = alice_with_passkey(&app, &client).await;

    // A new browser: password first, then a loa:3 step-up asks only for the passkey.
    let browser = Browser::new();
    browser.sign_in(&app, &app.authorize_url(&client, &[]), "alice").await;
    app.clock.advance(60);
    let (_, html) = browser.open(&app, &app.authorize_url(&client, &[("acr_values", LOA3)])).await.page();
    assert!(html.contains("Use your passkey"), "{html}");
    assert!(!html.contains(r#"name="password""#));
    let (base, csrf) = widget(&html);

    // Signed for another origin: refused.
    let (_, answer) = call(&app, &browser, &format!("{base}/passkey/options"), &csrf, json!({})).await;
    let options: RequestChallengeResponse = serde_json::from_value(answer["options"].clone()).unwrap();
    let port = Url::parse(&app.issuer).unwrap().port().unwrap();
    // Another site on the same host (another port) is another origin: the authenticator signs for
    // it (the rp id still matches), and the server must refuse.
    let other_origin = Url::parse(&format!("http://localhost:{}", port.wrapping_add(1))).unwrap();
    let foreign = authenticator.do_authentication(other_origin, options).expect("signed for the other origin");
    let body = json!({ "challenge_id": answer["challenge_id"], "credential": foreign });
    let (status, _) = call(&app, &browser, &format!("{base}/passkey"), &csrf, body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "wrong origin refused");

    let (_, answer) = call(&app, &browser, &format!("{base}/passkey/options"), &csrf, json!({})).await;
    let options: RequestChallengeResponse = serde_json::from_value(answer["options"].clone()).unwrap();
    let credential = authenticator.do_authentication(origin(&app), options).expect("assertion");
    let body = json!({ "challenge_id": answer["challenge_id"], "credential": credential });
    let (status, done) = call(&app, &browser, &format!("{base}/passkey"), &csrf, body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    // The same assertion again: its challenge is spent.
    let (status, _) = call(&app, &browser, &format!("{base}/passkey"), &csrf, body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "replayed challenge refused");

    let (id, at) = tokens_for(&app, &client, &browser, done["location"].as_str().unwrap()).await;
    assert_eq!(id["acr"], LOA3);
    assert_eq!(at["acr"], LOA3);
    assert_eq!(id["amr"], json!(["pwd", "hwk", "user", "mfa"]));
    // loa:3 lasts 15 minutes from the passkey: the access token ends then, not later.
    assert!(at["exp"].as_i64().unwrap() <= app.now() + 15 * 60 + 1);
}

#[tokio::test]
async fn passkey_as_the_first_factor() {
    let app = spawn_localhost_app().await;
    let client = app.add_client(false);
    let (_, mut authenticator, _) = alice_with_passkey(&app, &client).await;

    let browser = Browser::new();
    let (_, html) = browser.open(&app, &app.authorize_url(&client, &[])).await.page();
    assert!(html.contains("Sign in with a passkey"));
    let (base, csrf) = widget(&html);
    let (status, answer) = call(&app, &browser, &format!("{base}/passkey/options"), &csrf, json!({ "username": "alice" })).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let options: RequestChallengeResponse = serde_json::from_value(answer["options"].clone()).unwrap();
    app.clock.advance(1);
    let credential = authenticator.do_authentication(origin(&app), options).expect("assertion");
    let body = json!({ "challenge_id": answer["challenge_id"], "credential": credential });
    let (status, done) = call(&app, &browser, &format!("{base}/passkey"), &csrf, body).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let (id, _) = tokens_for(&app, &client, &browser, done["location"].as_str().unwrap()).await;
    // One user-verified passkey proves possession and inherence: the highest level, alone.
    assert_eq!(id["acr"], LOA3);
    assert_eq!(id["amr"], json!(["hwk", "user", "mfa"]));

    // An unknown username gets the same kind of answer (no account enumeration).
    let other = Browser::new();
    let (_, html) = other.open(&app, &app.authorize_url(&client, &[])).await.page();
    let (base, csrf) = widget(&html);
    let (status, answer) = call(&app, &other, &format!("{base}/passkey/options"), &csrf, json!({ "username": "nobody" })).await;
    assert_eq!(status, StatusCode::OK);
    assert!(answer["options"]["publicKey"]["challenge"].is_string());
}

/// Signs in with the passkey as the first factor; returns the finish call's status and body.
async fn passkey_sign_in(app: &TestApp, client: &TestClient, authenticator: &mut SoftPasskey) -> (StatusCode, Value) {
    let browser = Browser::new();
    let (_, html) = browser.open(app, &app.authorize_url(client, &[])).await.page();
    let (base, csrf) = widget(&html);
    let (_, answer) = call(app, &browser, &format!("{base}/passkey/options"), &csrf, json!({ "username": "alice" })).await;
    let options: RequestChallengeResponse = serde_json::from_value(answer["options"].clone()).unwrap();
    let credential = authenticator.do_authentication(origin(app), options).expect("assertion");
    let body = json!({ "challenge_id": answer["challenge_id"], "credential": credential });
    call(app, &browser, &format!("{base}/passkey"), &csrf, body).await
}

#[tokio::test]
async fn a_cloned_authenticator_is_refused_and_audited() {
    let app = spawn_localhost_app().await;
    let client = app.add_client(false);
    let (_, mut authenticator, _) = alice_with_passkey(&app, &client).await;
    assert_eq!(passkey_sign_in(&app, &client, &mut authenticator).await.0, StatusCode::OK);

    // Another copy of the key has been used far more often: the stored counter is ahead.
    let stored = app.db.read(|c| {
        let alice = ladder_store::users::find_user_by_username(c, "alice")?.unwrap();
        ladder_store::passkeys::list_for_user(c, &alice.id)
    });
    let stored = stored.unwrap().remove(0);
    let mut credential: Value = serde_json::from_str(&stored.credential).unwrap();
    credential["cred"]["counter"] = json!(1000);
    let (id, updated) = (stored.id.clone(), credential.to_string());
    app.db.write(|c| ladder_store::passkeys::record_use(c, &id, &updated, 0)).unwrap();

    let (status, body) = passkey_sign_in(&app, &client, &mut authenticator).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let events = app.db.read(|c| ladder_store::audit::list_events(c, 50)).unwrap();
    assert!(events.iter().any(|e| e.outcome == "failure" && e.detail.contains("possible_cloned_authenticator")));
}

#[tokio::test]
async fn passkeys_can_be_renamed_and_removed_by_their_owner_only() {
    let app = spawn_localhost_app().await;
    let client = app.add_client(false);
    alice_with_passkey(&app, &client).await;
    let bob = app.add_user("bob");
    let alice = app.db.read(|c| ladder_store::users::find_user_by_username(c, "alice")).unwrap().unwrap().id;
    let key = app.db.read(|c| ladder_store::passkeys::list_for_user(c, &alice)).unwrap().remove(0);
    assert_eq!(key.name, "Laptop");
    use ladder_store::passkeys::{delete, rename};
    assert!(!app.db.write(|c| rename(c, &bob, &key.id, "mine now")).unwrap(), "not bob's");
    assert!(app.db.write(|c| rename(c, &alice, &key.id, "Old laptop")).unwrap());
    assert!(!app.db.write(|c| delete(c, &bob, &key.id)).unwrap());
    assert!(app.db.write(|c| delete(c, &alice, &key.id)).unwrap());
    let enrolled = app.db.read(|c| ladder_store::factors::enrolled(c, &alice)).unwrap();
    assert!(!enrolled.contains(&ladder_core::Factor::Passkey));
}
