//! What a relying party asked for: `acr_values` and the `claims` parameter's `id_token.acr`
//! (OIDC Core §3.1.2.1, §5.5.1.1), and `max_age`. Parsed once; values keep the RP's spelling
//! because the reported `acr` must echo it (DESIGN §3.6).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("the claims parameter is not valid JSON")]
    ClaimsNotJson,
    #[error("the claims parameter is malformed: {0}")]
    ClaimsShape(&'static str),
    #[error("max_age must be a non-negative integer number of seconds")]
    MaxAge,
}

/// The acr values a request asks for, in preference order, and whether they are essential.
/// Unknown values are kept: only the level table can say what is unknown, and it ignores them.
/// Essential with no values constrains nothing (Ladder always returns `acr`), so it is stored as
/// voluntary: `is_essential()` means "one of these values must be met".
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AcrRequest {
    values: Vec<String>,
    essential: bool,
}

impl AcrRequest {
    /// A request for `values` (preference order; duplicates and empty strings dropped).
    pub fn new<S: Into<String>>(values: impl IntoIterator<Item = S>, essential: bool) -> AcrRequest {
        let mut out: Vec<String> = Vec::new();
        for v in values.into_iter().map(Into::into) {
            if !v.is_empty() && !out.contains(&v) {
                out.push(v);
            }
        }
        let essential = essential && !out.is_empty();
        AcrRequest { values: out, essential }
    }

    /// From the authorization request's `acr_values` and `claims` parameters.
    ///
    /// `claims.id_token.acr` `value`/`values`, when present, are the list (they are the structured
    /// form and carry `essential`); otherwise `acr_values` is. `{"essential": true}` without values
    /// makes the `acr_values` list essential. `acr_values` alone is always voluntary.
    pub fn from_params(acr_values: Option<&str>, claims_json: Option<&str>) -> Result<AcrRequest, RequestError> {
        let from_acr_values: Vec<&str> = acr_values.map(|s| s.split_ascii_whitespace().collect()).unwrap_or_default();
        let claim = match claims_json {
            Some(json) => id_token_acr_claim(json)?,
            None => None,
        };
        Ok(match claim {
            Some(c) if !c.values.is_empty() => AcrRequest::new(c.values, c.essential),
            Some(c) => AcrRequest::new(from_acr_values, c.essential),
            None => AcrRequest::new(from_acr_values, false),
        })
    }

    /// Requested values in preference order, spelled as the RP spelled them.
    pub fn values(&self) -> &[String] {
        &self.values
    }

    pub fn is_essential(&self) -> bool {
        self.essential
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The same request, made essential (strict clients: a URL edit cannot make it optional).
    pub fn into_essential(self) -> AcrRequest {
        AcrRequest::new(self.values, true)
    }
}

/// `claims.id_token.acr` as asked: `{"essential": bool, "value": s}` or `{"values": [s…]}`, or null.
struct AcrClaim {
    essential: bool,
    values: Vec<String>,
}

fn id_token_acr_claim(json: &str) -> Result<Option<AcrClaim>, RequestError> {
    use RequestError::ClaimsShape;
    let claims: Value = serde_json::from_str(json).map_err(|_| RequestError::ClaimsNotJson)?;
    let Value::Object(claims) = claims else {
        return Err(ClaimsShape("claims must be a JSON object"));
    };
    let id_token = match claims.get("id_token") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(o)) => o,
        Some(_) => return Err(ClaimsShape("id_token must be an object")),
    };
    let acr = match id_token.get("acr") {
        None => return Ok(None),
        // `"acr": null` asks for the claim in the default manner: no constraint on its value.
        Some(Value::Null) => return Ok(Some(AcrClaim { essential: false, values: vec![] })),
        Some(Value::Object(o)) => o,
        Some(_) => return Err(ClaimsShape("id_token.acr must be an object or null")),
    };
    let essential = match acr.get("essential") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ClaimsShape("id_token.acr.essential must be a boolean")),
    };
    let mut values = Vec::new();
    match acr.get("value") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => values.push(s.clone()),
        Some(_) => return Err(ClaimsShape("id_token.acr.value must be a string")),
    }
    match acr.get("values") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for item in items {
                let Value::String(s) = item else {
                    return Err(ClaimsShape("id_token.acr.values must be an array of strings"));
                };
                values.push(s.clone());
            }
        }
        Some(_) => return Err(ClaimsShape("id_token.acr.values must be an array of strings")),
    }
    Ok(Some(AcrClaim { essential, values }))
}

/// The `max_age` parameter: a non-negative number of seconds. `0` means "authenticate now".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct MaxAge(i64);

impl MaxAge {
    pub fn from_secs(secs: i64) -> Option<MaxAge> {
        (secs >= 0).then_some(MaxAge(secs))
    }
    pub fn secs(self) -> i64 {
        self.0
    }
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl FromStr for MaxAge {
    type Err = RequestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Digits only: i64's parser would also take "+5" and "-0".
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RequestError::MaxAge);
        }
        s.parse::<i64>().ok().and_then(MaxAge::from_secs).ok_or(RequestError::MaxAge)
    }
}

