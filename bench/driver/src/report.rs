//! The side-by-side table: Ladder's and the peer's results (JSON lines, several rounds each), the
//! ratio, and the target for each row.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::stats::RunResult;

#[derive(clap::Args, Clone)]
pub struct CompareArgs {
    /// Ladder's results (JSON lines from `run --json`)
    #[arg(long)]
    ladder: PathBuf,
    /// The peer's results
    #[arg(long)]
    peer: PathBuf,
    /// Argon2id verifications per second on the server's core (from argon2-limit)
    #[arg(long)]
    argon2: Option<f64>,
    /// Peak RSS (VmHWM) of each server, kB
    #[arg(long)]
    ladder_rss: Option<u64>,
    /// Ladder's peak RSS before its production-argon2 sign-ins (the work both servers do), kB
    #[arg(long)]
    ladder_rss_shared: Option<u64>,
    #[arg(long)]
    peer_rss: Option<u64>,
}

fn read(path: &PathBuf) -> Result<Vec<RunResult>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| Ok(serde_json::from_str(l)?)).collect()
}

/// Per row name: the best closed-loop round (highest rate), or the fixed-rate run with the lowest p99.
fn best(results: Vec<RunResult>) -> BTreeMap<String, (RunResult, usize)> {
    let mut out: BTreeMap<String, (RunResult, usize)> = BTreeMap::new();
    for r in results {
        match out.get_mut(&r.name) {
            Some((b, n)) => {
                *n += 1;
                let better = if r.rate.is_some() { r.p99_ms < b.p99_ms } else { r.per_sec > b.per_sec };
                if better {
                    *b = r;
                }
            }
            None => {
                out.insert(r.name.clone(), (r, 1));
            }
        }
    }
    out
}

/// The peer row a Ladder row is compared with: the peer has no password hashing and no step-up,
/// so those rows are measured against its full login.
fn peer_name(name: &str) -> &str {
    match name {
        "login-argon2" | "stepup" => "login-fast",
        n => n,
    }
}

const ORDER: [&str; 12] = [
    "discovery",
    "jwks",
    "client-credentials",
    "client-credentials-rs256",
    "client-credentials-eddsa",
    "code-exchange",
    "refresh",
    "introspect",
    "userinfo",
    "login-fast",
    "login-argon2",
    "stepup",
];

