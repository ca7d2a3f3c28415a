//! ladder-bench: a load driver for OpenID Connect providers. It runs one workload at a time
//! against any issuer (discovered from `/.well-known/openid-configuration`) for a fixed duration
//! and concurrency, or at a fixed rate, and prints requests (or flows) per second, p50, p99 and
//! errors as a table and as JSON lines. `bench/compare.sh` uses it to put Ladder and
//! node-oidc-provider side by side; see bench/README.md.

mod browser;
mod code_pages;
mod html;
mod oidc;
mod report;
mod soak;
mod stats;
mod workloads;

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

use crate::browser::{Actor, Browser};
use crate::stats::{RunResult, cpu_seconds, proc_kb, summarize};
use crate::workloads::{Ctx, Steps, TotpUser, Workload};

#[derive(Parser)]
#[command(name = "ladder-bench", about = "Load driver for OpenID Connect providers (bench/README.md)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run workloads against an issuer and print a table (and JSON lines with --json)
    Run(RunArgs),
    /// Sign users in through the real flow with step-up to a TOTP level, enrolling TOTP on the way;
    /// writes their secrets (JSON lines) for the stepup workload
    EnrolTotp(EnrolArgs),
    /// Argon2id verifications per second on one thread at Ladder's production parameters
    Argon2Limit {
        #[arg(long, default_value_t = 3.0)]
        duration: f64,
    },
    /// Mixed traffic at a fixed rate for a bounded time, then the invariants (tests/soak/run.sh)
    Soak(soak::SoakArgs),
    /// After a soak: audit rows written during the run against what the client saw succeed
    SoakCheck(soak::CheckArgs),
    /// The functions on the pages of code a running server has touched, for the linker's symbol
    /// order (bench/symbol-order.sh)
    CodePages(code_pages::CodePagesArgs),
    /// Put two servers' JSON results side by side (the table compare.sh prints)
    Compare(report::CompareArgs),
    /// Half the lower of the two servers' best rates for a row: the offered load of a fixed-rate run
    HalfRate {
        #[arg(long)]
        ladder: PathBuf,
        #[arg(long)]
        peer: PathBuf,
        #[arg(long)]
        name: String,
    },
}

#[derive(Args, Clone)]
struct ClientArgs {
    /// The issuer; endpoints are discovered from it
    #[arg(long)]
    issuer: String,
    #[arg(long, env = "BENCH_CLIENT_ID")]
    client_id: String,
    #[arg(long, env = "BENCH_CLIENT_SECRET")]
    client_secret: String,
    #[arg(long, default_value = "http://127.0.0.1:9/cb")]
    redirect_uri: String,
    /// Lines of username:password, used in turn by workloads that sign in
    #[arg(long)]
    users: Option<PathBuf>,
    /// Request offline_access with prompt=consent where a refresh token is wanted (node-oidc-provider)
    #[arg(long)]
    offline_access: bool,
    /// Per-request timeout, seconds
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
}

#[derive(Args, Clone)]
struct RunArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// One or more workloads, comma-separated
    #[arg(long, value_delimiter = ',', required = true)]
    workload: Vec<Workload>,
    /// Name of the result row (default: the workload, with "@rate" for fixed-rate runs)
    #[arg(long)]
    name: Option<String>,
    /// Measured seconds per workload
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Unmeasured seconds first (closed-loop and fixed-rate runs)
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Workers (closed loop), or at most this many operations in flight (fixed rate)
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Fixed rate (operations per second, open loop) instead of as fast as possible
    #[arg(long)]
    rate: Option<f64>,
    /// Pool workloads (code-exchange, stepup): items minted per batch before each measured phase
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// TOTP users (from enrol-totp) for the stepup workload; their used time steps are written back
    #[arg(long)]
    totp_users: Option<PathBuf>,
    /// The acr_values the stepup workload asks for (and expects in the ID token)
    #[arg(long, default_value = "urn:ladder:loa:2")]
    stepup_acr: String,
    /// The server's process id: its CPU use and RSS are reported
    #[arg(long)]
    server_pid: Option<u32>,
    /// Append each result as a JSON line to this file
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Args, Clone)]
struct EnrolArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Where to write the TOTP users (JSON lines)
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value = "urn:ladder:loa:2")]
    acr: String,
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Argon2Limit { duration } => argon2_limit(duration),
        Cmd::CodePages(args) => code_pages::code_pages(&args),
        Cmd::Compare(args) => report::compare(&args),
        Cmd::HalfRate { ladder, peer, name } => report::half_rate(&ladder, &peer, &name),
        Cmd::Run(args) => runtime()?.block_on(run(args)),
        Cmd::EnrolTotp(args) => runtime()?.block_on(enrol(args)),
        Cmd::Soak(args) => runtime()?.block_on(soak::soak(args)),
        Cmd::SoakCheck(args) => soak::check(args),
    }
}

