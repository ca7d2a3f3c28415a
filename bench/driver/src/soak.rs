//! Soak: mixed traffic at a fixed rate for a bounded time (sign-ins, TOTP step-ups, refreshes,
//! introspections, code replays, refresh-token reuse), then the invariants a long run must keep.
//! `soak` drives and checks what the client can see; `soak-check` then compares what the client
//! saw succeed with the audit log. tests/soak/run.sh runs both against a release build.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::browser::{Actor, Browser};
use crate::stats::{Recorder, proc_kb, summarize};
use crate::workloads::{Ctx, Steps};
use crate::{ClientArgs, oidc};

#[derive(Args, Clone)]
pub struct SoakArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// TOTP users (from enrol-totp) for the step-ups
    #[arg(long)]
    totp_users: PathBuf,
    #[arg(long, default_value = "urn:ladder:loa:2")]
    stepup_acr: String,
    /// Seconds of traffic
    #[arg(long, default_value_t = 60.0)]
    duration: f64,
    /// Operations started per second
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// At most this many operations in flight
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// The server's process id: its resident memory is sampled every second
    #[arg(long)]
    server_pid: Option<u32>,
    /// Bound on resident memory growth, MiB: the last quarter's peak over the first quarter's
    #[arg(long, default_value_t = 64)]
    max_rss_growth_mib: u64,
    /// Bound on each operation's p99 latency, ms (from the operation's scheduled start)
    #[arg(long, default_value_t = 2000.0)]
    max_p99_ms: f64,
    /// Where to write the report (JSON)
    #[arg(long)]
    report: PathBuf,
}

#[derive(Args, Clone)]
pub struct CheckArgs {
    /// The report `soak` wrote
    #[arg(long)]
    report: PathBuf,
    /// `ladder audit export --format jsonl` after the run
    #[arg(long)]
    audit: PathBuf,
    /// Audit rows up to this sequence number predate the run
    #[arg(long, default_value_t = 0)]
    after_seq: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Login,
    /// A sign-in whose code is then presented a second time.
    LoginReplay,
    Stepup,
    Refresh,
    Introspect,
    /// A rotated refresh token presented again: the whole family must die.
    RefreshReuse,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Login => "login",
            Op::LoginReplay => "login+code-replay",
            Op::Stepup => "stepup",
            Op::Refresh => "refresh",
            Op::Introspect => "introspect",
            Op::RefreshReuse => "refresh-reuse",
        }
    }

    /// The mix, over a cycle of 20 ticks.
    fn at(tick: u64) -> Op {
        match tick % 20 {
            0 => Op::Stepup,
            1 | 5 | 13 | 17 => Op::Login,
            9 => Op::LoginReplay,
            12 => Op::RefreshReuse,
            2 | 4 | 6 | 10 | 14 | 16 | 18 => Op::Refresh,
            _ => Op::Introspect,
        }
    }
}

/// A live refresh-token family: its current refresh token and latest access token.
struct Family {
    rt: String,
    at: String,
}

#[derive(Default)]
struct Counts {
    logins: AtomicU64,
    stepups: AtomicU64,
    code_replays: AtomicU64,
    reuse_tests: AtomicU64,
    stepups_skipped: AtomicU64,
    server_errors: AtomicU64,
}

struct Soak {
    ctx: Ctx,
    acr: String,
    steps: Mutex<Steps>,
    families: Mutex<VecDeque<Family>>,
    counts: Counts,
}

#[derive(Serialize, Deserialize)]
pub struct OpReport {
    ok: u64,
    errors: u64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    error_samples: Vec<String>,
}

#[derive(Serialize, Deserialize)]
pub struct Report {
    duration_s: f64,
    rate: f64,
    ops: BTreeMap<String, OpReport>,
    /// Flows the client saw issue a code: each must have its audit row.
    logins_seen: u64,
    stepups_seen: u64,
    code_replays: u64,
    refresh_reuse_tests: u64,
    stepups_skipped: u64,
    server_errors: u64,
    rss_first_quarter_kb: Option<u64>,
    rss_last_quarter_kb: Option<u64>,
    rss_max_kb: Option<u64>,
    violations: Vec<String>,
}

