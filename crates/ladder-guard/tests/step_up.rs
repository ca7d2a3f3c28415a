//! A stand-in issuer (JWKS and discovery over HTTP) and a protected API, both real actix servers
//! on 127.0.0.1:0, driven by reqwest. Each test starts its own pair and owns its clock.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use josekit::jwk::{Jwk, JwkSet, KeyPair};
use josekit::jwk::alg::ed::EdCurve;
use josekit::jws::{ES256, EdDSA, JwsHeader, RS256};
use josekit::jwt::{self, JwtPayload};
use ladder_guard::{Guard, GuardError, LOA1, LOA2, LOA3, Requirement, VerifiedToken};
use serde_json::{Map, Value, json};

const NOW: i64 = 1_800_000_000;
const AUDIENCE: &str = "https://api.example";

/// A signing key with the private half kept for minting tokens.
struct TestKey {
    kid: String,
    alg: &'static str,
    private: Jwk,
    public: Jwk,
}

impl TestKey {
    fn es256(kid: &str) -> TestKey {
        let pair = ES256.generate_key_pair().unwrap();
        TestKey::finish(
            kid,
            "ES256",
            pair.to_jwk_private_key(),
            pair.to_jwk_public_key(),
        )
    }

    fn ed25519(kid: &str) -> TestKey {
        let pair = EdDSA.generate_key_pair(EdCurve::Ed25519).unwrap();
        TestKey::finish(
            kid,
            "EdDSA",
            pair.to_jwk_private_key(),
            pair.to_jwk_public_key(),
        )
    }

    /// RSA generation is slow and random in duration, so every test shares one key.
    fn rs256() -> TestKey {
        static PAIR: OnceLock<(Jwk, Jwk)> = OnceLock::new();
        let (private, public) = PAIR.get_or_init(|| {
            let pair = RS256.generate_key_pair(2048).unwrap();
            (pair.to_jwk_private_key(), pair.to_jwk_public_key())
        });
        TestKey::finish("rs-1", "RS256", private.clone(), public.clone())
    }

    fn finish(kid: &str, alg: &'static str, mut private: Jwk, mut public: Jwk) -> TestKey {
        for jwk in [&mut private, &mut public] {
            jwk.set_key_id(kid);
            jwk.set_algorithm(alg);
            jwk.set_key_use("sig");
        }
        TestKey {
            kid: kid.to_owned(),
            alg,
            private,
            public,
        }
    }

    fn sign_typed(&self, typ: &str, claims: Map<String, Value>) -> String {
        let mut header = JwsHeader::new();
        header.set_token_type(typ);
        header.set_key_id(&self.kid);
        let payload = JwtPayload::from_map(claims).unwrap();
        match self.alg {
            "ES256" => jwt::encode_with_signer(
                &payload,
                &header,
                &ES256.signer_from_jwk(&self.private).unwrap(),
            ),
            "EdDSA" => jwt::encode_with_signer(
                &payload,
                &header,
                &EdDSA.signer_from_jwk(&self.private).unwrap(),
            ),
            _ => jwt::encode_with_signer(
                &payload,
                &header,
                &RS256.signer_from_jwk(&self.private).unwrap(),
            ),
        }
        .unwrap()
    }

    fn sign(&self, claims: Map<String, Value>) -> String {
        self.sign_typed("at+jwt", claims)
    }
}

fn jwks(keys: &[&TestKey]) -> String {
    let mut set = JwkSet::new();
    for key in keys {
        set.push_key(key.public.clone());
    }
    set.to_string()
}

/// What the stand-in issuer serves, changeable mid-test.
struct IssuerState {
    issuer: Mutex<String>,
    jwks: Mutex<String>,
    fetches: AtomicUsize,
    down: AtomicBool,
}

async fn serve_jwks(state: web::Data<IssuerState>) -> HttpResponse {
    state.fetches.fetch_add(1, Ordering::SeqCst);
    if state.down.load(Ordering::SeqCst) {
        return HttpResponse::ServiceUnavailable().finish();
    }
    let body = state.jwks.lock().unwrap().clone();
    HttpResponse::Ok()
        .content_type("application/json")
        .body(body)
}