/// On one core (the driver pinned by `taskset`), one thread runs every connection: a
/// multi-threaded runtime would only add hand-offs between its worker and the main thread, and
/// the driver, not the server, would set the pace of the lightest workloads.
fn runtime() -> Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut builder =
        if cores == 1 { tokio::runtime::Builder::new_current_thread() } else { tokio::runtime::Builder::new_multi_thread() };
    Ok(builder.enable_all().build()?)
}

async fn context(c: &ClientArgs, concurrency: usize) -> Result<Ctx> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(concurrency.max(1))
        .tcp_nodelay(true)
        .timeout(Duration::from_secs_f64(c.timeout))
        .build()?;
    let disc = oidc::discover(&http, &c.issuer).await.with_context(|| format!("discovering {}", c.issuer))?;
    let users = match &c.users {
        Some(p) => workloads::read_users(p)?,
        None => Vec::new(),
    };
    Ok(Ctx {
        http,
        disc,
        auth: oidc::basic(&c.client_id, &c.client_secret),
        client_id: c.client_id.clone(),
        redirect_uri: c.redirect_uri.clone(),
        users,
        next_user: AtomicUsize::new(0),
        offline_access: c.offline_access,
        stepup_acr: String::new(),
        tokens: Vec::new(),
        next_token: AtomicUsize::new(0),
        notes: Mutex::new(Vec::new()),
    })
}

async fn run(args: RunArgs) -> Result<()> {
    if args.name.is_some() && args.workload.len() > 1 {
        bail!("--name names one workload's row; run one workload per invocation");
    }
    stats::print_header();
    for &wl in &args.workload {
        let mut ctx = context(&args.client, args.concurrency).await?;
        ctx.stepup_acr = args.stepup_acr.clone();
        let result = run_one(ctx, &args, wl).await?;
        stats::print_row(&result);
        if let Some(path) = &args.json {
            let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
            writeln!(f, "{}", serde_json::to_string(&result)?)?;
        }
    }
    Ok(())
}

async fn run_one(mut ctx: Ctx, args: &RunArgs, wl: Workload) -> Result<RunResult> {
    let conc = args.concurrency.max(1);
    if args.rate.is_some() && !wl.stateless() {
        bail!("{} cannot run at a fixed rate (it needs per-worker state or a pool)", wl.as_str());
    }
    let states = workloads::prepare(&mut ctx, wl, conc).await?;
    // Steps are shared with the pool and written back when the run ends.
    let steps = match (wl, &args.totp_users) {
        (Workload::Stepup, Some(p)) => Some(Arc::new(Mutex::new(Steps::new(workloads::read_totp_users(p)?)))),
        (Workload::Stepup, None) => bail!("stepup needs --totp-users FILE (from enrol-totp)"),
        _ => None,
    };
    let ctx_arc = Arc::new(ctx);
    let warm_until = Instant::now() + Duration::from_secs_f64(args.warmup);
    let mut states = states;
    if args.warmup > 0.0 && (wl.stateless() || wl == Workload::Refresh) {
        if let Some(rate) = args.rate {
            workloads::fixed_rate(ctx_arc.clone(), wl, rate, conc, warm_until).await;
        } else {
            states = workloads::closed_loop(ctx_arc.clone(), wl, states, warm_until).await.1;
        }
    }
    let (cpu_srv0, cpu_drv0) = (args.server_pid.and_then(|p| cpu_seconds(Some(p))), cpu_seconds(None));
    let t0 = Instant::now();
    let (rec, seconds, mut note) = if let Some(rate) = args.rate {
        let until = t0 + Duration::from_secs_f64(args.duration);
        let rec = workloads::fixed_rate(ctx_arc.clone(), wl, rate, conc, until).await;
        (rec, t0.elapsed().as_secs_f64(), String::new())
    } else if wl.stateless() || wl == Workload::Refresh {
        let until = t0 + Duration::from_secs_f64(args.duration);
        let (rec, _) = workloads::closed_loop(ctx_arc.clone(), wl, states, until).await;
        (rec, t0.elapsed().as_secs_f64(), String::new())
    } else {
        workloads::pooled(ctx_arc.clone(), wl, args.duration, conc, args.batch, steps.clone()).await
    };
    let wall = t0.elapsed().as_secs_f64();
    // CPU shares over the wall time of the measured part (pool workloads include minting).
    let share = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if wall > 0.0 => Some((b - a) / wall),
        _ => None,
    };
    let cpu_srv1 = args.server_pid.and_then(|p| cpu_seconds(Some(p)));
    let server_cpu = share(cpu_srv0, cpu_srv1);
    let driver_cpu = share(cpu_drv0, cpu_seconds(None));
    if let (Some(steps), Some(path)) = (&steps, &args.totp_users) {
        workloads::write_totp_users(path, &steps.lock().unwrap().users)?;
    }
    let notes = ctx_arc.notes.lock().unwrap().clone();
    for n in notes {
        if !note.is_empty() {
            note.push_str("; ");
        }
        note.push_str(&n);
    }
    let s = summarize(rec);
    let name = args.name.clone().unwrap_or_else(|| match args.rate {
        Some(_) => format!("{}@rate", wl.as_str()),
        None => wl.as_str().to_owned(),
    });
    Ok(RunResult {
        name,
        workload: wl.as_str().into(),
        issuer: args.client.issuer.clone(),
        unit: wl.unit().into(),
        concurrency: conc,
        rate: args.rate,
        seconds,
        ok: s.ok,
        errors: s.errors,
        per_sec: if seconds > 0.0 { s.ok as f64 / seconds } else { 0.0 },
        p50_ms: s.p50,
        p90_ms: s.p90,
        p99_ms: s.p99,
        max_ms: s.max,
        server_cpu,
        driver_cpu,
        server_cpu_us: match (cpu_srv0, cpu_srv1) {
            (Some(a), Some(b)) if s.ok > 0 => Some((b - a) * 1e6 / s.ok as f64),
            _ => None,
        },
        server_rss_kb: args.server_pid.and_then(|p| proc_kb(p, "VmRSS")),
        note,
        error_samples: s.samples,
    })
}

