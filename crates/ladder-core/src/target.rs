//! Request → target level (DESIGN §3.2, §3.6): the first requested level the user can reach,
//! never below the floor = max(client minimum, scope rules, risk raises). Every raise keeps its
//! reason so audits and `ladder policy explain` say why.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::factor::Factor;
use crate::levels::{Level, Levels};
use crate::plan::reachable;
use crate::request::AcrRequest;

/// Why a level was asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RaiseReason {
    /// The RP's `acr_values` / `claims` asked for it (value as the RP spelled it).
    RequestedAcr { value: String },
    /// The request asked nothing; the client's registered `default_acr_values` did.
    ClientDefault { value: String },
    /// The client's minimum level, which applies whatever the request says.
    ClientMinimum,
    /// A configured scope rule, e.g. `payments:write` ⇒ loa:2.
    ScopeRule { scope: String },
    /// A risk signal (new device, network change…), described for the audit trail.
    Risk(String),
}

impl fmt::Display for RaiseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RaiseReason::RequestedAcr { value } => write!(f, "requested acr `{value}`"),
            RaiseReason::ClientDefault { value } => write!(f, "client default acr `{value}`"),
            RaiseReason::ClientMinimum => f.write_str("client minimum level"),
            RaiseReason::ScopeRule { scope } => write!(f, "scope rule for `{scope}`"),
            RaiseReason::Risk(signal) => write!(f, "risk signal: {signal}"),
        }
    }
}

/// A level something asked for, and why. As input, `level` may be any name or alias; in a
/// [`Target`] it is the canonical name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Raise {
    pub reason: RaiseReason,
    pub level: String,
}

impl Raise {
    pub fn new(reason: RaiseReason, level: impl Into<String>) -> Raise {
        Raise { reason, level: level.into() }
    }
}

impl fmt::Display for Raise {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ⇒ {}", self.reason, self.level)
    }
}

/// A configured scope rule (`[[scope_rules]] scope = "payments:write", level = "urn:ladder:loa:2"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeRule {
    pub scope: String,
    #[serde(alias = "acr")]
    pub level: String,
}

/// Check scope rules against the levels once, at start-up.
pub fn check_scope_rules(levels: &Levels, rules: &[ScopeRule]) -> Result<(), TargetError> {
    match rules.iter().find(|r| levels.resolve(&r.level).is_none()) {
        Some(r) => Err(TargetError::UnknownLevel {
            level: r.level.clone(),
            reason: RaiseReason::ScopeRule { scope: r.scope.clone() },
        }),
        None => Ok(()),
    }
}

/// The client's registered acr settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientAcrPolicy<'a> {
    /// `default_acr_values`, used when the request names no known level.
    pub default_acr_values: &'a [String],
    /// A level every token for this client must meet.
    pub minimum: Option<&'a str>,
    /// Treat the client's acr request (or default) as essential.
    pub strict: bool,
}

/// Everything the target depends on.
#[derive(Debug, Clone, Copy)]
pub struct TargetInput<'a> {
    pub request: &'a AcrRequest,
    pub client: ClientAcrPolicy<'a>,
    /// Scopes granted to this request.
    pub scopes: &'a [String],
    pub scope_rules: &'a [ScopeRule],
    /// Further floor raises, e.g. from risk signals.
    pub extra: &'a [Raise],
    /// The user's enrolled factors. Before the user is known, pass `&Factor::ALL` and compute the
    /// target again once they are (it is pure and cheap: recompute it on every page).
    pub enrolled: &'a [Factor],
}

/// A requested value that did not become the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ignored {
    /// Names no configured level.
    Unknown(String),
    /// Names a level this user cannot reach (factor not enrolled, enrolment not allowed).
    Unreachable(String),
}

/// The level this request must reach, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    pub level: Level,
    /// The acr request in force: the RP's, or the client's default when the RP named no known
    /// level; made essential for strict clients. Pass it to [`crate::plan::reported_acr`].
    pub request: AcrRequest,
    /// Every raise that applied: the chosen requested value first, then the floor raises.
    pub reasons: Vec<Raise>,
    pub ignored: Vec<Ignored>,
    /// An essential request no level of this user can meet; [`crate::plan::plan`] answers `Unreachable`.
    pub unmet: bool,
}

