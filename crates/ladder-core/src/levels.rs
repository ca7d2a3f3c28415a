//! Levels (DESIGN §1): named, ranked `acr` values, each with a rule over the factors a session has
//! proven and an optional freshness. Loaded once from config, validated, then only read.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::factor::{Factor, FactorCategory, ProvenFactor};

pub const LOA1: &str = "urn:ladder:loa:1";
pub const LOA2: &str = "urn:ladder:loa:2";
pub const LOA3: &str = "urn:ladder:loa:3";

/// Which sets of proofs satisfy a level. A closed set of rules rather than a little language:
/// each one is a sentence of DESIGN §1 and gets its own tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LevelRule {
    /// Any one factor.
    AnyOneFactor,
    /// Two factors of different categories, or one user-verified passkey (which alone proves
    /// possession and inherence). Two OTP channels are one category, so never enough.
    TwoCategoriesOrUserVerifiedPasskey,
    /// A user-verified passkey (phishing-resistant).
    UserVerifiedPasskey,
}

impl LevelRule {
    /// Whether these proofs satisfy the rule (freshness is the caller's business, see [`Level`]).
    pub fn satisfied_by<'a>(self, proofs: impl IntoIterator<Item = &'a ProvenFactor>) -> bool {
        let mut any = false;
        let mut user_verified_passkey = false;
        let mut categories: Vec<FactorCategory> = Vec::new();
        for p in proofs {
            any = true;
            user_verified_passkey |= p.factor == Factor::Passkey && p.user_verified;
            for c in p.factor.categories(p.user_verified) {
                if !categories.contains(c) {
                    categories.push(*c);
                }
            }
        }
        match self {
            LevelRule::AnyOneFactor => any,
            LevelRule::TwoCategoriesOrUserVerifiedPasskey => categories.len() >= 2,
            LevelRule::UserVerifiedPasskey => user_verified_passkey,
        }
    }

    /// Whether a proof of `factor` can count toward this rule (used to pick what to re-prove).
    pub fn counts(self, factor: Factor) -> bool {
        match self {
            LevelRule::UserVerifiedPasskey => factor == Factor::Passkey,
            LevelRule::AnyOneFactor | LevelRule::TwoCategoriesOrUserVerifiedPasskey => true,
        }
    }

    /// Passkey ceremonies for this rule must require user verification (PIN or biometric).
    pub fn needs_user_verification(self) -> bool {
        self == LevelRule::UserVerifiedPasskey
    }
}

/// One validated level. Fields are private so a `Level` is only ever built through validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Level {
    name: String,
    rank: u8,
    rule: LevelRule,
    max_age_secs: Option<i64>,
    aliases: Vec<String>,
    enroll_on_demand: Vec<Factor>,
}

impl Level {
    /// The canonical `acr` value.
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn rank(&self) -> u8 {
        self.rank
    }
    pub fn rule(&self) -> LevelRule {
        self.rule
    }
    /// How long each proof counts toward this level (per factor, independent of a request's `max_age`).
    pub fn max_age_secs(&self) -> Option<i64> {
        self.max_age_secs
    }
    /// Other spellings accepted in requests (PAPE, REFEDS, NIST-style, `phr`…).
    pub fn aliases(&self) -> &[String] {
        &self.aliases
    }
    /// Factors a user may enrol inside a step-up to this level, after proving what they have.
    pub fn enroll_on_demand(&self) -> &[Factor] {
        &self.enroll_on_demand
    }

    /// Whether `value` names this level (canonical name or an alias; exact, case-sensitive match).
    pub fn answers_to(&self, value: &str) -> bool {
        self.name == value || self.aliases.iter().any(|a| a == value)
    }

    /// Whether `proof` is still recent enough to count toward this level at `now`.
    pub fn is_fresh(&self, proof: &ProvenFactor, now: Timestamp) -> bool {
        self.max_age_secs.is_none_or(|max| now - proof.proven_at <= max)
    }

    /// Whether the proofs that are fresh enough for this level satisfy its rule.
    pub fn satisfied_by(&self, proofs: &[ProvenFactor], now: Timestamp) -> bool {
        self.rule.satisfied_by(proofs.iter().filter(|p| self.is_fresh(p, now)))
    }

