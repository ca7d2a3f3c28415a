//! Small cryptographic helpers: CSPRNG tokens, SHA-256 for high-entropy secrets, constant-time
//! comparison, and AES-256-GCM under the server key for secrets kept at rest.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use openssl::symm::{Cipher, decrypt_aead, encrypt_aead};
use secrecy::{ExposeSecret, SecretSlice};

/// A random URL-safe token carrying `bytes` bytes of CSPRNG entropy (≥ 16 for anything guessable).
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    // rand_bytes only fails when the OS entropy source is broken; nothing safe can continue then.
    openssl::rand::rand_bytes(&mut buf).expect("the operating system's CSPRNG failed");
    B64.encode(buf)
}

/// A random identifier people type as a command-line argument (client ids, key ids): like
/// `random_token`, but never starting with `-`, which a shell tool would take for an option.
pub fn random_identifier(bytes: usize) -> String {
    loop {
        let id = random_token(bytes);
        if !id.starts_with('-') {
            return id;
        }
    }
}

/// A new client secret. People pass it as a command-line argument as often as a client id, so it
/// never begins with `-` either (`random_identifier`).
pub fn new_client_secret() -> String {
    random_identifier(32)
}

/// Hex SHA-256: how generated secrets (client secrets, codes, session tokens) are stored. They
/// carry ≥ 128 bits of entropy, so a slow hash would add latency and no security.
pub fn sha256_hex(input: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(64);
    for b in openssl::sha::sha256(input.as_bytes()) {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 0x0f)] as char);
    }
    out
}

/// A new bearer secret kept by its key (authorization codes, refresh tokens, session and device
/// cookies): a time-ordered id, a dot, and 32 random bytes. Its key (`secret_key`) starts with the
/// same id, so each new row's index entry lands beside the last one, not on a random page of the
/// index (a page a commit would then write for that row alone).
pub fn new_keyed_secret() -> String {
    new_ordered_token(32)
}

/// A time-ordered id, a dot, and `bytes` random bytes: an unguessable identifier whose rows are
/// indexed in the order they were made (interactions).
pub fn new_ordered_token(bytes: usize) -> String {
    format!("{}.{}", ladder_store::new_sequential_id(), random_token(bytes))
}

/// The stored key of a bearer secret: `id.` and the SHA-256 hex of the random part for one made by
/// `new_keyed_secret`, else (anything else presented, or secrets issued before keyed ones) the
/// SHA-256 hex of the whole. The key reveals no more of the secret than a plain hash does.
pub fn secret_key(secret: &str) -> String {
    match secret.split_once('.') {
        Some((id, random)) if id.len() == 36 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') => {
            format!("{id}.{}", sha256_hex(random))
        }
        _ => sha256_hex(secret),
    }
}

/// base64url(SHA-256(input)): the PKCE S256 transform (RFC 7636 §4.2).
pub fn s256(input: &str) -> String {
    B64.encode(openssl::sha::sha256(input.as_bytes()))
}

/// Compares secrets without leaking, through timing, how much of them matched.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && openssl::memcmp::eq(a.as_bytes(), b.as_bytes())
}

/// The key that encrypts secrets at rest (signing keys, TOTP secrets). Shared by every node.
#[derive(Clone)]
pub struct ServerKey(SecretSlice<u8>);

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the server key must be 32 bytes, base64 or base64url encoded")]
    Malformed,
    #[error("decryption failed: wrong server key or corrupt data")]
    Decrypt,
    #[error("encryption failed: {0}")]
    Encrypt(String),
}

impl ServerKey {
    pub fn generate() -> (ServerKey, String) {
        let encoded = random_token(32);
        let key = ServerKey::from_encoded(&encoded).expect("a freshly generated key parses");
        (key, encoded)
    }

    pub fn from_encoded(encoded: &str) -> Result<ServerKey, KeyError> {
        let trimmed = encoded.trim();
        let bytes = B64
            .decode(trimmed.trim_end_matches('='))
            .or_else(|_| base64::engine::general_purpose::STANDARD.decode(trimmed))
            .map_err(|_| KeyError::Malformed)?;
        if bytes.len() != 32 {
            return Err(KeyError::Malformed);
        }
        Ok(ServerKey(bytes.into()))
    }

