//! Adaptive step-up: each risk signal fires, raises the level, is named on the page and kept in
//! the audit; and the audit chain is tamper-evident.

use std::sync::Arc;

use ladder_core::risk::{RiskRule, SignalKind};
use serde_json::Value;

use crate::harness::*;
use crate::stepup::{alice_with_totp, current_code, submit_code, tokens};

const LOA2: &str = "urn:ladder:loa:2";

fn rule(signal: SignalKind) -> RiskRule {
    RiskRule { signal, level: LOA2.into() }
}

/// Asserts the page is the TOTP step and names `why`; completes it; returns the ID token claims.
async fn totp_step(app: &TestApp, client: &TestClient, browser: &Browser, html: &str, why: &str, secret: &[u8]) -> Value {
    assert!(html.contains(r#"name="code""#), "a TOTP step:\n{html}");
    assert!(html.contains(why), "the page says why ({why}):\n{html}");
    app.clock.advance(30);
    let resp = submit_code(app, browser, html, &current_code(app, secret), false).await;
    let query = browser.follow(app, resp).await.rp();
    tokens(app, client, &query).await.0
}

fn last_raised_by(app: &TestApp) -> String {
    let events = app.db.read(|c| ladder_store::audit::list_events(c, 200)).unwrap();
    events
        .iter()
        .find(|e| e.kind == "login" || e.kind == "stepup")
        .map(|e| e.detail.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn new_device_asks_for_a_second_factor() {
    let app = spawn_app_with(|s| s.risk.rules = vec![rule(SignalKind::NewDevice)]).await;
    let client = app.add_client(false);
    let alice = app.add_user("alice");
    let secret = app.enrol_totp(&alice);

    // First sign-in in this browser: a new device, so the second factor too.
    let browser = Browser::new();
    let (_, html) = browser.open(&app, &app.authorize_url(&client, &[])).await.page();
    let (_, html) = browser.submit_login(&app, &html, "alice", PASSWORD).await.page();
    let id = totp_step(&app, &client, &browser, &html, "signing in from a new device", &secret).await;
    assert_eq!(id["acr"], LOA2);
    let detail = last_raised_by(&app);
    assert!(detail.contains("new device") && detail.contains("new_device"), "{detail}");

    // The browser is remembered now: signing in again there takes the password only.
    let (_, html) = browser.open(&app, &app.authorize_url(&client, &[("prompt", "login")])).await.page();
    let query = browser.submit_login(&app, &html, "alice", PASSWORD).await.rp();
    assert!(param(&query, "code").is_some());

    // Forgetting the device (as the account page will) makes it new again.
    let devices = app.db.read(|c| ladder_store::devices::list_for_user(c, &alice)).unwrap();
    assert_eq!(devices.len(), 1);
    app.db.write(|c| ladder_store::devices::forget(c, &alice, &devices[0].id, 0)).unwrap();
    let (_, html) = browser.open(&app, &app.authorize_url(&client, &[("prompt", "login")])).await.page();
    let (_, html) = browser.submit_login(&app, &html, "alice", PASSWORD).await.page();
    assert!(html.contains("signing in from a new device"), "{html}");
}

#[tokio::test]
async fn network_change_behind_a_trusted_proxy() {
    let app = spawn_app_with(|s| {
        s.risk.rules = vec![rule(SignalKind::NetworkChange)];
        s.server.trusted_proxies = vec!["127.0.0.1/32".into()];
    })
    .await;
    let client = app.add_client(false);
    let (_, enrolled) = alice_with_totp(&app, &client).await;
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let home = Browser::behind_proxy(jar.clone(), "203.0.113.5");
    let query = home.sign_in(&app, &app.authorize_url(&client, &[]), "alice").await;
    assert_eq!(tokens(&app, &client, &query).await.0["acr"], "urn:ladder:loa:1");

    // Same session, same /24: nothing asked.
    let nearby = Browser::behind_proxy(jar.clone(), "203.0.113.77");
    let query = nearby.open(&app, &app.authorize_url(&client, &[("prompt", "none")])).await.rp();
    assert!(param(&query, "code").is_some());
    // Another network: a step-up, and the page says why.
    let away = Browser::behind_proxy(jar.clone(), "198.51.100.9");
    let (_, html) = away.open(&app, &app.authorize_url(&client, &[])).await.page();
    let id = totp_step(&app, &client, &away, &html, "network has changed", &enrolled.secret).await;
    assert_eq!(id["acr"], LOA2);
    // The forwarded address was recorded, not the proxy's.
    let events = app.db.read(|c| ladder_store::audit::list_events(c, 100)).unwrap();
    assert!(events.iter().any(|e| e.ip.as_deref() == Some("198.51.100.9")));
}

#[tokio::test]
async fn untrusted_forwarded_for_is_ignored() {
    let app = spawn_app_with(|s| s.risk.rules = vec![rule(SignalKind::NetworkChange)]).await;
    let client = app.add_client(false);
    app.add_user("alice");
    let jar = Arc::new(reqwest::cookie::Jar::default());
    Browser::behind_proxy(jar.clone(), "203.0.113.5").sign_in(&app, &app.authorize_url(&client, &[]), "alice").await;
    // A client claiming another address changes nothing: no proxy is trusted.
    let liar = Browser::behind_proxy(jar, "198.51.100.9");
    let query = liar.open(&app, &app.authorize_url(&client, &[("prompt", "none")])).await.rp();
    assert!(param(&query, "code").is_some());
}

#[tokio::test]
async fn dormant_session_steps_up() {
    let app = spawn_app_with(|s| {
        s.risk.rules = vec![rule(SignalKind::DormantSession)];
        s.risk.dormant_after_secs = 600;
    })
    .await;
    let client = app.add_client(false);
    let (_, enrolled) = alice_with_totp(&app, &client).await;
    let browser = Browser::new();
    let query = browser.sign_in(&app, &app.authorize_url(&client, &[]), "alice").await;
    assert_eq!(tokens(&app, &client, &query).await.0["acr"], "urn:ladder:loa:1");
    // Ten minutes of silence (well inside the session's idle timeout).
    app.clock.advance(601);
    let (_, html) = browser.open(&app, &app.authorize_url(&client, &[])).await.page();
    assert!(!html.contains(r#"name="password""#), "only the second factor");
    let id = totp_step(&app, &client, &browser, &html, "inactive for a while", &enrolled.secret).await;
    assert_eq!(id["acr"], LOA2);
}

#[tokio::test]
async fn recent_failures_step_up() {
    let app = spawn_app_with(|s| s.risk.rules = vec![rule(SignalKind::RecentFailures)]).await;
    let client = app.add_client(false);
    let (_, enrolled) = alice_with_totp(&app, &client).await;
    let browser = Browser::new();
    let (_, html) = browser.open(&app, &app.authorize_url(&client, &[])).await.page();
    for _ in 0..3 {
        browser.submit_login(&app, &html, "alice", "wrong guess").await.page();
    }
    let (_, html) = browser.submit_login(&app, &html, "alice", PASSWORD).await.page();
    let id = totp_step(&app, &client, &browser, &html, "several failed attempts", &enrolled.secret).await;
    assert_eq!(id["acr"], LOA2);
}

#[tokio::test]
async fn outside_hours_steps_up() {
    // The test clock reads 08:00 UTC; business hours here are 09–17 UTC.
    let app = spawn_app_with(|s| {
        s.risk.rules = vec![rule(SignalKind::OutsideHours)];
        s.risk.hours_start = 9;
        s.risk.hours_end = 17;
    })
    .await;
    let client = app.add_client(false);
    let alice = app.add_user("alice");
    let secret = app.enrol_totp(&alice);
    let browser = Browser::new();
    let (_, html) = browser.open(&app, &app.authorize_url(&client, &[])).await.page();
    let (_, html) = browser.submit_login(&app, &html, "alice", PASSWORD).await.page();
    let id = totp_step(&app, &client, &browser, &html, "outside the usual hours", &secret).await;
    assert_eq!(id["acr"], LOA2);
}

#[tokio::test]
async fn transaction_value_over_the_clients_threshold_steps_up() {
    let app = spawn_app_with(|s| s.risk.rules = vec![rule(SignalKind::ValueThreshold)]).await;
    let client = app.add_client_with(false, |c| {
        c.settings.value_thresholds.insert("EUR".into(), 1000.0);
    });
    let (browser, enrolled) = alice_with_totp(&app, &client).await;
    let (browser, _) = (Browser::new(), browser);
    browser.sign_in(&app, &app.authorize_url(&client, &[]), "alice").await;
    let small = r#"[{"type":"payment_initiation","instructedAmount":{"currency":"EUR","amount":"500"}}]"#;
    let query = browser.open(&app, &app.authorize_url(&client, &[("authorization_details", small), ("prompt", "none")])).await.rp();
    assert!(param(&query, "code").is_some(), "below the threshold: silent");
    let large = r#"[{"type":"payment_initiation","instructedAmount":{"currency":"EUR","amount":"1500"}}]"#;
    let (_, html) = browser.open(&app, &app.authorize_url(&client, &[("authorization_details", large)])).await.page();
    let id = totp_step(&app, &client, &browser, &html, "1500 EUR transaction", &enrolled.secret).await;
    assert_eq!(id["acr"], LOA2);
    let bad = browser.open(&app, &app.authorize_url(&client, &[("authorization_details", "{\"not\":\"an array\"}")])).await.rp();
    assert_eq!(param(&bad, "error"), Some("invalid_authorization_details"));
}

#[tokio::test]
async fn no_rules_no_step_up() {
    let app = spawn_app().await;
    let client = app.add_client(false);
    alice_with_totp(&app, &client).await;
    let fresh = Browser::new();
    let query = fresh.sign_in(&app, &app.authorize_url(&client, &[]), "alice").await;
    assert_eq!(tokens(&app, &client, &query).await.0["acr"], "urn:ladder:loa:1");
}

fn ladder(app: &TestApp, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ladder"))
        .args(args)
        .arg("--database-url")
        .arg(&app.database_url)
        .env_remove("LADDER_SERVER_KEY")
        .output()
        .unwrap()
}

#[tokio::test]
async fn audit_chain_verifies_and_a_tampered_row_is_found() {
    let app = spawn_app().await;
    let client = app.add_client(false);
    alice_with_totp(&app, &client).await;
    let ok = ladder(&app, &["audit", "verify"]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stdout));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("intact"));

    let export = ladder(&app, &["audit", "export", "--format", "jsonl"]);
    let lines: Vec<Value> = String::from_utf8_lossy(&export.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let count = app.db.read(|c| ladder_store::audit::list_events(c, 10_000)).unwrap().len();
    assert_eq!(lines.len(), count);
    assert!(lines.windows(2).all(|w| w[1]["seq"].as_i64() > w[0]["seq"].as_i64()), "oldest first");
    assert!(lines.iter().any(|l| l["kind"] == "enrolment" && l["detail"]["factor"] == "totp"));
    let csv = ladder(&app, &["audit", "export", "--format", "csv", "--since", "1h"]);
    assert!(String::from_utf8_lossy(&csv.stdout).starts_with("seq,id,at,kind,outcome"));

    // Someone with database access rewrites history.
    app.db.batch_execute("UPDATE audit_events SET detail = '{\"edited\":true}' WHERE seq = 2").unwrap();
    let broken = ladder(&app, &["audit", "verify"]);
    assert!(!broken.status.success());
    let out = String::from_utf8_lossy(&broken.stdout);
    assert!(out.contains("BROKEN at event #2"), "{out}");
}

#[tokio::test]
async fn metrics_move_after_a_step_up() {
    let app = spawn_app_with(|s| s.risk.rules = vec![rule(SignalKind::NewDevice)]).await;
    let client = app.add_client(false);
    let alice = app.add_user("alice");
    let secret = app.enrol_totp(&alice);
    let scrape = || async { reqwest::get(&app.metrics_url).await.unwrap().text().await.unwrap() };
    let before = scrape().await;
    assert!(!before.contains("ladder_authentications_total{"), "{before}");
    let browser = Browser::new();
    let (_, html) = browser.open(&app, &app.authorize_url(&client, &[])).await.page();
    let (_, html) = browser.submit_login(&app, &html, "alice", PASSWORD).await.page();
    totp_step(&app, &client, &browser, &html, "new device", &secret).await;
    let after = scrape().await;
    assert!(after.contains(r#"ladder_authentications_total{kind="login",level="urn:ladder:loa:2",outcome="success"} 1"#), "{after}");
    assert!(after.contains(r#"ladder_factor_attempts_total{factor="password",outcome="success"} 1"#), "{after}");
    assert!(after.contains(r#"ladder_factor_attempts_total{factor="totp",outcome="success"} 1"#), "{after}");
    assert!(after.contains(r#"ladder_risk_signals_total{signal="new_device"} 1"#), "{after}");
    assert!(after.contains(r#"ladder_http_request_duration_seconds_count{route="/interaction/{id}/totp",status="303"} 1"#), "{after}");
    assert!(after.contains("ladder_db_pool_connections{state=\"idle\"}"));
    // Not on the public port.
    let public = reqwest::get(app.url("/metrics")).await.unwrap();
    assert_eq!(public.status(), reqwest::StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn audit_events_are_mirrored_to_a_json_lines_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let file = path.display().to_string();
    let app = spawn_app_with(|s| s.audit.mirror_file = file).await;
    let client = app.add_client(false);
    app.add_user("alice");
    Browser::new().sign_in(&app, &app.authorize_url(&client, &[]), "alice").await;
    let count = app.db.read(|c| ladder_store::audit::list_events(c, 1000)).unwrap().len();
    let mut lines = vec![];
    for _ in 0..50 {
        lines = std::fs::read_to_string(&path).unwrap_or_default().lines().map(str::to_owned).collect();
        if lines.len() >= count {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(lines.len(), count);
    let last: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(last["kind"], "login");
    assert_eq!(last["detail"]["achieved_acr"], "urn:ladder:loa:1");
}
