//! ES256 (ECDSA on P-256 with SHA-256, RFC 7518 §3.4) signing for josekit's JWS layer, with the
//! digest signed by OpenSSL's ECDSA directly.
//!
//! josekit's own ES256 signer sets up an EVP signing context for every token, and under OpenSSL 3
//! that looks the algorithms up again each time: 36 µs a signature against 25 here, and every
//! authorization code exchange signs two tokens (`bench/RESULTS.md`). The arithmetic is the same
//! (EVP's ECDSA ends in the same `ECDSA_do_sign`, with its key- and message-derived nonce), and
//! josekit still builds the compact serialization around it. Verifying is left to josekit: there
//! the two scalar multiplications dwarf the context's cost.

use josekit::JoseError;
use josekit::jwk::Jwk;
use josekit::jwk::alg::ec::EcKeyPair;
use josekit::jws::{ES256, JwsAlgorithm, JwsSigner};
use openssl::ec::EcKey;
use openssl::ecdsa::EcdsaSig;
use openssl::pkey::Private;

/// Bytes in each half (r, then s) of a JWS ES256 signature.
const HALF: usize = 32;

fn signature_err(e: impl Into<anyhow::Error>) -> JoseError {
    JoseError::InvalidSignature(e.into())
}

fn key_err(e: impl Into<anyhow::Error>) -> JoseError {
    JoseError::InvalidKeyFormat(e.into())
}

#[derive(Clone)]
pub struct Es256Signer {
    key: EcKey<Private>,
    kid: Option<String>,
}

impl Es256Signer {
    /// From a private EC JWK, checked as josekit checks it (use, key_ops, alg, crv).
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, JoseError> {
        ES256.signer_from_jwk(jwk)?;
        let der = EcKeyPair::from_jwk(jwk)?.to_raw_private_key();
        Ok(Es256Signer { key: EcKey::private_key_from_der(&der).map_err(key_err)?, kid: jwk.key_id().map(str::to_owned) })
    }
}

impl std::fmt::Debug for Es256Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Es256Signer").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl JwsSigner for Es256Signer {
    fn algorithm(&self) -> &dyn JwsAlgorithm {
        &ES256
    }

    fn key_id(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    fn signature_len(&self) -> usize {
        2 * HALF
    }

    /// `r ‖ s`, each big-endian and left-padded to 32 bytes (RFC 7518 §3.4).
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, JoseError> {
        let sig = EcdsaSig::sign(&openssl::sha::sha256(message), &self.key).map_err(signature_err)?;
        let mut out = sig.r().to_vec_padded(HALF as i32).map_err(signature_err)?;
        out.extend(sig.s().to_vec_padded(HALF as i32).map_err(signature_err)?);
        Ok(out)
    }

    fn box_clone(&self) -> Box<dyn JwsSigner> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_pair() -> (Jwk, Jwk) {
        let pair = ES256.generate_key_pair().unwrap();
        let (mut private, mut public) = (pair.to_jwk_private_key(), pair.to_jwk_public_key());
        for jwk in [&mut private, &mut public] {
            jwk.set_key_id("k1");
            jwk.set_algorithm("ES256");
            jwk.set_key_use("sig");
        }
        (private, public)
    }

    /// A signature in the same format as josekit's: its verifier accepts ours. Many messages, so
    /// that some r or s begins with a zero byte (about one in 128 signatures) and is padded.
    #[test]
    fn josekit_verifies_our_signatures() {
        let (private, public) = key_pair();
        let signer = Es256Signer::from_jwk(&private).unwrap();
        let verifier = ES256.verifier_from_jwk(&public).unwrap();
        for i in 0..400 {
            let message = format!("header.payload-{i}");
            let sig = signer.sign(message.as_bytes()).unwrap();
            assert_eq!(sig.len(), 64);
            verifier.verify(message.as_bytes(), &sig).unwrap();
            assert!(verifier.verify(format!("header.payload-{i}!").as_bytes(), &sig).is_err());
        }
        assert_eq!(signer.key_id(), Some("k1"));
    }

    #[test]
    fn keys_are_checked_as_josekit_checks_them() {
        let (mut private, public) = key_pair();
        assert!(Es256Signer::from_jwk(&public).is_err(), "a public key cannot sign");
        private.set_key_use("enc");
        assert!(Es256Signer::from_jwk(&private).is_err());
    }
}
