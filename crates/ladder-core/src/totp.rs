//! TOTP (RFC 6238) as authenticator apps expect it: SHA-1, 6 digits, 30-second steps, ±1 step of
//! drift. The secret's bytes come from the caller (randomness is injected); replay protection is
//! the caller's too: [`check`] returns the matched time step, and a step already accepted for the
//! user must be refused.

use totp_rs::{Algorithm, Builder, Totp};

use crate::clock::Timestamp;

pub const SECRET_BYTES: usize = 20;
const DIGITS: u8 = 6;
const STEP_SECS: u64 = 30;
const SKEW_STEPS: u16 = 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TotpError {
    #[error("invalid TOTP parameters: {0}")]
    Build(String),
    #[error("cannot render the enrolment QR code: {0}")]
    Qr(String),
}

fn totp(secret: &[u8], issuer: &str, account: &str) -> Result<Totp, TotpError> {
    // ':' separates issuer and account in otpauth labels (Key Uri Format), so it cannot appear in either.
    let clean = |s: &str| s.replace(':', " ");
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS)
        .with_skew(SKEW_STEPS)
        .with_step_duration(STEP_SECS)
        .with_secret(secret.to_vec())
        .with_issuer(Some(clean(issuer)))
        .with_account_name(clean(account))
        .build()
        .map_err(|e| TotpError::Build(e.to_string()))
}

/// The time step a code matches (within ±1 step of `now`), if any. Spaces in the code are ignored.
pub fn check(secret: &[u8], code: &str, now: Timestamp) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let t = totp(secret, "x", "x").ok()?;
    t.check(&code, u64::try_from(now).ok()?).and_then(|step| i64::try_from(step).ok())
}

/// The current code (for tests and for showing an example; never logged).
pub fn generate(secret: &[u8], now: Timestamp) -> Option<String> {
    let t = totp(secret, "x", "x").ok()?;
    Some(t.generate(u64::try_from(now).ok()?).to_string())
}

/// The secret bytes from its base32 text (as shown on the enrolment page), if well-formed.
pub fn secret_from_base32(text: &str) -> Option<Vec<u8>> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    totp_rs::Secret::try_from_base32(compact).ok().map(|s| AsRef::<[u8]>::as_ref(&s).to_vec())
}

/// What an enrolment page shows: the otpauth:// URI, a QR code of it (PNG, base64), and the secret
/// as base32 text for typing by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolment {
    pub uri: String,
    pub qr_png_base64: String,
    pub secret_base32: String,
}

/// "ABCD EFGH …": easier to read and type; authenticator apps ignore the spaces.
fn group(base32: &str) -> String {
    let chars: Vec<char> = base32.chars().collect();
    chars.chunks(4).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join(" ")
}

pub fn enrolment(secret: &[u8], issuer: &str, account: &str) -> Result<Enrolment, TotpError> {
    let t = totp(secret, issuer, account)?;
    Ok(Enrolment {
        uri: t.to_url().map_err(|e| TotpError::Build(e.to_string()))?,
        qr_png_base64: t.to_qr_base64().map_err(|e| TotpError::Qr(e.to_string()))?,
        secret_base32: group(&totp_rs::Secret::from(secret.to_vec()).to_base32()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8; 20] = b"12345678901234567890";

    #[test]
    fn rfc6238_sha1_vectors_truncated_to_six_digits() {
        // RFC 6238 Appendix B (8 digits) → the last 6 digits.
        for (t, code) in [(59, "287082"), (1_111_111_109, "081804"), (1_234_567_890, "005924"), (2_000_000_000, "279037")] {
            assert_eq!(generate(SECRET, t).as_deref(), Some(code), "t={t}");
            assert_eq!(check(SECRET, code, t), Some(t / 30));
        }
    }

    #[test]
    fn drift_of_one_step_is_accepted_and_two_is_not() {
        let now = 1_800_000_000;
        let code = generate(SECRET, now).unwrap();
        assert_eq!(check(SECRET, &code, now + 30), Some(now / 30));
        assert_eq!(check(SECRET, &code, now - 30), Some(now / 30));
        assert_eq!(check(SECRET, &code, now + 60), None);
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert_eq!(check(SECRET, &spaced, now), Some(now / 30));
        assert_eq!(check(SECRET, "12345", now), None);
        assert_eq!(check(SECRET, "abcdef", now), None);
    }

    #[test]
    fn enrolment_has_uri_qr_and_base32() {
        let e = enrolment(SECRET, "Ladder", "alice:example").unwrap();
        assert!(e.uri.starts_with("otpauth://totp/Ladder:alice%20example?"), "{}", e.uri);
        assert!(e.uri.contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"));
        assert_eq!(e.secret_base32, "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ");
        assert_eq!(secret_from_base32(&e.secret_base32).as_deref(), Some(&SECRET[..]));
        assert!(!e.qr_png_base64.is_empty());
    }
}
