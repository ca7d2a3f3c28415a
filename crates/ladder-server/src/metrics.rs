//! Prometheus metrics (text exposition format 0.0.4), kept in memory per process and served on a
//! separate listener (`[metrics] bind`), off the public port: sign-ins and step-ups by kind,
//! level and outcome; factor attempts; step-up latency; risk signals; HTTP latency by route and
//! status; database pool use.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};

use crate::state::AppState;

const LATENCY_BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
const STEPUP_BUCKETS: [f64; 9] = [1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0];

#[derive(Debug, Default, Clone)]
struct Histogram {
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

/// Series by metric name, then by label set, rendered once (`a="x",b="y"`).
type Family<T> = BTreeMap<&'static str, BTreeMap<String, T>>;

#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<Family<u64>>,
    histograms: Mutex<Family<(Histogram, &'static [f64])>>,
}

fn labels(pairs: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(pairs.iter().map(|(k, v)| k.len() + v.len() + 4).sum());
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out
}

/// The series of `name` with `pairs`, made on first use. Called on every request (`http`), so
/// its label set is the only allocation.
fn series<'a, T>(family: &'a mut Family<T>, name: &'static str, pairs: &[(&str, &str)], new: impl FnOnce() -> T) -> &'a mut T {
    family.entry(name).or_default().entry(labels(pairs)).or_insert_with(new)
}

impl Metrics {
    pub fn inc(&self, name: &'static str, pairs: &[(&str, &str)]) {
        if let Ok(mut c) = self.counters.lock() {
            *series(&mut c, name, pairs, || 0) += 1;
        }
    }

    fn observe(&self, name: &'static str, pairs: &[(&str, &str)], value: f64, bounds: &'static [f64]) {
        if let Ok(mut h) = self.histograms.lock() {
            let new = || (Histogram { buckets: vec![0; bounds.len()], ..Default::default() }, bounds);
            let (hist, _) = series(&mut h, name, pairs, new);
            for (i, b) in bounds.iter().enumerate() {
                if value <= *b {
                    hist.buckets[i] += 1;
                }
            }
            hist.sum += value;
            hist.count += 1;
        }
    }

    /// A completed sign-in or step-up (`kind`), the level it reached, and how long it took from
    /// the authorization request (seconds, on the injected clock).
    pub fn authentication(&self, kind: &str, level: &str, outcome: &str, seconds: i64) {
        self.inc("ladder_authentications_total", &[("kind", kind), ("level", level), ("outcome", outcome)]);
        if kind == "stepup" && outcome == "success" {
            self.observe("ladder_stepup_duration_seconds", &[], seconds.max(0) as f64, &STEPUP_BUCKETS);
        }
    }

    pub fn factor(&self, factor: &str, outcome: &str) {
        self.inc("ladder_factor_attempts_total", &[("factor", factor), ("outcome", outcome)]);
    }

    pub fn signal(&self, signal: &str) {
        self.inc("ladder_risk_signals_total", &[("signal", signal)]);
    }

    pub fn http(&self, route: &str, status: StatusCode, elapsed: Duration) {
        let pairs = [("route", route), ("status", status.as_str())];
        self.observe("ladder_http_request_duration_seconds", &pairs, elapsed.as_secs_f64(), &LATENCY_BUCKETS);
    }

    /// The exposition text.
    pub fn render(&self, pool: (u32, u32)) -> String {
        let mut out = String::new();
        let typed = |out: &mut String, name: &str, kind: &str, help: &str| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        };
        if let Ok(c) = self.counters.lock() {
            for (name, series) in c.iter() {
                typed(&mut out, name, "counter", "Count of events.");
                for (l, v) in series {
                    out.push_str(&format!("{name}{{{l}}} {v}\n"));
                }
            }
        }
        if let Ok(h) = self.histograms.lock() {
            for (name, series) in h.iter() {
                typed(&mut out, name, "histogram", "Distribution of durations in seconds.");
                for (l, (hist, bounds)) in series {
                    let sep = if l.is_empty() { "" } else { "," };
                for (i, b) in bounds.iter().enumerate() {
                    out.push_str(&format!("{name}_bucket{{{l}{sep}le=\"{b}\"}} {}\n", hist.buckets[i]));
                }
                out.push_str(&format!("{name}_bucket{{{l}{sep}le=\"+Inf\"}} {}\n", hist.count));
                    out.push_str(&format!("{name}_sum{{{l}}} {}\n{name}_count{{{l}}} {}\n", hist.sum, hist.count));
                }
            }
        }
        typed(&mut out, "ladder_db_pool_connections", "gauge", "Database connections by state.");
        out.push_str(&format!("ladder_db_pool_connections{{state=\"idle\"}} {}\n", pool.0));
        out.push_str(&format!("ladder_db_pool_connections{{state=\"in_use\"}} {}\n", pool.1.saturating_sub(pool.0)));
        out
    }
}

pub async fn scrape(state: web::Data<AppState>) -> HttpResponse {
    let pool = state.db.pool_state();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render(pool))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.authentication("stepup", "urn:ladder:loa:2", "success", 7);
        m.factor("totp", "failure");
        m.http("/token", StatusCode::OK, Duration::from_millis(30));
        let text = m.render((3, 4));
        assert!(text.contains(r#"ladder_authentications_total{kind="stepup",level="urn:ladder:loa:2",outcome="success"} 1"#), "{text}");
        assert!(text.contains(r#"ladder_stepup_duration_seconds_bucket{le="10"} 1"#), "{text}");
        assert!(text.contains(r#"ladder_stepup_duration_seconds_bucket{le="5"} 0"#), "{text}");
        assert!(text.contains(r#"ladder_http_request_duration_seconds_bucket{route="/token",status="200",le="0.05"} 1"#), "{text}");
        assert!(text.contains(r#"ladder_db_pool_connections{state="in_use"} 1"#));
        assert!(text.contains("# TYPE ladder_factor_attempts_total counter"));
    }
}
