//! Latencies and errors per run, the result record (table row and JSON line), CPU and memory
//! samples from /proc.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What one worker saw.
#[derive(Default)]
pub struct Recorder {
    pub micros: Vec<u32>,
    pub errors: u64,
    pub samples: Vec<String>,
    pub skipped: u64,
}

impl Recorder {
    pub fn ok(&mut self, d: Duration) {
        self.micros.push(u32::try_from(d.as_micros()).unwrap_or(u32::MAX));
    }

    pub fn err(&mut self, e: &anyhow::Error) {
        self.errors += 1;
        let msg = format!("{e:#}");
        if self.samples.len() < 5 && !self.samples.contains(&msg) {
            self.samples.push(msg);
        }
    }

    pub fn merge(&mut self, other: Recorder) {
        self.micros.extend(other.micros);
        self.errors += other.errors;
        self.skipped += other.skipped;
        for s in other.samples {
            if self.samples.len() < 5 && !self.samples.contains(&s) {
                self.samples.push(s);
            }
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    pub name: String,
    pub workload: String,
    pub issuer: String,
    /// "req" or "flow".
    pub unit: String,
    pub concurrency: usize,
    /// Offered rate for fixed-rate runs (per second); None for closed-loop runs.
    pub rate: Option<f64>,
    /// Seconds of measured work.
    pub seconds: f64,
    pub ok: u64,
    pub errors: u64,
    pub per_sec: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Share of one core used by the server / by this driver during the measured part.
    pub server_cpu: Option<f64>,
    pub driver_cpu: Option<f64>,
    /// Server CPU time per successful operation, µs (steadier than rates on a shared machine).
    pub server_cpu_us: Option<f64>,
    /// Server VmRSS right after the run, kB.
    pub server_rss_kb: Option<u64>,
    pub note: String,
    pub error_samples: Vec<String>,
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i.min(sorted.len() - 1)]) / 1000.0
}

pub struct Summary {
    pub ok: u64,
    pub errors: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub samples: Vec<String>,
}

pub fn summarize(mut rec: Recorder) -> Summary {
    rec.micros.sort_unstable();
    Summary {
        ok: rec.micros.len() as u64,
        errors: rec.errors,
        p50: pct(&rec.micros, 0.50),
        p90: pct(&rec.micros, 0.90),
        p99: pct(&rec.micros, 0.99),
        max: pct(&rec.micros, 1.0),
        samples: rec.samples,
    }
}

/// CPU time (user + system) of a process so far, in seconds, from /proc (Linux; USER_HZ = 100).
pub fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".into(),
    };
    let text = std::fs::read_to_string(path).ok()?;
    let after = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// A line of /proc/PID/status in kB (VmRSS, VmHWM).
pub fn proc_kb(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

pub fn print_header() {
    println!(
        "{:<26} {:>5} {:>4} {:>7} {:>8} {:>6} {:>10} {:>8} {:>8} {:>7} {:>6} {:>6} {:>9}",
        "workload",
        "unit",
        "conc",
        "rate",
        "ok",
        "errors",
        "per s",
        "p50 ms",
        "p99 ms",
        "p99/p50",
        "srvcpu",
        "drvcpu",
        "srv µs/op"
    );
}

pub fn print_row(r: &RunResult) {
    let opt = |v: Option<f64>| v.map_or("-".to_owned(), |c| format!("{:.0}%", c * 100.0));
    println!(
        "{:<26} {:>5} {:>4} {:>7} {:>8} {:>6} {:>10.1} {:>8.2} {:>8.2} {:>7.1} {:>6} {:>6} {:>9}",
        r.name,
        r.unit,
        r.concurrency,
        r.rate.map_or("max".to_owned(), |x| format!("{x:.0}")),
        r.ok,
        r.errors,
        r.per_sec,
        r.p50_ms,
        r.p99_ms,
        if r.p50_ms > 0.0 { r.p99_ms / r.p50_ms } else { 0.0 },
        opt(r.server_cpu),
        opt(r.driver_cpu),
        r.server_cpu_us.map_or("-".to_owned(), |u| format!("{u:.0}")),
    );
    if !r.note.is_empty() {
        println!("    note: {}", r.note);
    }
    for s in &r.error_samples {
        println!("    error: {s}");
    }
}