    /// The first instant at which these proofs stop satisfying this level: `None` when the level
    /// has no freshness (it never lapses on its own), `Some(now)` when it is not satisfied now.
    /// Access tokens claiming the level cap their `exp` here (DESIGN §3.6).
    pub fn lapses_at(&self, proofs: &[ProvenFactor], now: Timestamp) -> Option<Timestamp> {
        let Some(max) = self.max_age_secs else {
            return if self.satisfied_by(proofs, now) { None } else { Some(now) };
        };
        // A proof is fresh through `proven_at + max`. Find the latest such expiry `e` for which the
        // proofs fresh at `e` still satisfy the rule: the level holds through `e`, lapses at `e + 1`.
        let mut expiries: Vec<Timestamp> =
            proofs.iter().filter(|p| self.is_fresh(p, now)).map(|p| p.proven_at + max).collect();
        expiries.sort_unstable_by(|a, b| b.cmp(a));
        expiries.dedup();
        expiries
            .into_iter()
            .find(|&e| self.rule.satisfied_by(proofs.iter().filter(|p| p.proven_at + max >= e)))
            .map_or(Some(now), |e| Some(e + 1))
    }
}

/// The config form of one level (`[[levels]]` in config/ladder.toml). Unvalidated until
/// [`Levels::from_config`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelConfig {
    #[serde(alias = "acr")]
    pub name: String,
    pub rank: u8,
    pub rule: LevelRule,
    #[serde(default)]
    pub max_age_secs: Option<i64>,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub enroll_on_demand: Vec<Factor>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LevelsError {
    #[error("at least one level must be configured")]
    Empty,
    #[error("`{0}` is not a usable acr value (empty, or contains whitespace or control characters)")]
    InvalidName(String),
    #[error("acr value `{0}` is used by more than one level or alias")]
    DuplicateName(String),
    #[error("rank {0} is used by more than one level")]
    DuplicateRank(u8),
    #[error("level `{level}`: max_age_secs must be positive, got {secs}")]
    InvalidMaxAge { level: String, secs: i64 },
    #[error("level `{0}`: recovery codes come with TOTP enrolment and cannot be enrolled on their own")]
    RecoveryCodeEnrolment(String),
}

/// The configured levels: non-empty, names and aliases unique, ranks unique, ordered by rank.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<LevelConfig>", into = "Vec<LevelConfig>")]
pub struct Levels {
    by_rank: Vec<Level>,
}

impl Levels {
    /// The DESIGN §1 table, as shipped in config/ladder.toml.
    pub fn default_config() -> Vec<LevelConfig> {
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        vec![
            LevelConfig {
                name: LOA1.into(),
                rank: 1,
                rule: LevelRule::AnyOneFactor,
                max_age_secs: None,
                aliases: vec![],
                enroll_on_demand: vec![],
            },
            LevelConfig {
                name: LOA2.into(),
                rank: 2,
                rule: LevelRule::TwoCategoriesOrUserVerifiedPasskey,
                max_age_secs: None,
                aliases: strings(&[
                    "http://schemas.openid.net/pape/policies/2007/06/multi-factor",
                    "https://refeds.org/profile/mfa",
                    "http://idmanagement.gov/ns/assurance/aal/2",
                ]),
                enroll_on_demand: vec![Factor::Totp],
            },
            LevelConfig {
                name: LOA3.into(),
                rank: 3,
                rule: LevelRule::UserVerifiedPasskey,
                max_age_secs: Some(15 * 60),
                aliases: strings(&["phr", "phrh", "http://idmanagement.gov/ns/assurance/aal/3"]),
                enroll_on_demand: vec![Factor::Passkey],
            },
        ]
    }

    /// These levels with `factor` removed from every level's enrol-on-demand list (e.g. passkeys
    /// when the server has no WebAuthn relying party).
    pub fn without_enrolment(&self, factor: Factor) -> Levels {
        let mut by_rank = self.by_rank.clone();
        for level in &mut by_rank {
            level.enroll_on_demand.retain(|f| *f != factor);
        }
        Levels { by_rank }
    }

    /// The DESIGN §1 levels.
    pub fn defaults() -> Levels {
        Levels { by_rank: Self::default_config().into_iter().map(Level::from_config).collect() }
    }

