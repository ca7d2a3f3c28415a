//! Two stateless nodes on one database, every request alternating between them (cookies and all):
//! nothing lives in a node's memory that the other needs.

use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::*;
use crate::stepup::{current_code, submit_code};

/// The same path on the other node.
fn on(node: &TestApp, url_or_path: &str) -> String {
    let path = url_or_path.find("/interaction").or_else(|| url_or_path.find("/authorize")).map_or(url_or_path, |i| &url_or_path[i..]);
    node.url(path)
}

#[tokio::test]
async fn login_step_up_and_tokens_across_two_nodes() {
    let a = spawn_app().await;
    let b = spawn_peer(&a).await;
    let client = a.add_client(false);
    let alice = a.add_user("alice");
    let secret = a.enrol_totp(&alice);
    let browser = Browser::new();

    // Authorize on A, see the sign-in page again from B, post the password to A.
    let (_, first) = browser.open(&a, &on(&a, &a.authorize_url(&client, &[]))).await.page();
    let interaction = form_action(&first).trim_end_matches("/password").to_owned();
    let (_, html) = browser.open(&b, &on(&b, &interaction)).await.page();
    let query = browser.submit_login(&a, &html, "alice", PASSWORD).await.rp();
    // Exchange on B.
    let (status, tokens) = b.exchange(&client, param(&query, "code").unwrap(), &[]).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");

    // Step up: request on B, TOTP page from A, code posted to B.
    let (_, html) = browser.open(&b, &on(&b, &b.authorize_url(&client, &[("acr_values", "urn:ladder:loa:2")]))).await.page();
    a.clock.advance(30);
    b.clock.advance(30);
    let code = current_code(&a, &secret);
    let resp = submit_code(&b, &browser, &html, &code, false).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let query = browser.follow(&a, resp).await.rp();
    let (status, stepped) = a.exchange(&client, param(&query, "code").unwrap(), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(jwt_claims(stepped["id_token"].as_str().unwrap())["acr"], "urn:ladder:loa:2");

    // The same TOTP code on the other node, another session: refused there too.
    let other = Browser::new();
    other.sign_in(&b, &on(&b, &b.authorize_url(&client, &[])), "alice").await;
    let (_, html) = other.open(&a, &on(&a, &a.authorize_url(&client, &[("acr_values", "urn:ladder:loa:2")]))).await.page();
    let resp = submit_code(&a, &other, &html, &code, false).await;
    assert!(resp.text().await.unwrap().contains("already used"));

    // Refresh on A, introspect on B, revoke on A, introspect on B again.
    let form = [("grant_type", "refresh_token"), ("refresh_token", stepped["refresh_token"].as_str().unwrap())];
    let refreshed: Value = reqwest::Client::new()
        .post(a.url("/token"))
        .basic_auth(&client.id, client.secret.as_deref())
        .form(&form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let at = refreshed["access_token"].as_str().unwrap();
    let introspect = |node: &TestApp| {
        reqwest::Client::new().post(node.url("/introspect")).basic_auth(&client.id, client.secret.as_deref()).form(&[("token", at)]).send()
    };
    let body: Value = introspect(&b).await.unwrap().json().await.unwrap();
    assert_eq!((body["active"].clone(), body["acr"].clone()), (Value::Bool(true), Value::from("urn:ladder:loa:2")));
    reqwest::Client::new().post(a.url("/revoke")).basic_auth(&client.id, client.secret.as_deref()).form(&[("token", at)]).send().await.unwrap();
    let body: Value = introspect(&b).await.unwrap().json().await.unwrap();
    assert_eq!(body["active"], false);

    // A key rotated through A is served (and used) by B.
    ladder_server::manage::rotate_keys(&a.db, &a.server_key, None, a.now()).unwrap();
    b.state.keys.reload().await.unwrap();
    let jwks: Value = reqwest::get(b.url("/jwks.json")).await.unwrap().json().await.unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 6, "three algorithms, old and new");

    // Logging out through B ends the session A sees.
    let id_token = stepped["id_token"].as_str().unwrap();
    let resp = browser.http.get(format!("{}?id_token_hint={id_token}", b.url("/end_session"))).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let query = browser.open(&a, &on(&a, &a.authorize_url(&client, &[("prompt", "none")]))).await.rp();
    assert_eq!(param(&query, "error"), Some("login_required"));
}

#[tokio::test]
async fn failed_attempt_counters_are_shared() {
    let a = spawn_app().await;
    let b = spawn_peer(&a).await;
    let client = a.add_client(false);
    a.add_user("alice");
    let browser = Browser::new();
    let (_, html) = browser.open(&a, &on(&a, &a.authorize_url(&client, &[]))).await.page();
    for node in [&a, &b, &a, &b, &a] {
        browser.submit_login(node, &html, "alice", "guess").await.page();
    }
    let (status, page) = browser.submit_login(&b, &html, "alice", PASSWORD).await.page();
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{page}");
}
