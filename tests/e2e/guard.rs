//! ladder-guard against the real provider: an API demanding loa:2 refuses a loa:1 token with the
//! RFC 9470 challenge, and accepts the token the client gets after stepping up.

use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use ladder_core::totp;
use ladder_guard::{Guard, Requirement, VerifiedToken};
use reqwest::StatusCode;

use crate::harness::*;

const API: &str = "https://api.example.test";

async fn payments_api(app: &TestApp) -> String {
    let clock = app.clock.clone();
    let guard = Guard::builder(app.issuer.clone(), API)
        .clock(move || ladder_core::Clock::now(clock.as_ref()))
        .jwks_refetch_cooldown(Duration::ZERO)
        .discover()
        .await
        .expect("discovery");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        App::new().service(
            web::resource("/payments")
                .wrap(guard.require(Requirement::acr(ladder_guard::LOA2).max_age(300)))
                .route(web::post().to(|t: VerifiedToken| async move { HttpResponse::Ok().body(t.sub().to_owned()) })),
        )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    format!("http://127.0.0.1:{port}/payments")
}

#[tokio::test]
async fn api_demanding_loa2_challenges_then_accepts_the_stepped_up_token() {
    let app = spawn_app().await;
    let alice = app.add_user("alice");
    let client = app.add_client_with(false, |c| c.settings.audience = Some(API.into()));
    let api = payments_api(&app).await;
    let http = reqwest::Client::new();

    let browser = Browser::new();
    let query = browser.sign_in(&app, &app.authorize_url(&client, &[]), "alice").await;
    let (_, tokens) = app.exchange(&client, param(&query, "code").unwrap(), &[]).await;
    let weak = tokens["access_token"].as_str().unwrap();
    let resp = http.post(&api).bearer_auth(weak).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        resp.headers()["www-authenticate"],
        r#"Bearer error="insufficient_user_authentication", error_description="A higher level of authentication is required.", acr_values="urn:ladder:loa:2", max_age="300""#
    );

    // The client does what the challenge says: acr_values and max_age back to Ladder.
    let (_, html) = browser
        .open(&app, &app.authorize_url(&client, &[("acr_values", ladder_guard::LOA2), ("max_age", "300")]))
        .await
        .page();
    let secret = html.split(r#"<code class="secret">"#).nth(1).unwrap().split("</code>").next().unwrap();
    let secret = totp::secret_from_base32(secret).unwrap();
    app.clock.advance(1);
    let csrf = input_value(&html, "csrf");
    let code = totp::generate(&secret, app.now()).unwrap();
    let resp = browser
        .http
        .post(app.url(&form_action(&html)))
        .form(&[("csrf", csrf.as_str()), ("code", code.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "recovery codes shown after enrolment");
    let page = resp.text().await.unwrap();
    let query = browser.open(&app, &app.url(&primary_link(&page))).await.rp();
    let (_, tokens) = app.exchange(&client, param(&query, "code").unwrap(), &[]).await;
    let strong = tokens["access_token"].as_str().unwrap();
    // Introspection tells the same story as the token.
    let resp = http
        .post(app.url("/introspect"))
        .basic_auth(&client.id, client.secret.as_deref())
        .form(&[("token", strong)])
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["acr"], ladder_guard::LOA2);
    assert_eq!(body["amr"], serde_json::json!(["pwd", "otp", "mfa"]));
    assert_eq!(body["aud"], API);
    // RFC 8707: a resource the client is not registered for is refused.
    let (status, body) = app.exchange(&client, "irrelevant", &[("resource", "https://other.example.test")]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_target")));
    let resp = http.post(&api).bearer_auth(strong).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.text().await.unwrap(), alice);

    // Five minutes on, the same token is too old for this route.
    app.clock.advance(400);
    let resp = http.post(&api).bearer_auth(strong).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let challenge = resp.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.starts_with(r#"Bearer error="insufficient_user_authentication""#), "{challenge}");
    assert!(challenge.ends_with(r#"max_age="300""#), "{challenge}");
}
