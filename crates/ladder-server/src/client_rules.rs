//! What makes a client registration valid: one set of rules, used by the CLI and by the console's
//! register and edit forms alike. Pure functions over the client as it is about to be stored.

use ladder_core::Levels;
use ladder_store::clients::{Client, ClientSettings};

use crate::signing::Alg;

pub const AUTH_METHODS: [&str; 4] = [
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
    "none",
];
pub const GRANT_TYPES: [&str; 3] = ["authorization_code", "refresh_token", "client_credentials"];

/// Upper bounds on per-client lifetimes: long enough for any sane deployment, short enough that
/// a typo (an extra zero or three) is caught rather than minting near-permanent tokens.
pub const MAX_ACCESS_TOKEN_TTL: i64 = 24 * 3600;
pub const MAX_ID_TOKEN_TTL: i64 = 24 * 3600;
pub const MAX_REFRESH_TOKEN_TTL: i64 = 365 * 24 * 3600;

/// Why a registration was refused, worded for the person who filled it in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

fn invalid<T>(msg: impl Into<String>) -> Result<T, Invalid> {
    Err(Invalid(msg.into()))
}

/// Checks a client and normalises it: trimmed name, `openid` first among de-duplicated scopes,
/// public clients on method `none`.
pub fn check(levels: &Levels, c: &mut Client) -> Result<(), Invalid> {
    c.name = c.name.trim().to_owned();
    if c.name.is_empty() {
        return invalid("a client needs a name");
    }
    if c.name.chars().count() > 100 {
        return invalid("a client name is at most 100 characters");
    }
    if c.redirect_uris.is_empty() {
        return invalid("a client needs at least one redirect URI");
    }
    if c.redirect_uris.len() > 20 || c.settings.post_logout_redirect_uris.len() > 20 {
        return invalid("a client may register at most 20 redirect URIs of each kind");
    }
    for uri in &c.redirect_uris {
        redirect_uri(uri)?;
    }
    let defaults = c
        .default_acr_values
        .iter()
        .flat_map(|v| v.split_whitespace());
    for acr in defaults.chain(c.min_acr.as_deref()) {
        if levels.resolve(acr).is_none() {
            return invalid(format!(
                "`{acr}` is not a configured level; known: {}",
                levels.acr_values_supported().join(", ")
            ));
        }
    }
    c.scopes = scopes(&c.scopes);
    settings(c.is_public, &mut c.settings)
}

/// `openid` first, then each requested scope once.
fn scopes(requested: &[String]) -> Vec<String> {
    let mut out = vec!["openid".to_owned()];
    for s in requested.iter().flat_map(|s| s.split_whitespace()) {
        if !out.iter().any(|x| x == s) {
            out.push(s.to_owned());
        }
    }
    out
}

/// Checks a client's protocol settings, filling in what follows from public/confidential.
pub fn settings(public: bool, s: &mut ClientSettings) -> Result<(), Invalid> {
    if public {
        s.token_endpoint_auth_method = "none".into();
    } else if s.token_endpoint_auth_method == "none" {
        return invalid("a confidential client cannot use token_endpoint_auth_method none");
    }
    let method = s.token_endpoint_auth_method.as_str();
    if !AUTH_METHODS.contains(&method) {
        return invalid(format!(
            "unknown auth method `{method}`; use one of {}",
            AUTH_METHODS.join(", ")
        ));
    }
    if method == "private_key_jwt" {
        match (&s.jwks, &s.jwks_uri) {
            (None, None) => {
                return invalid("private_key_jwt needs the client's keys: a JWKS or a jwks_uri");
            }
            // RFC 7591 §2: never both, or which one counts would be a guess.
            (Some(_), Some(_)) => {
                return invalid("give the client's keys as a JWKS or as a jwks_uri, not both");
            }
            (Some(j), None) if josekit::jwk::JwkSet::from_bytes(j.as_bytes()).is_err() => {
                return invalid("the client's JWKS is not a valid JWK set");
            }
            _ => {}
        }
    } else if s.jwks.is_some() || s.jwks_uri.is_some() {
        return invalid("a JWKS or jwks_uri is only used with private_key_jwt");
    }
    if let Some(uri) = &s.jwks_uri {
        server_uri(uri, "jwks_uri")?;
    }
    if s.grant_types.is_empty() {
        return invalid("a client needs at least one grant type");
    }
    for g in &s.grant_types {
        if !GRANT_TYPES.contains(&g.as_str()) {
            return invalid(format!(
                "unknown grant type `{g}`; use one of {}",
                GRANT_TYPES.join(", ")
            ));
        }
    }
    s.grant_types.dedup();
    if public && s.grant_types.iter().any(|g| g == "client_credentials") {
        return invalid("a public client cannot use client_credentials");
    }
    for uri in &s.post_logout_redirect_uris {
        redirect_uri(uri)?;
    }
    if let Some(uri) = &s.backchannel_logout_uri {
        server_uri(uri, "backchannel_logout_uri")?;
    }
    if let Some(aud) = &s.audience
        && (aud.is_empty()
            || aud.len() > 2048
            || aud.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        return invalid("the audience is one value of at most 2048 characters, without spaces");
    }
    algorithms(s)?;
    lifetimes(s)
}

