//! Faults: the real `ladder` binary killed with SIGKILL in the middle of sign-ins, restarted on the
//! same database, loses nothing it acknowledged; SIGTERM shuts it down cleanly. Also what the
//! binary writes to its access log.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::{PASSWORD, form_action, input_value};

const REDIRECT: &str = "https://rp.example.test/callback";

struct Node {
    dir: tempfile::TempDir,
    port: u16,
    key: String,
}

impl Node {
    fn new() -> Node {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let (_, key) = ladder_server::crypto::ServerKey::generate();
        Node { dir: tempfile::tempdir().unwrap(), port, key }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn cli(&self, args: &[&str], stdin: Option<&str>) -> String {
        use std::io::Write;
        let mut child = Command::new(env!("CARGO_BIN_EXE_ladder"))
            .args(args)
            .args(["--database-url", &format!("sqlite://{}", self.dir.path().join("ladder.db").display())])
            .current_dir(self.dir.path())
            .env("LADDER_SERVER_KEY", &self.key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.unwrap_or_default().as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    async fn start(&self) -> Child {
        self.start_logging("warn", Stdio::null()).await
    }

    /// Starts the server with `RUST_LOG=filter`, its standard output going to `stdout`.
    async fn start_logging(&self, filter: &str, stdout: Stdio) -> Child {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ladder"))
            .args(["serve", "--bind", &format!("127.0.0.1:{}", self.port), "--issuer", &self.base()])
            .args(["--database-url", &format!("sqlite://{}", self.dir.path().join("ladder.db").display())])
            .current_dir(self.dir.path())
            .env("LADDER_SERVER_KEY", &self.key)
            .env("LADDER_METRICS__BIND", "")
            .env("LADDER_LOGIN__MAX_FAILURES_PER_IP", "100000")
            .env("RUST_LOG", filter)
            .stdout(stdout)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..100 {
            if reqwest::get(format!("{}/.well-known/openid-configuration", self.base())).await.is_ok() {
                return child;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("ladder serve did not start");
    }
}

/// One password sign-in through the real pages; the code the RP receives.
async fn sign_in(base: &str, client_id: &str) -> Option<String> {
    let http =
        reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().ok()?;
    let authorize = format!(
        "{base}/authorize?client_id={client_id}&redirect_uri={}&response_type=code&scope=openid&state=s",
        url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
    );
    // The sign-in page comes straight from /authorize.
    let html = http.get(authorize).send().await.ok()?.text().await.ok()?;
    let form = [("csrf", input_value(&html, "csrf")), ("username", "alice".into()), ("password", PASSWORD.into())];
    let resp = http.post(format!("{base}{}", form_action(&html))).form(&form).send().await.ok()?;
    let location = resp.headers().get("location")?.to_str().ok()?;
    let url = url::Url::parse(location).ok()?;
    url.query_pairs().find(|(k, _)| k == "code").map(|(_, v)| v.into_owned())
}

async fn exchange(base: &str, client_id: &str, secret: &str, code: &str) -> StatusCode {
    reqwest::Client::new()
        .post(format!("{base}/token"))
        .basic_auth(client_id, Some(secret))
        .form(&[("grant_type", "authorization_code"), ("code", code), ("redirect_uri", REDIRECT)])
        .send()
        .await
        .map(|r| r.status())
        .unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_load_loses_nothing_acknowledged() {
    let node = Node::new();
    node.cli(&["migrate"], None);
    node.cli(&["user", "add", "alice", "--password-stdin"], Some(PASSWORD));
    let client: Value =
        serde_json::from_str(&node.cli(&["client", "add", "--name", "RP", "--redirect-uri", REDIRECT, "--json"], None))
            .unwrap();
    let (id, secret) =
        (client["client_id"].as_str().unwrap().to_owned(), client["client_secret"].as_str().unwrap().to_owned());
    let mut server = node.start().await;

    // Sign-ins run in the background while the server is killed without warning.
    let (base, cid) = (node.base(), id.clone());
    let load = tokio::spawn(async move {
        let mut codes = Vec::new();
        for _ in 0..200 {
            match sign_in(&base, &cid).await {
                Some(code) => codes.push(code),
                None => break,
            }
        }
        codes
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill().unwrap();
    server.wait().unwrap();
    let seen = load.await.unwrap();
    assert!(!seen.is_empty(), "some sign-ins completed before the crash");

    let mut server = node.start().await;
    // Every acknowledged sign-in left its audit row (same transaction as its code)…
    let events: Vec<Value> = node
        .cli(&["audit", "export", "--format", "jsonl"], None)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let logins = events.iter().filter(|e| e["kind"] == "login" && e["outcome"] == "success").count();
    assert!(logins >= seen.len(), "{logins} audited sign-ins, {} acknowledged", seen.len());
    // …the chain survived…
    assert!(node.cli(&["audit", "verify"], None).contains("intact"));
    // …and every code works exactly once across the restart.
    for code in seen.iter().take(10) {
        assert_eq!(exchange(&node.base(), &id, &secret, code).await, StatusCode::OK);
        assert_eq!(exchange(&node.base(), &id, &secret, code).await, StatusCode::BAD_REQUEST);
    }
    // The restarted server serves sign-ins as before.
    assert!(sign_in(&node.base(), &id).await.is_some());
    server.kill().unwrap();
    server.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_down_cleanly() {
    let node = Node::new();
    node.cli(&["migrate"], None);
    let mut server = node.start().await;
    let status = Command::new("kill").args(["-TERM", &server.id().to_string()]).status().unwrap();
    assert!(status.success());
    let mut exited = None;
    for _ in 0..100 {
        if let Some(s) = server.try_wait().unwrap() {
            exited = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let exited = exited.expect("exited within 10 s");
    assert!(exited.success(), "{exited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_pool_answers_a_fast_503() {
    let app = crate::harness::spawn_app_with(|s| s.database.pool_size = 1).await;
    let client = app.add_client(false);
    let db = app.db.clone();
    // Something holds the only connection for a while.
    let hold = std::thread::spawn(move || {
        db.read(|_| {
            std::thread::sleep(Duration::from_secs(7));
            Ok(())
        })
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let resp = reqwest::get(app.authorize_url(&client, &[])).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers()["retry-after"], "1");
    let resp = reqwest::Client::new()
        .post(app.url("/token"))
        .form(&[("grant_type", "client_credentials"), ("client_id", client.id.as_str()), ("client_secret", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    assert!(started.elapsed() < Duration::from_secs(7), "refused, not hung: {:?}", started.elapsed());
    hold.join().unwrap().unwrap();
}

/// Reads an HTTP/1.1 response (the request said `Connection: close`) to its end.
async fn read_response(stream: &mut tokio::net::TcpStream) -> (u16, String) {
    use tokio::io::AsyncReadExt;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("a response within 10 s")
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_request_in_flight_finish() {
    use base64::Engine;
    use tokio::io::AsyncWriteExt;
    let node = Node::new();
    node.cli(&["migrate"], None);
    node.cli(&["user", "add", "alice", "--password-stdin"], Some(PASSWORD));
    let client: Value =
        serde_json::from_str(&node.cli(&["client", "add", "--name", "RP", "--redirect-uri", REDIRECT, "--json"], None))
            .unwrap();
    let (id, secret) = (client["client_id"].as_str().unwrap(), client["client_secret"].as_str().unwrap());
    let mut server = node.start().await;
    let code = sign_in(&node.base(), id).await.expect("a code");

    // A code exchange whose body is only half sent when the signal arrives.
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", &code)
        .append_pair("redirect_uri", REDIRECT)
        .finish();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    let head = format!(
        "POST /token HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Basic {basic}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        node.port,
        body.len()
    );
    let (first, rest) = body.split_at(body.len() / 2);
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", node.port)).await.unwrap();
    stream.write_all(format!("{head}{first}").as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(Command::new("kill").args(["-TERM", &server.id().to_string()]).status().unwrap().success());
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Shutting down: no new connections…
    // (Polled: on a loaded machine the listener may take a moment to close.)
    let mut refused = false;
    for _ in 0..50 {
        if tokio::net::TcpStream::connect(("127.0.0.1", node.port)).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused, "new connections still accepted 5 s after SIGTERM");
    assert!(server.try_wait().unwrap().is_none(), "exited with a request in flight");
    // …but the request already in flight completes, with the right answer.
    stream.write_all(rest.as_bytes()).await.unwrap();
    let (status, body) = read_response(&mut stream).await;
    assert_eq!(status, 200, "{body}");
    let tokens: Value = serde_json::from_str(&body).unwrap();
    assert!(tokens["access_token"].is_string() && tokens["id_token"].is_string(), "{tokens}");

    let mut exited = None;
    for _ in 0..100 {
        if let Some(s) = server.try_wait().unwrap() {
            exited = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let exited = exited.expect("exited within 10 s of the last response");
    assert!(exited.success(), "{exited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_has_one_line_per_request_without_query_or_secrets() {
    let node = Node::new();
    node.cli(&["migrate"], None);
    let client: Value =
        serde_json::from_str(&node.cli(&["client", "add", "--name", "RP", "--redirect-uri", REDIRECT, "--json"], None))
            .unwrap();
    let id = client["client_id"].as_str().unwrap().to_owned();
    let server = node.start_logging("info", Stdio::piped()).await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let base = node.base();
    let authorize = http
        .get(format!("{base}/authorize?client_id={id}&response_type=code&scope=openid&state=state-in-the-query"))
        .send()
        .await
        .unwrap();
    assert_eq!(authorize.status(), StatusCode::BAD_REQUEST, "no redirect_uri: an error page");
    let token = http
        .post(format!("{base}/token"))
        .basic_auth(&id, Some("a-wrong-secret-never-logged"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), StatusCode::UNAUTHORIZED);
    assert!(Command::new("kill").args(["-TERM", &server.id().to_string()]).status().unwrap().success());
    let out = server.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stdout);

    let lines = |route: &str| log.lines().filter(|l| l.contains(&format!(" route={route} "))).collect::<Vec<_>>();
    let token_lines = lines("/token");
    assert_eq!(token_lines.len(), 1, "one line per request:\n{log}");
    assert!(token_lines[0].contains("method=POST") && token_lines[0].contains("status=401"), "{}", token_lines[0]);
    assert!(token_lines[0].contains("ip=127.0.0.1") && token_lines[0].contains("request_id="), "{}", token_lines[0]);
    let authorize_lines = lines("/authorize");
    assert_eq!(authorize_lines.len(), 1, "{log}");
    assert!(authorize_lines[0].contains("method=GET") && authorize_lines[0].contains("status=400"));
    assert!(!log.contains("state-in-the-query"), "query strings stay out of the log:\n{log}");
    assert!(!log.contains("a-wrong-secret-never-logged"), "secrets stay out of the log:\n{log}");
}