async fn serve_discovery(state: web::Data<IssuerState>) -> HttpResponse {
    let issuer = state.issuer.lock().unwrap().clone();
    HttpResponse::Ok().json(json!({ "issuer": issuer, "jwks_uri": format!("{issuer}/keys") }))
}

/// The API under test: one route per way of using the guard.
fn api_app(
    guard: Guard,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    async fn pay(token: VerifiedToken) -> HttpResponse {
        HttpResponse::Ok().json(json!({
            "sub": token.sub(), "client_id": token.client_id(), "acr": token.acr(),
            "amr": token.amr(), "scope": token.scope(), "auth_time": token.auth_time(),
        }))
    }
    async fn statements(
        req: HttpRequest,
        guard: web::Data<Guard>,
    ) -> Result<HttpResponse, GuardError> {
        let token = guard
            .check(&req, &Requirement::acr(LOA1).scope("statements:read"))
            .await?;
        Ok(HttpResponse::Ok().json(json!({ "sub": token.sub() })))
    }
    async fn me(token: VerifiedToken) -> HttpResponse {
        HttpResponse::Ok().json(json!({ "sub": token.sub(), "acr": token.acr() }))
    }
    App::new()
        .app_data(web::Data::new(guard.clone()))
        .service(
            web::resource("/payments")
                .wrap(guard.require(Requirement::acr(LOA2).max_age(300)))
                .route(web::post().to(pay)),
        )
        .route("/statements", web::get().to(statements))
        .route("/me", web::get().to(me))
}

struct World {
    issuer: String,
    state: web::Data<IssuerState>,
    api: String,
    clock: Arc<AtomicI64>,
    es: TestKey,
    rs: TestKey,
    ed: TestKey,
    http: reqwest::Client,
    servers: Vec<ServerHandle>,
}

impl Drop for World {
    fn drop(&mut self) {
        // `stop` sends its command at once; the returned future only waits for completion.
        for server in &self.servers {
            drop(server.stop(false));
        }
    }
}

/// Runs an app factory on 127.0.0.1:0 in this test's runtime; gives its base URL and handle.
macro_rules! spawn {
    ($factory:expr) => {{
        let server = HttpServer::new($factory)
            .workers(1)
            .disable_signals()
            .bind(("127.0.0.1", 0))
            .unwrap();
        let url = format!("http://{}", server.addrs()[0]);
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        (url, handle)
    }};
}

impl World {
    async fn start() -> World {
        World::start_with(|b| b).await
    }

    /// Starts the issuer, then the API with a guard customised by `configure`.
    async fn start_with(
        configure: impl FnOnce(ladder_guard::GuardBuilder) -> ladder_guard::GuardBuilder,
    ) -> World {
        let (es, rs, ed) = (
            TestKey::es256("es-1"),
            TestKey::rs256(),
            TestKey::ed25519("ed-1"),
        );
        let state = web::Data::new(IssuerState {
            issuer: Mutex::new(String::new()),
            jwks: Mutex::new(jwks(&[&es, &rs, &ed])),
            fetches: AtomicUsize::new(0),
            down: AtomicBool::new(false),
        });
        let issuer_state = state.clone();
        let (issuer, issuer_handle) = spawn!(move || {
            App::new()
                .app_data(issuer_state.clone())
                .route("/jwks.json", web::get().to(serve_jwks))
                .route("/keys", web::get().to(serve_jwks))
                .route(
                    "/.well-known/openid-configuration",
                    web::get().to(serve_discovery),
                )
        });
        *state.issuer.lock().unwrap() = issuer.clone();

        let clock = Arc::new(AtomicI64::new(NOW));
        let tick = Arc::clone(&clock);
        let guard = configure(
            Guard::builder(issuer.clone(), AUDIENCE).clock(move || tick.load(Ordering::SeqCst)),
        )
        .build();
        let (api, api_handle) = spawn!(move || api_app(guard.clone()));
        World {
            issuer,
            state,
            api,
            clock,
            es,
            rs,
            ed,
            http: reqwest::Client::new(),
            servers: vec![issuer_handle, api_handle],
        }
    }

