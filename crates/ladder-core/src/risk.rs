//! Risk signals (adaptive step-up): observations about a request that, when a configured rule maps
//! them to a level, raise the target — each with a sentence the user is shown and the audit keeps.
//! Pure: the server gathers the observation (cookies, addresses, clock), this decides.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::target::{Raise, RaiseReason};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalKind {
    /// No valid device cookie for this user.
    NewDevice,
    /// The request comes from outside the network the session started from.
    NetworkChange,
    /// The session has been idle for long.
    DormantSession,
    /// Several failed factor attempts for this user recently.
    RecentFailures,
    /// Outside the configured hours.
    OutsideHours,
    /// The RP says the transaction is worth more than the client's threshold.
    ValueThreshold,
}

impl SignalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SignalKind::NewDevice => "new_device",
            SignalKind::NetworkChange => "network_change",
            SignalKind::DormantSession => "dormant_session",
            SignalKind::RecentFailures => "recent_failures",
            SignalKind::OutsideHours => "outside_hours",
            SignalKind::ValueThreshold => "value_threshold",
        }
    }
}

/// `[[risk.rules]]`: a signal and the level it requires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskRule {
    pub signal: SignalKind,
    #[serde(alias = "acr")]
    pub level: String,
}

/// `[risk]` in the configuration. With no rules, no signal is even evaluated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RiskConfig {
    pub rules: Vec<RiskRule>,
    /// How much of the address must stay the same for the network to count as unchanged.
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    pub dormant_after_secs: i64,
    pub failure_threshold: u32,
    pub failure_window_secs: i64,
    /// Business hours [start, end) in the configured zone, given as a fixed offset from UTC.
    pub hours_start: u8,
    pub hours_end: u8,
    pub utc_offset_minutes: i32,
}

impl Default for RiskConfig {
    fn default() -> Self {
        RiskConfig {
            rules: vec![],
            ipv4_prefix: 24,
            ipv6_prefix: 48,
            dormant_after_secs: 30 * 60,
            failure_threshold: 3,
            failure_window_secs: 15 * 60,
            hours_start: 7,
            hours_end: 20,
            utc_offset_minutes: 0,
        }
    }
}

/// A transaction value the RP declared (e.g. RFC 9396 `authorization_details`).
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    pub amount: f64,
    pub currency: String,
}

/// What the server saw. `None` means "not known" and never fires a signal.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    pub device_known: Option<bool>,
    pub session_ip: Option<IpAddr>,
    pub request_ip: Option<IpAddr>,
    pub idle_secs: Option<i64>,
    pub recent_failures: u32,
    pub now: Timestamp,
    pub value: Option<Value>,
    /// Per-client thresholds by currency.
    pub value_thresholds: Vec<(String, f64)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Signal {
    pub kind: SignalKind,
    /// Shown to the user and kept in the audit row.
    pub reason: String,
}

/// Whether two addresses share the configured network prefix (different families never do).
pub fn same_network(a: IpAddr, b: IpAddr, v4_prefix: u8, v6_prefix: u8) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let bits = u32::from(v4_prefix.min(32));
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let bits = u32::from(v6_prefix.min(128));
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// The local hour (0–23) at `now` in the configured zone.
fn local_hour(now: Timestamp, utc_offset_minutes: i32) -> u8 {
    let local = now + i64::from(utc_offset_minutes) * 60;
    (local.rem_euclid(86_400) / 3600) as u8
}

