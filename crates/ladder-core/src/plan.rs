//! The plan (DESIGN §3.3, §3.6): what must this session still prove for this request? Pure:
//! the session's proofs, the user's enrolled factors and `now` go in; steps come out.
//! Also the other §3.6 rules that read the same proofs: the reported `acr`, `auth_time`, and when
//! a claimed level lapses.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::clock::Timestamp;
use crate::factor::{Factor, ProvenFactor};
use crate::levels::{Level, Levels};
use crate::prompt::Prompt;
use crate::request::{AcrRequest, MaxAge};
use crate::target::Target;

/// What the request demands of recency, beyond the level's own freshness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recency {
    pub max_age: Option<MaxAge>,
    pub prompt_login: bool,
    /// When the authorization request arrived. Proofs made after it are this interaction's
    /// active authentication: they satisfy `max_age` and `prompt=login` even as `now` moves on
    /// (otherwise `max_age=0` could never be met one second later). Strictly after: a proof from
    /// the same second may predate the request, and counting it would skip a demanded
    /// re-authentication; the cost of the strict rule is at most one extra prompt.
    pub requested_at: Timestamp,
}

impl Recency {
    pub fn new(max_age: Option<MaxAge>, prompt: Prompt, requested_at: Timestamp) -> Recency {
        Recency { max_age, prompt_login: prompt.login, requested_at }
    }

    /// `prompt=login` and `max_age=0`: every factor the level needs is proven again.
    pub fn full_reauth(&self) -> bool {
        self.prompt_login || self.max_age.is_some_and(MaxAge::is_zero)
    }

    /// `now − auth_time ≤ max_age`, or the authentication happened during this interaction.
    fn max_age_met(&self, proofs: &[ProvenFactor], now: Timestamp) -> bool {
        let Some(max_age) = self.max_age else { return true };
        auth_time(proofs).is_some_and(|t| now - t <= max_age.secs() || t > self.requested_at)
    }
}

/// Why the user must authenticate (again) before this request can be answered (DESIGN §7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Reason {
    NoSession,
    /// The request's `id_token_hint` names another user than the session's.
    IdTokenHintMismatch,
    PromptLogin,
    /// `auth_time` is older than the request's `max_age` (or `max_age=0`).
    MaxAge,
    /// The session's fresh proofs do not satisfy the target level. `lapsed`: factors proven
    /// earlier that no longer count because of the level's freshness.
    AcrNotMet {
        target: String,
        lapsed: Vec<Factor>,
    },
}

impl Reason {
    /// A stable code for audit rows.
    pub fn code(&self) -> &'static str {
        match self {
            Reason::NoSession => "no_session",
            Reason::IdTokenHintMismatch => "id_token_hint_mismatch",
            Reason::PromptLogin => "prompt_login",
            Reason::MaxAge => "max_age",
            Reason::AcrNotMet { .. } => "acr_not_met",
        }
    }

    /// The error for `prompt=none` (OIDC Core §3.1.2.6): a new login is `login_required`; a step-up
    /// on an existing, matching session is `interaction_required`.
    pub fn prompt_none_error(&self) -> &'static str {
        match self {
            Reason::NoSession | Reason::IdTokenHintMismatch | Reason::PromptLogin | Reason::MaxAge => "login_required",
            Reason::AcrNotMet { .. } => "interaction_required",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::AcrNotMet { target, lapsed } if !lapsed.is_empty() => {
                let lapsed: Vec<&str> = lapsed.iter().map(|f| f.as_str()).collect();
                write!(f, "acr_not_met: {target} (lapsed: {})", lapsed.join(", "))
            }
            Reason::AcrNotMet { target, .. } => write!(f, "acr_not_met: {target}"),
            other => f.write_str(other.code()),
        }
    }
}

/// One thing the user must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Prove an enrolled factor. A `Totp` step may be answered with a recovery code (same category).
    Prove(Factor),
    /// Enrol the factor inside the flow, then it counts as proven. Always after a proof.
    EnrolThenProve(Factor),
}