    /// base64url(nonce ‖ ciphertext ‖ tag); `context` is bound as associated data so a value
    /// cannot be moved to another field.
    pub fn encrypt(&self, context: &str, plaintext: &[u8]) -> Result<String, KeyError> {
        let mut nonce = [0u8; 12];
        openssl::rand::rand_bytes(&mut nonce).map_err(|e| KeyError::Encrypt(e.to_string()))?;
        let mut tag = [0u8; 16];
        let ct = encrypt_aead(
            Cipher::aes_256_gcm(),
            self.0.expose_secret(),
            Some(&nonce),
            context.as_bytes(),
            plaintext,
            &mut tag,
        )
        .map_err(|e| KeyError::Encrypt(e.to_string()))?;
        let mut out = Vec::with_capacity(12 + ct.len() + 16);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out.extend_from_slice(&tag);
        Ok(B64.encode(out))
    }

    pub fn decrypt(&self, context: &str, sealed: &str) -> Result<Vec<u8>, KeyError> {
        let raw = B64.decode(sealed).map_err(|_| KeyError::Decrypt)?;
        if raw.len() < 28 {
            return Err(KeyError::Decrypt);
        }
        let (nonce, rest) = raw.split_at(12);
        let (ct, tag) = rest.split_at(rest.len() - 16);
        decrypt_aead(Cipher::aes_256_gcm(), self.0.expose_secret(), Some(nonce), context.as_bytes(), ct, tag)
            .map_err(|_| KeyError::Decrypt)
    }
}

impl std::fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerKey(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_never_look_like_an_option() {
        // One in 64 tokens starts with '-': 2,000 draws all but surely include some.
        assert!((0..2000).any(|_| random_token(1).starts_with('-')));
        assert!((0..2000).all(|_| !random_identifier(1).starts_with('-')));
        assert!((0..2000).all(|_| !new_client_secret().starts_with('-')));
    }

    #[test]
    fn sha256_hex_matches_the_standard_vector() {
        assert_eq!(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn keyed_secrets_are_kept_under_their_id_and_the_hash_of_the_rest() {
        let (first, second) = (new_keyed_secret(), new_keyed_secret());
        let (id, random) = first.split_once('.').unwrap();
        assert_eq!(secret_key(&first), format!("{id}.{}", sha256_hex(random)));
        assert!(!secret_key(&first).contains(random), "the random part is never stored");
        assert!(secret_key(&first) < secret_key(&second), "keys sort in the order secrets were made");
        assert_eq!(B64.decode(random).unwrap().len(), 32);
        // Anything else, and secrets from before keyed ones, is kept by the hash of the whole.
        for other in ["abc", "a.b.c", "0190a5a4-0000-7000-8000-00000000000g.x", &first[1..]] {
            assert_eq!(secret_key(other), sha256_hex(other), "{other}");
        }
    }

    #[test]
    fn ordered_tokens_sort_in_the_order_they_were_made() {
        let tokens: Vec<String> = (0..500).map(|_| new_ordered_token(18)).collect();
        assert!(tokens.windows(2).all(|w| w[0] < w[1]), "not strictly increasing");
        let (_, random) = tokens[0].split_once('.').unwrap();
        assert_eq!(B64.decode(random).unwrap().len(), 18);
    }

    #[test]
    fn seal_and_open() {
        let (key, encoded) = ServerKey::generate();
        let sealed = key.encrypt("ctx", b"secret").unwrap();
        assert_eq!(ServerKey::from_encoded(&encoded).unwrap().decrypt("ctx", &sealed).unwrap(), b"secret");
        assert!(key.decrypt("other", &sealed).is_err());
        let (other, _) = ServerKey::generate();
        assert!(other.decrypt("ctx", &sealed).is_err());
    }

    #[test]
    fn pkce_s256_matches_rfc7636_appendix_b() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "abcd"));
    }
}