    pub fn from_config(config: Vec<LevelConfig>) -> Result<Levels, LevelsError> {
        if config.is_empty() {
            return Err(LevelsError::Empty);
        }
        let mut seen_names: Vec<&str> = Vec::new();
        let mut seen_ranks: Vec<u8> = Vec::new();
        for c in &config {
            for value in std::iter::once(&c.name).chain(&c.aliases) {
                if value.is_empty() || value.chars().any(|ch| ch.is_whitespace() || ch.is_control()) {
                    return Err(LevelsError::InvalidName(value.clone()));
                }
                if seen_names.contains(&value.as_str()) {
                    return Err(LevelsError::DuplicateName(value.clone()));
                }
                seen_names.push(value);
            }
            if seen_ranks.contains(&c.rank) {
                return Err(LevelsError::DuplicateRank(c.rank));
            }
            seen_ranks.push(c.rank);
            if let Some(secs) = c.max_age_secs.filter(|s| *s <= 0) {
                return Err(LevelsError::InvalidMaxAge { level: c.name.clone(), secs });
            }
            if c.enroll_on_demand.contains(&Factor::RecoveryCode) {
                return Err(LevelsError::RecoveryCodeEnrolment(c.name.clone()));
            }
        }
        let mut by_rank: Vec<Level> = config.into_iter().map(Level::from_config).collect();
        by_rank.sort_by_key(|l| l.rank);
        Ok(Levels { by_rank })
    }

    /// The level a requested value names (canonical name or alias), if any.
    pub fn resolve(&self, value: &str) -> Option<&Level> {
        self.by_rank.iter().find(|l| l.answers_to(value))
    }

    /// Levels from lowest to highest rank.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Level> {
        self.by_rank.iter()
    }

    /// The lowest level: the target when nothing asks for more.
    pub fn lowest(&self) -> &Level {
        // Non-empty by construction (`from_config` refuses an empty list).
        &self.by_rank[0]
    }

    /// The highest-ranked level these proofs satisfy, each level judging freshness by its own rule.
    pub fn achieved(&self, proofs: &[ProvenFactor], now: Timestamp) -> Option<&Level> {
        self.by_rank.iter().rev().find(|l| l.satisfied_by(proofs, now))
    }

    /// For discovery's `acr_values_supported`: every canonical name, then every alias.
    pub fn acr_values_supported(&self) -> Vec<&str> {
        let names = self.by_rank.iter().map(|l| l.name.as_str());
        let aliases = self.by_rank.iter().flat_map(|l| l.aliases.iter().map(String::as_str));
        names.chain(aliases).collect()
    }
}

impl Default for Levels {
    fn default() -> Self {
        Levels::defaults()
    }
}

impl TryFrom<Vec<LevelConfig>> for Levels {
    type Error = LevelsError;
    fn try_from(config: Vec<LevelConfig>) -> Result<Self, Self::Error> {
        Levels::from_config(config)
    }
}

impl From<Levels> for Vec<LevelConfig> {
    fn from(levels: Levels) -> Self {
        levels.by_rank.into_iter().map(Level::into_config).collect()
    }
}

impl Level {
    fn from_config(c: LevelConfig) -> Level {
        Level {
            name: c.name,
            rank: c.rank,
            rule: c.rule,
            max_age_secs: c.max_age_secs,
            aliases: c.aliases,
            enroll_on_demand: c.enroll_on_demand,
        }
    }

