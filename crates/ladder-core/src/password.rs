//! Password hashing with argon2id at the OWASP-recommended parameters (m=19 MiB, t=2, p=1).
//! Slow on purpose: callers run these on a bounded blocking pool, never on an async worker.
//!
//! Verification always uses the parameters stored in the PHC string. Builds with the cargo feature
//! `bench-insecure-hashing` (never a default) can also *create* hashes at a trivial cost, for
//! benchmarks that measure protocol cost rather than argon2: see [`bench_insecure`].

use std::sync::Mutex;

use argon2::password_hash::phc::{Output, PasswordHash};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHasher, Version};

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
///
/// This is argon2's own verification (hash with the stored algorithm, version, parameters and
/// salt; compare the outputs in constant time), but in working memory reused from [`BLOCKS`]:
/// allocating 19 MiB per verification made every blocking thread's malloc arena keep its own
/// copy (glibc raises its mmap threshold after the first free), so RSS grew past 1 GB under a
/// login load, and zeroing fresh memory cost a tenth of each verification.
pub fn verify_password(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else { return false };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else { return false };
    let Ok(params) = Params::try_from(&parsed) else { return false };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else { return false };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let mut out = [0u8; Output::MAX_LENGTH];
    let Some(out) = out.get_mut(..expected.len()) else { return false };
    let mut blocks = take_blocks(params.block_count());
    let hashed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
        password.as_bytes(),
        salt,
        &mut *out,
        &mut blocks[..],
    );
    give_back(blocks);
    // `Output`'s equality is constant-time.
    hashed.is_ok() && Output::new(out).is_ok_and(|computed| &computed == expected)
}

/// Idle argon2 working memories, reused by the next verification of the same cost. At most as
/// many exist as verifications ran at once (the server bounds that: `security.hashing_concurrency`).
static BLOCKS: Mutex<Vec<Vec<Block>>> = Mutex::new(Vec::new());
/// Idle memories kept beyond this are freed (more would mean a hashing concurrency above it).
const MAX_IDLE_BLOCKS: usize = 16;

fn take_blocks(count: usize) -> Vec<Block> {
    let mut idle = BLOCKS.lock().unwrap_or_else(|p| p.into_inner());
    match idle.iter().position(|b| b.len() == count) {
        Some(i) => idle.swap_remove(i),
        None => {
            drop(idle);
            vec![Block::new(); count]
        }
    }
}

fn give_back(blocks: Vec<Block>) {
    let mut idle = BLOCKS.lock().unwrap_or_else(|p| p.into_inner());
    if idle.len() < MAX_IDLE_BLOCKS {
        idle.push(blocks);
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

    #[test]
    fn verifies_what_the_argon2_crate_verifies() {
        use argon2::PasswordVerifier;
        let h = hash_password("pässwörd").unwrap();
        let parsed = PasswordHash::new(&h).unwrap();
        assert!(Argon2::default().verify_password("pässwörd".as_bytes(), &parsed).is_ok());
        assert!(verify_password("pässwörd", &h));
        // Reused memory gives the same answers, for either password, in any order.
        for _ in 0..2 {
            assert!(!verify_password("passwörd", &h));
            assert!(verify_password("pässwörd", &h));
        }
        // Another cost and algorithm, and tampered hashes.
        let params = Params::new(8, 1, 1, None).unwrap();
        let small = Argon2::new(Algorithm::Argon2id, Version::V0x13, params).hash_password(b"password").unwrap().to_string();
        let small = small.as_str();
        assert!(verify_password("password", small));
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, Params::new(16, 2, 1, None).unwrap());
        assert!(verify_password("password", &argon2i.hash_password(b"password").unwrap().to_string()));
        assert!(!verify_password("password", &small.replace("m=8", "m=9")));
        assert!(!verify_password("password", &small.replace("argon2id", "argon2i")));
        assert!(!verify_password("pässwörd", &h.replace("$v=19", "$v=16")));
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
