//! The token endpoint refuses every malformed or mismatched redemption with the exact RFC 6749
//! §5.2 error, and binds codes to client, redirect URI and PKCE.

use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::*;

async fn post_token(app: &TestApp, form: &[(&str, &str)], basic: Option<(&str, &str)>) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let mut req = reqwest::Client::new().post(app.url("/token")).form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let resp = req.send().await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    (status, resp.json().await.unwrap_or(Value::Null), headers)
}

async fn fresh_code(app: &TestApp, client: &TestClient, extra: &[(&str, &str)]) -> String {
    let browser = Browser::new();
    let query = browser.sign_in(app, &app.authorize_url(client, extra), "alice").await;
    param(&query, "code").unwrap().to_owned()
}

#[tokio::test]
async fn client_authentication_failures_are_invalid_client() {
    let app = spawn_app().await;
    app.add_user("alice");
    let client = app.add_client(false);
    let code = fresh_code(&app, &client, &[]).await;
    let base = [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", REDIRECT_URI)];

    let (status, body, headers) = post_token(&app, &base, Some((&client.id, "wrong-secret"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");
    assert!(headers["www-authenticate"].to_str().unwrap().starts_with("Basic"));

    let (status, body, _) = post_token(&app, &base, Some(("unknown-client", "x"))).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")));

    // A confidential client cannot skip authentication.
    let mut form = base.to_vec();
    form.push(("client_id", &client.id));
    let (status, body, _) = post_token(&app, &form, None).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")));

    // Two methods at once.
    let secret = client.secret.clone().unwrap();
    let mut form = base.to_vec();
    form.push(("client_secret", &secret));
    let (status, body, _) = post_token(&app, &form, Some((&client.id, &secret))).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")));

    // None of these burned the code.
    let (status, _, _) = post_token(&app, &base, Some((&client.id, &secret))).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn malformed_token_requests() {
    let app = spawn_app().await;
    let client = app.add_client(false);
    let secret = client.secret.clone().unwrap();
    let auth = Some((client.id.as_str(), secret.as_str()));
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("code", "x"), ("redirect_uri", REDIRECT_URI)], "invalid_request"),
        (vec![("grant_type", "password"), ("username", "a"), ("password", "b")], "unsupported_grant_type"),
        (vec![("grant_type", "authorization_code"), ("redirect_uri", REDIRECT_URI)], "invalid_request"),
        (vec![("grant_type", "authorization_code"), ("code", "nope"), ("redirect_uri", REDIRECT_URI)], "invalid_grant"),
        (vec![("grant_type", "authorization_code"), ("grant_type", "authorization_code"), ("code", "x")], "invalid_request"),
    ];
    for (form, want) in cases {
        let (status, body, headers) = post_token(&app, &form, auth).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{form:?}");
        assert_eq!(body["error"], want, "{form:?}");
        assert_eq!(headers["cache-control"], "no-store");
    }
    let resp = reqwest::Client::new()
        .post(app.url("/token"))
        .basic_auth(&client.id, Some(&secret))
        .header("content-type", "application/json")
        .body("{\"grant_type\":\"authorization_code\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn codes_are_bound_to_redirect_uri_client_and_time() {
    let app = spawn_app().await;
    app.add_user("alice");
    let client = app.add_client(false);
    let other = app.add_client(false);

    let code = fresh_code(&app, &client, &[]).await;
    let (status, body) = app.exchange(&other, &code, &[]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "another client");

    let code = fresh_code(&app, &client, &[]).await;
    let form = [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", "https://rp.example.test/other")];
    let (status, body, _) = post_token(&app, &form, Some((&client.id, client.secret.as_deref().unwrap()))).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "redirect_uri");

    let code = fresh_code(&app, &client, &[]).await;
    app.clock.advance(61);
    let (status, body) = app.exchange(&client, &code, &[]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "expired");
}

#[tokio::test]
async fn pkce_mismatches_are_invalid_grant() {
    let app = spawn_app().await;
    app.add_user("alice");
    let client = app.add_client(false);
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let pkce = [("code_challenge", challenge), ("code_challenge_method", "S256")];

    let code = fresh_code(&app, &client, &pkce).await;
    let wrong = "wrong-verifier-wrong-verifier-wrong-verifier-0123";
    let (status, body) = app.exchange(&client, &code, &[("code_verifier", wrong)]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "wrong verifier");

    let code = fresh_code(&app, &client, &pkce).await;
    let (status, body) = app.exchange(&client, &code, &[]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "missing verifier");

    let code = fresh_code(&app, &client, &[]).await;
    let (status, body) = app.exchange(&client, &code, &[("code_verifier", verifier)]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "verifier without a challenge"
    );

    let code = fresh_code(&app, &client, &pkce).await;
    let (status, body) = app.exchange(&client, &code, &[("code_verifier", "short")]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")), "malformed");
}