    /// A valid loa:2 access token's claims, as Ladder would issue them.
    fn claims(&self) -> Map<String, Value> {
        let Value::Object(claims) = json!({
            "iss": self.issuer, "sub": "alice", "aud": AUDIENCE, "client_id": "shop",
            "iat": NOW, "exp": NOW + 600, "jti": "at-1", "scope": "openid statements:read",
            "acr": LOA2, "amr": ["pwd", "otp"], "auth_time": NOW - 60,
        }) else {
            unreachable!()
        };
        claims
    }

    fn claims_with(&self, changes: Value) -> Map<String, Value> {
        let mut claims = self.claims();
        let Value::Object(changes) = changes else {
            unreachable!()
        };
        claims.extend(changes);
        claims
    }

    fn advance(&self, secs: i64) {
        self.clock.fetch_add(secs, Ordering::SeqCst);
    }

    fn fetches(&self) -> usize {
        self.state.fetches.load(Ordering::SeqCst)
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self.http.request(method, format!("{}{path}", self.api));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send().await.unwrap()
    }

    async fn pay(&self, token: &str) -> reqwest::Response {
        self.call(reqwest::Method::POST, "/payments", Some(token))
            .await
    }
}

fn challenge(resp: &reqwest::Response) -> &str {
    resp.headers()
        .get("www-authenticate")
        .expect("a WWW-Authenticate challenge")
        .to_str()
        .unwrap()
}

async fn assert_refused(
    resp: reqwest::Response,
    status: u16,
    expected_challenge: &str,
    error: &str,
) {
    assert_eq!(resp.status().as_u16(), status);
    assert_eq!(challenge(&resp), expected_challenge);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], error);
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{body}"
    );
}

async fn assert_invalid_token(world: &World, token: &str, description: &str) {
    let expected = format!(r#"Bearer error="invalid_token", error_description="{description}""#);
    assert_refused(world.pay(token).await, 401, &expected, "invalid_token").await;
}

#[actix_web::test]
async fn valid_loa2_token_is_accepted() {
    let world = World::start().await;
    let resp = world.pay(&world.es.sign(world.claims())).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({
            "sub": "alice", "client_id": "shop", "acr": LOA2, "amr": ["pwd", "otp"],
            "scope": ["openid", "statements:read"], "auth_time": NOW - 60,
        })
    );
}

#[actix_web::test]
async fn rs256_loa3_token_meets_a_loa2_route() {
    let world = World::start().await;
    let resp = world
        .pay(
            &world
                .rs
                .sign(world.claims_with(json!({"acr": LOA3, "aud": ["other", AUDIENCE]}))),
        )
        .await;
    assert_eq!(resp.status(), 200);
}

#[actix_web::test]
async fn eddsa_token_is_accepted() {
    let world = World::start().await;
    let resp = world
        .pay(&world.ed.sign(world.claims_with(json!({"acr": LOA2}))))
        .await;
    assert_eq!(resp.status(), 200);
}

#[actix_web::test]
async fn loa1_token_on_loa2_route_gets_rfc9470_challenge() {
    let world = World::start().await;
    let resp = world
        .pay(
            &world
                .es
                .sign(world.claims_with(json!({"acr": LOA1, "amr": ["pwd"]}))),
        )
        .await;
    assert_eq!(resp.status(), 401);
    assert_eq!(
        challenge(&resp),
        r#"Bearer error="insufficient_user_authentication", error_description="A higher level of authentication is required.", acr_values="urn:ladder:loa:2", max_age="300""#
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({
            "error": "insufficient_user_authentication",
            "error_description": "A higher level of authentication is required.",
        })
    );
}

#[actix_web::test]
async fn stale_auth_time_gets_max_age_challenge() {
    let world = World::start().await;
    let stale = world
        .es
        .sign(world.claims_with(json!({"auth_time": NOW - 400})));
    assert_refused(
        world.pay(&stale).await,
        401,
        r#"Bearer error="insufficient_user_authentication", error_description="A more recent authentication is required.", acr_values="urn:ladder:loa:2", max_age="300""#,
        "insufficient_user_authentication",
    )
    .await;
}