fn refused_as_invalid_grant(r: Result<Value>, what: &str) -> Result<()> {
    match r {
        Ok(_) => bail!("{what} was accepted"),
        Err(e) if format!("{e:#}").contains("HTTP 400 invalid_grant") => Ok(()),
        Err(e) => Err(e.context(format!("{what}: expected 400 invalid_grant"))),
    }
}

impl Soak {
    async fn refresh(&self, rt: &str) -> Result<Family> {
        let form = [("grant_type", "refresh_token"), ("refresh_token", rt)];
        let v = oidc::post_form(&self.ctx.http, &self.ctx.disc.token_endpoint, &self.ctx.auth, &form).await;
        let v = v?;
        let new = oidc::str_field(&v, "refresh_token")?;
        if new == rt {
            bail!("refresh token did not rotate");
        }
        Ok(Family { rt: new.to_owned(), at: oidc::str_field(&v, "access_token")?.to_owned() })
    }

    async fn active(&self, at: &str) -> Result<bool> {
        let url = self.ctx.disc.introspection_endpoint.as_ref().ok_or_else(|| anyhow!("no introspection endpoint"))?;
        let v = oidc::post_form(&self.ctx.http, url, &self.ctx.auth, &[("token", at)]).await?;
        Ok(v.get("active") == Some(&Value::Bool(true)))
    }

    fn take(&self) -> Option<Family> {
        self.families.lock().unwrap().pop_front()
    }

    fn put(&self, f: Family) {
        let mut fams = self.families.lock().unwrap();
        fams.push_back(f);
        // Old families are simply left alone; the pool stays small.
        while fams.len() > 256 {
            fams.pop_front();
        }
    }

    async fn login(&self, replay: bool) -> Result<()> {
        let (username, password) = self.ctx.user()?;
        let mut actor = Actor::login(&username, &password);
        let (code, verifier) = self.ctx.code(&mut Browser::default(), &mut actor, None, true).await?;
        self.counts.logins.fetch_add(1, Ordering::Relaxed);
        let v = self.ctx.exchange(&code, &verifier).await?;
        let at = oidc::str_field(&v, "access_token")?.to_owned();
        if replay {
            refused_as_invalid_grant(self.ctx.exchange(&code, &verifier).await, "a code exchanged twice")?;
            self.counts.code_replays.fetch_add(1, Ordering::Relaxed);
            // RFC 6749 §4.1.2: a replayed code revokes what it issued.
            if self.active(&at).await? {
                bail!("the access token of a replayed code is still active");
            }
        } else {
            let rt = oidc::str_field(&v, "refresh_token")?.to_owned();
            self.put(Family { rt, at });
        }
        Ok(())
    }

    async fn stepup(&self) -> Result<()> {
        let reserved = self.steps.lock().unwrap().reserve(1).pop();
        let Some((user, step)) = reserved else {
            self.counts.stepups_skipped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        };
        let (username, password, secret) = {
            let s = self.steps.lock().unwrap();
            let u = &s.users[user];
            (u.username.clone(), u.password.clone(), u.secret.clone())
        };
        let mut browser = Browser::default();
        self.ctx.code(&mut browser, &mut Actor::login(&username, &password), None, false).await?;
        self.counts.logins.fetch_add(1, Ordering::Relaxed);
        let secret = ladder_core::totp::secret_from_base32(&secret).ok_or_else(|| anyhow!("bad TOTP secret"))?;
        let mut actor = Actor::login(&username, &password);
        actor.totp = Some((secret, step));
        let (code, verifier) = self.ctx.code(&mut browser, &mut actor, Some(&self.acr), false).await?;
        if actor.asked_password || !actor.asked_totp {
            bail!("step-up asked for password={} totp={}", actor.asked_password, actor.asked_totp);
        }
        self.counts.stepups.fetch_add(1, Ordering::Relaxed);
        let v = self.ctx.exchange(&code, &verifier).await?;
        let claims =
            oidc::jwt_claims(oidc::str_field(&v, "id_token")?).ok_or_else(|| anyhow!("unreadable ID token"))?;
        if claims.get("acr").and_then(Value::as_str) != Some(self.acr.as_str()) {
            bail!("step-up ID token acr is {:?}", claims.get("acr"));
        }
        Ok(())
    }