/// The signals that fire for this observation, among those some rule cares about.
pub fn signals(config: &RiskConfig, obs: &Observation) -> Vec<Signal> {
    let wanted = |k: SignalKind| config.rules.iter().any(|r| r.signal == k);
    let mut out = Vec::new();
    let mut fire = |kind: SignalKind, reason: String| {
        if wanted(kind) && !out.iter().any(|s: &Signal| s.kind == kind) {
            out.push(Signal { kind, reason });
        }
    };
    if obs.device_known == Some(false) {
        fire(SignalKind::NewDevice, "You're signing in from a new device.".into());
    }
    if let (Some(from), Some(now)) = (obs.session_ip, obs.request_ip)
        && !same_network(from, now, config.ipv4_prefix, config.ipv6_prefix)
    {
        fire(SignalKind::NetworkChange, "Your network has changed since you signed in.".into());
    }
    if obs.idle_secs.is_some_and(|idle| idle > config.dormant_after_secs) {
        fire(SignalKind::DormantSession, "Your session has been inactive for a while.".into());
    }
    if obs.recent_failures >= config.failure_threshold && config.failure_threshold > 0 {
        fire(SignalKind::RecentFailures, "There were several failed attempts to sign in to your account.".into());
    }
    let hour = local_hour(obs.now, config.utc_offset_minutes);
    let inside = if config.hours_start <= config.hours_end {
        (config.hours_start..config.hours_end).contains(&hour)
    } else {
        hour >= config.hours_start || hour < config.hours_end
    };
    if !inside {
        fire(SignalKind::OutsideHours, "It's outside the usual hours for this application.".into());
    }
    if let Some(v) = &obs.value
        && let Some((_, limit)) = obs.value_thresholds.iter().find(|(c, _)| c.eq_ignore_ascii_case(&v.currency))
        && v.amount > *limit
    {
        fire(SignalKind::ValueThreshold, format!("This {} {} transaction needs extra verification.", format_amount(v.amount), v.currency));
    }
    out
}

fn format_amount(a: f64) -> String {
    if a.fract() == 0.0 { format!("{a:.0}") } else { format!("{a:.2}") }
}

/// The target raises the fired signals ask for (their rules' levels), each carrying its sentence.
pub fn raises(config: &RiskConfig, fired: &[Signal]) -> Vec<Raise> {
    let mut out = Vec::new();
    for s in fired {
        for rule in config.rules.iter().filter(|r| r.signal == s.kind) {
            out.push(Raise::new(RaiseReason::Risk(s.reason.clone()), rule.level.clone()));
        }
    }
    out
}

