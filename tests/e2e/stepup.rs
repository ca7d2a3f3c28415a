//! Step-up end to end: a session that proved a password is asked only for what is missing, and
//! tokens say exactly what was proven (DESIGN §3).

use ladder_core::totp;
use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::*;

const LOA1: &str = "urn:ladder:loa:1";
const LOA2: &str = "urn:ladder:loa:2";
const LOA3: &str = "urn:ladder:loa:3";

/// Submits the code form found in `html` (the first form: TOTP; `recovery`: the fallback form).
pub(crate) async fn submit_code(app: &TestApp, browser: &Browser, html: &str, code: &str, recovery: bool) -> reqwest::Response {
    app.clock.advance(1);
    let action = form_action(html);
    let csrf = input_value(html, "csrf");
    let kind = if recovery { "recovery" } else { "totp" };
    browser
        .http
        .post(app.url(&action))
        .form(&[("csrf", csrf.as_str()), ("kind", kind), ("code", code)])
        .send()
        .await
        .unwrap()
}

pub(crate) struct Enrolled {
    pub secret: Vec<u8>,
    pub recovery_codes: Vec<String>,
}

pub(crate) fn current_code(app: &TestApp, secret: &[u8]) -> String {
    totp::generate(secret, app.now()).unwrap()
}