async fn enrol(args: EnrolArgs) -> Result<()> {
    let ctx = Arc::new(context(&args.client, args.concurrency).await?);
    if ctx.users.is_empty() {
        bail!("pass --users FILE (lines of username:password)");
    }
    let queue = Arc::new(Mutex::new(ctx.users.clone()));
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (ctx, queue, acr) = (ctx.clone(), queue.clone(), args.acr.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            let mut errors = Vec::new();
            loop {
                let Some((username, password)) = queue.lock().unwrap().pop() else { break };
                let mut actor = Actor::login(&username, &password);
                actor.enrol = true;
                let mut browser = Browser::default();
                let result = ctx.enrol_flow(&mut browser, &mut actor, &acr).await;
                match (result, actor.enrolled.take()) {
                    (Ok(()), Some((secret, step))) => {
                        out.push(TotpUser { username, password, secret, last_step: step })
                    }
                    (Ok(()), None) => {
                        errors.push(format!("{username}: not offered TOTP enrolment (already enrolled?)"))
                    }
                    (Err(e), _) => errors.push(format!("{username}: {e:#}")),
                }
            }
            (out, errors)
        }));
    }
    let (mut users, mut errors) = (Vec::new(), Vec::new());
    for t in tasks {
        let (u, e) = t.await?;
        users.extend(u);
        errors.extend(e);
    }
    workloads::write_totp_users(&args.out, &users)?;
    println!("enrolled {} users ({} failed) into {}", users.len(), errors.len(), args.out.display());
    for e in errors.iter().take(5) {
        eprintln!("  {e}");
    }
    if users.is_empty() {
        bail!("no user enrolled");
    }
    Ok(())
}

impl Ctx {
    /// Sign-in asking for `acr`: password, then TOTP enrolment (the actor reads the secret).
    async fn enrol_flow(&self, browser: &mut Browser, actor: &mut Actor, acr: &str) -> Result<()> {
        let (pk, state, nonce) = (oidc::pkce(), oidc::random(12), oidc::random(12));
        let req = oidc::AuthRequest {
            client_id: &self.client_id,
            redirect_uri: &self.redirect_uri,
            scope: "openid",
            prompt: None,
            acr_values: Some(acr),
            state: &state,
            nonce: &nonce,
            challenge: &pk.challenge,
        };
        let url = oidc::authorize_url(&self.disc.authorization_endpoint, &req);
        browser::authorize(&self.http, browser, actor, url, &self.redirect_uri, &state).await.map(drop)
    }
}

fn argon2_limit(duration: f64) -> Result<()> {
    use ladder_core::password;
    let hash = password::hash_password("argon2-limit-probe").map_err(|e| anyhow::anyhow!("{e}"))?;
    if !hash.contains("m=19456,t=2,p=1") {
        bail!("not Ladder's production parameters: {hash}");
    }
    let t0 = Instant::now();
    let mut n = 0u64;
    while t0.elapsed().as_secs_f64() < duration {
        if !password::verify_password("argon2-limit-probe", &hash) {
            bail!("verification failed");
        }
        n += 1;
    }
    let per_sec = n as f64 / t0.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({ "argon2id_params": "m=19456,t=2,p=1", "threads": 1, "verifies_per_sec": per_sec })
    );
    Ok(())
}