impl Step {
    pub fn factor(self) -> Factor {
        match self {
            Step::Prove(f) | Step::EnrolThenProve(f) => f,
        }
    }
    pub fn enrols(self) -> bool {
        matches!(self, Step::EnrolThenProve(_))
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Prove(factor) => write!(f, "prove {factor}"),
            Step::EnrolThenProve(factor) => write!(f, "enrol {factor}, then prove it"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "plan", rename_all = "snake_case")]
pub enum Plan {
    /// Nothing to ask: answer the RP.
    Satisfied,
    /// Run these steps, one page each, in order; then plan again (the ledger changed).
    Prove {
        reason: Reason,
        steps: Vec<Step>,
        /// A passkey step must require user verification (it is what satisfies the level).
        passkey_user_verification: bool,
    },
    /// This user cannot meet the target: `unmet_authentication_requirements` to the RP.
    /// (Voluntary requests never get here: their target already fell back to the floor.)
    Unreachable,
}

/// The session as the step-up decisions see it.
#[derive(Debug, Clone, Copy)]
pub struct SessionView<'a> {
    pub subject: &'a str,
    pub proofs: &'a [ProvenFactor],
}

/// The first reason this request needs the user, or `None` when the session answers it as is.
/// Use it for `prompt=none` ([`Reason::prompt_none_error`]) and audits; [`plan`] says what to ask.
pub fn reauth_reason(
    session: Option<&SessionView<'_>>,
    id_token_hint_subject: Option<&str>,
    target: &Target,
    recency: &Recency,
    now: Timestamp,
) -> Option<Reason> {
    let Some(session) = session else { return Some(Reason::NoSession) };
    if id_token_hint_subject.is_some_and(|hint| hint != session.subject) {
        return Some(Reason::IdTokenHintMismatch);
    }
    first_reason(&target.level, session.proofs, recency, now)
}

/// What this session must still prove to reach `target`, choosing the cheapest missing factors
/// among those the user has enrolled (or may enrol on demand for the level).
pub fn plan(target: &Target, proofs: &[ProvenFactor], enrolled: &[Factor], recency: &Recency, now: Timestamp) -> Plan {
    if target.unmet {
        return Plan::Unreachable;
    }
    let level = &target.level;
    let Some(reason) = first_reason(level, proofs, recency, now) else {
        return Plan::Satisfied;
    };
    let completion = if reason == Reason::MaxAge && !recency.full_reauth() {
        // Nothing is missing, only `auth_time` is too old: one active authentication suffices.
        reprove_one(level, enrolled)
    } else {
        cheapest_completion(level, &usable(level, proofs, recency, now), enrolled, now)
    };
    match completion {
        Some(c) => Plan::Prove { reason, steps: c.steps, passkey_user_verification: c.passkey_user_verification },
        None => Plan::Unreachable,
    }
}

/// Whether a user with these enrolled factors could reach `level` at all (from a fresh login).
pub fn reachable(level: &Level, enrolled: &[Factor]) -> bool {
    cheapest_completion(level, &[], enrolled, 0).is_some()
}

/// `auth_time`: the most recent active authentication, i.e. the newest proof of any factor.
pub fn auth_time(proofs: &[ProvenFactor]) -> Option<Timestamp> {
    proofs.iter().map(|p| p.proven_at).max()
}

/// The `acr` to put in tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportedAcr {
    /// `value` as the RP spelled it (or the achieved level's name); `level` is what it names.
    Acr { value: String, level: Level },
    /// Essential request, none satisfied: `unmet_authentication_requirements`.
    Unmet,
    /// Nothing proven at all: there is no level to report.
    NothingProven,
}

/// DESIGN §3.6: the first requested value whose level the proofs satisfy, in the RP's spelling;
/// with no request, the achieved level's name. Never a level not met. Pass `target.request`.
pub fn reported_acr(request: &AcrRequest, levels: &Levels, proofs: &[ProvenFactor], now: Timestamp) -> ReportedAcr {
    for value in request.values() {
        if let Some(level) = levels.resolve(value)
            && level.satisfied_by(proofs, now)
        {
            return ReportedAcr::Acr { value: value.clone(), level: level.clone() };
        }
    }
    if request.is_essential() {
        return ReportedAcr::Unmet;
    }
    match levels.achieved(proofs, now) {
        Some(level) => ReportedAcr::Acr { value: level.name().to_owned(), level: level.clone() },
        None => ReportedAcr::NothingProven,
    }
}