    async fn run(&self, op: Op) -> Result<()> {
        match op {
            Op::Login => self.login(false).await,
            Op::LoginReplay => self.login(true).await,
            Op::Stepup => self.stepup().await,
            Op::Refresh => {
                let Some(f) = self.take() else { return self.login(false).await };
                let next = self.refresh(&f.rt).await?;
                self.put(next);
                Ok(())
            }
            Op::Introspect => {
                let Some(f) = self.take() else { return self.login(false).await };
                let active = self.active(&f.at).await?;
                self.put(f);
                if !active {
                    bail!("a live family's access token introspects as inactive");
                }
                Ok(())
            }
            Op::RefreshReuse => {
                let Some(f) = self.take() else { return self.login(false).await };
                let next = self.refresh(&f.rt).await?;
                refused_as_invalid_grant(self.refresh(&f.rt).await.map(|_| Value::Null), "a rotated refresh token")?;
                self.counts.reuse_tests.fetch_add(1, Ordering::Relaxed);
                refused_as_invalid_grant(
                    self.refresh(&next.rt).await.map(|_| Value::Null),
                    "the family's newest refresh token after reuse",
                )?;
                if self.active(&next.at).await? {
                    bail!("an access token of a revoked family is still active");
                }
                Ok(())
            }
        }
    }
}

