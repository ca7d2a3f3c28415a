//! The relying-party side: discovery, PKCE, authorization URLs, token-endpoint calls, and reading
//! (not verifying) JWTs.

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::Value;
use url::Url;

#[derive(Debug, Clone)]
pub struct Discovery {
    pub authorization_endpoint: Url,
    pub token_endpoint: Url,
    pub userinfo_endpoint: Url,
    pub jwks_uri: Url,
    pub introspection_endpoint: Option<Url>,
    pub discovery_url: Url,
}

pub async fn discover(http: &reqwest::Client, issuer: &str) -> Result<Discovery> {
    let discovery_url = Url::parse(&format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/')))?;
    let doc: Value = http.get(discovery_url.clone()).send().await?.error_for_status()?.json().await?;
    let url = |name: &str| -> Result<Url> {
        let s = doc.get(name).and_then(Value::as_str).ok_or_else(|| anyhow!("discovery has no {name}"))?;
        Url::parse(s).with_context(|| format!("discovery {name}"))
    };
    Ok(Discovery {
        authorization_endpoint: url("authorization_endpoint")?,
        token_endpoint: url("token_endpoint")?,
        userinfo_endpoint: url("userinfo_endpoint")?,
        jwks_uri: url("jwks_uri")?,
        introspection_endpoint: url("introspection_endpoint").ok(),
        discovery_url,
    })
}

pub fn random(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    openssl::rand::rand_bytes(&mut b).expect("random bytes");
    URL_SAFE_NO_PAD.encode(b)
}

/// A PKCE verifier and its S256 challenge (RFC 7636 §4.1–4.2).
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

pub fn pkce() -> Pkce {
    let verifier = random(32);
    let challenge = URL_SAFE_NO_PAD.encode(openssl::sha::sha256(verifier.as_bytes()));
    Pkce { verifier, challenge }
}

/// `client_secret_basic` (RFC 6749 §2.3.1: the parts are form-urlencoded first).
pub fn basic(client_id: &str, secret: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!("Basic {}", STANDARD.encode(format!("{}:{}", enc(client_id), enc(secret))))
}

pub struct AuthRequest<'a> {
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub scope: &'a str,
    pub prompt: Option<&'a str>,
    pub acr_values: Option<&'a str>,
    pub state: &'a str,
    pub nonce: &'a str,
    pub challenge: &'a str,
}

pub fn authorize_url(endpoint: &Url, r: &AuthRequest) -> Url {
    let mut url = endpoint.clone();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", r.client_id)
            .append_pair("redirect_uri", r.redirect_uri)
            .append_pair("scope", r.scope)
            .append_pair("state", r.state)
            .append_pair("nonce", r.nonce)
            .append_pair("code_challenge", r.challenge)
            .append_pair("code_challenge_method", "S256");
        if let Some(p) = r.prompt {
            q.append_pair("prompt", p);
        }
        if let Some(a) = r.acr_values {
            q.append_pair("acr_values", a);
        }
    }
    url
}

/// POSTs a form to the token (or introspection) endpoint with client authentication; the JSON
/// answer on 200, else an error naming the status and OAuth error code.
pub async fn post_form(http: &reqwest::Client, url: &Url, auth: &str, form: &[(&str, &str)]) -> Result<Value> {
    let resp = http.post(url.clone()).header(reqwest::header::AUTHORIZATION, auth).form(form).send().await?;
    let status = resp.status();
    let body = resp.bytes().await?;
    if !status.is_success() {
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        bail!("HTTP {} {}", status.as_u16(), v.get("error").and_then(Value::as_str).unwrap_or(""));
    }
    Ok(serde_json::from_slice(&body)?)
}

pub fn str_field<'a>(v: &'a Value, name: &str) -> Result<&'a str> {
    v.get(name).and_then(Value::as_str).ok_or_else(|| anyhow!("response has no {name}"))
}

fn jwt_part(jwt: &str, i: usize) -> Option<Value> {
    let part = jwt.split('.').nth(i)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
}

/// The claims of a JWT, unverified (the benchmark only reads `acr`).
pub fn jwt_claims(jwt: &str) -> Option<Value> {
    jwt_part(jwt, 1)
}

/// `alg` of a JWS, or "opaque" when the token is not a JWT.
pub fn jwt_alg(token: &str) -> String {
    if token.split('.').count() != 3 {
        return "opaque".into();
    }
    jwt_part(token, 0)
        .and_then(|h| h.get("alg").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| "opaque".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_rfc7636_appendix_b() {
        let challenge = URL_SAFE_NO_PAD.encode(openssl::sha::sha256(b"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"));
        assert_eq!(challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        let p = pkce();
        assert_eq!(p.verifier.len(), 43);
    }

    #[test]
    fn basic_credentials_are_urlencoded() {
        assert_eq!(basic("a b", "c:d"), format!("Basic {}", STANDARD.encode("a+b:c%3Ad")));
    }
}
