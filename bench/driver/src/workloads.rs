//! The workloads, each one measured unit (a request or a whole flow), and the loops that run
//! them: closed loop (N workers back to back), fixed rate (open loop, latency from the scheduled
//! start), and batches from a pool minted beforehand (codes, step-up sessions).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::browser::{self, Actor, Browser};
use crate::oidc::{self, AuthRequest, Discovery};
use crate::stats::Recorder;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// GET the discovery document
    Discovery,
    /// GET the JWKS
    Jwks,
    /// client_credentials grant: one JWT access token per request
    ClientCredentials,
    /// authorization_code + PKCE redemption of codes minted beforehand
    CodeExchange,
    /// refresh_token grant, each worker following its own (rotating) chain
    Refresh,
    /// token introspection of a user's access token
    Introspect,
    /// userinfo with a user's access token
    Userinfo,
    /// a fresh browser: authorize, password form, code, token, userinfo
    Login,
    /// on a password session: authorize with higher acr_values, TOTP form, code, token (acr checked)
    Stepup,
}

impl Workload {
    pub fn as_str(self) -> &'static str {
        match self {
            Workload::Discovery => "discovery",
            Workload::Jwks => "jwks",
            Workload::ClientCredentials => "client-credentials",
            Workload::CodeExchange => "code-exchange",
            Workload::Refresh => "refresh",
            Workload::Introspect => "introspect",
            Workload::Userinfo => "userinfo",
            Workload::Login => "login",
            Workload::Stepup => "stepup",
        }
    }

    pub fn unit(self) -> &'static str {
        match self {
            Workload::Login | Workload::Stepup => "flow",
            _ => "req",
        }
    }

    /// Whether one operation needs nothing but the shared context (so it can run at a fixed rate).
    pub fn stateless(self) -> bool {
        !matches!(self, Workload::Refresh | Workload::CodeExchange | Workload::Stepup)
    }
}

/// A user able to sign in (and, for step-up, holding a TOTP secret).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TotpUser {
    pub username: String,
    pub password: String,
    pub secret: String,
    /// The last TOTP time step used (the provider accepts each step once per user).
    pub last_step: i64,
}

pub fn read_users(path: &PathBuf) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match l.split_once(':') {
            Some((u, p)) => (u.to_owned(), p.to_owned()),
            None => (l.to_owned(), String::new()),
        })
        .collect())
}

pub fn read_totp_users(path: &PathBuf) -> Result<Vec<TotpUser>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| Ok(serde_json::from_str(l)?)).collect()
}