/// [`reported_acr`] for a request whose target may have been raised above what the RP asked
/// (client minimum, scope rule, risk): a requested value below the target is not reported, since
/// the raise is the point; the achieved level's name is, if it meets the target.
pub fn reported_acr_for(target: &Target, levels: &Levels, proofs: &[ProvenFactor], now: Timestamp) -> ReportedAcr {
    match reported_acr(&target.request, levels, proofs, now) {
        ReportedAcr::Acr { level, .. } if level.rank() < target.level.rank() => match levels.achieved(proofs, now) {
            Some(l) if l.rank() >= target.level.rank() => ReportedAcr::Acr { value: l.name().to_owned(), level: l.clone() },
            _ => ReportedAcr::Unmet,
        },
        other => other,
    }
}

/// When the claimed level lapses (first instant it no longer holds); an access token claiming it
/// gets `exp = min(exp, lapse)`. `None`: the level has no freshness and never lapses on its own.
pub fn access_token_lapse(claimed: &Level, proofs: &[ProvenFactor], now: Timestamp) -> Option<Timestamp> {
    claimed.lapses_at(proofs, now)
}

/// Factors in order of preference when several would do: a passkey is one phishing-resistant
/// gesture; then the password; then TOTP; recovery codes last (a fallback, and they run out).
const PREFERENCE: [Factor; 4] = [Factor::Passkey, Factor::Password, Factor::Totp, Factor::RecoveryCode];

/// The proofs that count toward `level` for this request: fresh for the level and, when the
/// request demands full re-authentication, made during this interaction.
fn usable(level: &Level, proofs: &[ProvenFactor], recency: &Recency, now: Timestamp) -> Vec<ProvenFactor> {
    proofs
        .iter()
        .filter(|p| level.is_fresh(p, now) && (!recency.full_reauth() || p.proven_at > recency.requested_at))
        .copied()
        .collect()
}

fn first_reason(level: &Level, proofs: &[ProvenFactor], recency: &Recency, now: Timestamp) -> Option<Reason> {
    if proofs.is_empty() {
        return Some(Reason::NoSession);
    }
    if !level.rule().satisfied_by(&usable(level, proofs, recency, now)) {
        return Some(if recency.prompt_login {
            Reason::PromptLogin
        } else if recency.full_reauth() {
            Reason::MaxAge
        } else {
            Reason::AcrNotMet { target: level.name().to_owned(), lapsed: lapsed(level, proofs, now) }
        });
    }
    // Full re-authentication already implies proofs since the request; otherwise check `max_age`.
    if !recency.full_reauth() && !recency.max_age_met(proofs, now) {
        return Some(Reason::MaxAge);
    }
    None
}

/// Factors proven earlier that the level's freshness no longer counts (and not re-proven since).
fn lapsed(level: &Level, proofs: &[ProvenFactor], now: Timestamp) -> Vec<Factor> {
    let fresh = |f: Factor| proofs.iter().any(|p| p.factor == f && level.is_fresh(p, now));
    let mut out = Vec::new();
    for p in proofs {
        if !fresh(p.factor) && !out.contains(&p.factor) {
            out.push(p.factor);
        }
    }
    out
}

struct Completion {
    steps: Vec<Step>,
    passkey_user_verification: bool,
}

/// The cheapest set of new proofs that, with `have`, satisfies the level. Cheapest means, in
/// order: fewest enrolments, fewest steps, fewest factors asked again, most preferred factors.
/// Four factors make sixteen sets: trying them all is simpler than being clever.
fn cheapest_completion(
    level: &Level,
    have: &[ProvenFactor],
    enrolled: &[Factor],
    now: Timestamp,
) -> Option<Completion> {
    type Cost = (usize, usize, usize, Vec<usize>);
    let mut best: Option<(Cost, Completion)> = None;
    'sets: for set in 1u8..(1 << PREFERENCE.len()) {
        let mut steps = Vec::new();
        let mut preference = Vec::new();
        for (i, &factor) in PREFERENCE.iter().enumerate().filter(|(i, _)| set & (1 << i) != 0) {
            let step = if enrolled.contains(&factor) {
                Step::Prove(factor)
            } else if level.enroll_on_demand().contains(&factor) {
                Step::EnrolThenProve(factor)
            } else {
                continue 'sets;
            };
            steps.push(step);
            preference.push(i);
        }
        let enrolments = steps.iter().filter(|s| s.enrols()).count();
        // Enrolling a factor before proving who you are would hand the account to anyone.
        if enrolments == steps.len() && have.is_empty() {
            continue;
        }
        // New passkey proofs are assumed user-verified; if the set only works that way, say so.
        let with = |passkey_uv: bool| -> Vec<ProvenFactor> {
            let new = steps.iter().map(|s| ProvenFactor {
                factor: s.factor(),
                proven_at: now,
                user_verified: passkey_uv && s.factor() == Factor::Passkey,
            });
            have.iter().copied().chain(new).collect()
        };
        if !level.rule().satisfied_by(&with(true)) {
            continue;
        }
        let passkey_user_verification =
            steps.iter().any(|s| s.factor() == Factor::Passkey) && !level.rule().satisfied_by(&with(false));
        let asked_again = steps.iter().filter(|s| have.iter().any(|p| p.factor == s.factor())).count();
        let cost = (enrolments, steps.len(), asked_again, preference);
        if best.as_ref().is_none_or(|(best_cost, _)| cost < *best_cost) {
            // Proofs first: enrolment happens only after the user has proven what they have.
            steps.sort_by_key(|s| s.enrols());
            best = Some((cost, Completion { steps, passkey_user_verification }));
        }
    }
    best.map(|(_, c)| c)
}