/// Walks the enrol-on-step-up flow from its enrolment page; returns the secret and recovery codes
/// and the RP's query at the end.
pub(crate) async fn enrol_from_page(app: &TestApp, browser: &Browser, html: &str) -> (Enrolled, Vec<(String, String)>) {
    assert!(html.contains("Set up two-step verification"), "{html}");
    assert!(html.contains("data:image/png;base64,"), "a QR code");
    assert!(html.contains("otpauth://totp/"), "the otpauth link");
    let secret_text = text_between(html, r#"<code class="secret">"#, "</code>").expect("the base32 secret");
    let secret = totp::secret_from_base32(secret_text).expect("base32");
    let resp = submit_code(app, browser, html, &current_code(app, &secret), false).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let page = resp.text().await.unwrap();
    assert!(page.contains("Save your recovery codes"), "{page}");
    let list = text_between(&page, r#"<ol class="codes">"#, "</ol>").unwrap();
    let recovery_codes: Vec<String> =
        list.split("<code>").skip(1).map(|c| c.split("</code>").next().unwrap().to_owned()).collect();
    assert_eq!(recovery_codes.len(), 10);
    let continue_url = primary_link(&page);
    let query = browser.open(app, &app.url(&continue_url)).await.rp();
    (Enrolled { secret, recovery_codes }, query)
}

/// alice signs in with her password, then enrols TOTP through a loa:2 step-up.
pub(crate) async fn alice_with_totp(app: &TestApp, client: &TestClient) -> (Browser, Enrolled) {
    app.add_user("alice");
    let browser = Browser::new();
    browser.sign_in(app, &app.authorize_url(client, &[]), "alice").await;
    let (_, html) = browser.open(app, &app.authorize_url(client, &[("acr_values", LOA2)])).await.page();
    let (enrolled, query) = enrol_from_page(app, &browser, &html).await;
    assert!(param(&query, "code").is_some());
    (browser, enrolled)
}

pub(crate) async fn tokens(app: &TestApp, client: &TestClient, query: &[(String, String)]) -> (Value, Value) {
    let (status, body) = app.exchange(client, param(query, "code").expect("a code"), &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (jwt_claims(body["id_token"].as_str().unwrap()), jwt_claims(body["access_token"].as_str().unwrap()))
}

#[tokio::test]
async fn stepup_loa1_to_loa2_asks_only_totp() {
    let app = spawn_app().await;
    let client = app.add_client(false);
    let (_, enrolled) = alice_with_totp(&app, &client).await;

    // A new browser: password only, loa:1.
    let browser = Browser::new();
    let query = browser.sign_in(&app, &app.authorize_url(&client, &[]), "alice").await;
    let (id, _) = tokens(&app, &client, &query).await;
    assert_eq!(id["acr"], LOA1);
    assert_eq!(id["amr"], serde_json::json!(["pwd"]));
    let password_time = id["auth_time"].as_i64().unwrap();

    // The same session asks for loa:2: only the TOTP page, never the password form again.
    app.clock.advance(60);
    let (status, html) = browser.open(&app, &app.authorize_url(&client, &[("acr_values", LOA2)])).await.page();
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains(r#"name="password""#), "no password input on a step-up:\n{html}");
    assert!(html.contains(r#"name="code""#));
    assert!(html.contains("needs extra verification"), "the page says why");
    let resp = submit_code(&app, &browser, &html, &current_code(&app, &enrolled.secret), false).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let query = browser.follow(&app, resp).await.rp();
    let (id, at) = tokens(&app, &client, &query).await;
    assert_eq!(id["acr"], LOA2);
    assert_eq!(id["amr"], serde_json::json!(["pwd", "otp", "mfa"]));
    assert_eq!(id["auth_time"].as_i64().unwrap(), app.now(), "auth_time is the TOTP proof");
    assert!(id["auth_time"].as_i64().unwrap() > password_time);
    assert_eq!(at["acr"], LOA2);
    assert_eq!(at["amr"], serde_json::json!(["pwd", "otp", "mfa"]));

    // Now at loa:2, the session answers loa:2 silently.
    let query = browser.open(&app, &app.authorize_url(&client, &[("acr_values", LOA2), ("prompt", "none")])).await.rp();
    assert_eq!(tokens(&app, &client, &query).await.0["acr"], LOA2);

    // Audit: the step-up started with its reason, and succeeded.
    let events = app.db.read(|c| ladder_store::audit::list_events(c, 100)).unwrap();
    let started = events.iter().find(|e| e.kind == "stepup" && e.outcome == "started").expect("a started row");
    let detail: Value = serde_json::from_str(&started.detail).unwrap();
    assert!(detail["reason"].as_str().unwrap().starts_with("acr_not_met"), "{detail}");
    assert_eq!(detail["target"], LOA2);
    assert!(detail["raised_by"][0].as_str().unwrap().contains(LOA2), "{detail}");
    assert!(events.iter().any(|e| e.kind == "stepup" && e.outcome == "success"));
}

#[tokio::test]
async fn enrol_on_step_up_then_wrong_code_then_right_code() {
    let app = spawn_app().await;
    app.add_user("alice");
    let client = app.add_client(false);
    let browser = Browser::new();
    browser.sign_in(&app, &app.authorize_url(&client, &[]), "alice").await;
    let (_, html) = browser.open(&app, &app.authorize_url(&client, &[("acr_values", LOA2)])).await.page();
    // A wrong code keeps the same secret on screen.
    let secret = text_between(&html, r#"<code class="secret">"#, "</code>").unwrap().to_owned();
    let resp = submit_code(&app, &browser, &html, "000000", false).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let page = resp.text().await.unwrap();
    assert!(page.contains("That code isn"), "{page}");
    assert!(page.contains(&secret), "same secret after an error");
    let (_, query) = enrol_from_page(&app, &browser, &page).await;
    let (id, _) = tokens(&app, &client, &query).await;
    assert_eq!(id["acr"], LOA2);
    assert_eq!(id["amr"], serde_json::json!(["pwd", "otp", "mfa"]));
    let events = app.db.read(|c| ladder_store::audit::list_events(c, 100)).unwrap();
    assert!(events.iter().any(|e| e.kind == "enrolment" && e.outcome == "success"));
}

#[tokio::test]
async fn totp_code_is_accepted_once() {
    let app = spawn_app().await;
    let client = app.add_client(false);
    let (_, enrolled) = alice_with_totp(&app, &client).await;
    app.clock.advance(30);
    let code = current_code(&app, &enrolled.secret);

    let first = Browser::new();
    first.sign_in(&app, &app.authorize_url(&client, &[]), "alice").await;
    let (_, html) = first.open(&app, &app.authorize_url(&client, &[("acr_values", LOA2)])).await.page();
    let resp = submit_code(&app, &first, &html, &code, false).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);

    // The same code, still within its time window, from another session: refused as a replay.
    let second = Browser::new();
    second.sign_in(&app, &app.authorize_url(&client, &[]), "alice").await;
    let (_, html) = second.open(&app, &app.authorize_url(&client, &[("acr_values", LOA2)])).await.page();
    let resp = submit_code(&app, &second, &html, &code, false).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.text().await.unwrap().contains("already used"));
}

#[tokio::test]
async fn repeated_wrong_codes_lock_the_factor() {
    let app = spawn_app().await;
    let client = app.add_client(false);
    let (_, enrolled) = alice_with_totp(&app, &client).await;
    let browser = Browser::new();
    browser.sign_in(&app, &app.authorize_url(&client, &[]), "alice").await;
    let (_, html) = browser.open(&app, &app.authorize_url(&client, &[("acr_values", LOA2)])).await.page();
    for _ in 0..5 {
        let resp = submit_code(&app, &browser, &html, "123456", false).await;
        assert_eq!(resp.status(), StatusCode::OK);
    }
    let resp = submit_code(&app, &browser, &html, &current_code(&app, &enrolled.secret), false).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.text().await.unwrap().contains("Too many incorrect codes"));
    // The lock is stored, not in memory: it is there for the next request, and it ends.
    let locked = app.db.read(|c| ladder_store::throttles::locked_for(c, &format!("otp:user:{}", alice_id(&app)), app.now())).unwrap();
    assert!(locked.is_some());
    app.clock.advance(60);
    let resp = submit_code(&app, &browser, &html, &current_code(&app, &enrolled.secret), false).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
}

fn alice_id(app: &TestApp) -> String {
    app.db.read(|c| ladder_store::users::find_user_by_username(c, "alice")).unwrap().unwrap().id
}

#[tokio::test]
async fn recovery_code_works_once() {
    let app = spawn_app().await;
    let client = app.add_client(false);
    let (_, enrolled) = alice_with_totp(&app, &client).await;
    let code = enrolled.recovery_codes[3].to_uppercase().replace('-', " ");

    let browser = Browser::new();
    browser.sign_in(&app, &app.authorize_url(&client, &[]), "alice").await;
    let (_, html) = browser.open(&app, &app.authorize_url(&client, &[("acr_values", LOA2)])).await.page();
    assert!(html.contains(r#"value="recovery""#), "the recovery form is offered");
    let recovery_form = &html[html.find("<details").unwrap()..];
    let resp = submit_code(&app, &browser, recovery_form, &code, true).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let page = resp.text().await.unwrap();
    assert!(page.contains("9 recovery codes left"), "{page}");
    let query = browser.open(&app, &app.url(&primary_link(&page))).await.rp();
    let (id, _) = tokens(&app, &client, &query).await;
    assert_eq!(id["acr"], LOA2);
    assert_eq!(id["amr"], serde_json::json!(["pwd", "otp", "mfa"]));

    let again = Browser::new();
    again.sign_in(&app, &app.authorize_url(&client, &[]), "alice").await;
    let (_, html) = again.open(&app, &app.authorize_url(&client, &[("acr_values", LOA2)])).await.page();
    let recovery_form = &html[html.find("<details").unwrap()..];
    let resp = submit_code(&app, &again, recovery_form, &code, true).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.text().await.unwrap().contains("already used"));
}

#[tokio::test]
async fn step_up_with_max_age_asks_only_the_missing_factor() {
    let app = spawn_app().await;
    let client = app.add_client(false);
    let (_, enrolled) = alice_with_totp(&app, &client).await;
    let browser = Browser::new();
    browser.sign_in(&app, &app.authorize_url(&client, &[]), "alice").await;
    app.clock.advance(300);
    // Password 5 minutes old, max_age 60: the TOTP proof is the fresh active authentication.
    let url = app.authorize_url(&client, &[("acr_values", LOA2), ("max_age", "60")]);
    let (_, html) = browser.open(&app, &url).await.page();
    assert!(!html.contains(r#"name="password""#), "{html}");
    let resp = submit_code(&app, &browser, &html, &current_code(&app, &enrolled.secret), false).await;
    let query = browser.follow(&app, resp).await.rp();
    let (id, _) = tokens(&app, &client, &query).await;
    assert_eq!(id["acr"], LOA2);
    assert_eq!(id["auth_time"].as_i64().unwrap(), app.now());
}

#[tokio::test]
async fn max_age_exceeded_with_nothing_missing_reproves_one_factor() {
    let app = spawn_app().await;
    let client = app.add_client(false);
    let (browser, _) = alice_with_totp(&app, &client).await;
    app.clock.advance(600);
    let (_, html) = browser.open(&app, &app.authorize_url(&client, &[("acr_values", LOA2), ("max_age", "60")])).await.page();
    assert!(html.contains(r#"name="password""#), "the password, one factor, is asked again");
    assert!(html.contains("readonly"), "the username is fixed to the signed-in user");
    let query = browser.submit_login(&app, &html, "alice", PASSWORD).await.rp();
    let (id, _) = tokens(&app, &client, &query).await;
    assert_eq!(id["acr"], LOA2);
    assert_eq!(id["auth_time"].as_i64().unwrap(), app.now());
}

#[tokio::test]
async fn max_age_0_at_loa2_reauthenticates_every_factor() {
    let app = spawn_app().await;
    let client = app.add_client(false);
    let (browser, enrolled) = alice_with_totp(&app, &client).await;
    app.clock.advance(30);
    let (_, html) = browser.open(&app, &app.authorize_url(&client, &[("acr_values", LOA2), ("max_age", "0")])).await.page();
    assert!(html.contains(r#"name="password""#));
    let (_, html) = browser.submit_login(&app, &html, "alice", PASSWORD).await.page();
    assert!(html.contains(r#"name="code""#), "then the TOTP code too:\n{html}");
    let resp = submit_code(&app, &browser, &html, &current_code(&app, &enrolled.secret), false).await;
    let query = browser.follow(&app, resp).await.rp();
    assert_eq!(tokens(&app, &client, &query).await.0["acr"], LOA2);
}

#[tokio::test]
async fn acr_values_in_preference_order_report_the_rps_spelling() {
    let app = spawn_app().await;
    let client = app.add_client(false);
    let (browser, _) = alice_with_totp(&app, &client).await;
    // loa:3 (phr) needs a passkey alice does not have: the first reachable value wins.
    let url = app.authorize_url(&client, &[("acr_values", "phr https://refeds.org/profile/mfa urn:ladder:loa:1")]);
    let query = browser.open(&app, &url).await.rp();
    let (id, _) = tokens(&app, &client, &query).await;
    assert_eq!(id["acr"], "https://refeds.org/profile/mfa");
}

#[tokio::test]
async fn essential_acr_that_cannot_be_met_is_refused() {
    let app = spawn_app().await;
    app.add_user("alice");
    let client = app.add_client(false);
    let browser = Browser::new();
    browser.sign_in(&app, &app.authorize_url(&client, &[]), "alice").await;
    let claims = format!(r#"{{"id_token":{{"acr":{{"essential":true,"values":["{LOA3}"]}}}}}}"#);
    let query = browser.open(&app, &app.authorize_url(&client, &[("claims", &claims)])).await.rp();
    assert_eq!(param(&query, "error"), Some("unmet_authentication_requirements"));
    assert_eq!(param(&query, "state"), Some("st-123"));
    let events = app.db.read(|c| ladder_store::audit::list_events(c, 100)).unwrap();
    assert!(events.iter().any(|e| e.kind == "stepup" && e.outcome == "unmet"));
}

#[tokio::test]
async fn voluntary_acr_that_cannot_be_met_gets_the_honest_lower_level() {
    let app = spawn_app().await;
    app.add_user("alice");
    let client = app.add_client(false);
    let browser = Browser::new();
    browser.sign_in(&app, &app.authorize_url(&client, &[]), "alice").await;
    let query = browser.open(&app, &app.authorize_url(&client, &[("acr_values", LOA3)])).await.rp();
    assert_eq!(tokens(&app, &client, &query).await.0["acr"], LOA1);
}

#[tokio::test]
async fn prompt_none_step_up_needs_interaction() {
    let app = spawn_app().await;
    app.add_user("alice");
    let client = app.add_client(false);
    let browser = Browser::new();
    browser.sign_in(&app, &app.authorize_url(&client, &[]), "alice").await;
    let url = app.authorize_url(&client, &[("acr_values", LOA2), ("prompt", "none")]);
    let query = browser.open(&app, &url).await.rp();
    assert_eq!(param(&query, "error"), Some("interaction_required"));
}

#[tokio::test]
async fn client_minimum_raises_whatever_is_asked() {
    let app = spawn_app().await;
    app.add_user("alice");
    let client = app.add_client_with(false, |c| c.min_acr = Some(LOA2.into()));
    let browser = Browser::new();
    // Asking for loa:1 in the URL cannot lower the client's minimum.
    let (_, html) = browser.open(&app, &app.authorize_url(&client, &[("acr_values", LOA1)])).await.page();
    let (_, html) = browser.submit_login(&app, &html, "alice", PASSWORD).await.page();
    let (_, query) = enrol_from_page(&app, &browser, &html).await;
    assert_eq!(tokens(&app, &client, &query).await.0["acr"], LOA2);
}

#[tokio::test]
async fn scope_rule_raises_the_level() {
    let app = spawn_app().await;
    let client = app.add_client(false);
    let (_, enrolled) = alice_with_totp(&app, &client).await;
    let browser = Browser::new();
    let url = app.authorize_url(&client, &[]).replace("scope=openid+profile", "scope=openid+payments%3Awrite");
    let (_, html) = browser.open(&app, &url).await.page();
    let (_, html) = browser.submit_login(&app, &html, "alice", PASSWORD).await.page();
    assert!(html.contains(r#"name="code""#), "payments:write requires loa:2");
    app.clock.advance(30);
    let resp = submit_code(&app, &browser, &html, &current_code(&app, &enrolled.secret), false).await;
    let query = browser.follow(&app, resp).await.rp();
    let (id, at) = tokens(&app, &client, &query).await;
    assert_eq!(id["acr"], LOA2);
    assert_eq!(at["scope"], "openid payments:write");
}

#[tokio::test]
async fn strict_client_gets_an_error_not_a_lower_level() {
    let app = spawn_app().await;
    app.add_user("alice");
    let client = app.add_client_with(false, |c| {
        c.default_acr_values = vec![LOA3.into()];
        c.strict_acr = true;
    });
    let browser = Browser::new();
    let (_, html) = browser.open(&app, &app.authorize_url(&client, &[])).await.page();
    let query = browser.submit_login(&app, &html, "alice", PASSWORD).await.rp();
    assert_eq!(param(&query, "error"), Some("unmet_authentication_requirements"));
}

#[tokio::test]
async fn nobody_else_can_sign_in_halfway_through_a_step_up() {
    let app = spawn_app().await;
    let client = app.add_client(false);
    let (browser, _) = alice_with_totp(&app, &client).await;
    app.add_user("bob");
    app.clock.advance(10);
    let (_, html) = browser.open(&app, &app.authorize_url(&client, &[("acr_values", LOA2), ("max_age", "0")])).await.page();
    let action = form_action(&html);
    let csrf = input_value(&html, "csrf");
    let resp = browser
        .http
        .post(app.url(&action))
        .form(&[("csrf", csrf.as_str()), ("username", "bob"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(resp.text().await.unwrap().contains("another account"));
}

#[tokio::test]
async fn rp_library_verifies_the_stepped_up_id_token() {
    use openidconnect::{AuthenticationContextClass, TokenResponse};
    let app = spawn_app().await;
    let client = app.add_client(false);
    let (browser, _) = alice_with_totp(&app, &client).await;
    let (rp, http) = relying_party(&app, &client).await;
    let request = rp_request(&rp, &[("acr_values", LOA2)]);
    let query = browser.open(&app, &request.url).await.rp();
    let tokens = rp
        .exchange_code(code_of(&query))
        .unwrap()
        .set_pkce_verifier(request.verifier)
        .request_async(&http)
        .await
        .unwrap();
    let claims = tokens.id_token().unwrap().claims(&rp.id_token_verifier(), &request.nonce).unwrap();
    assert_eq!(claims.auth_context_ref(), Some(&AuthenticationContextClass::new(LOA2.into())));
    let amr: Vec<String> = claims.auth_method_refs().unwrap().iter().map(|m| m.as_str().to_owned()).collect();
    assert_eq!(amr, ["pwd", "otp", "mfa"]);
}

#[tokio::test]
async fn discovery_publishes_levels_and_claims_support() {
    let app = spawn_app().await;
    let doc: Value = reqwest::get(app.url("/.well-known/openid-configuration")).await.unwrap().json().await.unwrap();
    let acrs: Vec<&str> = doc["acr_values_supported"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    for v in [LOA1, LOA2, LOA3, "phr", "https://refeds.org/profile/mfa"] {
        assert!(acrs.contains(&v), "{v} in {acrs:?}");
    }
    assert_eq!(doc["claims_parameter_supported"], true);
}

#[tokio::test]
async fn malformed_claims_parameter_is_invalid_request() {
    let app = spawn_app().await;
    let client = app.add_client(false);
    let query = Browser::new().open(&app, &app.authorize_url(&client, &[("claims", "{not json")])).await.rp();
    assert_eq!(param(&query, "error"), Some("invalid_request"));
}

#[tokio::test]
async fn elevation_decays_with_the_levels_freshness() {
    // An operator makes loa:2 last two minutes: its factors must be that fresh.
    let app = spawn_app_with(|s| s.levels[1].max_age_secs = Some(120)).await;
    let client = app.add_client(false);
    let (browser, _) = alice_with_totp(&app, &client).await;
    let query = browser.open(&app, &app.authorize_url(&client, &[("acr_values", LOA2), ("prompt", "none")])).await.rp();
    let (status, body) = app.exchange(&client, param(&query, "code").unwrap(), &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let at = jwt_claims(body["access_token"].as_str().unwrap());
    let oldest_proof = jwt_claims(body["id_token"].as_str().unwrap())["auth_time"].as_i64().unwrap() - 1;
    // The access token ends (`exp`: the first second it is invalid) when the password proof, a
    // second before the TOTP, becomes older than two minutes.
    assert_eq!(at["exp"].as_i64().unwrap(), oldest_proof + 121, "capped at the level's lapse, not now + 600");
    assert_eq!(body["expires_in"].as_i64().unwrap(), oldest_proof + 121 - app.now());

    // Two minutes on, the session no longer holds loa:2: a silent request needs interaction.
    app.clock.advance(121);
    let query = browser.open(&app, &app.authorize_url(&client, &[("acr_values", LOA2), ("prompt", "none")])).await.rp();
    assert_eq!(param(&query, "error"), Some("interaction_required"));
}