pub fn write_totp_users(path: &PathBuf, users: &[TotpUser]) -> Result<()> {
    let mut text = String::new();
    for u in users {
        text.push_str(&serde_json::to_string(u)?);
        text.push('\n');
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

pub struct Ctx {
    pub http: reqwest::Client,
    pub disc: Discovery,
    pub client_id: String,
    /// The client's `Authorization: Basic …` value.
    pub auth: String,
    pub redirect_uri: String,
    pub users: Vec<(String, String)>,
    pub next_user: AtomicUsize,
    /// Ask for `offline_access` with `prompt=consent` where a refresh token is wanted
    /// (node-oidc-provider issues refresh tokens only then).
    pub offline_access: bool,
    pub stepup_acr: String,
    /// Users' access tokens for introspection and userinfo.
    pub tokens: Vec<String>,
    pub next_token: AtomicUsize,
    pub notes: Mutex<Vec<String>>,
}

impl Ctx {
    pub fn user(&self) -> Result<(String, String)> {
        if self.users.is_empty() {
            bail!("this workload signs users in: pass --users FILE (lines of username:password)");
        }
        let i = self.next_user.fetch_add(1, Ordering::Relaxed) % self.users.len();
        Ok(self.users[i].clone())
    }

    fn token(&self) -> &str {
        &self.tokens[self.next_token.fetch_add(1, Ordering::Relaxed) % self.tokens.len()]
    }

    pub fn note(&self, n: String) {
        let mut notes = self.notes.lock().unwrap();
        if !notes.contains(&n) {
            notes.push(n);
        }
    }

    fn scope(&self, want_refresh: bool) -> (&'static str, Option<&'static str>) {
        if want_refresh && self.offline_access { ("openid offline_access", Some("consent")) } else { ("openid", None) }
    }

    /// An authorization request in `browser`, answered by `actor`; returns the code and its verifier.
    pub async fn code(
        &self,
        browser: &mut Browser,
        actor: &mut Actor,
        acr: Option<&str>,
        want_refresh: bool,
    ) -> Result<(String, String)> {
        let (pk, state, nonce) = (oidc::pkce(), oidc::random(12), oidc::random(12));
        let (scope, prompt) = self.scope(want_refresh);
        let req = AuthRequest {
            client_id: &self.client_id,
            redirect_uri: &self.redirect_uri,
            scope,
            prompt,
            acr_values: acr,
            state: &state,
            nonce: &nonce,
            challenge: &pk.challenge,
        };
        let url = oidc::authorize_url(&self.disc.authorization_endpoint, &req);
        let cb = browser::authorize(&self.http, browser, actor, url, &self.redirect_uri, &state).await?;
        Ok((cb.code, pk.verifier))
    }

    pub async fn exchange(&self, code: &str, verifier: &str) -> Result<Value> {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.redirect_uri.as_str()),
            ("code_verifier", verifier),
        ];
        let v = oidc::post_form(&self.http, &self.disc.token_endpoint, &self.auth, &form).await?;
        oidc::str_field(&v, "access_token")?;
        oidc::str_field(&v, "id_token")?;
        Ok(v)
    }

    /// A whole sign-in in `browser` as the next user; the token response.
    pub async fn login(&self, browser: &mut Browser, acr: Option<&str>, want_refresh: bool) -> Result<Value> {
        let (username, password) = self.user()?;
        let mut actor = Actor::login(&username, &password);
        let (code, verifier) = self.code(browser, &mut actor, acr, want_refresh).await?;
        self.exchange(&code, &verifier).await
    }

    async fn get_ok(&self, url: &url::Url, bearer: Option<&str>) -> Result<()> {
        let mut rb = self.http.get(url.clone());
        if let Some(t) = bearer {
            rb = rb.bearer_auth(t);
        }
        let resp = rb.send().await?;
        let status = resp.status();
        let body = resp.bytes().await?;
        if !status.is_success() {
            bail!("HTTP {} at {}", status.as_u16(), url.path());
        }
        if body.is_empty() {
            bail!("empty body at {}", url.path());
        }
        Ok(())
    }

    async fn userinfo(&self, token: &str) -> Result<()> {
        self.get_ok(&self.disc.userinfo_endpoint, Some(token)).await
    }
}

/// Per-worker state of the stateful closed-loop workloads.
pub enum WState {
    None,
    Refresh(String),
}

/// One operation of a closed-loop or fixed-rate workload.
pub async fn op(ctx: &Ctx, wl: Workload, st: &mut WState) -> Result<()> {
    match wl {
        Workload::Discovery => ctx.get_ok(&ctx.disc.discovery_url, None).await,
        Workload::Jwks => ctx.get_ok(&ctx.disc.jwks_uri, None).await,
        Workload::ClientCredentials => {
            let v = oidc::post_form(
                &ctx.http,
                &ctx.disc.token_endpoint,
                &ctx.auth,
                &[("grant_type", "client_credentials")],
            )
            .await?;
            let at = oidc::str_field(&v, "access_token")?;
            if ctx.notes.lock().unwrap().is_empty() {
                ctx.note(format!("access token {}", oidc::jwt_alg(at)));
            }
            Ok(())
        }
        Workload::Introspect => {
            let url = ctx.disc.introspection_endpoint.as_ref().ok_or_else(|| anyhow!("no introspection endpoint"))?;
            let v = oidc::post_form(&ctx.http, url, &ctx.auth, &[("token", ctx.token())]).await?;
            if v.get("active") != Some(&Value::Bool(true)) {
                bail!("token reported inactive");
            }
            Ok(())
        }
        Workload::Userinfo => ctx.userinfo(ctx.token()).await,
        Workload::Login => {
            let mut browser = Browser::default();
            let v = ctx.login(&mut browser, None, false).await?;
            ctx.userinfo(oidc::str_field(&v, "access_token")?).await
        }
        Workload::Refresh => {
            let WState::Refresh(rt) = st else { bail!("refresh without a token") };
            let form = [("grant_type", "refresh_token"), ("refresh_token", rt.as_str())];
            let v = oidc::post_form(&ctx.http, &ctx.disc.token_endpoint, &ctx.auth, &form).await?;
            oidc::str_field(&v, "access_token")?;
            if let Some(new) = v.get("refresh_token").and_then(Value::as_str) {
                ctx.note(if new != rt.as_str() {
                    "refresh tokens rotate".into()
                } else {
                    "refresh token reused".into()
                });
                *rt = new.to_owned();
            } else {
                ctx.note("refresh tokens do not rotate".into());
            }
            Ok(())
        }
        Workload::CodeExchange | Workload::Stepup => bail!("{} runs from a pool", wl.as_str()),
    }
}

