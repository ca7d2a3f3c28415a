//! Refusals and how they are told to the client: RFC 6750 §3 `WWW-Authenticate: Bearer` challenges,
//! extended by RFC 9470 §3 for `insufficient_user_authentication`, plus a JSON body with the same
//! `error` and `error_description`.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};

/// Why an access token was not accepted; each becomes `invalid_token`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenRejection {
    #[error("The access token is malformed.")]
    Malformed,
    #[error("The access token is signed with an unsupported algorithm.")]
    UnsupportedAlgorithm,
    #[error("The token is not an access token.")]
    WrongType,
    #[error("The access token is signed with an unknown key.")]
    UnknownKey,
    #[error("The access token signature is invalid.")]
    BadSignature,
    #[error("The access token was issued by someone else.")]
    WrongIssuer,
    #[error("The access token is not intended for this resource.")]
    WrongAudience,
    #[error("The access token has expired.")]
    Expired,
    #[error("The access token is not valid yet.")]
    NotYetValid,
    #[error("The access token lacks the {0} claim.")]
    MissingClaim(&'static str),
    #[error("The access token has an invalid {0} claim.")]
    InvalidClaim(&'static str),
}

/// A refused request. Rendered by [`ResponseError`], so handlers can simply return it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GuardError {
    /// No `Authorization: Bearer` credentials: a bare challenge, as RFC 6750 §3.1 asks.
    #[error("No access token was presented.")]
    MissingToken,
    /// The `Authorization` header is repeated or has no token (RFC 6750 §3.1 `invalid_request`).
    #[error("{0}")]
    InvalidRequest(&'static str),
    #[error("{0}")]
    InvalidToken(TokenRejection),
    /// RFC 9470 §3: the client should obtain a new token meeting `acr_values` / `max_age`.
    #[error("{description}")]
    InsufficientUserAuthentication {
        description: &'static str,
        acr_values: Option<String>,
        max_age: Option<i64>,
    },
    /// `scope` lists every scope the route requires, space-separated.
    #[error("The access token lacks a required scope.")]
    InsufficientScope { scope: String },
    /// The JWKS could not be fetched, so the token can be judged neither way.
    #[error("The token issuer's keys are unavailable; try again later.")]
    KeysUnavailable,
    /// A [`VerifiedToken`](crate::VerifiedToken) was extracted on a route with neither the
    /// middleware nor a [`Guard`](crate::Guard) in app data.
    #[error("Access control is not configured for this route.")]
    NotConfigured,
}

impl GuardError {
    /// The `error` code, as used in the challenge and the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            GuardError::MissingToken | GuardError::InvalidToken(_) => "invalid_token",
            GuardError::InvalidRequest(_) => "invalid_request",
            GuardError::InsufficientUserAuthentication { .. } => "insufficient_user_authentication",
            GuardError::InsufficientScope { .. } => "insufficient_scope",
            GuardError::KeysUnavailable => "temporarily_unavailable",
            GuardError::NotConfigured => "server_error",
        }
    }

    /// The `WWW-Authenticate` value, when the refusal is a Bearer challenge.
    pub fn challenge(&self) -> Option<String> {
        let base = || {
            format!(
                "Bearer error={}, error_description={}",
                quote(self.code()),
                quote(&self.to_string())
            )
        };
        match self {
            GuardError::MissingToken => Some("Bearer".to_owned()),
            GuardError::InvalidRequest(_) | GuardError::InvalidToken(_) => Some(base()),
            GuardError::InsufficientUserAuthentication {
                acr_values,
                max_age,
                ..
            } => {
                let mut value = base();
                if let Some(acr) = acr_values {
                    value.push_str(&format!(", acr_values={}", quote(acr)));
                }
                if let Some(max_age) = max_age {
                    value.push_str(&format!(", max_age=\"{max_age}\""));
                }
                Some(value)
            }
            GuardError::InsufficientScope { scope } => {
                Some(format!("{}, scope={}", base(), quote(scope)))
            }
            GuardError::KeysUnavailable | GuardError::NotConfigured => None,
        }
    }
}

/// An HTTP quoted-string (RFC 9110 §5.6.4); control characters are dropped rather than escaped.
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars().filter(|c| !c.is_control()) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

impl ResponseError for GuardError {
    fn status_code(&self) -> StatusCode {
        match self {
            GuardError::MissingToken
            | GuardError::InvalidToken(_)
            | GuardError::InsufficientUserAuthentication { .. } => StatusCode::UNAUTHORIZED,
            GuardError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            GuardError::InsufficientScope { .. } => StatusCode::FORBIDDEN,
            GuardError::KeysUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            GuardError::NotConfigured => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CACHE_CONTROL, "no-store"));
        if let Some(challenge) = self.challenge() {
            response.insert_header((header::WWW_AUTHENTICATE, challenge));
        }
        response.json(serde_json::json!({
            "error": self.code(),
            "error_description": self.to_string(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_match_rfc_6750_and_9470() {
        let cases = [
            (GuardError::MissingToken, "Bearer"),
            (
                GuardError::InvalidToken(TokenRejection::Expired),
                r#"Bearer error="invalid_token", error_description="The access token has expired.""#,
            ),
            (
                GuardError::InsufficientUserAuthentication {
                    description: "A higher level of authentication is required.",
                    acr_values: Some("urn:ladder:loa:2".into()),
                    max_age: Some(300),
                },
                r#"Bearer error="insufficient_user_authentication", error_description="A higher level of authentication is required.", acr_values="urn:ladder:loa:2", max_age="300""#,
            ),
            (
                GuardError::InsufficientUserAuthentication {
                    description: "A more recent authentication is required.",
                    acr_values: None,
                    max_age: Some(0),
                },
                r#"Bearer error="insufficient_user_authentication", error_description="A more recent authentication is required.", max_age="0""#,
            ),
            (
                GuardError::InsufficientScope {
                    scope: "payments:write admin".into(),
                },
                r#"Bearer error="insufficient_scope", error_description="The access token lacks a required scope.", scope="payments:write admin""#,
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(error.challenge().as_deref(), Some(expected));
        }
        assert_eq!(GuardError::KeysUnavailable.challenge(), None);
    }

    #[test]
    fn quoting_cannot_break_out_of_the_parameter() {
        assert_eq!(quote("a\"b\\c\r\nd"), r#""a\"b\\cd""#);
    }
}
