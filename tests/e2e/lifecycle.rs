//! Token lifecycle end to end: refresh rotation and family revocation, introspection, revocation,
//! code replay, client_credentials, private_key_jwt, logout (front and back channel), key rotation.

use std::sync::{Arc, Mutex};

use josekit::jwk::KeyPair;
use josekit::jws::{ES256, JwsHeader};
use josekit::jwt::{self, JwtPayload};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::*;

async fn post(app: &TestApp, path: &str, client: &TestClient, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new().post(app.url(path)).form(form);
    if let Some(secret) = &client.secret {
        req = req.basic_auth(&client.id, Some(secret));
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn refresh(app: &TestApp, client: &TestClient, token: &str) -> (StatusCode, Value) {
    post(app, "/token", client, &[("grant_type", "refresh_token"), ("refresh_token", token)]).await
}

async fn introspect(app: &TestApp, client: &TestClient, token: &str) -> Value {
    let (status, body) = post(app, "/introspect", client, &[("token", token)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// alice signs in and the client redeems the code; returns the token response.
async fn signed_in(app: &TestApp, client: &TestClient) -> (Browser, Value) {
    app.add_user("alice");
    let browser = Browser::new();
    let query = browser.sign_in(app, &app.authorize_url(client, &[]), "alice").await;
    let (status, tokens) = app.exchange(client, param(&query, "code").unwrap(), &[]).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    (browser, tokens)
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_else(|| panic!("{k} in {v}"))
}

#[tokio::test]
async fn oidcc_refresh_token() {
    let app = spawn_app().await;
    let client = app.add_client(false);
    let (_, first) = signed_in(&app, &client).await;
    app.clock.advance(100);
    let (status, second) = refresh(&app, &client, s(&first, "refresh_token")).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let (a, b) = (jwt_claims(s(&first, "id_token")), jwt_claims(s(&second, "id_token")));
    assert_eq!(a["sub"], b["sub"]);
    assert_eq!(a["auth_time"], b["auth_time"], "a refresh is not an authentication");
    assert_eq!(a["acr"], b["acr"]);
    assert_ne!(s(&first, "refresh_token"), s(&second, "refresh_token"), "rotated");
    let at = jwt_claims(s(&second, "access_token"));
    assert_eq!(at["acr"], "urn:ladder:loa:1");
    assert_eq!(at["amr"], json!(["pwd"]));
}

#[tokio::test]
async fn refresh_token_reuse_revokes_the_whole_family() {
    let app = spawn_app().await;
    let client = app.add_client(false);
    let (_, first) = signed_in(&app, &client).await;
    let r1 = s(&first, "refresh_token").to_owned();
    let (_, second) = refresh(&app, &client, &r1).await;
    let r2 = s(&second, "refresh_token").to_owned();
    // r1 was rotated: presenting it again means it leaked.
    let (status, body) = refresh(&app, &client, &r1).await;
    assert_eq!((status, s(&body, "error")), (StatusCode::BAD_REQUEST, "invalid_grant"));
    // Everything of that family is dead now: the successor and the access tokens.
    let (status, _) = refresh(&app, &client, &r2).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(introspect(&app, &client, s(&second, "access_token")).await["active"], false);
    assert_eq!(introspect(&app, &client, s(&first, "access_token")).await["active"], false);
    let events = app.db.read(|c| ladder_store::audit::list_events(c, 50)).unwrap();
    assert!(events.iter().any(|e| e.kind == "token" && e.detail.contains("refresh_token_reuse")));
    // Another client cannot use (or probe) this client's refresh token.
    let other = app.add_client(false);
    let (status, _) = refresh(&app, &other, &r2).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn introspection_reports_the_stepped_up_level() {
    let app = spawn_app().await;
    let client = app.add_client(false);
    let (_, tokens) = signed_in(&app, &client).await;
    let body = introspect(&app, &client, s(&tokens, "access_token")).await;
    assert_eq!(body["active"], true);
    assert_eq!(body["acr"], "urn:ladder:loa:1");
    assert_eq!(body["amr"], json!(["pwd"]));
    assert_eq!(body["client_id"], client.id.as_str());
    assert!(body["auth_time"].is_i64() && body["exp"].is_i64() && body["sub"].is_string());
    let rt = introspect(&app, &client, s(&tokens, "refresh_token")).await;
    assert_eq!((rt["active"].clone(), rt["token_type"].clone()), (json!(true), json!("refresh_token")));
    assert_eq!(rt["acr"], "urn:ladder:loa:1");
    assert_eq!(introspect(&app, &client, "garbage").await, json!({ "active": false }));
    // Only authenticated, confidential clients may introspect.
    let resp = reqwest::Client::new().post(app.url("/introspect")).form(&[("token", s(&tokens, "access_token"))]).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let public = app.add_client(true);
    let (status, _) = post(&app, "/introspect", &public, &[("token", s(&tokens, "access_token")), ("client_id", &public.id)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Expiry ends activity.
    app.clock.advance(601);
    assert_eq!(introspect(&app, &client, s(&tokens, "access_token")).await["active"], false);
}

#[tokio::test]
async fn revocation_makes_tokens_inactive() {
    let app = spawn_app().await;
    let client = app.add_client(false);
    let (_, tokens) = signed_in(&app, &client).await;
    let at = s(&tokens, "access_token");
    // Used first, so its verified signature is remembered: revocation must still win.
    assert_eq!(introspect(&app, &client, at).await["active"], true);
    let resp = reqwest::Client::new().get(app.url("/userinfo")).bearer_auth(at).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    // The token names its grant, and is stored only once revoked.
    let jti = jwt_claims(at)["jti"].as_str().unwrap().to_owned();
    assert!(jwt_claims(at)["grant_id"].is_string());
    let stored = |jti: String| app.db.read(move |c| ladder_store::grants::find_access_token(c, &jti)).unwrap();
    assert!(stored(jti.clone()).is_none());
    let (status, _) = post(&app, "/revoke", &client, &[("token", at), ("token_type_hint", "access_token")]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(stored(jti).is_some_and(|r| r.revoked_at.is_some()));
    assert_eq!(introspect(&app, &client, at).await["active"], false);
    let resp = reqwest::Client::new().get(app.url("/userinfo")).bearer_auth(at).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // That token alone: the grant's next access token works.
    let (_, refreshed) = refresh(&app, &client, s(&tokens, "refresh_token")).await;
    let next = s(&refreshed, "access_token");
    assert_eq!(introspect(&app, &client, next).await["active"], true);
    let resp = reqwest::Client::new().get(app.url("/userinfo")).bearer_auth(next).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    // Revoking the refresh token ends the grant, and with it the access token it was given with.
    let rt = s(&refreshed, "refresh_token");
    assert_eq!(post(&app, "/revoke", &client, &[("token", rt)]).await.0, StatusCode::OK);
    assert_eq!(refresh(&app, &client, rt).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(introspect(&app, &client, next).await["active"], false);
    // Unknown tokens: 200, nothing revealed.
    assert_eq!(post(&app, "/revoke", &client, &[("token", "nope")]).await.0, StatusCode::OK);
}

#[tokio::test]
async fn code_replay_revokes_the_tokens_it_issued() {
    let app = spawn_app().await;
    let client = app.add_client(false);
    app.add_user("alice");
    let query = Browser::new().sign_in(&app, &app.authorize_url(&client, &[]), "alice").await;
    let code = param(&query, "code").unwrap();
    let (_, tokens) = app.exchange(&client, code, &[]).await;
    let userinfo = || reqwest::Client::new().get(app.url("/userinfo")).bearer_auth(s(&tokens, "access_token")).send();
    assert_eq!(introspect(&app, &client, s(&tokens, "access_token")).await["active"], true);
    assert_eq!(userinfo().await.unwrap().status(), StatusCode::OK);
    let (status, body) = app.exchange(&client, code, &[]).await;
    assert_eq!((status, s(&body, "error")), (StatusCode::BAD_REQUEST, "invalid_grant"));
    assert_eq!(introspect(&app, &client, s(&tokens, "access_token")).await["active"], false);
    assert_eq!(userinfo().await.unwrap().status(), StatusCode::UNAUTHORIZED, "its grant is revoked");
    assert_eq!(refresh(&app, &client, s(&tokens, "refresh_token")).await.0, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn client_credentials_for_service_clients() {
    let app = spawn_app().await;
    let service = app.add_client_with(false, |c| {
        c.settings.grant_types = vec!["client_credentials".into()];
        c.scopes = vec!["reports:read".into()];
    });
    let (status, body) = post(&app, "/token", &service, &[("grant_type", "client_credentials"), ("scope", "reports:read")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("id_token").is_none() && body.get("refresh_token").is_none());
    assert_eq!(jwt_header(s(&body, "access_token"))["typ"], "at+jwt");
    let at = jwt_claims(s(&body, "access_token"));
    assert_eq!(at["sub"], service.id.as_str());
    assert_eq!(at["scope"], "reports:read");
    assert!(at.get("acr").is_none(), "no user authenticated, no acr");
    let token = s(&body, "access_token").to_owned();
    assert_eq!(introspect(&app, &service, &token).await["active"], true);
    let resp = reqwest::Client::new().get(app.url("/userinfo")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "no user behind a client's own token");

    let (status, refused) = post(&app, "/token", &service, &[("grant_type", "client_credentials"), ("scope", "admin")]).await;
    assert_eq!((status, s(&refused, "error")), (StatusCode::BAD_REQUEST, "invalid_scope"));

    // Not recorded when issued; revoking it records it, revoked, and only that token stops.
    let jti = at["jti"].as_str().unwrap().to_owned();
    let stored = |jti: String| app.db.read(move |c| ladder_store::grants::find_access_token(c, &jti)).unwrap();
    assert!(stored(jti.clone()).is_none());
    let (_, other) = post(&app, "/token", &service, &[("grant_type", "client_credentials")]).await;
    let other = s(&other, "access_token").to_owned();
    for _ in 0..2 {
        let (status, _) = post(&app, "/revoke", &service, &[("token", &token)]).await;
        assert_eq!(status, StatusCode::OK, "revoking twice is fine");
    }
    assert!(stored(jti.clone()).is_some_and(|r| r.revoked_at.is_some()));
    assert_eq!(introspect(&app, &service, &token).await["active"], false);
    assert_eq!(introspect(&app, &service, &other).await["active"], true);
    // Another client cannot revoke it (answered 200 all the same, RFC 7009 §2.2).
    let stranger = app.add_client_with(false, |c| c.settings.grant_types = vec!["client_credentials".into()]);
    assert_eq!(post(&app, "/revoke", &stranger, &[("token", &other)]).await.0, StatusCode::OK);
    assert_eq!(introspect(&app, &stranger, &other).await["active"], true);
    // A disabled client's own tokens stop with it (seen once the client cache's few seconds pass).
    let id = service.id.clone();
    app.db
        .write(move |c| {
            let mut client = ladder_store::clients::find_client(c, &id)?.unwrap();
            client.disabled = true;
            ladder_store::clients::update_client(c, &client)
        })
        .unwrap();
    app.clock.advance(ladder_server::client_cache::TTL_SECS);
    assert_eq!(introspect(&app, &stranger, &other).await["active"], false);

    // A client not registered for the grant is refused.
    let web = app.add_client(false);
    let (status, body) = post(&app, "/token", &web, &[("grant_type", "client_credentials")]).await;
    assert_eq!((status, s(&body, "error")), (StatusCode::BAD_REQUEST, "unauthorized_client"));
}

/// Verifies a token's signature with the published key its header names; returns the header's alg.
async fn verified_alg(app: &TestApp, token: &str) -> String {
    let jwks: Value = reqwest::get(app.url("/jwks.json")).await.unwrap().json().await.unwrap();
    let header = jwt_header(token);
    let key = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == header["kid"]).expect("key published");
    let jwk = josekit::jwk::Jwk::from_bytes(key.to_string()).unwrap();
    let alg = header["alg"].as_str().unwrap().to_owned();
    let verified = match alg.as_str() {
        "RS256" => jwt::decode_with_verifier(token, &josekit::jws::RS256.verifier_from_jwk(&jwk).unwrap()),
        "ES256" => jwt::decode_with_verifier(token, &ES256.verifier_from_jwk(&jwk).unwrap()),
        "EdDSA" => jwt::decode_with_verifier(token, &josekit::jws::EdDSA.verifier_from_jwk(&jwk).unwrap()),
        other => panic!("unexpected alg {other}"),
    };
    verified.unwrap_or_else(|e| panic!("{alg} signature does not verify: {e}"));
    alg
}

#[tokio::test]
async fn clients_choose_the_algorithms_of_their_tokens() {
    let app = spawn_app().await;
    // Defaults: RS256 ID tokens (every RP accepts them), ES256 access tokens.
    let plain = app.add_client(false);
    let (_, tokens) = signed_in(&app, &plain).await;
    assert_eq!(verified_alg(&app, s(&tokens, "id_token")).await, "RS256");
    assert_eq!(verified_alg(&app, s(&tokens, "access_token")).await, "ES256");

    let chooser = app.add_client_with(false, |c| {
        c.settings.id_token_signed_response_alg = Some("ES256".into());
        c.settings.access_token_signed_response_alg = Some("EdDSA".into());
    });
    let browser = Browser::new();
    let query = browser.sign_in(&app, &app.authorize_url(&chooser, &[]), "alice").await;
    let (status, tokens) = app.exchange(&chooser, param(&query, "code").unwrap(), &[]).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(verified_alg(&app, s(&tokens, "id_token")).await, "ES256");
    let at = s(&tokens, "access_token");
    assert_eq!(verified_alg(&app, at).await, "EdDSA");
    assert_eq!(introspect(&app, &chooser, at).await["active"], true);
    let resp = reqwest::Client::new().get(app.url("/userinfo")).bearer_auth(at).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "userinfo accepts an EdDSA access token");
    // Refreshed tokens keep the client's algorithms.
    let (status, refreshed) = refresh(&app, &chooser, s(&tokens, "refresh_token")).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    assert_eq!(verified_alg(&app, s(&refreshed, "id_token")).await, "ES256");
    assert_eq!(verified_alg(&app, s(&refreshed, "access_token")).await, "EdDSA");

    // A service client with RS256 access tokens: introspectable and revocable without a grant row.
    let service = app.add_client_with(false, |c| {
        c.settings.grant_types = vec!["client_credentials".into()];
        c.settings.access_token_signed_response_alg = Some("RS256".into());
    });
    let (status, body) = post(&app, "/token", &service, &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let at = s(&body, "access_token");
    assert_eq!(verified_alg(&app, at).await, "RS256");
    assert_eq!(introspect(&app, &service, at).await["active"], true);
    assert_eq!(post(&app, "/revoke", &service, &[("token", at)]).await.0, StatusCode::OK);
    assert_eq!(introspect(&app, &service, at).await["active"], false);

    // Discovery says what ID tokens can be signed with.
    let discovery: Value = reqwest::get(app.url("/.well-known/openid-configuration")).await.unwrap().json().await.unwrap();
    assert_eq!(discovery["id_token_signing_alg_values_supported"], json!(["RS256", "ES256", "EdDSA"]));
}

fn es256_pair() -> (josekit::jwk::Jwk, String) {
    let pair = ES256.generate_key_pair().unwrap();
    let mut private = pair.to_jwk_private_key();
    private.set_key_id("client-key-1");
    let mut public = pair.to_jwk_public_key();
    public.set_key_id("client-key-1");
    (private, json!({ "keys": [serde_json::from_str::<Value>(&public.to_string()).unwrap()] }).to_string())
}

fn assertion(app: &TestApp, client_id: &str, key: &josekit::jwk::Jwk, jti: &str) -> String {
    let mut header = JwsHeader::new();
    header.set_key_id("client-key-1");
    let mut payload = JwtPayload::new();
    for (k, v) in [
        ("iss", json!(client_id)),
        ("sub", json!(client_id)),
        ("aud", json!(app.url("/token"))),
        ("jti", json!(jti)),
        ("exp", json!(app.now() + 60)),
        ("iat", json!(app.now())),
    ] {
        payload.set_claim(k, Some(v)).unwrap();
    }
    jwt::encode_with_signer(&payload, &header, &ES256.signer_from_jwk(key).unwrap()).unwrap()
}

#[tokio::test]
async fn private_key_jwt_client_authentication() {
    let app = spawn_app().await;
    app.add_user("alice");
    let (private, jwks) = es256_pair();
    let client = app.add_client_with(false, |c| {
        c.settings.token_endpoint_auth_method = "private_key_jwt".into();
        c.settings.jwks = Some(jwks);
    });
    assert!(client.secret.is_none(), "no shared secret for key-based clients");
    let exchange = |code: String, assertion: String| {
        let url = app.url("/token");
        async move {
            let resp = reqwest::Client::new()
                .post(url)
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("redirect_uri", REDIRECT_URI),
                    ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                    ("client_assertion", assertion.as_str()),
                ])
                .send()
                .await
                .unwrap();
            let status = resp.status();
            (status, resp.json::<Value>().await.unwrap())
        }
    };
    let browser = Browser::new();
    let code = param(&browser.sign_in(&app, &app.authorize_url(&client, &[]), "alice").await, "code").unwrap().to_owned();
    let first = assertion(&app, &client.id, &private, "jti-1");
    let (status, body) = exchange(code, first.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The same assertion again (same jti): a replay.
    let code = param(&browser.open(&app, &app.authorize_url(&client, &[])).await.rp(), "code").unwrap().to_owned();
    let (status, body) = exchange(code.clone(), first).await;
    assert_eq!((status, s(&body, "error")), (StatusCode::UNAUTHORIZED, "invalid_client"));
    // Signed by a key the client never registered.
    let (stranger, _) = es256_pair();
    let (status, _) = exchange(code.clone(), assertion(&app, &client.id, &stranger, "jti-2")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The code survived the refusals (authentication comes first) and a good assertion works.
    let (status, _) = exchange(code, assertion(&app, &client.id, &private, "jti-3")).await;
    assert_eq!(status, StatusCode::OK);
}

/// A back-channel logout receiver: records every logout_token POSTed to it.
async fn logout_receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let received: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = received.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = actix_web::HttpServer::new(move || {
        let sink = sink.clone();
        actix_web::App::new().route(
            "/backchannel",
            actix_web::web::post().to(move |body: actix_web::web::Bytes| {
                let sink = sink.clone();
                async move {
                    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
                    if let Some((_, t)) = form.into_iter().find(|(k, _)| k == "logout_token") {
                        sink.lock().unwrap().push(t);
                    }
                    actix_web::HttpResponse::Ok().finish()
                }
            }),
        )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    (format!("http://127.0.0.1:{port}/backchannel"), received)
}

#[tokio::test]
async fn rp_initiated_logout_with_back_channel_notification() {
    let app = spawn_app().await;
    let (receiver, received) = logout_receiver().await;
    let client = app.add_client_with(false, |c| {
        c.settings.post_logout_redirect_uris = vec!["https://rp.example.test/logged-out".into()];
        c.settings.backchannel_logout_uri = Some(receiver.clone());
    });
    let (browser, tokens) = signed_in(&app, &client).await;
    let id_token = s(&tokens, "id_token").to_owned();

    // An unregistered destination is never redirected to.
    let bad = format!("{}?id_token_hint={id_token}&post_logout_redirect_uri=https%3A%2F%2Fevil.example%2F", app.url("/end_session"));
    let resp = browser.http.get(bad).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.headers().get("location").is_none());

    let url = format!(
        "{}?id_token_hint={id_token}&post_logout_redirect_uri=https%3A%2F%2Frp.example.test%2Flogged-out&state=bye",
        app.url("/end_session")
    );
    let resp = browser.http.get(url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()["location"], "https://rp.example.test/logged-out?state=bye");

    // The session is over, and so are its tokens.
    let query = browser.open(&app, &app.authorize_url(&client, &[("prompt", "none")])).await.rp();
    assert_eq!(param(&query, "error"), Some("login_required"));
    assert_eq!(introspect(&app, &client, s(&tokens, "access_token")).await["active"], false);

    // The client's back channel received a valid logout token for that session.
    let mut token = None;
    for _ in 0..50 {
        if let Some(t) = received.lock().unwrap().first().cloned() {
            token = Some(t);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let token = token.expect("a logout token was delivered");
    let jwks: Value = reqwest::get(app.url("/jwks.json")).await.unwrap().json().await.unwrap();
    let header = jwt_header(&token);
    assert_eq!(header["typ"], "logout+jwt");
    let jwk = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == header["kid"]).unwrap();
    let jwk = josekit::jwk::Jwk::from_bytes(jwk.to_string().as_bytes()).unwrap();
    let (claims, _) = jwt::decode_with_verifier(&token, &josekit::jws::RS256.verifier_from_jwk(&jwk).unwrap()).unwrap();
    let id = jwt_claims(&id_token);
    assert_eq!(claims.claim("aud"), Some(&json!(client.id)));
    assert_eq!(claims.claim("sid"), Some(&id["sid"]));
    assert_eq!(claims.claim("sub"), Some(&id["sub"]));
    assert!(claims.claim("events").unwrap().get("http://schemas.openid.net/event/backchannel-logout").is_some());
    assert!(claims.claim("nonce").is_none());
}

#[tokio::test]
async fn logout_without_a_hint_asks_the_user_first() {
    let app = spawn_app().await;
    let client = app.add_client(false);
    let (browser, _) = signed_in(&app, &client).await;
    let resp = browser.http.get(app.url("/end_session")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.text().await.unwrap();
    assert!(html.contains("Sign out of Ladder?"), "{html}");
    // Still signed in until confirmed.
    let query = browser.open(&app, &app.authorize_url(&client, &[("prompt", "none")])).await.rp();
    assert!(param(&query, "code").is_some());
    let forged = browser.http.post(app.url("/end_session/confirm")).form(&[("csrf", "forged")]).send().await.unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let csrf = input_value(&html, "csrf");
    let resp = browser.http.post(app.url("/end_session/confirm")).form(&[("csrf", csrf.as_str())]).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.text().await.unwrap().contains("signed out"));
    let query = browser.open(&app, &app.authorize_url(&client, &[("prompt", "none")])).await.rp();
    assert_eq!(param(&query, "error"), Some("login_required"));
}

#[tokio::test]
async fn oidcc_server_rotate_keys() {
    let app = spawn_app().await;
    let client = app.add_client(false);
    let (browser, before) = signed_in(&app, &client).await;
    let old_kid = jwt_header(s(&before, "id_token"))["kid"].clone();

    ladder_server::manage::rotate_keys(&app.db, &app.server_key, None, app.now()).unwrap();
    app.state.keys.reload().await.unwrap();

    let jwks: Value = reqwest::get(app.url("/jwks.json")).await.unwrap().json().await.unwrap();
    let kids: Vec<&Value> = jwks["keys"].as_array().unwrap().iter().map(|k| &k["kid"]).collect();
    assert!(kids.contains(&&old_kid), "the old key stays published");
    assert_eq!(kids.len(), 6, "three algorithms, old and new");
    // New tokens use the new key; old tokens still verify.
    let query = browser.open(&app, &app.authorize_url(&client, &[])).await.rp();
    let (_, after) = app.exchange(&client, param(&query, "code").unwrap(), &[]).await;
    assert_ne!(jwt_header(s(&after, "id_token"))["kid"], old_kid);
    let resp = reqwest::Client::new().get(app.url("/userinfo")).bearer_auth(s(&before, "access_token")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "an access token signed before the rotation");
    let (rp, _) = relying_party(&app, &client).await;
    let old_id: openidconnect::core::CoreIdToken = s(&before, "id_token").parse().unwrap();
    old_id.claims(&rp.id_token_verifier(), |_: Option<&openidconnect::Nonce>| Ok(())).expect("verifies with the published old key");
}

#[tokio::test]
async fn discovery_lists_the_lifecycle_endpoints() {
    let app = spawn_app().await;
    let doc: Value = reqwest::get(app.url("/.well-known/openid-configuration")).await.unwrap().json().await.unwrap();
    for k in ["introspection_endpoint", "revocation_endpoint", "end_session_endpoint"] {
        assert!(doc[k].as_str().unwrap().starts_with(&app.issuer), "{k}");
    }
    assert_eq!(doc["grant_types_supported"], json!(["authorization_code", "refresh_token", "client_credentials"]));
    assert!(doc["token_endpoint_auth_methods_supported"].as_array().unwrap().contains(&json!("private_key_jwt")));
    assert_eq!(doc["backchannel_logout_supported"], true);
}

#[tokio::test]
async fn expired_rows_are_purged_and_live_ones_kept() {
    let app = spawn_app().await;
    let client = app.add_client(false);
    let (browser, tokens) = signed_in(&app, &client).await;
    // Leave an interaction, a code and a revoked access token (its row) behind, then let a couple
    // of days pass.
    assert_eq!(post(&app, "/revoke", &client, &[("token", s(&tokens, "access_token"))]).await.0, StatusCode::OK);
    browser.open(&app, &app.authorize_url(&client, &[("prompt", "login")])).await.page();
    browser.open(&app, &app.authorize_url(&client, &[("prompt", "none")])).await.rp();
    app.clock.advance(2 * 24 * 3600 + 60);
    let purged = ladder_server::maintenance::purge_now(&app.state).await.unwrap();
    assert!(purged.interactions >= 1 && purged.codes >= 2 && purged.access_tokens >= 1, "{purged:?}");
    assert!(purged.sessions >= 1, "the session expired (24 h absolute) and went: {purged:?}");
    // The refresh token (30 days) is still live, and still works.
    let (status, body) = refresh(&app, &client, s(&tokens, "refresh_token")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let again = ladder_server::maintenance::purge_now(&app.state).await.unwrap();
    assert_eq!(again.refresh_tokens, 0);
}

#[tokio::test]
async fn client_changes_made_elsewhere_are_seen() {
    use ladder_store::clients;
    let app = spawn_app().await;
    let service = app.add_client_with(false, |c| {
        c.settings.grant_types = vec!["client_credentials".into(), "authorization_code".into()];
    });
    let grant = [("grant_type", "client_credentials")];
    assert_eq!(post(&app, "/token", &service, &grant).await.0, StatusCode::OK);
    let stored = |app: &TestApp| app.db.read(|c| clients::find_client(c, &service.id)).unwrap().unwrap();
    let save = |app: &TestApp, client: clients::Client| app.db.write(move |c| clients::update_client(c, &client)).unwrap();

    // A secret rotated by another process (the CLI, another node) works at once.
    let secret = "a-secret-set-somewhere-else-0123456789";
    let mut client = stored(&app);
    client.secret_hash = Some(ladder_server::crypto::sha256_hex(secret));
    save(&app, client);
    let rotated = TestClient { id: service.id.clone(), secret: Some(secret.into()) };
    assert_eq!(post(&app, "/token", &rotated, &grant).await.0, StatusCode::OK);

    // A redirect URI registered elsewhere is accepted at once (the request goes on to sign-in).
    let other = "https://rp.example.test/other-callback";
    let browser = Browser::new();
    let opens_sign_in = |url: String| {
        let http = browser.http.clone();
        async move {
            let resp = http.get(url).send().await.unwrap();
            resp.status() == StatusCode::OK && resp.text().await.unwrap().contains(r#"action="/interaction/"#)
        }
    };
    assert!(opens_sign_in(app.authorize_url(&service, &[])).await);
    let mut client = stored(&app);
    client.redirect_uris.push(other.into());
    save(&app, client);
    let url = app.authorize_url(&service, &[]).replace(
        &format!("redirect_uri={}", urlencode(REDIRECT_URI)),
        &format!("redirect_uri={}", urlencode(other)),
    );
    assert!(opens_sign_in(url).await);

    // A client disabled elsewhere is refused once the cached copy is a few seconds old.
    let mut client = stored(&app);
    client.disabled = true;
    save(&app, client);
    app.clock.advance(ladder_server::client_cache::TTL_SECS);
    assert_eq!(post(&app, "/token", &rotated, &grant).await.0, StatusCode::UNAUTHORIZED);
    assert!(!opens_sign_in(app.authorize_url(&service, &[])).await);
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