    fn into_config(self) -> LevelConfig {
        LevelConfig {
            name: self.name,
            rank: self.rank,
            rule: self.rule,
            max_age_secs: self.max_age_secs,
            aliases: self.aliases,
            enroll_on_demand: self.enroll_on_demand,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use Factor::*;

    pub(crate) const NOW: Timestamp = 1_000_000;
    pub(crate) const MIN: i64 = 60;

    /// A proof `ago` seconds before NOW; passkeys are user-verified unless built with `bare_passkey`.
    pub(crate) fn p(factor: Factor, ago: i64) -> ProvenFactor {
        ProvenFactor { factor, proven_at: NOW - ago, user_verified: factor == Passkey }
    }
    pub(crate) fn bare_passkey(ago: i64) -> ProvenFactor {
        ProvenFactor { factor: Passkey, proven_at: NOW - ago, user_verified: false }
    }

    /// The default levels where loa:3 cannot be reached by enrolling a passkey on the spot: the
    /// tables about reachability and fallback are written against this operator choice.
    pub(crate) fn without_passkey_enrolment() -> Levels {
        let mut config = Levels::default_config();
        for c in &mut config {
            c.enroll_on_demand.retain(|f| *f != Passkey);
        }
        Levels::from_config(config).expect("valid")
    }

    #[test]
    fn defaults_are_the_design_table_and_pass_validation() {
        let levels = Levels::defaults();
        assert_eq!(Levels::from_config(Levels::default_config()), Ok(levels.clone()));
        let table: Vec<(&str, u8, LevelRule, Option<i64>)> =
            levels.iter().map(|l| (l.name(), l.rank(), l.rule(), l.max_age_secs())).collect();
        assert_eq!(
            table,
            [
                (LOA1, 1, LevelRule::AnyOneFactor, None),
                (LOA2, 2, LevelRule::TwoCategoriesOrUserVerifiedPasskey, None),
                (LOA3, 3, LevelRule::UserVerifiedPasskey, Some(900)),
            ]
        );
        assert_eq!(levels.lowest().name(), LOA1);
    }

    #[test]
    fn resolve_names_and_aliases() {
        let levels = Levels::defaults();
        let cases = [
            (LOA1, Some(LOA1)),
            (LOA2, Some(LOA2)),
            ("http://schemas.openid.net/pape/policies/2007/06/multi-factor", Some(LOA2)),
            ("https://refeds.org/profile/mfa", Some(LOA2)),
            ("http://idmanagement.gov/ns/assurance/aal/2", Some(LOA2)),
            ("phr", Some(LOA3)),
            ("phrh", Some(LOA3)),
            ("http://idmanagement.gov/ns/assurance/aal/3", Some(LOA3)),
            ("PHR", None),
            ("urn:ladder:loa:4", None),
            ("", None),
        ];
        for (value, want) in cases {
            assert_eq!(levels.resolve(value).map(Level::name), want, "value {value:?}");
        }
    }

    #[test]
    fn achieved_level_table() {
        let levels = Levels::defaults();
        let cases: &[(&str, &[ProvenFactor], Option<&str>)] = &[
            ("nothing proven", &[], None),
            ("password", &[p(Password, 0)], Some(LOA1)),
            ("totp alone", &[p(Totp, 0)], Some(LOA1)),
            ("password + totp", &[p(Password, 0), p(Totp, 0)], Some(LOA2)),
            ("password + recovery code", &[p(Password, 0), p(RecoveryCode, 0)], Some(LOA2)),
            ("two OTP channels are one category", &[p(Totp, 0), p(RecoveryCode, 0)], Some(LOA1)),
            ("password twice is one category", &[p(Password, 0), p(Password, 5)], Some(LOA1)),
            ("bare passkey", &[bare_passkey(0)], Some(LOA1)),
            ("bare passkey + password", &[bare_passkey(0), p(Password, 0)], Some(LOA2)),
            ("bare passkey + totp: both possession", &[bare_passkey(0), p(Totp, 0)], Some(LOA1)),
            ("fresh user-verified passkey", &[p(Passkey, 0)], Some(LOA3)),
            ("passkey at exactly 15 min", &[p(Passkey, 15 * MIN)], Some(LOA3)),
            ("passkey 15 min + 1 s lapses to loa:2", &[p(Passkey, 15 * MIN + 1)], Some(LOA2)),
            ("old password + old totp: loa:2 has no freshness", &[p(Password, 86400), p(Totp, 86400)], Some(LOA2)),
            ("stale passkey + fresh password: loa:2 only", &[p(Passkey, 20 * MIN), p(Password, 0)], Some(LOA2)),
        ];
        for (name, proofs, want) in cases {
            assert_eq!(levels.achieved(proofs, NOW).map(Level::name), *want, "{name}");
        }
    }

    #[test]
    fn lapse_table() {
        let levels = Levels::defaults();
        let loa2 = levels.resolve(LOA2).expect("default level");
        let loa3 = levels.resolve(LOA3).expect("default level");
        let cases: &[(&str, &Level, &[ProvenFactor], Option<Timestamp>)] = &[
            ("no freshness: never lapses", loa2, &[p(Password, 0), p(Totp, 0)], None),
            ("not met: lapsed already", loa2, &[p(Password, 0)], Some(NOW)),
            ("passkey 5 min ago: 10 min left", loa3, &[p(Passkey, 5 * MIN)], Some(NOW + 10 * MIN + 1)),
            ("the newest passkey decides", loa3, &[p(Passkey, 14 * MIN), p(Passkey, MIN)], Some(NOW + 14 * MIN + 1)),
            ("bare passkey does not count", loa3, &[bare_passkey(0)], Some(NOW)),
            ("stale passkey: lapsed", loa3, &[p(Passkey, 16 * MIN)], Some(NOW)),
        ];
        for (name, level, proofs, want) in cases {
            assert_eq!(level.lapses_at(proofs, NOW), *want, "{name}");
        }
    }

    #[test]
    fn lapse_with_freshness_needing_two_proofs() {
        // An operator level "two categories within 10 minutes": it holds until the older of the
        // best pair lapses.
        let levels = Levels::from_config(vec![LevelConfig {
            name: "fresh-mfa".into(),
            rank: 1,
            rule: LevelRule::TwoCategoriesOrUserVerifiedPasskey,
            max_age_secs: Some(10 * MIN),
            aliases: vec![],
            enroll_on_demand: vec![],
        }])
        .expect("valid config");
        let level = levels.lowest();
        let proofs = [p(Password, 8 * MIN), p(Totp, 2 * MIN), p(RecoveryCode, 0)];
        assert_eq!(level.lapses_at(&proofs, NOW), Some(NOW + 2 * MIN + 1));
    }

    #[test]
    fn config_validation_table() {
        let base = Levels::default_config;
        let with = |f: &dyn Fn(&mut Vec<LevelConfig>)| {
            let mut c = base();
            f(&mut c);
            Levels::from_config(c)
        };
        let cases: Vec<(&str, Result<(), LevelsError>)> = vec![
            ("defaults", with(&|_| {}).map(drop)),
            ("empty", Levels::from_config(vec![]).map(drop)),
            ("duplicate rank", with(&|c| c[1].rank = 1).map(drop)),
            ("name reused", with(&|c| c[1].name = LOA1.into()).map(drop)),
            ("alias equal to a name", with(&|c| c[2].aliases.push(LOA2.into())).map(drop)),
            ("alias on two levels", with(&|c| c[1].aliases.push("phr".into())).map(drop)),
            ("whitespace in a name", with(&|c| c[0].name = "loa 1".into()).map(drop)),
            ("zero freshness", with(&|c| c[2].max_age_secs = Some(0)).map(drop)),
            ("recovery code enrolment", with(&|c| c[1].enroll_on_demand.push(RecoveryCode)).map(drop)),
        ];
        let want = [
            Ok(()),
            Err(LevelsError::Empty),
            Err(LevelsError::DuplicateRank(1)),
            Err(LevelsError::DuplicateName(LOA1.into())),
            Err(LevelsError::DuplicateName(LOA2.into())),
            Err(LevelsError::DuplicateName("phr".into())),
            Err(LevelsError::InvalidName("loa 1".into())),
            Err(LevelsError::InvalidMaxAge { level: LOA3.into(), secs: 0 }),
            Err(LevelsError::RecoveryCodeEnrolment(LOA2.into())),
        ];
        for ((name, got), want) in cases.into_iter().zip(want) {
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn config_sorts_by_rank_and_deserializes() {
        let json = r#"[
            {"acr": "high", "rank": 9, "rule": "user_verified_passkey", "max_age_secs": 300},
            {"name": "low", "rank": 1, "rule": "any_one_factor", "aliases": ["basic"]}
        ]"#;
        let levels: Levels = serde_json::from_str(json).expect("valid levels");
        let names: Vec<&str> = levels.iter().map(Level::name).collect();
        assert_eq!(names, ["low", "high"]);
        assert_eq!(levels.acr_values_supported(), ["low", "high", "basic"]);
        let dup = r#"[{"name": "a", "rank": 1, "rule": "any_one_factor"},
                      {"name": "a", "rank": 2, "rule": "any_one_factor"}]"#;
        assert!(serde_json::from_str::<Levels>(dup).is_err());
        let typo = r#"[{"name": "a", "rank": 1, "rule": "any_one_factor", "max_age": 5}]"#;
        assert!(serde_json::from_str::<Levels>(typo).is_err(), "unknown keys are refused");
    }
}