/// Prepares what the workload's workers need (tokens to introspect, refresh chains).
pub async fn prepare(ctx: &mut Ctx, wl: Workload, concurrency: usize) -> Result<Vec<WState>> {
    match wl {
        Workload::Introspect | Workload::Userinfo if ctx.tokens.is_empty() => {
            for _ in 0..concurrency.clamp(1, 8) {
                let v =
                    ctx.login(&mut Browser::default(), None, false).await.context("signing in to get access tokens")?;
                ctx.tokens.push(oidc::str_field(&v, "access_token")?.to_owned());
            }
        }
        Workload::Refresh => {
            let ctx: &Ctx = ctx;
            let mut states = Vec::new();
            for _ in 0..concurrency {
                let v =
                    ctx.login(&mut Browser::default(), None, true).await.context("signing in to get refresh tokens")?;
                let rt =
                    v.get("refresh_token").and_then(Value::as_str).ok_or_else(|| anyhow!("no refresh token issued"))?;
                states.push(WState::Refresh(rt.to_owned()));
            }
            return Ok(states);
        }
        _ => {}
    }
    Ok((0..concurrency).map(|_| WState::None).collect())
}

/// `states.len()` workers back to back until `until`.
pub async fn closed_loop(ctx: Arc<Ctx>, wl: Workload, states: Vec<WState>, until: Instant) -> (Recorder, Vec<WState>) {
    let mut tasks = Vec::new();
    for mut st in states {
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move {
            let mut rec = Recorder::default();
            while Instant::now() < until {
                let t0 = Instant::now();
                match op(&ctx, wl, &mut st).await {
                    Ok(()) => rec.ok(t0.elapsed()),
                    Err(e) => {
                        rec.err(&e);
                        // A broken refresh chain cannot continue; stop this worker rather than spin.
                        if matches!(st, WState::Refresh(_)) {
                            break;
                        }
                    }
                }
            }
            (rec, st)
        }));
    }
    let mut rec = Recorder::default();
    let mut states = Vec::new();
    for t in tasks {
        if let Ok((r, st)) = t.await {
            rec.merge(r);
            states.push(st);
        }
    }
    (rec, states)
}