/// The total value of RFC 9396 `authorization_details` entries carrying an amount (as
/// `instructedAmount: {amount, currency}` or `amount` + `currency`); None when absent, malformed,
/// or in more than one currency.
pub fn value_from_authorization_details(json: &str) -> Option<Value> {
    let details: serde_json::Value = serde_json::from_str(json).ok()?;
    let mut total: Option<Value> = None;
    for entry in details.as_array()? {
        let (amount, currency) = match entry.get("instructedAmount") {
            Some(ia) => (ia.get("amount")?, ia.get("currency")?),
            None => match (entry.get("amount"), entry.get("currency")) {
                (Some(a), Some(c)) => (a, c),
                _ => continue,
            },
        };
        let amount = match amount {
            serde_json::Value::Number(n) => n.as_f64()?,
            serde_json::Value::String(s) => s.parse().ok()?,
            _ => return None,
        };
        let currency = currency.as_str()?.to_ascii_uppercase();
        if !amount.is_finite() || amount < 0.0 {
            return None;
        }
        total = match total {
            None => Some(Value { amount, currency }),
            Some(t) if t.currency == currency => Some(Value { amount: t.amount + amount, currency }),
            Some(_) => return None,
        };
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(kinds: &[SignalKind]) -> RiskConfig {
        RiskConfig {
            rules: kinds.iter().map(|k| RiskRule { signal: *k, level: "urn:ladder:loa:2".into() }).collect(),
            ..RiskConfig::default()
        }
    }

    fn ip(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    /// Noon UTC: inside default hours.
    const NOON: Timestamp = 1_800_000_000 - (1_800_000_000 % 86_400) + 12 * 3600;

    #[test]
    fn each_signal_fires_only_when_observed_and_wanted() {
        use SignalKind::*;
        let all = config(&[NewDevice, NetworkChange, DormantSession, RecentFailures, OutsideHours, ValueThreshold]);
        let quiet = Observation {
            device_known: Some(true),
            session_ip: ip("192.0.2.10"),
            request_ip: ip("192.0.2.99"),
            idle_secs: Some(60),
            recent_failures: 0,
            now: NOON,
            value: Some(Value { amount: 50.0, currency: "EUR".into() }),
            value_thresholds: vec![("EUR".into(), 1000.0)],
        };
        assert_eq!(signals(&all, &quiet), vec![]);
        let cases: Vec<(SignalKind, Observation)> = vec![
            (NewDevice, Observation { device_known: Some(false), ..quiet.clone() }),
            (NetworkChange, Observation { request_ip: ip("198.51.100.7"), ..quiet.clone() }),
            (DormantSession, Observation { idle_secs: Some(31 * 60), ..quiet.clone() }),
            (RecentFailures, Observation { recent_failures: 3, ..quiet.clone() }),
            (OutsideHours, Observation { now: NOON + 10 * 3600, ..quiet.clone() }),
            (ValueThreshold, Observation { value: Some(Value { amount: 1500.0, currency: "eur".into() }), ..quiet.clone() }),
        ];
        for (kind, obs) in cases {
            let fired = signals(&all, &obs);
            assert_eq!(fired.iter().map(|s| s.kind).collect::<Vec<_>>(), [kind], "{kind:?}");
            assert!(!fired[0].reason.is_empty());
            // Without a rule for it, nothing is evaluated.
            assert_eq!(signals(&RiskConfig::default(), &obs), vec![], "{kind:?} with no rules");
        }
    }

    #[test]
    fn unknowns_never_fire() {
        let c = config(&[SignalKind::NewDevice, SignalKind::NetworkChange, SignalKind::DormantSession]);
        assert_eq!(signals(&c, &Observation { now: NOON, ..Default::default() }), vec![]);
    }

    #[test]
    fn networks_compare_by_prefix() {
        let (a, b) = (ip("10.1.2.3").unwrap(), ip("10.1.2.200").unwrap());
        assert!(same_network(a, b, 24, 48));
        assert!(!same_network(a, ip("10.1.3.3").unwrap(), 24, 48));
        assert!(same_network(ip("2001:db8:1::1").unwrap(), ip("2001:db8:1:ffff::2").unwrap(), 24, 48));
        assert!(!same_network(ip("2001:db8:1::1").unwrap(), ip("2001:db8:2::1").unwrap(), 24, 48));
        assert!(!same_network(a, ip("::ffff:10.1.2.3").unwrap(), 24, 48));
    }

    #[test]
    fn hours_wrap_around_midnight_and_honour_the_offset() {
        let night_shift = RiskConfig { hours_start: 22, hours_end: 6, ..config(&[SignalKind::OutsideHours]) };
        let at = |h: i64| Observation { now: NOON - 12 * 3600 + h * 3600, ..Default::default() };
        assert!(signals(&night_shift, &at(23)).is_empty());
        assert!(signals(&night_shift, &at(3)).is_empty());
        assert_eq!(signals(&night_shift, &at(12)).len(), 1);
        // 19:00 UTC is 21:00 at +2h: outside 7–20.
        let plus_two = RiskConfig { utc_offset_minutes: 120, ..config(&[SignalKind::OutsideHours]) };
        assert_eq!(signals(&plus_two, &at(19)).len(), 1);
        assert!(signals(&config(&[SignalKind::OutsideHours]), &at(19)).is_empty());
    }

    #[test]
    fn raises_carry_the_reason_to_the_rules_level() {
        let c = config(&[SignalKind::NewDevice]);
        let fired = signals(&c, &Observation { device_known: Some(false), now: NOON, ..Default::default() });
        let r = raises(&c, &fired);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].level, "urn:ladder:loa:2");
        assert_eq!(r[0].reason, RaiseReason::Risk("You're signing in from a new device.".into()));
    }

    #[test]
    fn authorization_details_values() {
        let rar = r#"[{"type":"payment_initiation","instructedAmount":{"currency":"EUR","amount":"123.50"}},
                      {"type":"payment_initiation","amount":1000,"currency":"eur"}]"#;
        assert_eq!(value_from_authorization_details(rar), Some(Value { amount: 1123.5, currency: "EUR".into() }));
        assert_eq!(value_from_authorization_details(r#"[{"type":"x"}]"#), None);
        assert_eq!(value_from_authorization_details("not json"), None);
        let mixed = r#"[{"amount":1,"currency":"EUR"},{"amount":1,"currency":"USD"}]"#;
        assert_eq!(value_from_authorization_details(mixed), None);
        assert_eq!(value_from_authorization_details(r#"[{"amount":-5,"currency":"EUR"}]"#), None);
    }
}