pub async fn soak(args: SoakArgs) -> Result<()> {
    let mut ctx = crate::context(&args.client, args.concurrency).await?;
    ctx.stepup_acr = args.stepup_acr.clone();
    let steps = Steps::new(crate::workloads::read_totp_users(&args.totp_users)?);
    let soak = Arc::new(Soak {
        ctx,
        acr: args.stepup_acr.clone(),
        steps: Mutex::new(steps),
        families: Mutex::new(VecDeque::new()),
        counts: Counts::default(),
    });
    let recs: Arc<Mutex<BTreeMap<Op, Recorder>>> = Default::default();
    let t0 = Instant::now();
    let until = t0 + Duration::from_secs_f64(args.duration);

    // Resident memory, once a second.
    let rss = Arc::new(Mutex::new(Vec::new()));
    let sampler = args.server_pid.map(|pid| {
        let rss = rss.clone();
        tokio::spawn(async move {
            while Instant::now() < until {
                if let Some(kb) = proc_kb(pid, "VmRSS") {
                    rss.lock().unwrap().push(kb);
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    });

    let permits = Arc::new(tokio::sync::Semaphore::new(args.concurrency.max(1)));
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    let mut tick = 0u64;
    loop {
        let scheduled = ticker.tick().await.into_std();
        if scheduled >= until {
            break;
        }
        let op = Op::at(tick);
        tick += 1;
        let (soak, recs, permits) = (soak.clone(), recs.clone(), permits.clone());
        tasks.spawn(async move {
            let Ok(_permit) = permits.acquire().await else { return };
            let result = soak.run(op).await;
            let elapsed = scheduled.elapsed();
            let mut recs = recs.lock().unwrap();
            let rec = recs.entry(op).or_default();
            match result {
                Ok(()) => rec.ok(elapsed),
                Err(e) => {
                    if format!("{e:#}").contains("HTTP 5") {
                        soak.counts.server_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    rec.err(&e)
                }
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    if let Some(s) = sampler {
        s.abort();
    }

    let mut violations = Vec::new();
    let mut ops = BTreeMap::new();
    let recs = std::mem::take(&mut *recs.lock().unwrap());
    for (op, rec) in recs {
        let s = summarize(rec);
        if s.errors > 0 {
            violations.push(format!("{}: {} failed ({})", op.name(), s.errors, s.samples.join(" | ")));
        }
        if s.p99 > args.max_p99_ms {
            violations.push(format!("{}: p99 {:.0} ms over the {:.0} ms bound", op.name(), s.p99, args.max_p99_ms));
        }
        let report = OpReport {
            ok: s.ok,
            errors: s.errors,
            p50_ms: s.p50,
            p99_ms: s.p99,
            max_ms: s.max,
            error_samples: s.samples,
        };
        ops.insert(op.name().to_owned(), report);
    }
    let c = &soak.counts;
    let server_errors = c.server_errors.load(Ordering::Relaxed);
    if server_errors > 0 {
        violations.push(format!("{server_errors} answers were 5xx"));
    }
    let samples = rss.lock().unwrap().clone();
    let quarter = samples.len() / 4;
    let (first, last) = if quarter > 0 {
        (samples[..quarter].iter().max().copied(), samples[samples.len() - quarter..].iter().max().copied())
    } else {
        (None, None)
    };
    if let (Some(a), Some(b)) = (first, last)
        && b > a + args.max_rss_growth_mib * 1024
    {
        violations.push(format!("RSS grew from {a} kB to {b} kB (bound {} MiB)", args.max_rss_growth_mib));
    }
    let report = Report {
        duration_s: t0.elapsed().as_secs_f64(),
        rate: args.rate,
        ops,
        logins_seen: c.logins.load(Ordering::Relaxed),
        stepups_seen: c.stepups.load(Ordering::Relaxed),
        code_replays: c.code_replays.load(Ordering::Relaxed),
        refresh_reuse_tests: c.reuse_tests.load(Ordering::Relaxed),
        stepups_skipped: c.stepups_skipped.load(Ordering::Relaxed),
        server_errors,
        rss_first_quarter_kb: first,
        rss_last_quarter_kb: last,
        rss_max_kb: samples.iter().max().copied(),
        violations,
    };
    std::fs::write(&args.report, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("writing {}", args.report.display()))?;
    print_report(&report);
    // The step-ups used TOTP steps; write them back so a later run does not reuse them.
    crate::workloads::write_totp_users(&args.totp_users, &soak.steps.lock().unwrap().users)?;
    if !report.violations.is_empty() {
        bail!("{} invariant(s) violated", report.violations.len());
    }
    Ok(())
}

fn print_report(r: &Report) {
    println!("{:<20} {:>7} {:>6} {:>9} {:>9} {:>9}", "operation", "ok", "errors", "p50 ms", "p99 ms", "max ms");
    for (name, o) in &r.ops {
        println!("{name:<20} {:>7} {:>6} {:>9.1} {:>9.1} {:>9.1}", o.ok, o.errors, o.p50_ms, o.p99_ms, o.max_ms);
    }
    println!(
        "seen: {} sign-ins, {} step-ups ({} skipped: no free TOTP step), {} code replays refused, {} refresh \
         families revoked on reuse; 5xx: {}; RSS kB first quarter {:?}, last quarter {:?}, max {:?}",
        r.logins_seen,
        r.stepups_seen,
        r.stepups_skipped,
        r.code_replays,
        r.refresh_reuse_tests,
        r.server_errors,
        r.rss_first_quarter_kb,
        r.rss_last_quarter_kb,
        r.rss_max_kb
    );
    for v in &r.violations {
        println!("VIOLATION: {v}");
    }
}

/// Audit rows written during the run must match, kind for kind, what the client saw happen.
pub fn check(args: CheckArgs) -> Result<()> {
    let report: Report = serde_json::from_str(&std::fs::read_to_string(&args.report)?)?;
    let text = std::fs::read_to_string(&args.audit).with_context(|| format!("reading {}", args.audit.display()))?;
    let mut rows: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let e: Value = serde_json::from_str(line).context("an audit line")?;
        if e["seq"].as_i64().unwrap_or(0) <= args.after_seq {
            continue;
        }
        let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
        *rows.entry((s(&e["kind"]), s(&e["outcome"]), s(&e["detail"]["reason"]))).or_default() += 1;
    }
    let count = |kind: &str, outcome: &str, reason: Option<&str>| -> u64 {
        rows.iter()
            .filter(|((k, o, r), _)| k == kind && o == outcome && reason.is_none_or(|x| x == r))
            .map(|(_, n)| n)
            .sum()
    };
    let expect = [
        ("sign-ins (login/success)", count("login", "success", None), report.logins_seen),
        ("step-ups (stepup/success)", count("stepup", "success", None), report.stepups_seen),
        (
            "code replays (token/revoked code_replay)",
            count("token", "revoked", Some("code_replay")),
            report.code_replays,
        ),
        (
            "refresh reuse (token/revoked refresh_token_reuse)",
            count("token", "revoked", Some("refresh_token_reuse")),
            report.refresh_reuse_tests,
        ),
    ];
    let mut bad = 0;
    for (what, audited, seen) in expect {
        let verdict = if audited == seen { "ok" } else { "MISMATCH" };
        println!("{what}: audited {audited}, seen {seen}: {verdict}");
        bad += usize::from(audited != seen);
    }
    if bad > 0 {
        bail!("{bad} audit count(s) differ from what the client saw");
    }
    Ok(())
}