/// Starts one operation every 1/rate seconds until `until`, at most `concurrency` in flight
/// (later ones wait their turn); each latency runs from the operation's scheduled start.
pub async fn fixed_rate(ctx: Arc<Ctx>, wl: Workload, rate: f64, concurrency: usize, until: Instant) -> Recorder {
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let rec = Arc::new(Mutex::new(Recorder::default()));
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let scheduled = ticker.tick().await.into_std();
        if scheduled >= until {
            break;
        }
        let (ctx, rec, permits) = (ctx.clone(), rec.clone(), permits.clone());
        tasks.spawn(async move {
            let Ok(_permit) = permits.acquire().await else { return };
            let result = op(&ctx, wl, &mut WState::None).await;
            let mut rec = rec.lock().unwrap();
            match result {
                Ok(()) => rec.ok(scheduled.elapsed()),
                Err(e) => rec.err(&e),
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    Arc::try_unwrap(rec).map(|m| m.into_inner().unwrap()).unwrap_or_default()
}

/// One pooled operation: a code to redeem, or a password session to step up.
pub enum Item {
    Code { code: String, verifier: String },
    StepUp { browser: Browser, user: usize, step: i64 },
}

/// Which (user, TOTP step) pairs are still free: each step is accepted once per user, within
/// ±1 step of the provider's clock.
pub struct Steps {
    pub users: Vec<TotpUser>,
    cursor: usize,
}

impl Steps {
    pub fn new(users: Vec<TotpUser>) -> Steps {
        Steps { users, cursor: 0 }
    }

    /// Reserves up to `n` (user, step) pairs usable during the next ~20 seconds, at most one per
    /// user: a batch runs concurrently, and a user's later step accepted first would make the
    /// provider refuse the earlier one as a replay.
    pub fn reserve(&mut self, n: usize) -> Vec<(usize, i64)> {
        let now = unix_now();
        let s = now / 30;
        // The previous step stays valid until the end of the current one: use it only early on.
        let lowest = if now % 30 < 10 { s - 1 } else { s };
        let mut out = Vec::new();
        let mut taken = vec![false; self.users.len()];
        let mut idle = 0;
        while out.len() < n && idle < self.users.len() {
            let i = self.cursor % self.users.len();
            self.cursor += 1;
            let u = &mut self.users[i];
            let next = (u.last_step + 1).max(lowest);
            if !taken[i] && next <= s + 1 {
                taken[i] = true;
                u.last_step = next;
                out.push((i, next));
                idle = 0;
            } else {
                idle += 1;
            }
        }
        out
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Mints up to `n` pool items with `concurrency` workers (not measured).
pub async fn mint(
    ctx: Arc<Ctx>,
    wl: Workload,
    n: usize,
    concurrency: usize,
    sessions: &mut Vec<Browser>,
    steps: Option<&Arc<Mutex<Steps>>>,
) -> (Vec<Item>, Recorder) {
    let mut tasks = Vec::new();
    match wl {
        Workload::CodeExchange => {
            // One signed-in browser per worker, reused for every code it mints.
            while sessions.len() < concurrency {
                let mut b = Browser::default();
                match ctx.login(&mut b, None, false).await {
                    Ok(_) => sessions.push(b),
                    Err(e) => {
                        let mut rec = Recorder::default();
                        rec.err(&e.context("signing in to mint codes"));
                        return (Vec::new(), rec);
                    }
                }
            }
            let per = n.div_ceil(concurrency);
            for b in sessions.iter() {
                let (ctx, mut b) = (ctx.clone(), b.clone());
                tasks.push(tokio::spawn(async move {
                    let (mut items, mut rec) = (Vec::new(), Recorder::default());
                    let (user, password) = ctx.user().unwrap_or_default();
                    for _ in 0..per {
                        let mut actor = Actor::login(&user, &password);
                        match ctx.code(&mut b, &mut actor, None, true).await {
                            Ok((code, verifier)) => items.push(Item::Code { code, verifier }),
                            Err(e) => rec.err(&e),
                        }
                    }
                    (items, rec)
                }));
            }
        }
        Workload::Stepup => {
            let Some(steps) = steps else { return (Vec::new(), Recorder::default()) };
            let reserved = steps.lock().unwrap().reserve(n);
            let queue = Arc::new(Mutex::new(VecDeque::from(reserved)));
            for _ in 0..concurrency {
                let (ctx, queue, steps) = (ctx.clone(), queue.clone(), steps.clone());
                tasks.push(tokio::spawn(async move {
                    let (mut items, mut rec) = (Vec::new(), Recorder::default());
                    loop {
                        let Some((user, step)) = queue.lock().unwrap().pop_front() else { break };
                        let (username, password) = {
                            let s = steps.lock().unwrap();
                            (s.users[user].username.clone(), s.users[user].password.clone())
                        };
                        let mut browser = Browser::default();
                        let mut actor = Actor::login(&username, &password);
                        match ctx.code(&mut browser, &mut actor, None, false).await {
                            Ok(_) => items.push(Item::StepUp { browser, user, step }),
                            Err(e) => rec.err(&e.context("password session for step-up")),
                        }
                    }
                    (items, rec)
                }));
            }
        }
        _ => {}
    }
    let (mut items, mut rec) = (Vec::new(), Recorder::default());
    for t in tasks {
        if let Ok((i, r)) = t.await {
            items.extend(i);
            rec.merge(r);
        }
    }
    (items, rec)
}

/// One pooled operation.
pub async fn pool_op(ctx: &Ctx, item: Item, steps: Option<&Arc<Mutex<Steps>>>) -> Result<()> {
    match item {
        Item::Code { code, verifier } => ctx.exchange(&code, &verifier).await.map(drop),
        Item::StepUp { mut browser, user, step } => {
            let steps = steps.ok_or_else(|| anyhow!("no TOTP users"))?;
            let (username, password, secret) = {
                let s = steps.lock().unwrap();
                let u = &s.users[user];
                (u.username.clone(), u.password.clone(), u.secret.clone())
            };
            let secret = ladder_core::totp::secret_from_base32(&secret).ok_or_else(|| anyhow!("bad TOTP secret"))?;
            let mut actor = Actor::login(&username, &password);
            actor.totp = Some((secret, step));
            let acr = ctx.stepup_acr.clone();
            let (code, verifier) = ctx.code(&mut browser, &mut actor, Some(&acr), false).await?;
            if actor.asked_password || !actor.asked_totp {
                bail!("step-up asked for password={} totp={}", actor.asked_password, actor.asked_totp);
            }
            let v = ctx.exchange(&code, &verifier).await?;
            let claims =
                oidc::jwt_claims(oidc::str_field(&v, "id_token")?).ok_or_else(|| anyhow!("unreadable ID token"))?;
            let got = claims.get("acr").and_then(Value::as_str).unwrap_or("");
            if got != acr {
                bail!("ID token acr is {got:?}, expected {acr:?}");
            }
            Ok(())
        }
    }
}

/// Mints a batch, then redeems it with `concurrency` workers (measured), until `duration` of
/// measured time or the pool runs dry. Returns the recorder, the measured seconds, and notes.
pub async fn pooled(
    ctx: Arc<Ctx>,
    wl: Workload,
    duration: f64,
    concurrency: usize,
    batch: usize,
    steps: Option<Arc<Mutex<Steps>>>,
) -> (Recorder, f64, String) {
    let mut rec = Recorder::default();
    let mut measured = 0.0;
    let mut sessions = Vec::new();
    let mut mint_errors = 0;
    let mut mint_samples = Vec::new();
    let mut dry = false;
    while measured < duration {
        let (items, mrec) = mint(ctx.clone(), wl, batch, concurrency, &mut sessions, steps.as_ref()).await;
        mint_errors += mrec.errors;
        for s in mrec.samples {
            if mint_samples.len() < 3 {
                mint_samples.push(s);
            }
        }
        if items.is_empty() {
            dry = true;
            break;
        }
        let queue = Arc::new(Mutex::new(VecDeque::from(items)));
        let t0 = Instant::now();
        let until = t0 + Duration::from_secs_f64(duration - measured);
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let (ctx, queue, steps) = (ctx.clone(), queue.clone(), steps.clone());
            tasks.push(tokio::spawn(async move {
                let mut rec = Recorder::default();
                while Instant::now() < until {
                    let Some(item) = queue.lock().unwrap().pop_front() else { break };
                    let start = Instant::now();
                    match pool_op(&ctx, item, steps.as_ref()).await {
                        Ok(()) => rec.ok(start.elapsed()),
                        Err(e) => rec.err(&e),
                    }
                }
                rec
            }));
        }
        for t in tasks {
            if let Ok(r) = t.await {
                rec.merge(r);
            }
        }
        measured += t0.elapsed().as_secs_f64();
    }
    let mut note = format!("pool batches of {batch}");
    if dry {
        note.push_str(&format!("; pool ran dry after {measured:.1} s measured"));
    }
    if mint_errors > 0 {
        note.push_str(&format!("; {mint_errors} minting errors: {}", mint_samples.join(" | ")));
    }
    (rec, measured, note)
}