impl Target {
    /// The raise that set the target's level (`None`: the lowest level, nothing asked for more).
    pub fn because(&self) -> Option<&Raise> {
        self.reasons.iter().find(|r| r.level == self.level.name())
    }

    pub fn is_essential(&self) -> bool {
        self.request.is_essential()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// A configuration error (client minimum, scope rule, risk raise naming no level): fail closed.
    #[error("{reason} names unknown level `{level}`")]
    UnknownLevel { level: String, reason: RaiseReason },
}

pub fn compute_target(levels: &Levels, input: &TargetInput<'_>) -> Result<Target, TargetError> {
    // The floor: mandatory raises, resolved strictly (an unknown name here is a config error).
    let minimum = input.client.minimum.map(|m| Raise::new(RaiseReason::ClientMinimum, m));
    let scope_raises = input
        .scope_rules
        .iter()
        .filter(|rule| input.scopes.contains(&rule.scope))
        .map(|rule| Raise::new(RaiseReason::ScopeRule { scope: rule.scope.clone() }, &rule.level));
    let mut floor = levels.lowest();
    let mut floor_raises = Vec::new();
    for raise in minimum.into_iter().chain(scope_raises).chain(input.extra.iter().cloned()) {
        let level = levels
            .resolve(&raise.level)
            .ok_or_else(|| TargetError::UnknownLevel { level: raise.level.clone(), reason: raise.reason.clone() })?;
        if level.rank() > floor.rank() {
            floor = level;
        }
        floor_raises.push(Raise::new(raise.reason, level.name()));
    }

    // The request in force: the RP's when it names a known level or is essential, else the client's default.
    let mut ignored: Vec<Ignored> = unknown_values(levels, input.request.values());
    let names_known = input.request.values().iter().any(|v| levels.resolve(v).is_some());
    // An essential request keeps its values even when none is known: it must fail, not be swapped.
    let use_default = !names_known && !input.request.is_essential() && !input.client.default_acr_values.is_empty();
    let mut request = if use_default {
        ignored.extend(unknown_values(levels, input.client.default_acr_values));
        AcrRequest::new(input.client.default_acr_values.iter().cloned(), false)
    } else {
        input.request.clone()
    };
    if input.client.strict {
        request = request.into_essential();
    }

    // The first requested level the user can reach, lifted to the floor.
    let mut chosen = None;
    for value in request.values() {
        let Some(asked) = levels.resolve(value) else { continue };
        let level = if asked.rank() < floor.rank() { floor } else { asked };
        if reachable(level, input.enrolled) {
            let reason = if use_default {
                RaiseReason::ClientDefault { value: value.clone() }
            } else {
                RaiseReason::RequestedAcr { value: value.clone() }
            };
            // Recorded at the level asked: when the floor lifted it, `because()` names the floor.
            chosen = Some((level, Raise::new(reason, asked.name())));
            break;
        }
        ignored.push(Ignored::Unreachable(value.clone()));
    }

    let mut reasons = Vec::new();
    let (level, unmet) = match chosen {
        Some((level, raise)) => {
            reasons.push(raise);
            (level, false)
        }
        // Voluntary: fall back to the floor and report honestly what is met. Essential: fail.
        None => (floor, request.is_essential()),
    };
    reasons.extend(floor_raises);
    Ok(Target { level: level.clone(), request, reasons, ignored, unmet })
}

fn unknown_values(levels: &Levels, values: &[String]) -> Vec<Ignored> {
    values.iter().filter(|v| levels.resolve(v).is_none()).map(|v| Ignored::Unknown(v.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::levels::{LOA1, LOA2, LOA3};
    use Factor::*;

    const ALL: &[Factor] = &Factor::ALL;
    const PWD_TOTP: &[Factor] = &[Password, Totp];
    const PWD_ONLY: &[Factor] = &[Password];
    const PWD_PASSKEY: &[Factor] = &[Password, Passkey];

    struct Case {
        name: &'static str,
        acr_values: &'static str,
        essential: bool,
        defaults: &'static [&'static str],
        minimum: Option<&'static str>,
        strict: bool,
        scopes: &'static [&'static str],
        risk: Option<&'static str>,
        enrolled: &'static [Factor],
        // expected
        level: &'static str,
        because: Option<RaiseReason>,
        unmet: bool,
    }

    const BASE: Case = Case {
        name: "",
        acr_values: "",
        essential: false,
        defaults: &[],
        minimum: None,
        strict: false,
        scopes: &[],
        risk: None,
        enrolled: PWD_TOTP,
        level: LOA1,
        because: None,
        unmet: false,
    };

    fn requested(v: &str) -> Option<RaiseReason> {
        Some(RaiseReason::RequestedAcr { value: v.into() })
    }

    fn run(c: &Case) -> Result<Target, TargetError> {
        let levels = crate::levels::tests::without_passkey_enrolment();
        let request = AcrRequest::new(c.acr_values.split_ascii_whitespace(), c.essential);
        let defaults: Vec<String> = c.defaults.iter().map(|s| s.to_string()).collect();
        let scopes: Vec<String> = c.scopes.iter().map(|s| s.to_string()).collect();
        let rules = [ScopeRule { scope: "payments:write".into(), level: LOA2.into() }];
        let extra: Vec<Raise> = c.risk.iter().map(|l| Raise::new(RaiseReason::Risk("new device".into()), *l)).collect();
        let input = TargetInput {
            request: &request,
            client: ClientAcrPolicy { default_acr_values: &defaults, minimum: c.minimum, strict: c.strict },
            scopes: &scopes,
            scope_rules: &rules,
            extra: &extra,
            enrolled: c.enrolled,
        };
        compute_target(&levels, &input)
    }

    #[test]
    fn target_table() {
        let cases = [
            Case { name: "nothing asked: lowest level", ..BASE },
            Case { name: "plain request", acr_values: LOA2, level: LOA2, because: requested(LOA2), ..BASE },
            Case {
                name: "alias maps to its level, reason keeps RP spelling",
                acr_values: "https://refeds.org/profile/mfa",
                level: LOA2,
                because: requested("https://refeds.org/profile/mfa"),
                ..BASE
            },
            Case {
                name: "unknown values are ignored",
                acr_values: "urn:other:gold urn:ladder:loa:2",
                level: LOA2,
                because: requested(LOA2),
                ..BASE
            },
            Case {
                name: "first reachable in preference order: no passkey, so loa:2",
                acr_values: "phr urn:ladder:loa:2",
                level: LOA2,
                because: requested(LOA2),
                ..BASE
            },
            Case {
                name: "first reachable: with a passkey, loa:3",
                acr_values: "phr urn:ladder:loa:2",
                enrolled: PWD_PASSKEY,
                level: LOA3,
                because: requested("phr"),
                ..BASE
            },
            Case {
                name: "loa:2 reachable by enrolling totp on demand",
                acr_values: LOA2,
                enrolled: PWD_ONLY,
                level: LOA2,
                because: requested(LOA2),
                ..BASE
            },
            Case { name: "voluntary unreachable: fall back to the floor", acr_values: LOA3, level: LOA1, ..BASE },
            Case {
                name: "essential unreachable: unmet",
                acr_values: LOA3,
                essential: true,
                level: LOA1,
                unmet: true,
                ..BASE
            },
            Case {
                name: "essential, only unknown values: unmet",
                acr_values: "urn:other:gold",
                essential: true,
                level: LOA1,
                unmet: true,
                ..BASE
            },
            Case {
                name: "essential with a reachable second choice",
                acr_values: "phr urn:ladder:loa:2",
                essential: true,
                level: LOA2,
                because: requested(LOA2),
                ..BASE
            },
            Case {
                name: "client default applies when nothing is asked",
                defaults: &[LOA2],
                level: LOA2,
                because: Some(RaiseReason::ClientDefault { value: LOA2.into() }),
                ..BASE
            },
            Case {
                name: "client default applies when only unknown values are asked",
                acr_values: "urn:other:gold",
                defaults: &[LOA2],
                level: LOA2,
                because: Some(RaiseReason::ClientDefault { value: LOA2.into() }),
                ..BASE
            },
            Case {
                name: "request beats client default",
                acr_values: LOA1,
                defaults: &[LOA2],
                level: LOA1,
                because: requested(LOA1),
                ..BASE
            },
            Case {
                name: "client minimum raises a lower request",
                acr_values: LOA1,
                minimum: Some(LOA2),
                level: LOA2,
                because: Some(RaiseReason::ClientMinimum),
                ..BASE
            },
            Case {
                name: "client minimum with no request",
                minimum: Some(LOA2),
                level: LOA2,
                because: Some(RaiseReason::ClientMinimum),
                ..BASE
            },
            Case {
                name: "scope rule raises",
                scopes: &["openid", "payments:write"],
                level: LOA2,
                because: Some(RaiseReason::ScopeRule { scope: "payments:write".into() }),
                ..BASE
            },
            Case { name: "scope not granted: no raise", scopes: &["openid", "payments:read"], level: LOA1, ..BASE },
            Case {
                name: "risk raise",
                risk: Some("phr"),
                enrolled: PWD_PASSKEY,
                level: LOA3,
                because: Some(RaiseReason::Risk("new device".into())),
                ..BASE
            },
            Case {
                name: "floor unreachable stays the target (plan says Unreachable)",
                minimum: Some(LOA3),
                level: LOA3,
                because: Some(RaiseReason::ClientMinimum),
                ..BASE
            },
            Case {
                name: "higher request above the floor wins",
                acr_values: "phr",
                minimum: Some(LOA2),
                enrolled: PWD_PASSKEY,
                level: LOA3,
                because: requested("phr"),
                ..BASE
            },
            Case {
                name: "strict client: unreachable request is unmet",
                acr_values: LOA3,
                strict: true,
                level: LOA1,
                unmet: true,
                ..BASE
            },
            Case {
                name: "strict client: default becomes essential",
                defaults: &["phr"],
                strict: true,
                level: LOA1,
                unmet: true,
                ..BASE
            },
            Case {
                name: "strict client, reachable request",
                acr_values: LOA2,
                strict: true,
                level: LOA2,
                because: requested(LOA2),
                ..BASE
            },
            Case {
                name: "user unknown yet: everything is reachable",
                acr_values: "phr",
                enrolled: ALL,
                level: LOA3,
                because: requested("phr"),
                ..BASE
            },
        ];
        for c in &cases {
            let t = run(c).unwrap_or_else(|e| panic!("{}: {e}", c.name));
            assert_eq!(t.level.name(), c.level, "{}: level", c.name);
            assert_eq!(t.because().map(|r| &r.reason), c.because.as_ref(), "{}: because", c.name);
            assert_eq!(t.unmet, c.unmet, "{}: unmet", c.name);
            assert_eq!(t.is_essential(), c.essential || c.strict, "{}: essential", c.name);
        }
    }

    #[test]
    fn reasons_and_ignored_are_all_recorded() {
        let t = run(&Case {
            acr_values: "urn:other:gold phr urn:ladder:loa:2",
            minimum: Some(LOA1),
            scopes: &["payments:write"],
            ..BASE
        })
        .expect("valid config");
        assert_eq!(t.level.name(), LOA2);
        assert_eq!(
            t.reasons,
            [
                Raise::new(RaiseReason::RequestedAcr { value: LOA2.into() }, LOA2),
                Raise::new(RaiseReason::ClientMinimum, LOA1),
                Raise::new(RaiseReason::ScopeRule { scope: "payments:write".into() }, LOA2),
            ]
        );
        assert_eq!(t.ignored, [Ignored::Unknown("urn:other:gold".into()), Ignored::Unreachable("phr".into())]);
    }

    #[test]
    fn misconfigured_floor_fails_closed() {
        let err = run(&Case { minimum: Some("urn:ladder:loa:9"), ..BASE });
        assert_eq!(
            err,
            Err(TargetError::UnknownLevel { level: "urn:ladder:loa:9".into(), reason: RaiseReason::ClientMinimum })
        );
        let levels = crate::levels::tests::without_passkey_enrolment();
        let bad = [ScopeRule { scope: "admin".into(), level: "gold".into() }];
        assert!(check_scope_rules(&levels, &bad).is_err());
        let good = [ScopeRule { scope: "admin".into(), level: "phr".into() }];
        assert_eq!(check_scope_rules(&levels, &good), Ok(()));
    }
}
