//! Micro-benchmarks of the pure pieces on Ladder's hot paths, through Ladder's own code:
//! signing and verifying JWTs with the server's key set (josekit over OpenSSL), ladder-guard's
//! access-token verification, the step-up decision (`compute_target` + `plan`), a TOTP check, and
//! the PKCE S256 comparison. `cargo bench -p ladder-microbench` (see bench/README.md).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use ladder_core::{AcrRequest, Factor, Levels, Prompt, ProvenFactor, Recency, TargetInput, compute_target, plan};
use ladder_server::crypto::{ServerKey, constant_time_eq, s256};
use ladder_server::signing::{Alg, KeyCache, KeySet};
use serde_json::{Map, Value, json};
use std::hint::black_box;

const ISSUER: &str = "https://id.example.com";
const AUDIENCE: &str = "https://api.example.com";

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// A real key set (one RS256 and one ES256 key), generated and loaded the way the server does.
fn key_set(rt: &tokio::runtime::Runtime, dir: &tempfile::TempDir) -> Arc<KeySet> {
    let db = ladder_store::Db::connect(&format!("sqlite://{}/keys.db", dir.path().display()), 1).expect("db");
    db.migrate().expect("migrate");
    let (server_key, _) = ServerKey::generate();
    let sk = server_key.clone();
    db.write(move |conn| {
        ladder_server::signing::ensure_keys(conn, &sk, now())
            .map_err(|e| ladder_store::StoreError::Corrupt(e.to_string()))
    })
    .expect("keys");
    let cache = KeyCache::load(db, server_key).expect("key cache");
    rt.block_on(cache.get())
}

/// The claims of a user's access token after a step-up, as `tokens::mint_access_token` writes them.
fn access_claims() -> Map<String, Value> {
    let t = now();
    let Value::Object(m) = json!({
        "iss": ISSUER, "sub": "0b0f5f2e-6b1c-4d7e-9a51-0c3f1f6a2b11", "aud": AUDIENCE,
        "client_id": "dXvaIXu0n-qvjsGlgKWdNg", "iat": t, "exp": t + 600, "jti": "Yh3k9sQ2Lr0aZ8mW1xPq4A",
        "scope": "openid profile", "acr": "urn:ladder:loa:2", "amr": ["pwd", "otp", "mfa"],
        "auth_time": t - 20, "sid": "5b1d7c1e-3a1f-4a63-8f0e-2b8a9d6f4c21",
    }) else {
        unreachable!()
    };
    m
}

fn jwt(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = key_set(&rt, &dir);
    let claims = access_claims();
    c.bench_function("jwt/sign ES256 access token", |b| {
        b.iter(|| keys.sign(Alg::ES256, "at+jwt", black_box(claims.clone())).expect("sign"))
    });
    c.bench_function("jwt/sign RS256 ID token", |b| {
        b.iter(|| keys.sign(Alg::RS256, "JWT", black_box(claims.clone())).expect("sign"))
    });
    let es = keys.sign(Alg::ES256, "at+jwt", claims.clone()).expect("sign");
    let rs = keys.sign(Alg::RS256, "JWT", claims.clone()).expect("sign");
    c.bench_function("jwt/verify ES256 (server key set)", |b| b.iter(|| keys.verify(black_box(&es)).expect("verify")));
    c.bench_function("jwt/verify RS256 (server key set)", |b| b.iter(|| keys.verify(black_box(&rs)).expect("verify")));

    // ladder-guard, as a resource server runs it: JWKS fetched once over HTTP, then cached.
    let jwks = keys.jwks_json().to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                jwks.len()
            );
            let _ = stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(jwks.as_bytes()));
        }
    });
    let guard =
        ladder_guard::Guard::builder(ISSUER, AUDIENCE).jwks_uri(format!("http://127.0.0.1:{port}/jwks")).build();
    rt.block_on(guard.verify(&es)).expect("guard accepts the token");
    c.bench_function("guard/verify ES256 access token", |b| {
        b.iter(|| rt.block_on(guard.verify(black_box(&es))).expect("verify"))
    });
}

fn step_up(c: &mut Criterion) {
    let levels = Levels::defaults();
    let t = now();
    let request = AcrRequest::from_params(Some("urn:ladder:loa:2"), None).expect("request");
    let enrolled = [Factor::Password, Factor::Totp];
    let proofs = [ProvenFactor { factor: Factor::Password, proven_at: t - 3600, user_verified: false }];
    let recency = Recency::new(None, Prompt::default(), t);
    let input = TargetInput {
        request: &request,
        client: Default::default(),
        scopes: &[],
        scope_rules: &[],
        extra: &[],
        enrolled: &enrolled,
    };
    let target = compute_target(&levels, &input).expect("target");
    c.bench_function("stepup/plan (password session, loa:2)", |b| {
        b.iter(|| plan(black_box(&target), black_box(&proofs), &enrolled, &recency, t))
    });
    c.bench_function("stepup/compute_target + plan", |b| {
        b.iter(|| {
            let target = compute_target(&levels, black_box(&input)).expect("target");
            plan(&target, black_box(&proofs), &enrolled, &recency, t)
        })
    });
}

fn factors(c: &mut Criterion) {
    let secret = *b"12345678901234567890";
    let t = now();
    let code = ladder_core::totp::generate(&secret, t).expect("code");
    c.bench_function("totp/check a current code", |b| {
        b.iter(|| ladder_core::totp::check(black_box(&secret), black_box(&code), t).expect("valid"))
    });
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = s256(verifier);
    c.bench_function("pkce/S256 verifier check", |b| {
        b.iter(|| constant_time_eq(&s256(black_box(verifier)), black_box(&challenge)))
    });
}

criterion_group!(benches, jwt, step_up, factors);
criterion_main!(benches);
