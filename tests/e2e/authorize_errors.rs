//! Malformed authorization requests: a page when the client or redirect URI cannot be trusted,
//! otherwise the exact RFC 6749 §4.1.2.1 / OIDC §3.1.2.6 error redirected with state and iss.

use reqwest::StatusCode;

use crate::harness::*;

async fn redirected_error(app: &TestApp, url: &str) -> (String, Option<String>) {
    let query = Browser::new().open(app, url).await.rp();
    assert_eq!(param(&query, "iss"), Some(app.issuer.as_str()));
    assert!(param(&query, "code").is_none());
    (param(&query, "error").unwrap().to_owned(), param(&query, "state").map(str::to_owned))
}

#[tokio::test]
async fn invalid_requests_redirect_the_exact_error() {
    let app = spawn_app().await;
    let client = app.add_client(false);
    let public = app.add_client(true);
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let cases: Vec<(String, &str)> = vec![
        (app.authorize_url(&client, &[("response_type", "token")]).replace("response_type=code&", ""), "unsupported_response_type"),
        (app.authorize_url(&client, &[]).replace("scope=openid+profile", "scope=profile"), "invalid_scope"),
        (app.authorize_url(&client, &[("code_challenge", challenge), ("code_challenge_method", "plain")]), "invalid_request"),
        (app.authorize_url(&client, &[("code_challenge", challenge)]), "invalid_request"),
        (app.authorize_url(&client, &[("code_challenge", "short"), ("code_challenge_method", "S256")]), "invalid_request"),
        (app.authorize_url(&public, &[]), "invalid_request"),
        (app.authorize_url(&client, &[("prompt", "none login")]), "invalid_request"),
        (app.authorize_url(&client, &[("prompt", "bogus")]), "invalid_request"),
        (app.authorize_url(&client, &[("max_age", "-1")]), "invalid_request"),
        (app.authorize_url(&client, &[("max_age", "soon")]), "invalid_request"),
        (app.authorize_url(&client, &[("nonce", "again")]), "invalid_request"),
        (app.authorize_url(&client, &[("response_mode", "fragment")]), "invalid_request"),
        (app.authorize_url(&client, &[("request", "eyJhbGciOiJub25lIn0.e30.")]), "request_not_supported"),
        (app.authorize_url(&client, &[("request_uri", "https://rp.example.test/r")]), "request_uri_not_supported"),
        (app.authorize_url(&client, &[("id_token_hint", "not.a.token")]), "invalid_request"),
    ];
    for (url, want) in cases {
        let (error, state) = redirected_error(&app, &url).await;
        assert_eq!(error, want, "for {url}");
        assert_eq!(state.as_deref(), Some("st-123"), "state echoed for {url}");
    }
}

#[tokio::test]
async fn untrusted_client_or_redirect_gets_a_page_not_a_redirect() {
    let app = spawn_app().await;
    let client = app.add_client(false);
    let base = app.authorize_url(&client, &[]);
    let cases = [
        base.replace(&format!("client_id={}", client.id), "client_id=nope"),
        base.replace(&format!("client_id={}&", client.id), ""),
        base.replace("redirect_uri=https%3A%2F%2Frp.example.test%2Fcallback&", ""),
        base.replace("%2Fcallback", "%2Fcallback%2Fextra"),
        base.replace("%2Fcallback", "%2FCallback"),
        format!("{base}&redirect_uri=https%3A%2F%2Fevil.example.test%2F"),
        format!("{base}&client_id={}", client.id),
    ];
    for url in cases {
        let resp = Browser::new().http.get(&url).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "for {url}");
        assert!(resp.headers().get("location").is_none(), "no redirect for {url}");
        assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        let html = resp.text().await.unwrap();
        assert!(html.contains("not valid"), "{html}");
    }
}

#[tokio::test]
async fn post_to_authorize_must_be_form_encoded() {
    let app = spawn_app().await;
    let resp = reqwest::Client::new()
        .post(app.url("/authorize"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn pages_carry_security_headers() {
    let app = spawn_app().await;
    let client = app.add_client(false);
    let browser = Browser::new();
    let page = browser.http.get(app.authorize_url(&client, &[])).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK, "the sign-in page, straight from /authorize");
    let h = page.headers();
    assert!(h["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["cache-control"], "no-store");
    let html = page.text().await.unwrap();
    assert!(html.contains("Acme &#60;Bank&#62;"), "client name escaped: {html}");
    let missing = reqwest::get(app.url("/no/such/page")).await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn limits_on_what_a_client_sends_have_clear_errors() {
    let app = spawn_app().await;
    let client = app.add_client(false);
    let base = app.authorize_url(&client, &[]);
    // Too many parameters or an oversized value: a page (nothing is trusted enough to redirect to).
    let many: String = (0..60).map(|i| format!("&x{i}=1")).collect();
    let long = format!("&login_hint={}", "a".repeat(9000));
    for url in [format!("{base}{many}"), format!("{base}{long}")] {
        let resp = Browser::new().http.get(&url).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert!(resp.text().await.unwrap().contains("invalid_request"));
    }
    // A claims object nested absurdly deep: invalid_request to the client.
    let deep = format!("{}{}{}", "{\"a\":".repeat(20), "1", "}".repeat(20));
    let query = Browser::new().open(&app, &app.authorize_url(&client, &[("claims", &deep)])).await.rp();
    assert_eq!(param(&query, "error"), Some("invalid_request"));
    // Oversized bodies are refused before they are read.
    let resp = reqwest::Client::new()
        .post(app.url("/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![b'a'; 200_000])
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error(), "{}", resp.status());
    // At most 20 redirect URIs per client.
    let uris: Vec<String> = (0..21).map(|i| format!("https://rp.example/{i}")).collect();
    let new = ladder_server::manage::NewClient::new("Many", uris, false, vec![]);
    assert!(ladder_server::manage::add_client(&app.db, &app.policy.levels, new, app.now()).is_err());
}