#[actix_web::test]
async fn token_goes_stale_as_the_clock_moves() {
    let world = World::start().await;
    let token = world
        .es
        .sign(world.claims_with(json!({"auth_time": NOW - 100})));
    assert_eq!(world.pay(&token).await.status(), 200);
    // 100 + 231 s since authentication: past max_age 300 plus 30 s leeway, token still unexpired.
    world.advance(231);
    let resp = world.pay(&token).await;
    assert_eq!(resp.status(), 401);
    assert!(challenge(&resp).ends_with(r#"acr_values="urn:ladder:loa:2", max_age="300""#));
}

#[actix_web::test]
async fn missing_token_gets_a_bare_bearer_challenge() {
    let world = World::start().await;
    let resp = world.call(reqwest::Method::POST, "/payments", None).await;
    assert_refused(resp, 401, "Bearer", "invalid_token").await;
}

#[actix_web::test]
async fn expired_token_is_invalid_token() {
    let world = World::start().await;
    let token = world
        .es
        .sign(world.claims_with(json!({"iat": NOW - 700, "exp": NOW - 31})));
    assert_invalid_token(&world, &token, "The access token has expired.").await;
}

#[actix_web::test]
async fn wrong_issuer_is_invalid_token() {
    let world = World::start().await;
    let token = world
        .es
        .sign(world.claims_with(json!({"iss": "https://evil.example"})));
    assert_invalid_token(
        &world,
        &token,
        "The access token was issued by someone else.",
    )
    .await;
}

#[actix_web::test]
async fn wrong_audience_is_invalid_token() {
    let world = World::start().await;
    let token = world
        .es
        .sign(world.claims_with(json!({"aud": "https://other-api.example"})));
    assert_invalid_token(
        &world,
        &token,
        "The access token is not intended for this resource.",
    )
    .await;
}

#[actix_web::test]
async fn id_token_type_is_invalid_token() {
    let world = World::start().await;
    let token = world.rs.sign_typed("JWT", world.claims());
    assert_invalid_token(&world, &token, "The token is not an access token.").await;
}

#[actix_web::test]
async fn bad_signature_is_invalid_token() {
    let world = World::start().await;
    // Same kid and algorithm as a published key, different private key.
    let impostor = TestKey::es256(&world.es.kid);
    assert_invalid_token(
        &world,
        &impostor.sign(world.claims()),
        "The access token signature is invalid.",
    )
    .await;
}

#[actix_web::test]
async fn unsigned_token_is_invalid_token() {
    let world = World::start().await;
    let genuine = world.es.sign(world.claims());
    let payload = genuine.split('.').nth(1).unwrap();
    // {"alg":"none","typ":"at+jwt","kid":"es-1"}
    let forged = format!("eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0Iiwia2lkIjoiZXMtMSJ9.{payload}.");
    assert_invalid_token(
        &world,
        &forged,
        "The access token is signed with an unsupported algorithm.",
    )
    .await;
}

#[actix_web::test]
async fn unknown_kid_triggers_jwks_refetch() {
    let world = World::start().await;
    assert_eq!(
        world.pay(&world.es.sign(world.claims())).await.status(),
        200
    );
    assert_eq!(world.fetches(), 1);

    // The issuer rotates: a new ES256 key is published beside the old one.
    let rotated = TestKey::es256("es-2");
    *world.state.jwks.lock().unwrap() = jwks(&[&world.es, &rotated, &world.rs]);
    let new_token = rotated.sign(world.claims());

    // Within the cooldown the JWKS is not refetched, whatever kid a token names.
    assert_invalid_token(
        &world,
        &new_token,
        "The access token is signed with an unknown key.",
    )
    .await;
    assert_eq!(world.fetches(), 1);

    world.advance(11);
    assert_eq!(world.pay(&new_token).await.status(), 200);
    assert_eq!(world.fetches(), 2);
    // Old key still verifies, from the cache.
    assert_eq!(
        world.pay(&world.es.sign(world.claims())).await.status(),
        200
    );
    assert_eq!(world.fetches(), 2);
}

#[actix_web::test]
async fn invented_kids_cause_at_most_one_fetch_per_cooldown() {
    let world = World::start().await;
    for n in 0..5 {
        let stranger = TestKey::es256(&format!("made-up-{n}"));
        assert_invalid_token(
            &world,
            &stranger.sign(world.claims()),
            "The access token is signed with an unknown key.",
        )
        .await;
    }
    assert_eq!(world.fetches(), 1);
}

#[actix_web::test]
async fn jwks_is_refetched_after_max_age() {
    let world = World::start().await;
    let token = world.es.sign(world.claims_with(json!({"exp": NOW + 3600})));
    assert_eq!(world.pay(&token).await.status(), 200);
    world.advance(200);
    let fresh = world.es.sign(
        world.claims_with(json!({"iat": NOW + 200, "auth_time": NOW + 190, "exp": NOW + 3600})),
    );
    assert_eq!(world.pay(&fresh).await.status(), 200);
    assert_eq!(world.fetches(), 1);
    world.advance(100);
    let later = world.es.sign(
        world.claims_with(json!({"iat": NOW + 300, "auth_time": NOW + 290, "exp": NOW + 3600})),
    );
    assert_eq!(world.pay(&later).await.status(), 200);
    assert_eq!(world.fetches(), 2);
}

#[actix_web::test]
async fn issuer_outage_keeps_known_keys_and_reports_unknown_ones_as_unavailable() {
    let world = World::start().await;
    assert_eq!(
        world.pay(&world.es.sign(world.claims())).await.status(),
        200
    );
    world.state.down.store(true, Ordering::SeqCst);
    world.advance(301);
    let token = world
        .es
        .sign(world.claims_with(json!({"iat": NOW + 301, "auth_time": NOW + 300})));
    assert_eq!(
        world.pay(&token).await.status(),
        200,
        "stale keys serve while the issuer is down"
    );
    assert_eq!(world.fetches(), 2);

    world.advance(11);
    let rotated = TestKey::es256("es-2")
        .sign(world.claims_with(json!({"iat": NOW + 312, "auth_time": NOW + 310})));
    let resp = world.pay(&rotated).await;
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().get("www-authenticate").is_none());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
}

#[actix_web::test]
async fn missing_scope_gets_403_insufficient_scope() {
    let world = World::start().await;
    let token = world.es.sign(world.claims_with(json!({"scope": "openid"})));
    let resp = world
        .call(reqwest::Method::GET, "/statements", Some(&token))
        .await;
    assert_refused(
        resp,
        403,
        r#"Bearer error="insufficient_scope", error_description="The access token lacks a required scope.", scope="statements:read""#,
        "insufficient_scope",
    )
    .await;

    let token = world.es.sign(world.claims());
    let resp = world
        .call(reqwest::Method::GET, "/statements", Some(&token))
        .await;
    assert_eq!(resp.status(), 200);
}

#[actix_web::test]
async fn extractor_alone_verifies_with_the_app_data_guard() {
    let world = World::start().await;
    let resp = world.call(reqwest::Method::GET, "/me", None).await;
    assert_refused(resp, 401, "Bearer", "invalid_token").await;

    let token = world.rs.sign(world.claims_with(json!({"acr": LOA1})));
    let resp = world.call(reqwest::Method::GET, "/me", Some(&token)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"sub": "alice", "acr": LOA1})
    );
}