/// `max_age` alone is unmet: re-prove one factor of the level — passkey if enrolled, else password.
fn reprove_one(level: &Level, enrolled: &[Factor]) -> Option<Completion> {
    let factor = PREFERENCE.into_iter().find(|f| enrolled.contains(f) && level.rule().counts(*f))?;
    Some(Completion {
        steps: vec![Step::Prove(factor)],
        passkey_user_verification: factor == Factor::Passkey && level.rule().needs_user_verification(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::factor::amr_for;
    use crate::levels::tests::{MIN, NOW, bare_passkey, p};
    use crate::levels::{LOA1, LOA2, LOA3};
    use Factor::*;
    use Step::*;

    fn target(name: &str) -> Target {
        let level = crate::levels::tests::without_passkey_enrolment().resolve(name).cloned().expect("default level");
        Target { level, request: AcrRequest::default(), reasons: vec![], ignored: vec![], unmet: false }
    }

    /// The request arrived at NOW unless a case says otherwise.
    fn recency(max_age: Option<i64>, prompt_login: bool) -> Recency {
        Recency { max_age: max_age.and_then(MaxAge::from_secs), prompt_login, requested_at: NOW }
    }

    fn prove(reason: Reason, steps: &[Step]) -> Plan {
        Plan::Prove { reason, steps: steps.to_vec(), passkey_user_verification: false }
    }
    fn prove_uv(reason: Reason, steps: &[Step]) -> Plan {
        Plan::Prove { reason, steps: steps.to_vec(), passkey_user_verification: true }
    }
    fn not_met(level: &str, lapsed: &[Factor]) -> Reason {
        Reason::AcrNotMet { target: level.into(), lapsed: lapsed.to_vec() }
    }

    struct Case {
        name: &'static str,
        level: &'static str,
        proofs: Vec<ProvenFactor>,
        enrolled: &'static [Factor],
        recency: Recency,
        want: Plan,
    }

    fn cases() -> Vec<Case> {
        const PT: &[Factor] = &[Password, Totp];
        const PK: &[Factor] = &[Password, Passkey];
        const ALL: &[Factor] = &Factor::ALL;
        let none = recency(None, false);
        let mid = |r: Recency, ago: i64| Recency { requested_at: NOW - ago, ..r };
        vec![
            // First login.
            Case {
                name: "no session, loa:1: password",
                level: LOA1,
                proofs: vec![],
                enrolled: PT,
                recency: none,
                want: prove(Reason::NoSession, &[Prove(Password)]),
            },
            Case {
                name: "no session, loa:1, passkey enrolled: passkey",
                level: LOA1,
                proofs: vec![],
                enrolled: PK,
                recency: none,
                want: prove(Reason::NoSession, &[Prove(Passkey)]),
            },
            Case {
                name: "no session, loa:2: password then totp",
                level: LOA2,
                proofs: vec![],
                enrolled: PT,
                recency: none,
                want: prove(Reason::NoSession, &[Prove(Password), Prove(Totp)]),
            },
            Case {
                name: "no session, loa:2, everything enrolled: one verified passkey",
                level: LOA2,
                proofs: vec![],
                enrolled: ALL,
                recency: none,
                want: prove_uv(Reason::NoSession, &[Prove(Passkey)]),
            },
            Case {
                name: "no session, loa:2, totp not enrolled: password then enrol totp",
                level: LOA2,
                proofs: vec![],
                enrolled: &[Password],
                recency: none,
                want: prove(Reason::NoSession, &[Prove(Password), EnrolThenProve(Totp)]),
            },
            // Satisfied.
            Case {
                name: "loa:1 by an old password",
                level: LOA1,
                proofs: vec![p(Password, 3600)],
                enrolled: PT,
                recency: none,
                want: Plan::Satisfied,
            },
            Case {
                name: "loa:2 by old password + totp (no freshness)",
                level: LOA2,
                proofs: vec![p(Password, 3600), p(Totp, 3600)],
                enrolled: PT,
                recency: none,
                want: Plan::Satisfied,
            },
            Case {
                name: "loa:3 by a passkey 10 min ago",
                level: LOA3,
                proofs: vec![p(Passkey, 10 * MIN)],
                enrolled: PK,
                recency: none,
                want: Plan::Satisfied,
            },
            Case {
                name: "max_age met",
                level: LOA1,
                proofs: vec![p(Password, 30)],
                enrolled: PT,
                recency: recency(Some(60), false),
                want: Plan::Satisfied,
            },
            // Step-up: only what is missing.
            Case {
                name: "stepup_loa1_to_loa2_asks_only_totp",
                level: LOA2,
                proofs: vec![p(Password, 60)],
                enrolled: PT,
                recency: none,
                want: prove(not_met(LOA2, &[]), &[Prove(Totp)]),
            },
            Case {
                name: "step-up with max_age asks only the missing factor",
                level: LOA2,
                proofs: vec![p(Password, 3600)],
                enrolled: PT,
                recency: recency(Some(300), false),
                want: prove(not_met(LOA2, &[]), &[Prove(Totp)]),
            },
            Case {
                name: "step-up to loa:2 without totp: enrol it on demand",
                level: LOA2,
                proofs: vec![p(Password, 60)],
                enrolled: &[Password],
                recency: none,
                want: prove(not_met(LOA2, &[]), &[EnrolThenProve(Totp)]),
            },
            Case {
                name: "two OTP channels are not two categories: ask the password",
                level: LOA2,
                proofs: vec![p(Totp, 60), p(RecoveryCode, 30)],
                enrolled: PT,
                recency: none,
                want: prove(not_met(LOA2, &[]), &[Prove(Password)]),
            },
            Case {
                name: "bare passkey proven: the password completes loa:2, passkey not asked again",
                level: LOA2,
                proofs: vec![bare_passkey(60)],
                enrolled: ALL,
                recency: none,
                want: prove(not_met(LOA2, &[]), &[Prove(Password)]),
            },
            Case {
                name: "loa:3 after a password: a verified passkey",
                level: LOA3,
                proofs: vec![p(Password, 60)],
                enrolled: PK,
                recency: none,
                want: prove_uv(not_met(LOA3, &[]), &[Prove(Passkey)]),
            },
            Case {
                name: "loa:3 freshness lapsed: passkey again",
                level: LOA3,
                proofs: vec![p(Passkey, 20 * MIN), p(Password, 20 * MIN)],
                enrolled: PK,
                recency: none,
                want: prove_uv(not_met(LOA3, &[Passkey, Password]), &[Prove(Passkey)]),
            },
            Case {
                name: "loa:3 unreachable without a passkey",
                level: LOA3,
                proofs: vec![p(Password, 60), p(Totp, 60)],
                enrolled: PT,
                recency: none,
                want: Plan::Unreachable,
            },
            Case {
                name: "loa:2 unreachable: nothing enrolled, enrolment needs a proof first",
                level: LOA2,
                proofs: vec![],
                enrolled: &[],
                recency: none,
                want: Plan::Unreachable,
            },
            // max_age with nothing missing: re-prove one factor.
            Case {
                name: "max_age stale at loa:2: password again",
                level: LOA2,
                proofs: vec![p(Password, 3600), p(Totp, 3600)],
                enrolled: PT,
                recency: recency(Some(300), false),
                want: prove(Reason::MaxAge, &[Prove(Password)]),
            },
            Case {
                name: "max_age stale at loa:2 with a passkey: passkey",
                level: LOA2,
                proofs: vec![p(Password, 3600), p(Totp, 3600)],
                enrolled: ALL,
                recency: recency(Some(300), false),
                want: prove(Reason::MaxAge, &[Prove(Passkey)]),
            },
            Case {
                name: "max_age stale at loa:3: verified passkey",
                level: LOA3,
                proofs: vec![p(Passkey, 5 * MIN)],
                enrolled: PK,
                recency: recency(Some(60), false),
                want: prove_uv(Reason::MaxAge, &[Prove(Passkey)]),
            },
            Case {
                name: "max_age met by a proof during this interaction",
                level: LOA1,
                proofs: vec![p(Password, 5)],
                enrolled: PT,
                recency: mid(recency(Some(1), false), 10),
                want: Plan::Satisfied,
            },
            // Full re-authentication.
            Case {
                name: "prompt=login asks every factor",
                level: LOA2,
                proofs: vec![p(Password, 60), p(Totp, 60)],
                enrolled: PT,
                recency: recency(None, true),
                want: prove(Reason::PromptLogin, &[Prove(Password), Prove(Totp)]),
            },
            Case {
                name: "max_age=0 asks every factor",
                level: LOA2,
                proofs: vec![p(Password, 60), p(Totp, 60)],
                enrolled: PT,
                recency: recency(Some(0), false),
                want: prove(Reason::MaxAge, &[Prove(Password), Prove(Totp)]),
            },
            Case {
                name: "prompt=login at loa:1 with a passkey: passkey",
                level: LOA1,
                proofs: vec![p(Password, 60)],
                enrolled: PK,
                recency: recency(None, true),
                want: prove(Reason::PromptLogin, &[Prove(Passkey)]),
            },
            Case {
                name: "prompt=login, password re-proven: totp remains",
                level: LOA2,
                proofs: vec![p(Password, 5), p(Totp, 3600)],
                enrolled: PT,
                recency: mid(recency(None, true), 10),
                want: prove(Reason::PromptLogin, &[Prove(Totp)]),
            },
            Case {
                name: "prompt=login, all re-proven",
                level: LOA2,
                proofs: vec![p(Password, 5), p(Totp, 2)],
                enrolled: PT,
                recency: mid(recency(None, true), 10),
                want: Plan::Satisfied,
            },
            Case {
                name: "max_age=0, all re-proven, time has moved on",
                level: LOA2,
                proofs: vec![p(Password, 5), p(Totp, 2)],
                enrolled: PT,
                recency: mid(recency(Some(0), false), 10),
                want: Plan::Satisfied,
            },
        ]
    }

    #[test]
    fn plan_table() {
        for c in cases() {
            let got = plan(&target(c.level), &c.proofs, c.enrolled, &c.recency, NOW);
            assert_eq!(got, c.want, "{}", c.name);
        }
    }

    #[test]
    fn reauth_reason_agrees_with_plan() {
        for c in cases().into_iter().filter(|c| !c.proofs.is_empty()) {
            let session = SessionView { subject: "alice", proofs: &c.proofs };
            let got = reauth_reason(Some(&session), None, &target(c.level), &c.recency, NOW);
            let want = match c.want {
                Plan::Satisfied => None,
                Plan::Prove { reason, .. } => Some(reason),
                Plan::Unreachable => continue,
            };
            assert_eq!(got, want, "{}", c.name);
        }
    }

    #[test]
    fn reauth_reason_session_checks() {
        let proofs = [p(Password, 60)];
        let session = SessionView { subject: "alice", proofs: &proofs };
        let t = target(LOA1);
        let r = recency(None, false);
        let cases = [
            ("no session", None, None, Some(Reason::NoSession)),
            ("hint for another user", Some(&session), Some("bob"), Some(Reason::IdTokenHintMismatch)),
            ("hint for the same user", Some(&session), Some("alice"), None),
            ("no hint", Some(&session), None, None),
        ];
        for (name, session, hint, want) in cases {
            assert_eq!(reauth_reason(session, hint, &t, &r, NOW), want, "{name}");
        }
    }

    #[test]
    fn prompt_none_errors() {
        let cases = [
            (Reason::NoSession, "login_required"),
            (Reason::IdTokenHintMismatch, "login_required"),
            (Reason::MaxAge, "login_required"),
            (not_met(LOA2, &[]), "interaction_required"),
        ];
        for (reason, want) in cases {
            assert_eq!(reason.prompt_none_error(), want, "{reason}");
        }
    }

    #[test]
    fn never_enrols_before_a_proof() {
        // An operator lets passkeys be enrolled on demand for loa:2: enrolling one alone would
        // satisfy the rule, but someone who has proven nothing must not get to add a factor.
        let mut config = Levels::default_config();
        config[1].enroll_on_demand.push(Passkey);
        let levels = Levels::from_config(config).expect("valid config");
        let t = Target { level: levels.resolve(LOA2).cloned().expect("configured"), ..target(LOA1) };
        let r = recency(None, false);
        assert_eq!(
            plan(&t, &[], &[Password], &r, NOW),
            // Password + any passkey are two categories: no user verification needed.
            prove(Reason::NoSession, &[Prove(Password), EnrolThenProve(Passkey)])
        );
        assert_eq!(plan(&t, &[], &[], &r, NOW), Plan::Unreachable);
        assert_eq!(
            plan(&t, &[p(Password, 60)], &[Password], &r, NOW),
            prove(not_met(LOA2, &[]), &[EnrolThenProve(Passkey)])
        );
    }

    #[test]
    fn unmet_target_is_unreachable_even_when_the_floor_is_met() {
        let t = Target { unmet: true, ..target(LOA1) };
        let got = plan(&t, &[p(Password, 60)], &[Password], &recency(None, false), NOW);
        assert_eq!(got, Plan::Unreachable);
    }

    #[test]
    fn reported_acr_table() {
        let levels = crate::levels::tests::without_passkey_enrolment();
        let mfa = "https://refeds.org/profile/mfa";
        let pwd_otp = [p(Password, 60), p(Totp, 30)];
        let fresh_passkey = [p(Passkey, 60)];
        let stale_passkey = [p(Passkey, 20 * MIN)];
        // (name, requested values, essential, proofs, expected acr or None for Unmet)
        type Row<'a> = (&'a str, &'a [&'a str], bool, &'a [ProvenFactor], Option<&'a str>);
        let cases: &[Row] = &[
            ("no request: achieved level", &[], false, &pwd_otp, Some(LOA2)),
            ("RP spelling kept", &[mfa], false, &pwd_otp, Some(mfa)),
            ("first satisfied in preference order", &["phr", LOA2], false, &pwd_otp, Some(LOA2)),
            ("lower request satisfied is reported as asked", &[LOA1], false, &pwd_otp, Some(LOA1)),
            ("voluntary unmet: achieved level, honestly", &["phr"], false, &pwd_otp, Some(LOA2)),
            ("essential unmet", &["phr"], true, &pwd_otp, None),
            ("essential, fresh passkey", &["phr"], true, &fresh_passkey, Some("phr")),
            ("essential, passkey lapsed", &["phr"], true, &stale_passkey, None),
            ("voluntary, passkey lapsed: loa:2", &["phr"], false, &stale_passkey, Some(LOA2)),
            ("essential unknown value", &["gold"], true, &pwd_otp, None),
            ("voluntary unknown value", &["gold"], false, &pwd_otp, Some(LOA2)),
            ("essential without values", &[], true, &pwd_otp, Some(LOA2)),
        ];
        for (name, values, essential, proofs, want) in cases {
            let request = AcrRequest::new(values.iter().copied(), *essential);
            let got = match reported_acr(&request, &levels, proofs, NOW) {
                ReportedAcr::Acr { value, .. } => Some(value),
                ReportedAcr::Unmet => None,
                ReportedAcr::NothingProven => panic!("{name}: something is proven"),
            };
            assert_eq!(got.as_deref(), *want, "{name}");
        }
        assert_eq!(reported_acr(&AcrRequest::default(), &levels, &[], NOW), ReportedAcr::NothingProven);
    }

    #[test]
    fn reported_acr_is_never_below_a_raised_target() {
        let levels = crate::levels::tests::without_passkey_enrolment();
        let pwd_otp = [p(Password, 60), p(Totp, 30)];
        // The RP asked for loa:1 but the client minimum raised the target to loa:2.
        let mut raised = target(LOA2);
        raised.request = AcrRequest::new([LOA1], false);
        match reported_acr_for(&raised, &levels, &pwd_otp, NOW) {
            ReportedAcr::Acr { value, .. } => assert_eq!(value, LOA2),
            other => panic!("{other:?}"),
        }
        assert_eq!(reported_acr_for(&raised, &levels, &[p(Password, 60)], NOW), ReportedAcr::Unmet);
        // Not raised: the RP's own spelling, as reported_acr.
        let mut asked = target(LOA2);
        asked.request = AcrRequest::new(["https://refeds.org/profile/mfa"], false);
        match reported_acr_for(&asked, &levels, &pwd_otp, NOW) {
            ReportedAcr::Acr { value, .. } => assert_eq!(value, "https://refeds.org/profile/mfa"),
            other => panic!("{other:?}"),
        }
    }

    /// With the shipped defaults, a password user asked for loa:3 sets up a passkey on the spot.
    #[test]
    fn default_levels_enrol_a_passkey_for_loa3() {
        let level = Levels::defaults().resolve(LOA3).cloned().unwrap();
        let target = Target { level, request: AcrRequest::default(), reasons: vec![], ignored: vec![], unmet: false };
        let got = plan(&target, &[p(Password, 60)], &[Password], &recency(None, false), NOW);
        assert_eq!(got, prove_uv(not_met(LOA3, &[]), &[EnrolThenProve(Passkey)]));
    }

    /// A proof from the very second the request arrived may predate it: max_age=0 and
    /// prompt=login must not count it as this request's re-authentication.
    #[test]
    fn same_second_proof_does_not_satisfy_full_reauthentication() {
        let proofs = [p(Password, 0)];
        for recency in [recency(Some(0), false), recency(None, true)] {
            let got = plan(&target(LOA1), &proofs, &[Password], &recency, NOW);
            assert!(matches!(got, Plan::Prove { .. }), "{recency:?}: {got:?}");
            let later = [ProvenFactor { proven_at: NOW + 1, ..proofs[0] }];
            assert_eq!(plan(&target(LOA1), &later, &[Password], &recency, NOW + 1), Plan::Satisfied);
        }
    }

    /// The headline scenario, end to end through the pure functions.
    #[test]
    fn password_session_steps_up_to_loa2_with_only_totp() {
        let levels = crate::levels::tests::without_passkey_enrolment();
        let request = AcrRequest::from_params(Some(LOA2), None).expect("valid request");
        let input = crate::target::TargetInput {
            request: &request,
            client: Default::default(),
            scopes: &[],
            scope_rules: &[],
            extra: &[],
            enrolled: &[Password, Totp],
        };
        let t = crate::target::compute_target(&levels, &input).expect("valid config");
        let r = Recency::new("300".parse().ok(), Prompt::default(), NOW);
        let mut proofs = vec![p(Password, 3600)];

        let Plan::Prove { steps, .. } = plan(&t, &proofs, &[Password, Totp], &r, NOW) else {
            panic!("a step-up is needed");
        };
        assert_eq!(steps, [Prove(Totp)]);

        let later = NOW + 20;
        proofs.push(ProvenFactor { factor: Totp, proven_at: later, user_verified: false });
        assert_eq!(plan(&t, &proofs, &[Password, Totp], &r, later), Plan::Satisfied);
        let reported = reported_acr(&t.request, &levels, &proofs, later);
        let ReportedAcr::Acr { value, level } = reported else { panic!("loa:2 is met") };
        assert_eq!(value, LOA2);
        assert_eq!(amr_for(&proofs), ["pwd", "otp", "mfa"]);
        assert_eq!(auth_time(&proofs), Some(later));
        assert_eq!(access_token_lapse(&level, &proofs, later), None);
    }

    #[test]
    fn loa3_access_token_lapses_with_the_passkey() {
        let levels = crate::levels::tests::without_passkey_enrolment();
        let proofs = [p(Password, 60), p(Passkey, 5 * MIN)];
        let ReportedAcr::Acr { value, level } = reported_acr(&AcrRequest::new(["phr"], true), &levels, &proofs, NOW)
        else {
            panic!("loa:3 is met");
        };
        assert_eq!(value, "phr");
        assert_eq!(access_token_lapse(&level, &proofs, NOW), Some(NOW + 10 * MIN + 1));
    }

    #[test]
    fn reachability() {
        let levels = crate::levels::tests::without_passkey_enrolment();
        let cases: &[(&str, &[Factor], bool)] = &[
            (LOA1, &[Password], true),
            (LOA2, &[Password], true), // totp enrolled on demand
            (LOA2, &[Totp, RecoveryCode], false),
            (LOA2, &[Passkey], true),
            (LOA3, &[Password, Totp], false),
            (LOA3, &[Passkey], true),
            (LOA1, &[], false),
        ];
        for (level, enrolled, want) in cases {
            let level = levels.resolve(level).expect("default level");
            assert_eq!(reachable(level, enrolled), *want, "{} with {enrolled:?}", level.name());
        }
    }
}
