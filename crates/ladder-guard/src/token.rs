//! Claim checks for a JWT access token whose signature has already been verified (RFC 9068 §4).

use serde_json::{Map, Value};

use crate::error::TokenRejection;

/// An access token whose signature, issuer, audience and lifetime have been checked.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedToken {
    sub: String,
    client_id: String,
    scope: Vec<String>,
    acr: Option<String>,
    amr: Vec<String>,
    auth_time: Option<i64>,
    exp: i64,
    iat: i64,
    jti: String,
    claims: Map<String, Value>,
}

impl VerifiedToken {
    /// The user (or, for `client_credentials`, the client) the token speaks for.
    pub fn sub(&self) -> &str {
        &self.sub
    }

    /// The client the token was issued to.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Granted scopes, in the order the token lists them.
    pub fn scope(&self) -> &[String] {
        &self.scope
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.iter().any(|s| s == scope)
    }

    /// The authentication level achieved, if the token carries one.
    pub fn acr(&self) -> Option<&str> {
        self.acr.as_deref()
    }

    /// The authentication methods used (RFC 8176 values such as `pwd`, `otp`, `hwk`).
    pub fn amr(&self) -> &[String] {
        &self.amr
    }

    /// When the user last actively authenticated (seconds since the epoch).
    pub fn auth_time(&self) -> Option<i64> {
        self.auth_time
    }

    pub fn exp(&self) -> i64 {
        self.exp
    }

    pub fn iat(&self) -> i64 {
        self.iat
    }

    pub fn jti(&self) -> &str {
        &self.jti
    }

    /// Every claim as sent, for anything not modelled above.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }
}

/// RFC 9068 §4: `typ` must name a JWT access token, so an ID token signed by the same keys is refused.
pub(crate) fn is_access_token_type(typ: Option<&str>) -> bool {
    typ.is_some_and(|t| {
        t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
    })
}

/// What the claims must match.
pub(crate) struct Expectations<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    pub now: i64,
    pub leeway: i64,
}

/// NumericDate allows fractions (RFC 7519 §2); whole seconds are all that matter here.
fn numeric_date(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<i64>, TokenRejection> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .or_else(|| {
                v.as_f64()
                    .filter(|f| f.is_finite())
                    .map(|f| f.floor() as i64)
            })
            .map(Some)
            .ok_or(TokenRejection::InvalidClaim(name)),
    }
}

fn required_date(claims: &Map<String, Value>, name: &'static str) -> Result<i64, TokenRejection> {
    numeric_date(claims, name)?.ok_or(TokenRejection::MissingClaim(name))
}

fn required_string(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<String, TokenRejection> {
    match claims.get(name) {
        None | Some(Value::Null) => Err(TokenRejection::MissingClaim(name)),
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(_) => Err(TokenRejection::InvalidClaim(name)),
    }
}

fn audience_matches(aud: Option<&Value>, expected: &str) -> bool {
    match aud {
        Some(Value::String(a)) => a == expected,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(expected)),
        _ => false,
    }
}

