//! Mirrors of the OpenID Foundation's Basic OP conformance modules (named after them).

use openidconnect::core::CoreUserInfoClaims;
use openidconnect::{AccessTokenHash, OAuth2TokenResponse, TokenResponse};
use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::*;

/// Signs in through the RP library; returns the verified ID token claims (as JSON), the raw ID
/// token and the access token.
async fn rp_sign_in(app: &TestApp, browser: &Browser, client: &TestClient, extra: &[(&str, &str)]) -> (Value, String, String) {
    let (rp, http) = relying_party(app, client).await;
    let request = rp_request(&rp, extra);
    let query = browser.sign_in(app, &request.url, "alice").await;
    rp_finish(app, &rp, &http, request, &query).await
}

async fn rp_finish(
    app: &TestApp,
    rp: &Rp,
    http: &reqwest::Client,
    request: RpRequest,
    query: &[(String, String)],
) -> (Value, String, String) {
    assert_eq!(param(query, "state"), Some(request.state.secret().as_str()));
    assert_eq!(param(query, "iss"), Some(app.issuer.as_str()), "RFC 9207 iss in the response");
    let tokens = rp
        .exchange_code(code_of(query))
        .unwrap()
        .set_pkce_verifier(request.verifier)
        .request_async(http)
        .await
        .expect("code exchange");
    let id_token = tokens.id_token().expect("an ID token");
    let claims = id_token.claims(&rp.id_token_verifier(), &request.nonce).expect("a valid ID token");
    // at_hash is optional in the code flow; when present it must match.
    if let Some(expected) = claims.access_token_hash() {
        let actual = AccessTokenHash::from_token(
            tokens.access_token(),
            id_token.signing_alg().unwrap(),
            id_token.signing_key(&rp.id_token_verifier()).unwrap(),
        )
        .unwrap();
        assert_eq!(&actual, expected);
    }
    let raw = id_token.to_string();
    (jwt_claims(&raw), raw, tokens.access_token().secret().clone())
}

