//! The `ladder` command as scripts use it.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn ladder(dir: &std::path::Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ladder"))
        .current_dir(dir)
        .args(args)
        .env_remove("LADDER_SERVER_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn users_clients_and_keys_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    ok(&ladder(d, &["migrate"], None));
    let out = ok(&ladder(d, &["user", "add", "alice", "--email", "alice@example.com", "--password-stdin", "--json"], Some("a long password\n")));
    let created: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(created["username"], "alice");

    let dup = ladder(d, &["user", "add", "alice", "--password-stdin"], Some("a long password"));
    assert!(!dup.status.success());
    assert!(String::from_utf8_lossy(&dup.stderr).contains("already exists"));
    let no_stdin_flag = ladder(d, &["user", "add", "bob"], None);
    assert!(!no_stdin_flag.status.success(), "passwords never come from arguments");

    let users: Value = serde_json::from_str(&ok(&ladder(d, &["user", "list", "--json"], None))).unwrap();
    assert_eq!(users[0]["username"], "alice");
    assert_eq!(users[0]["email"], "alice@example.com");

    let out = ok(&ladder(d, &["client", "add", "--name", "Shop", "--redirect-uri", "https://shop.example/cb", "--json"], None));
    let client: Value = serde_json::from_str(&out).unwrap();
    let client_id = client["client_id"].as_str().unwrap().to_owned();
    assert!(client["client_secret"].as_str().unwrap().len() >= 43, "≥ 256-bit secret");
    let out = ok(&ladder(d, &["client", "add", "--name", "SPA", "--redirect-uri", "http://localhost:5173/cb", "--public", "--json"], None));
    assert!(serde_json::from_str::<Value>(&out).unwrap()["client_secret"].is_null());
    let bad = ladder(d, &["client", "add", "--name", "Bad", "--redirect-uri", "http://shop.example/cb"], None);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("https"));

    let clients: Value = serde_json::from_str(&ok(&ladder(d, &["client", "list", "--json"], None))).unwrap();
    assert_eq!(clients.as_array().unwrap().len(), 2);
    assert!(clients[0].get("secret_hash").is_none(), "secrets never listed");
    ok(&ladder(d, &["client", "remove", &client_id], None));
    assert!(!ladder(d, &["client", "remove", &client_id], None).status.success());

    ok(&ladder(d, &["keys", "rotate"], None));
    ok(&ladder(d, &["keys", "rotate", "--alg", "ES256"], None));
    let keys: Value = serde_json::from_str(&ok(&ladder(d, &["keys", "list", "--json"], None))).unwrap();
    let keys = keys.as_array().unwrap();
    assert_eq!(keys.len(), 4);
    assert_eq!(keys.iter().filter(|k| k["status"] == "active").count(), 3, "one active key per algorithm");
    let old = keys.iter().find(|k| k["status"] == "published").unwrap()["kid"].as_str().unwrap();
    ok(&ladder(d, &["keys", "retire", old], None));

    // Per-client acr policy, checked against the configured levels.
    let out = ok(&ladder(d, &["client", "add", "--name", "Bank", "--redirect-uri", "https://bank.example/cb",
        "--scope", "payments:write", "--default-acr", "urn:ladder:loa:2", "--min-acr", "urn:ladder:loa:1", "--json"], None));
    let bank = serde_json::from_str::<Value>(&out).unwrap()["client_id"].as_str().unwrap().to_owned();
    let bad = ladder(d, &["client", "add", "--name", "X", "--redirect-uri", "https://x.example/cb", "--min-acr", "gold"], None);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a configured level"));

    // policy explain prints the server's own evaluation: the scope rule raises the target, and a
    // fresh sign-in needs the password then a TOTP enrolment.
    let out = ok(&ladder(d, &["policy", "explain", "--client", &bank, "--user", "alice", "--scope", "payments:write", "--acr-values", "urn:ladder:loa:1", "--json"], None));
    let e: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(e["target"]["level"]["name"], "urn:ladder:loa:2");
    let reasons = e["target"]["reasons"].to_string();
    assert!(reasons.contains("payments:write"), "{reasons}");
    assert_eq!(e["plan"]["plan"], "prove");
    assert_eq!(e["plan"]["steps"], serde_json::json!([{"prove": "password"}, {"enrol_then_prove": "totp"}]));
    let text = ok(&ladder(d, &["policy", "explain", "--client", &bank, "--user", "alice"], None));
    assert!(text.contains("target level:  urn:ladder:loa:2"), "{text}");
    assert!(text.contains("client default"), "{text}");

    ok(&ladder(d, &["user", "disable", "alice"], None));
    assert!(!ladder(d, &["user", "disable", "nobody"], None).status.success());
}

/// `client add` with per-client token lifetimes, against the database of a running server: the
/// CLI checks them, `client list --json` shows them, and the server's tokens follow them.
#[tokio::test]
async fn client_token_lifetimes_from_the_command_line() {
    use crate::harness::*;
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = ["--database-url", app.database_url.as_str()];
    let add = |extra: &[&str]| {
        let mut args = db.to_vec();
        args.extend([
            "client",
            "add",
            "--name",
            "Batch",
            "--redirect-uri",
            REDIRECT_URI,
            "--scope",
            "profile",
        ]);
        args.extend([
            "--grant-type",
            "client_credentials",
            "--auth-method",
            "client_secret_post",
            "--json",
        ]);
        args.extend_from_slice(extra);
        ladder(d, &args, None)
    };

    for (flags, expected) in [
        (
            &["--access-token-ttl", "0"][..],
            "the access token lifetime must be between 1 and 86400 seconds",
        ),
        (
            &["--refresh-token-ttl", "-5"][..],
            "the refresh token lifetime must be between 1",
        ),
        (
            &["--access-token-ttl", "600", "--refresh-token-ttl", "60"][..],
            "at least the access token lifetime",
        ),
    ] {
        let out = add(flags);
        assert!(!out.status.success(), "{flags:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{flags:?}: {stderr}");
    }

    let out = ok(&add(&[
        "--access-token-ttl",
        "120",
        "--id-token-ttl",
        "300",
        "--refresh-token-ttl",
        "3600",
    ]));
    let created: Value = serde_json::from_str(&out).unwrap();
    let listed: Value = serde_json::from_str(&ok(&ladder(
        d,
        &[db[0], db[1], "client", "list", "--json"],
        None,
    )))
    .unwrap();
    let batch = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "Batch")
        .expect("listed");
    assert_eq!(batch["settings"]["access_token_ttl_secs"], 120);
    assert_eq!(batch["settings"]["id_token_ttl_secs"], 300);
    assert_eq!(batch["settings"]["refresh_token_ttl_secs"], 3600);

    let (id, secret) = (
        created["client_id"].as_str().unwrap(),
        created["client_secret"].as_str().unwrap(),
    );
    let form = [
        ("grant_type", "client_credentials"),
        ("scope", "profile"),
        ("client_id", id),
        ("client_secret", secret),
    ];
    let resp = reqwest::Client::new()
        .post(app.url("/token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["expires_in"], 120);
    let at = jwt_claims(body["access_token"].as_str().unwrap());
    assert_eq!(
        at["exp"].as_i64().unwrap() - at["iat"].as_i64().unwrap(),
        120
    );
}