/// Checks the claims of a signature-verified access token.
pub(crate) fn validate_claims(
    claims: Map<String, Value>,
    expect: &Expectations<'_>,
) -> Result<VerifiedToken, TokenRejection> {
    let Expectations {
        issuer,
        audience,
        now,
        leeway,
    } = *expect;
    if claims.get("iss").and_then(Value::as_str) != Some(issuer) {
        return Err(TokenRejection::WrongIssuer);
    }
    if !audience_matches(claims.get("aud"), audience) {
        return Err(TokenRejection::WrongAudience);
    }
    let exp = required_date(&claims, "exp")?;
    if now.saturating_sub(leeway) >= exp {
        return Err(TokenRejection::Expired);
    }
    if numeric_date(&claims, "nbf")?.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
        return Err(TokenRejection::NotYetValid);
    }
    let iat = required_date(&claims, "iat")?;
    if iat > now.saturating_add(leeway) {
        return Err(TokenRejection::NotYetValid);
    }
    let auth_time = numeric_date(&claims, "auth_time")?;
    // An authentication in the future would defeat every max_age check.
    if auth_time.is_some_and(|at| at > now.saturating_add(leeway)) {
        return Err(TokenRejection::InvalidClaim("auth_time"));
    }
    let sub = required_string(&claims, "sub")?;
    let client_id = required_string(&claims, "client_id")?;
    let jti = required_string(&claims, "jti")?;
    let scope = match claims.get("scope") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s.split_ascii_whitespace().map(str::to_owned).collect(),
        Some(_) => return Err(TokenRejection::InvalidClaim("scope")),
    };
    let acr = match claims.get("acr") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(TokenRejection::InvalidClaim("acr")),
    };
    let amr = match claims.get("amr") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list
            .iter()
            .map(|m| m.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or(TokenRejection::InvalidClaim("amr"))?,
        Some(_) => return Err(TokenRejection::InvalidClaim("amr")),
    };
    Ok(VerifiedToken {
        sub,
        client_id,
        scope,
        acr,
        amr,
        auth_time,
        exp,
        iat,
        jti,
        claims,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::error::GuardError;
    use crate::levels::{LOA1, LOA2, LOA3, Levels};
    use crate::requirement::Requirement;

    const NOW: i64 = 1_800_000_000;
    const EXPECT: Expectations<'static> = Expectations {
        issuer: "https://id.example",
        audience: "https://api.example",
        now: NOW,
        leeway: 30,
    };

    fn claims(extra: Value) -> Map<String, Value> {
        let mut base = json!({
            "iss": "https://id.example", "aud": "https://api.example", "sub": "u1", "client_id": "c1",
            "jti": "j1", "iat": NOW - 10, "exp": NOW + 300, "scope": "openid payments:write",
            "acr": LOA2, "amr": ["pwd", "otp"], "auth_time": NOW - 60,
        });
        let (Value::Object(base_map), Value::Object(extra)) = (&mut base, extra) else {
            unreachable!()
        };
        base_map.extend(extra);
        base_map.clone()
    }

    #[test]
    fn valid_claims_are_exposed() {
        let token = validate_claims(claims(json!({})), &EXPECT).unwrap();
        assert_eq!(token.sub(), "u1");
        assert_eq!(token.client_id(), "c1");
        assert_eq!(token.scope(), ["openid", "payments:write"]);
        assert_eq!(token.acr(), Some(LOA2));
        assert_eq!(token.amr(), ["pwd", "otp"]);
        assert_eq!(token.auth_time(), Some(NOW - 60));
        assert_eq!(token.exp(), NOW + 300);
    }

    #[test]
    fn claim_problems_are_named() {
        let cases = [
            (
                json!({"iss": "https://evil.example"}),
                TokenRejection::WrongIssuer,
            ),
            (
                json!({"aud": "https://other.example"}),
                TokenRejection::WrongAudience,
            ),
            (json!({"aud": ["a", "b"]}), TokenRejection::WrongAudience),
            (json!({"exp": NOW - 31}), TokenRejection::Expired),
            (json!({"exp": null}), TokenRejection::MissingClaim("exp")),
            (json!({"nbf": NOW + 31}), TokenRejection::NotYetValid),
            (json!({"iat": NOW + 31}), TokenRejection::NotYetValid),
            (
                json!({"auth_time": NOW + 31}),
                TokenRejection::InvalidClaim("auth_time"),
            ),
            (json!({"sub": null}), TokenRejection::MissingClaim("sub")),
            (
                json!({"client_id": 7}),
                TokenRejection::InvalidClaim("client_id"),
            ),
            (json!({"amr": "pwd"}), TokenRejection::InvalidClaim("amr")),
        ];
        for (extra, expected) in cases {
            let label = extra.to_string();
            assert_eq!(
                validate_claims(claims(extra), &EXPECT).unwrap_err(),
                expected,
                "{label}"
            );
        }
    }

    #[test]
    fn audience_array_and_leeway_are_accepted() {
        let ok = [
            json!({"aud": ["https://other.example", "https://api.example"]}),
            json!({"exp": NOW - 29}),
            json!({"iat": NOW + 29, "nbf": NOW + 29}),
            json!({"exp": (NOW + 300) as f64 + 0.5}),
        ];
        for extra in ok {
            let label = extra.to_string();
            assert!(validate_claims(claims(extra), &EXPECT).is_ok(), "{label}");
        }
    }

    fn evaluate(extra: Value, req: &Requirement) -> Result<(), GuardError> {
        let token = validate_claims(claims(extra), &EXPECT).unwrap();
        req.evaluate(&token, &Levels::ladder_defaults(), NOW, 30)
    }

    #[test]
    fn requirement_checks_level_age_then_scope() {
        let loa2_fresh = Requirement::acr(LOA2).max_age(300);
        assert!(evaluate(json!({}), &loa2_fresh).is_ok());
        assert!(evaluate(json!({"acr": LOA3}), &loa2_fresh).is_ok());
        // Within max_age + leeway.
        assert!(evaluate(json!({"auth_time": NOW - 330}), &loa2_fresh).is_ok());

        let Err(GuardError::InsufficientUserAuthentication {
            acr_values,
            max_age,
            description,
        }) = evaluate(json!({"acr": LOA1}), &loa2_fresh)
        else {
            panic!("loa:1 must not meet loa:2");
        };
        assert_eq!((acr_values.as_deref(), max_age), (Some(LOA2), Some(300)));
        assert_eq!(description, "A higher level of authentication is required.");

        let Err(GuardError::InsufficientUserAuthentication { description, .. }) =
            evaluate(json!({"auth_time": NOW - 331}), &loa2_fresh)
        else {
            panic!("stale auth_time must fail max_age");
        };
        assert_eq!(description, "A more recent authentication is required.");

        assert!(matches!(
            evaluate(json!({"auth_time": null}), &Requirement::any().max_age(300)),
            Err(GuardError::InsufficientUserAuthentication {
                acr_values: None,
                max_age: Some(300),
                ..
            })
        ));
        assert!(matches!(
            evaluate(json!({"acr": LOA1}), &Requirement::acr(LOA2).scope("admin")),
            Err(GuardError::InsufficientUserAuthentication { max_age: None, .. })
        ));
        assert!(matches!(
            evaluate(json!({}), &Requirement::acr(LOA2).scopes(["payments:write", "admin"])),
            Err(GuardError::InsufficientScope { scope }) if scope == "payments:write admin"
        ));
    }

    #[test]
    fn access_token_types() {
        assert!(is_access_token_type(Some("at+jwt")));
        assert!(is_access_token_type(Some("application/AT+JWT")));
        assert!(!is_access_token_type(Some("JWT")));
        assert!(!is_access_token_type(None));
    }
}