/// The token signing algorithms a client chose, if any, must be ones Ladder signs with.
pub fn algorithms(s: &ClientSettings) -> Result<(), Invalid> {
    let chosen = [("ID token", &s.id_token_signed_response_alg), ("access token", &s.access_token_signed_response_alg)];
    for (what, alg) in chosen {
        if let Some(a) = alg
            && Alg::parse(a).is_none()
        {
            let known: Vec<&str> = Alg::ALL.iter().map(|a| a.as_str()).collect();
            return invalid(format!("unknown {what} algorithm `{a}`; use one of {}", known.join(", ")));
        }
    }
    Ok(())
}

/// Per-client lifetimes: each positive and within its bound; a refresh token may not lapse before
/// the access token it renews.
pub fn lifetimes(s: &ClientSettings) -> Result<(), Invalid> {
    for (what, value, max) in [
        (
            "access token",
            s.access_token_ttl_secs,
            MAX_ACCESS_TOKEN_TTL,
        ),
        ("ID token", s.id_token_ttl_secs, MAX_ID_TOKEN_TTL),
        (
            "refresh token",
            s.refresh_token_ttl_secs,
            MAX_REFRESH_TOKEN_TTL,
        ),
    ] {
        if let Some(v) = value
            && !(1..=max).contains(&v)
        {
            return invalid(format!(
                "the {what} lifetime must be between 1 and {max} seconds ({}), not {v}",
                span(max)
            ));
        }
    }
    if let (Some(access), Some(refresh)) = (s.access_token_ttl_secs, s.refresh_token_ttl_secs)
        && refresh < access
    {
        return invalid(format!(
            "the refresh token lifetime ({refresh} s) must be at least the access token lifetime ({access} s)"
        ));
    }
    Ok(())
}

/// A lifetime typed into a form: blank ⇒ the global default; otherwise whole seconds.
pub fn parse_lifetime(what: &str, text: &str) -> Result<Option<i64>, Invalid> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse::<i64>().map(Some).map_err(|_| {
        Invalid(format!(
            "the {what} lifetime must be a whole number of seconds, not `{text}`"
        ))
    })
}

fn span(secs: i64) -> String {
    match secs {
        s if s % 86_400 == 0 => format!("{} days", s / 86_400),
        s if s % 3600 == 0 => format!("{} hours", s / 3600),
        s => format!("{s} s"),
    }
}

/// Server-to-server URIs: https, or http on loopback (for local development and tests).
fn server_uri(raw: &str, what: &str) -> Result<(), Invalid> {
    let url = url::Url::parse(raw)
        .map_err(|_| Invalid(format!("{what} `{raw}` is not an absolute URL")))?;
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    if url.fragment().is_some()
        || !(url.scheme() == "https" || (url.scheme() == "http" && loopback))
    {
        return invalid(format!(
            "{what} `{raw}` must be https (http only on loopback), without fragment"
        ));
    }
    Ok(())
}

