//! Recovery codes: single-use, shown once, typed by hand. Each carries 80 bits (16 base32
//! characters, grouped in fours) so that a fast hash of it, salted with the user id, is safe at rest.

pub const COUNT: usize = 10;
/// Random bytes the caller supplies per code.
pub const BYTES_PER_CODE: usize = 10;

/// Crockford's base32 alphabet: no i, l, o or u, so nothing is misread.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Formats 10 random bytes as `abcd-efgh-jkmn-pqrs`.
pub fn format_code(random: &[u8; BYTES_PER_CODE]) -> String {
    // 80 bits → 16 groups of 5 bits.
    let mut bits: u128 = 0;
    for b in random {
        bits = (bits << 8) | u128::from(*b);
    }
    let chars: Vec<char> = (0..16).rev().map(|i| ALPHABET[((bits >> (i * 5)) & 31) as usize] as char).collect();
    chars.chunks(4).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join("-")
}

/// The canonical form of what a user typed: lower case, no spaces or dashes.
pub fn normalize(typed: &str) -> String {
    typed.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_lowercase()).collect()
}

/// Whether `typed` has the shape of a recovery code at all (so a TOTP code is never looked up).
pub fn looks_like_code(typed: &str) -> bool {
    normalize(typed).len() == 16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_grouped_and_normalize() {
        let code = format_code(&[0xff; 10]);
        assert_eq!(code.len(), 19);
        assert_eq!(code.matches('-').count(), 3);
        let other = format_code(&[0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x10, 0x32]);
        assert_ne!(code, other);
        assert_eq!(format_code(&[0; 10]), "0000-0000-0000-0000");
        assert_eq!(format_code(&[0xff; 10]), "zzzz-zzzz-zzzz-zzzz");
        assert_eq!(normalize(" ABCD-efgh jkmn-PQRS "), "abcdefghjkmnpqrs");
        assert!(looks_like_code("abcd-efgh-jkmn-pqrs"));
        assert!(!looks_like_code("123456"));
    }
}