#[actix_web::test]
async fn discovery_supplies_the_jwks_uri() {
    let world = World::start().await;
    let guard = Guard::builder(world.issuer.clone(), AUDIENCE)
        .clock(|| NOW)
        .discover()
        .await
        .unwrap();
    assert_eq!(guard.jwks_uri(), format!("{}/keys", world.issuer));
    let token = guard.verify(&world.es.sign(world.claims())).await.unwrap();
    assert_eq!(token.sub(), "alice");
    assert_eq!(world.fetches(), 1);

    let mismatch = Guard::builder(format!("{}/", world.issuer), AUDIENCE)
        .discover()
        .await;
    assert!(matches!(
        mismatch,
        Err(ladder_guard::DiscoveryError::IssuerMismatch { .. })
    ));
}

#[actix_web::test]
async fn cooldown_is_configurable() {
    let world = World::start_with(|b| b.jwks_refetch_cooldown(Duration::ZERO)).await;
    assert_eq!(
        world.pay(&world.es.sign(world.claims())).await.status(),
        200
    );
    let rotated = TestKey::es256("es-2");
    *world.state.jwks.lock().unwrap() = jwks(&[&rotated]);
    assert_eq!(world.pay(&rotated.sign(world.claims())).await.status(), 200);
    assert_eq!(world.fetches(), 2);
}
