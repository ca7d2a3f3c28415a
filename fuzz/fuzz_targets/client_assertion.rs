//! `private_key_jwt` client assertions and Basic credentials: reading the unverified issuer, and
//! verifying against a client's JWKS. Forged input must be refused, never panic.
#![no_main]

use ladder_server::client_auth::{parse_basic, unverified_claim};
use ladder_server::jwt::verify_with_jwks;
use libfuzzer_sys::fuzz_target;

/// An EC P-256 public key (RFC 7517 appendix A.1), as a client would register it.
const JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM","kid":"1"}]}"#;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = unverified_claim(text, "iss");
    let _ = unverified_claim(text, "sub");
    assert!(verify_with_jwks(JWKS, text).is_err(), "a forged assertion verified");
    let _ = verify_with_jwks(text, "e30.e30.e30");
    let _ = parse_basic(text);
});