/// A redirect URI must be absolute, without fragment (RFC 6749 §3.1.2); plain http only on
/// loopback (RFC 8252 §7.3); private-use schemes (RFC 8252 §7.1) need a dot, as in
/// `com.example.app:/callback`.
pub fn redirect_uri(raw: &str) -> Result<(), Invalid> {
    let refuse = |why: &str| Invalid(format!("redirect URI `{raw}` {why}"));
    let url = url::Url::parse(raw).map_err(|_| refuse("is not an absolute URL"))?;
    if url.fragment().is_some() || raw.contains('#') {
        return Err(refuse("must not contain a fragment"));
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" => match url.host_str() {
            Some("localhost" | "127.0.0.1" | "[::1]") => Ok(()),
            _ => Err(refuse(
                "must use https (plain http is allowed on loopback only)",
            )),
        },
        s if s.contains('.') => Ok(()),
        _ => Err(refuse(
            "must use https, loopback http, or a reverse-domain private scheme",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uri_rules() {
        for ok in [
            "https://rp.example/cb",
            "http://127.0.0.1:9000/cb",
            "http://localhost/cb",
            "com.example.app:/cb",
        ] {
            assert!(redirect_uri(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://rp.example/cb",
            "https://rp.example/cb#frag",
            "/relative",
            "javascript:alert(1)",
        ] {
            assert!(redirect_uri(bad).is_err(), "{bad}");
        }
    }

    fn with(access: Option<i64>, id: Option<i64>, refresh: Option<i64>) -> ClientSettings {
        ClientSettings {
            access_token_ttl_secs: access,
            id_token_ttl_secs: id,
            refresh_token_ttl_secs: refresh,
            ..Default::default()
        }
    }

    #[test]
    fn lifetime_rules() {
        assert!(
            lifetimes(&with(None, None, None)).is_ok(),
            "absent ⇒ global defaults"
        );
        assert!(lifetimes(&with(Some(120), Some(300), Some(120))).is_ok());
        assert!(
            lifetimes(&with(None, None, Some(60))).is_ok(),
            "only compared when both are set"
        );
        let e = lifetimes(&with(Some(0), None, None)).unwrap_err();
        assert!(
            e.0.contains("access token lifetime must be between 1 and 86400"),
            "{e}"
        );
        assert!(lifetimes(&with(None, Some(-5), None)).is_err());
        assert!(lifetimes(&with(None, None, Some(MAX_REFRESH_TOKEN_TTL + 1))).is_err());
        let e = lifetimes(&with(Some(600), None, Some(300))).unwrap_err();
        assert!(e.0.contains("at least the access token lifetime"), "{e}");
    }

    #[test]
    fn lifetimes_from_a_form() {
        assert_eq!(parse_lifetime("access token", "  "), Ok(None));
        assert_eq!(parse_lifetime("access token", " 120 "), Ok(Some(120)));
        let e = parse_lifetime("access token", "2 minutes").unwrap_err();
        assert!(e.0.contains("whole number of seconds"), "{e}");
    }

    #[test]
    fn auth_method_rules() {
        let mut s = ClientSettings {
            token_endpoint_auth_method: "client_secret_post".into(),
            ..Default::default()
        };
        assert!(settings(false, &mut s).is_ok());
        assert!(settings(true, &mut s).is_ok());
        assert_eq!(s.token_endpoint_auth_method, "none", "public ⇒ none");
        let mut s = ClientSettings {
            token_endpoint_auth_method: "none".into(),
            ..Default::default()
        };
        assert!(
            settings(false, &mut s).is_err(),
            "confidential cannot be none"
        );
        let mut s = ClientSettings {
            token_endpoint_auth_method: "private_key_jwt".into(),
            ..Default::default()
        };
        assert!(
            settings(false, &mut s)
                .unwrap_err()
                .0
                .contains("needs the client's keys")
        );
        s.jwks = Some("not json".into());
        assert!(
            settings(false, &mut s)
                .unwrap_err()
                .0
                .contains("not a valid JWK set")
        );
        let mut s = ClientSettings {
            jwks_uri: Some("https://rp.example/jwks".into()),
            ..Default::default()
        };
        assert!(
            settings(false, &mut s)
                .unwrap_err()
                .0
                .contains("only used with private_key_jwt")
        );
        let mut s = ClientSettings {
            grant_types: vec![],
            ..Default::default()
        };
        assert!(
            settings(false, &mut s)
                .unwrap_err()
                .0
                .contains("at least one grant type")
        );
        let mut s = ClientSettings {
            grant_types: vec!["client_credentials".into()],
            ..Default::default()
        };
        assert!(
            settings(true, &mut s).is_err(),
            "public clients have no credentials of their own"
        );
    }
}