#[tokio::test]
async fn oidcc_server() {
    let app = spawn_app().await;
    let alice = app.add_user("alice");
    let client = app.add_client(false);
    let browser = Browser::new();
    let (claims, id_token, access_token) = rp_sign_in(&app, &browser, &client, &[]).await;

    assert_eq!(claims["sub"], alice);
    assert_eq!(claims["iss"], app.issuer);
    assert_eq!(claims["aud"], client.id);
    assert_eq!(claims["azp"], client.id);
    assert_eq!(claims["acr"], "urn:ladder:loa:1");
    assert_eq!(claims["amr"], serde_json::json!(["pwd"]));
    assert_eq!(claims["auth_time"], app.now());
    assert!(claims["sid"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(jwt_header(&id_token)["alg"], "RS256");

    // The access token is an RFC 9068 JWT (ES256) carrying the step-up claims.
    let header = jwt_header(&access_token);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");
    let at = jwt_claims(&access_token);
    assert_eq!(at["acr"], "urn:ladder:loa:1");
    assert_eq!(at["amr"], serde_json::json!(["pwd"]));
    assert_eq!(at["client_id"], client.id);
    assert_eq!(at["sub"], alice);

    // UserInfo through the RP library.
    let (rp, http) = relying_party(&app, &client).await;
    let info: CoreUserInfoClaims = rp
        .user_info(openidconnect::AccessToken::new(access_token), None)
        .unwrap()
        .request_async(&http)
        .await
        .expect("userinfo");
    assert_eq!(info.subject().as_str(), alice);
    assert_eq!(info.preferred_username().unwrap().as_str(), "alice");
    assert_eq!(info.email().unwrap().as_str(), "alice@example.com");
}

#[tokio::test]
async fn oidcc_discovery_endpoint_verification() {
    let app = spawn_app().await;
    let resp = reqwest::get(app.url("/.well-known/openid-configuration")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(doc["issuer"], app.issuer);
    assert_eq!(doc["jwks_uri"], app.url("/jwks.json"));
    assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(doc["code_challenge_methods_supported"], serde_json::json!(["S256"]));
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    assert!(doc["id_token_signing_alg_values_supported"].as_array().unwrap().contains(&"RS256".into()));
    let jwks: Value = reqwest::get(app.url("/jwks.json")).await.unwrap().json().await.unwrap();
    let algs: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["alg"].as_str().unwrap()).collect();
    assert!(["RS256", "ES256", "EdDSA"].iter().all(|a| algs.contains(a)), "{algs:?}");
    assert!(jwks["keys"].as_array().unwrap().iter().all(|k| k.get("d").is_none()), "no private parts");
}

#[tokio::test]
async fn oidcc_prompt_login() {
    let app = spawn_app().await;
    app.add_user("alice");
    let client = app.add_client(false);
    let browser = Browser::new();
    let (first, _, _) = rp_sign_in(&app, &browser, &client, &[]).await;
    app.clock.advance(5);
    // With a session, prompt=login still shows the sign-in form, and auth_time moves forward.
    let (second, _, _) = rp_sign_in(&app, &browser, &client, &[("prompt", "login")]).await;
    assert_eq!(first["sub"], second["sub"]);
    assert!(second["auth_time"].as_i64() > first["auth_time"].as_i64());
    assert_eq!(first["sid"], second["sid"], "sid names the browser session, stable for logout");
}

#[tokio::test]
async fn oidcc_prompt_none_not_logged_in() {
    let app = spawn_app().await;
    let client = app.add_client(false);
    let query = Browser::new().open(&app, &app.authorize_url(&client, &[("prompt", "none")])).await.rp();
    assert_eq!(param(&query, "error"), Some("login_required"));
    assert_eq!(param(&query, "state"), Some("st-123"));
    assert_eq!(param(&query, "iss"), Some(app.issuer.as_str()));
    assert_eq!(param(&query, "code"), None);
}

#[tokio::test]
async fn oidcc_prompt_none_logged_in() {
    let app = spawn_app().await;
    app.add_user("alice");
    let client = app.add_client(false);
    let browser = Browser::new();
    let (first, _, _) = rp_sign_in(&app, &browser, &client, &[]).await;
    app.clock.advance(30);
    let (rp, http) = relying_party(&app, &client).await;
    let request = rp_request(&rp, &[("prompt", "none")]);
    let query = browser.open(&app, &request.url).await.rp();
    let (second, _, _) = rp_finish(&app, &rp, &http, request, &query).await;
    assert_eq!(second["sub"], first["sub"]);
    assert_eq!(second["auth_time"], first["auth_time"]);
}

#[tokio::test]
async fn oidcc_max_age_1() {
    let app = spawn_app().await;
    app.add_user("alice");
    let client = app.add_client(false);
    let browser = Browser::new();
    let (first, _, _) = rp_sign_in(&app, &browser, &client, &[]).await;
    app.clock.advance(2);
    let (second, _, _) = rp_sign_in(&app, &browser, &client, &[("max_age", "1")]).await;
    assert!(second["auth_time"].as_i64().unwrap() > first["auth_time"].as_i64().unwrap());
}

#[tokio::test]
async fn oidcc_max_age_10000() {
    let app = spawn_app().await;
    app.add_user("alice");
    let client = app.add_client(false);
    let browser = Browser::new();
    let (first, _, _) = rp_sign_in(&app, &browser, &client, &[]).await;
    app.clock.advance(60);
    let (rp, http) = relying_party(&app, &client).await;
    let request = rp_request(&rp, &[("max_age", "10000")]);
    let query = browser.open(&app, &request.url).await.rp();
    let (second, _, _) = rp_finish(&app, &rp, &http, request, &query).await;
    assert_eq!(second["sub"], first["sub"]);
    assert_eq!(second["auth_time"], first["auth_time"]);
}

#[tokio::test]
async fn max_age_0_forces_a_new_login() {
    let app = spawn_app().await;
    app.add_user("alice");
    let client = app.add_client(false);
    let browser = Browser::new();
    browser.sign_in(&app, &app.authorize_url(&client, &[]), "alice").await;
    let (status, html) = browser.open(&app, &app.authorize_url(&client, &[("max_age", "0")])).await.page();
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(r#"name="password""#));
}

#[tokio::test]
async fn oidcc_id_token_hint() {
    let app = spawn_app().await;
    app.add_user("alice");
    let client = app.add_client(false);
    let browser = Browser::new();
    let (first, id_token, _) = rp_sign_in(&app, &browser, &client, &[]).await;
    let (rp, http) = relying_party(&app, &client).await;
    let request = rp_request(&rp, &[("prompt", "none"), ("id_token_hint", &id_token)]);
    let query = browser.open(&app, &request.url).await.rp();
    let (second, _, _) = rp_finish(&app, &rp, &http, request, &query).await;
    assert_eq!(second["sub"], first["sub"]);
    assert_eq!(second["auth_time"], first["auth_time"]);
}

#[tokio::test]
async fn id_token_hint_for_another_user_is_not_silently_switched() {
    let app = spawn_app().await;
    app.add_user("alice");
    app.add_user("bob");
    let client = app.add_client(false);
    let bobs_browser = Browser::new();
    let query = bobs_browser.sign_in(&app, &app.authorize_url(&client, &[]), "bob").await;
    let (_, bob_tokens) = app.exchange(&client, param(&query, "code").unwrap(), &[]).await;
    let bob_hint = bob_tokens["id_token"].as_str().unwrap().to_owned();

    let alices_browser = Browser::new();
    alices_browser.sign_in(&app, &app.authorize_url(&client, &[]), "alice").await;
    let query = alices_browser
        .open(&app, &app.authorize_url(&client, &[("prompt", "none"), ("id_token_hint", &bob_hint)]))
        .await
        .rp();
    assert_eq!(param(&query, "error"), Some("login_required"));
}

#[tokio::test]
async fn oidcc_codereuse() {
    let app = spawn_app().await;
    app.add_user("alice");
    let client = app.add_client(false);
    let query = Browser::new().sign_in(&app, &app.authorize_url(&client, &[]), "alice").await;
    let code = param(&query, "code").unwrap();
    let (status, body) = app.exchange(&client, code, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app.exchange(&client, code, &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn oidcc_codereuse_30seconds() {
    let app = spawn_app().await;
    app.add_user("alice");
    let client = app.add_client(false);
    let query = Browser::new().sign_in(&app, &app.authorize_url(&client, &[]), "alice").await;
    let code = param(&query, "code").unwrap();
    assert_eq!(app.exchange(&client, code, &[]).await.0, StatusCode::OK);
    app.clock.advance(30);
    let (status, body) = app.exchange(&client, code, &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn oidcc_ensure_registered_redirect_uri() {
    let app = spawn_app().await;
    let client = app.add_client(false);
    let url = app.authorize_url(&client, &[]).replace("rp.example.test", "evil.example.test");
    let resp = Browser::new().http.get(url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.headers().get("location").is_none(), "never redirect to an unregistered URI");
    let html = resp.text().await.unwrap();
    assert!(html.contains("not registered"), "{html}");
}

#[tokio::test]
async fn oidcc_ensure_request_with_unknown_parameter_succeeds() {
    let app = spawn_app().await;
    app.add_user("alice");
    let client = app.add_client(false);
    let query = Browser::new()
        .sign_in(&app, &app.authorize_url(&client, &[("extra", "foobar"), ("display", "page")]), "alice")
        .await;
    assert!(param(&query, "code").is_some());
    assert_eq!(param(&query, "state"), Some("st-123"));
}

#[tokio::test]
async fn oidcc_ensure_post_request_succeeds() {
    let app = spawn_app().await;
    app.add_user("alice");
    let client = app.add_client(false);
    let browser = Browser::new();
    let url = url::Url::parse(&app.authorize_url(&client, &[])).unwrap();
    let form: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let resp = browser.http.post(app.url("/authorize")).form(&form).send().await.unwrap();
    // Post/redirect/get: reloading the sign-in page must not post the request again.
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (status, html) = browser.follow(&app, resp).await.page();
    assert_eq!(status, StatusCode::OK);
    let query = browser.submit_login(&app, &html, "alice", PASSWORD).await.rp();
    let (status, _) = app.exchange(&client, param(&query, "code").unwrap(), &[]).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn oidcc_server_client_secret_post() {
    let app = spawn_app().await;
    app.add_user("alice");
    let client = app.add_client_with(false, |c| c.settings.token_endpoint_auth_method = "client_secret_post".into());
    let query = Browser::new().sign_in(&app, &app.authorize_url(&client, &[]), "alice").await;
    let resp = reqwest::Client::new()
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", param(&query, "code").unwrap()),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", &client.id),
            ("client_secret", client.secret.as_deref().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(jwt_claims(body["id_token"].as_str().unwrap())["nonce"], "n-456");
}

#[tokio::test]
async fn oidcc_ensure_request_with_valid_pkce_succeeds() {
    let app = spawn_app().await;
    app.add_user("alice");
    let client = app.add_client(true);
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let url = app.authorize_url(&client, &[("code_challenge", challenge), ("code_challenge_method", "S256")]);
    let query = Browser::new().sign_in(&app, &url, "alice").await;
    let (status, body) = app
        .exchange(&client, param(&query, "code").unwrap(), &[("client_id", &client.id), ("code_verifier", verifier)])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["id_token"].is_string());
}

#[tokio::test]
async fn oidcc_ensure_request_without_nonce_succeeds_for_code_flow() {
    let app = spawn_app().await;
    app.add_user("alice");
    let client = app.add_client(false);
    let url = app.authorize_url(&client, &[]).replace("&nonce=n-456", "");
    let query = Browser::new().sign_in(&app, &url, "alice").await;
    let (status, body) = app.exchange(&client, param(&query, "code").unwrap(), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(jwt_claims(body["id_token"].as_str().unwrap()).get("nonce").is_none());
}

#[tokio::test]
async fn oidcc_response_type_missing() {
    let app = spawn_app().await;
    let client = app.add_client(false);
    let url = app.authorize_url(&client, &[]).replace("&response_type=code", "");
    let query = Browser::new().open(&app, &url).await.rp();
    assert_eq!(param(&query, "error"), Some("invalid_request"));
    assert_eq!(param(&query, "state"), Some("st-123"));
}

#[tokio::test]
async fn oidcc_userinfo_get_post_header_and_post_body() {
    let app = spawn_app().await;
    let alice = app.add_user("alice");
    let client = app.add_client(false);
    let query = Browser::new().sign_in(&app, &app.authorize_url(&client, &[]), "alice").await;
    let (_, tokens) = app.exchange(&client, param(&query, "code").unwrap(), &[]).await;
    let at = tokens["access_token"].as_str().unwrap();
    let http = reqwest::Client::new();
    let responses = [
        http.get(app.url("/userinfo")).bearer_auth(at).send().await.unwrap(),
        http.post(app.url("/userinfo")).bearer_auth(at).send().await.unwrap(),
        http.post(app.url("/userinfo")).form(&[("access_token", at)]).send().await.unwrap(),
    ];
    for resp in responses {
        assert_eq!(resp.status(), StatusCode::OK);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["sub"], alice);
        assert_eq!(body["name"], "alice Example");
        assert!(body.get("email").is_none(), "email scope was not requested");
    }
    let resp = http.get(app.url("/userinfo")).bearer_auth("not-a-token").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers()["www-authenticate"].to_str().unwrap().contains("invalid_token"));
    // Expired access tokens are refused.
    app.clock.advance(3600);
    let resp = http.get(app.url("/userinfo")).bearer_auth(at).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}