impl TryFrom<i64> for MaxAge {
    type Error = RequestError;
    fn try_from(secs: i64) -> Result<Self, Self::Error> {
        MaxAge::from_secs(secs).ok_or(RequestError::MaxAge)
    }
}

impl From<MaxAge> for i64 {
    fn from(m: MaxAge) -> i64 {
        m.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MFA: &str = "https://refeds.org/profile/mfa";

    #[test]
    fn from_params_table() {
        // (name, acr_values, claims, expected values, expected essential)
        type Row<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a [&'a str], bool);
        let cases: &[Row] = &[
            ("nothing", None, None, &[], false),
            ("acr_values in order, voluntary", Some("phr urn:ladder:loa:2"), None, &["phr", "urn:ladder:loa:2"], false),
            ("extra spaces and duplicates", Some("  phr  phr loa "), None, &["phr", "loa"], false),
            ("blank acr_values", Some("   "), None, &[], false),
            (
                "essential value",
                None,
                Some(r#"{"id_token":{"acr":{"essential":true,"value":"urn:ladder:loa:2"}}}"#),
                &["urn:ladder:loa:2"],
                true,
            ),
            (
                "values keep RP spelling and order",
                None,
                Some(r#"{"id_token":{"acr":{"values":["https://refeds.org/profile/mfa","phr"]}}}"#),
                &[MFA, "phr"],
                false,
            ),
            (
                "claims values win over acr_values",
                Some("urn:ladder:loa:1"),
                Some(r#"{"id_token":{"acr":{"essential":true,"values":["phr"]}}}"#),
                &["phr"],
                true,
            ),
            (
                "essential without values makes acr_values essential",
                Some("urn:ladder:loa:2"),
                Some(r#"{"id_token":{"acr":{"essential":true}}}"#),
                &["urn:ladder:loa:2"],
                true,
            ),
            ("acr: null", Some("phr"), Some(r#"{"id_token":{"acr":null}}"#), &["phr"], false),
            ("claims without id_token", Some("phr"), Some(r#"{"userinfo":{"email":null}}"#), &["phr"], false),
            ("essential false", None, Some(r#"{"id_token":{"acr":{"essential":false,"value":"x"}}}"#), &["x"], false),
        ];
        for (name, acr_values, claims, values, essential) in cases {
            let got = AcrRequest::from_params(*acr_values, *claims);
            assert_eq!(got, Ok(AcrRequest::new(values.iter().copied(), *essential)), "{name}");
        }
    }

    #[test]
    fn malformed_claims_are_errors() {
        let cases = [
            ("{not json", RequestError::ClaimsNotJson),
            ("[]", RequestError::ClaimsShape("claims must be a JSON object")),
            (r#"{"id_token":"acr"}"#, RequestError::ClaimsShape("id_token must be an object")),
            (r#"{"id_token":{"acr":"phr"}}"#, RequestError::ClaimsShape("id_token.acr must be an object or null")),
            (
                r#"{"id_token":{"acr":{"essential":"yes"}}}"#,
                RequestError::ClaimsShape("id_token.acr.essential must be a boolean"),
            ),
            (r#"{"id_token":{"acr":{"value":3}}}"#, RequestError::ClaimsShape("id_token.acr.value must be a string")),
            (
                r#"{"id_token":{"acr":{"values":"phr"}}}"#,
                RequestError::ClaimsShape("id_token.acr.values must be an array of strings"),
            ),
            (
                r#"{"id_token":{"acr":{"values":["phr",1]}}}"#,
                RequestError::ClaimsShape("id_token.acr.values must be an array of strings"),
            ),
        ];
        for (claims, want) in cases {
            assert_eq!(AcrRequest::from_params(None, Some(claims)), Err(want), "claims {claims}");
        }
    }

    #[test]
    fn into_essential_keeps_values() {
        let r = AcrRequest::new(["a", "b"], false).into_essential();
        assert!(r.is_essential());
        assert_eq!(r.values(), ["a", "b"]);
    }

    #[test]
    fn max_age_parsing() {
        let cases: &[(&str, Option<i64>)] = &[
            ("0", Some(0)),
            ("1", Some(1)),
            ("10000", Some(10000)),
            ("-1", None),
            ("+5", None),
            ("", None),
            ("1.5", None),
            (" 5", None),
            ("99999999999999999999", None),
        ];
        for (s, want) in cases {
            assert_eq!(s.parse::<MaxAge>().ok().map(MaxAge::secs), *want, "max_age {s:?}");
        }
        assert!(serde_json::from_str::<MaxAge>("-3").is_err());
        assert_eq!(serde_json::from_str::<MaxAge>("30").ok().map(MaxAge::secs), Some(30));
    }
}
