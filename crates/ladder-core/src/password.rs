//! Password hashing with argon2id at the OWASP-recommended parameters (m=19 MiB, t=2, p=1).
//! Slow on purpose: callers run these on a bounded blocking pool, never on an async worker.
//!
//! Verification always uses the parameters stored in the PHC string. Builds with the cargo feature
//! `bench-insecure-hashing` (never a default) can also *create* hashes at a trivial cost, for
//! benchmarks that measure protocol cost rather than argon2: see [`bench_insecure`].

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::{PasswordHasher, PasswordVerifier};

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// The hasher for new passwords: argon2id at the defaults above, unless a benchmark build turned
/// on [`bench_insecure`].
fn hasher() -> Argon2<'static> {
    #[cfg(feature = "bench-insecure-hashing")]
    if bench_insecure::is_enabled() {
        return bench_insecure::hasher();
    }
    Argon2::default()
}

pub fn hash_password(password: &str) -> Result<String, HashError> {
    hasher()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| HashError(e.to_string()))
}

/// True when `password` matches the PHC string. A malformed stored hash never matches.
pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// A hash of a random password, verified against when the username is unknown so that a
/// failed login costs the same time whether or not the account exists (no user enumeration).
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("ladder-dummy-password-for-timing").unwrap_or_default())
}

/// Insecure, benchmark-only password hashing: argon2id with m=8 KiB, t=1, p=1 (microseconds
/// instead of tens of milliseconds), so a load test measures the protocol and not argon2.
///
/// Compiled only with the cargo feature `bench-insecure-hashing`, which no default build enables;
/// even then it stays off until [`enable`] is called (the server does so only for the setting
/// `security.bench_insecure_hashing = true`, a key that ordinary builds refuse as unknown). It
/// affects hashes created while it is on (new users, password changes, the dummy hash for unknown
/// users); verification always follows the parameters stored in each hash.
#[cfg(feature = "bench-insecure-hashing")]
pub mod bench_insecure {
    use std::sync::atomic::{AtomicBool, Ordering};

    use argon2::{Algorithm, Argon2, Params, Version};

    static ENABLED: AtomicBool = AtomicBool::new(false);

    /// Turns insecure hashing on for this process. Irreversible; say so loudly where it is called.
    pub fn enable() {
        ENABLED.store(true, Ordering::SeqCst);
    }

    pub fn is_enabled() -> bool {
        ENABLED.load(Ordering::SeqCst)
    }

    pub(super) fn hasher() -> Argon2<'static> {
        let params = Params::new(Params::MIN_M_COST, 1, 1, None).unwrap_or_default();
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse", &h));
        assert!(!verify_password("correct horse", "not-a-phc-string"));
    }

    #[cfg(feature = "bench-insecure-hashing")]
    #[test]
    fn bench_insecure_hashes_are_cheap_and_still_verify() {
        assert!(hash_password("x").unwrap().contains("m=19456,t=2,p=1"));
        bench_insecure::enable();
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{h}");
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse", &h));
    }
}
