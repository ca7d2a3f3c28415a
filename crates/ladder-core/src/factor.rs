//! Factors, their categories, and the `amr` values (RFC 8176) they produce.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use crate::clock::Timestamp;

/// One kind of proof a user can give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Factor {
    Password,
    Totp,
    Passkey,
    RecoveryCode,
}

/// Authentication factor categories (NIST SP 800-63B): two factors only count as "multi-factor"
/// when they come from different categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FactorCategory {
    Knowledge,
    Possession,
    Inherence,
}

impl Factor {
    pub const ALL: [Factor; 4] = [Factor::Password, Factor::Totp, Factor::Passkey, Factor::RecoveryCode];

    pub fn as_str(self) -> &'static str {
        match self {
            Factor::Password => "password",
            Factor::Totp => "totp",
            Factor::Passkey => "passkey",
            Factor::RecoveryCode => "recovery_code",
        }
    }

    /// The categories one proof of this factor establishes. A passkey performed with user
    /// verification (PIN or biometric on the authenticator) proves possession and inherence at once.
    pub fn categories(self, user_verified: bool) -> &'static [FactorCategory] {
        match (self, user_verified) {
            (Factor::Password, _) => &[FactorCategory::Knowledge],
            (Factor::Totp | Factor::RecoveryCode, _) => &[FactorCategory::Possession],
            (Factor::Passkey, false) => &[FactorCategory::Possession],
            (Factor::Passkey, true) => &[FactorCategory::Possession, FactorCategory::Inherence],
        }
    }

    /// RFC 8176 method values for one proof of this factor (without `mfa`, which depends on the set).
    pub fn amr(self, user_verified: bool) -> &'static [&'static str] {
        match (self, user_verified) {
            (Factor::Password, _) => &["pwd"],
            (Factor::Totp | Factor::RecoveryCode, _) => &["otp"],
            (Factor::Passkey, false) => &["hwk"],
            (Factor::Passkey, true) => &["hwk", "user"],
        }
    }
}

impl fmt::Display for Factor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown factor `{0}`")]
pub struct UnknownFactor(pub String);

impl FromStr for Factor {
    type Err = UnknownFactor;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Factor::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| UnknownFactor(s.to_owned()))
    }
}

/// One factor the session has proven, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvenFactor {
    pub factor: Factor,
    pub proven_at: Timestamp,
    /// For passkeys: the authenticator performed user verification.
    pub user_verified: bool,
}

/// The `amr` claim for a set of proofs: each method once, in a stable order, plus `mfa` when the
/// proofs span at least two independent categories.
pub fn amr_for(proofs: &[ProvenFactor]) -> Vec<String> {
    let mut methods: Vec<&'static str> = Vec::new();
    let mut categories: Vec<FactorCategory> = Vec::new();
    for p in proofs {
        for m in p.factor.amr(p.user_verified) {
            if !methods.contains(m) {
                methods.push(m);
            }
        }
        for c in p.factor.categories(p.user_verified) {
            if !categories.contains(c) {
                categories.push(*c);
            }
        }
    }
    const ORDER: [&str; 5] = ["pwd", "otp", "hwk", "user", "mfa"];
    if categories.len() >= 2 {
        methods.push("mfa");
    }
    methods.sort_by_key(|m| ORDER.iter().position(|o| o == m));
    methods.into_iter().map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proof(factor: Factor, user_verified: bool) -> ProvenFactor {
        ProvenFactor { factor, proven_at: 0, user_verified }
    }

    #[test]
    fn amr_table() {
        let cases: &[(&[ProvenFactor], &[&str])] = &[
            (&[proof(Factor::Password, false)], &["pwd"]),
            (&[proof(Factor::Password, false), proof(Factor::Totp, false)], &["pwd", "otp", "mfa"]),
            (&[proof(Factor::Totp, false), proof(Factor::RecoveryCode, false)], &["otp"]),
            (&[proof(Factor::Passkey, true)], &["hwk", "user", "mfa"]),
            (&[proof(Factor::Passkey, false)], &["hwk"]),
            (&[proof(Factor::Password, false), proof(Factor::Password, false)], &["pwd"]),
        ];
        for (proofs, want) in cases {
            assert_eq!(amr_for(proofs), *want, "proofs {proofs:?}");
        }
    }

    #[test]
    fn factor_names_round_trip() {
        for f in Factor::ALL {
            assert_eq!(f.as_str().parse::<Factor>(), Ok(f));
        }
        assert!("sms".parse::<Factor>().is_err());
    }
}