pub fn compare(args: &CompareArgs) -> Result<()> {
    let ladder = best(read(&args.ladder)?);
    let peer = best(read(&args.peer)?);
    let mut names: Vec<&String> = ladder.keys().collect();
    names.sort_by_key(|n| (n.contains('@'), ORDER.iter().position(|o| o == n).unwrap_or(ORDER.len()), n.to_string()));
    println!(
        "| workload | Ladder | peer | ratio | Ladder p50 / p99 ms | peer p50 / p99 ms | server CPU µs/op Ladder / peer | target |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---|");
    for name in names {
        let (l, rounds) = &ladder[name];
        let p = peer.get(peer_name(name)).map(|(p, _)| p);
        let errors = |r: &RunResult| if r.errors > 0 { format!(" ({} errors)", r.errors) } else { String::new() };
        let lat = |r: &RunResult| format!("{:.2} / {:.2}", r.p50_ms, r.p99_ms);
        // Pooled runs mint between measured phases, so their CPU per operation is not comparable.
        let pooled = |r: &RunResult| matches!(r.workload.as_str(), "code-exchange" | "stepup");
        let cpu = |r: &RunResult| match r.server_cpu_us {
            Some(u) if !pooled(r) => format!("{u:.0}"),
            _ => "–".into(),
        };
        let cpus = format!("{} / {}", cpu(l), p.map_or("–".into(), cpu));
        if let Some(rate) = l.rate {
            // Fixed-rate rows: the tail at the same offered load.
            let ratio = p.map(|p| l.p99_ms / p.p99_ms);
            let spread = if l.p50_ms > 0.0 { l.p99_ms / l.p50_ms } else { 0.0 };
            let target = match ratio {
                Some(r) => format!(
                    "p99 ≤ ⅓ peer: {} (Ladder/peer {r:.2}); p99/p50 ≤ 3: {} ({spread:.1})",
                    yes(r <= 1.0 / 3.0),
                    yes(spread <= 3.0)
                ),
                None => format!("p99/p50 ≤ 3: {} ({spread:.1})", yes(spread <= 3.0)),
            };
            println!(
                "| {name} ({rate:.0}/s offered) | p99 {:.2} ms{} | {} | {} | {} | {} | {cpus} | {target} |",
                l.p99_ms,
                errors(l),
                p.map_or("–".into(), |p| format!("p99 {:.2} ms{}", p.p99_ms, errors(p))),
                ratio.map_or("–".into(), |r| format!("{r:.2}")),
                lat(l),
                p.map_or("–".into(), lat),
            );
            continue;
        }
        let ratio = p.map(|p| l.per_sec / p.per_sec);
        let unit = if l.unit == "flow" { "flows/s" } else { "/s" };
        let target = match (name.as_str(), ratio) {
            ("discovery" | "jwks", Some(r)) => format!("≥ 5×: {}", yes(r >= 5.0)),
            ("client-credentials" | "introspect" | "userinfo" | "login-fast", Some(r)) => {
                format!("≥ 3×: {}", yes(r >= 3.0))
            }
            ("stepup", Some(r)) => format!("≥ 3× peer's full login: {}", yes(r >= 3.0)),
            ("code-exchange", _) => format!("≥ 5,000/s: {}", yes(l.per_sec >= 5000.0)),
            ("login-argon2", _) => match args.argon2 {
                Some(limit) => format!(
                    "≥ 85% of argon2 limit ({limit:.1}/s): {} ({:.0}%)",
                    yes(l.per_sec >= 0.85 * limit),
                    100.0 * l.per_sec / limit
                ),
                None => "argon2 limit not measured".into(),
            },
            _ => String::new(),
        };
        let rounds = if *rounds > 1 { format!(" (best of {rounds})") } else { String::new() };
        let pname = if peer_name(name) != name { format!(" ({})", peer_name(name)) } else { String::new() };
        println!(
            "| {name} | {:.0} {unit}{}{rounds} | {}{pname} | {} | {} | {} | {cpus} | {target} |",
            l.per_sec,
            errors(l),
            p.map_or("–".into(), |p| format!("{:.0} {unit}{}", p.per_sec, errors(p))),
            ratio.map_or("–".into(), |r| format!("{r:.2}×")),
            lat(l),
            p.map_or("–".into(), lat),
        );
    }
    let mb = |kb: u64| kb as f64 / 1024.0;
    if let (Some(l), Some(p)) = (args.ladder_rss_shared, args.peer_rss) {
        println!(
            "| peak RSS (VmHWM), the peer's workloads and step-up | {:.1} MB | {:.1} MB | {:.2} | | | | ≤ 30 MB: {} |",
            mb(l),
            mb(p),
            l as f64 / p as f64,
            yes(mb(l) <= 30.0)
        );
    }
    if let Some(l) = args.ladder_rss {
        println!(
            "| peak RSS (VmHWM) with production-argon2 sign-ins | {:.1} MB | – (hashes nothing) | | | | | \
             19 MiB of working memory per hash at once, by design |",
            mb(l)
        );
    }
    Ok(())
}

fn yes(b: bool) -> &'static str {
    if b { "met" } else { "**not met**" }
}

/// Prints half the lower of the two servers' best closed-loop rates for `name` (at least 1).
pub fn half_rate(ladder: &PathBuf, peer: &PathBuf, name: &str) -> Result<()> {
    let rate = |path: &PathBuf| -> Result<f64> {
        let best = best(read(path)?.into_iter().filter(|r| r.rate.is_none()).collect());
        Ok(best.get(name).map_or(0.0, |(r, _)| r.per_sec))
    };
    let (l, p) = (rate(ladder)?, rate(peer)?);
    let lower = if l > 0.0 && p > 0.0 { l.min(p) } else { l.max(p) };
    println!("{:.0}", (lower / 2.0).max(1.0));
    Ok(())
}
