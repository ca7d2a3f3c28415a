//! What a route demands of the authentication behind a token (RFC 9470 §3) and of its scope.

use crate::error::GuardError;
use crate::levels::Levels;
use crate::token::VerifiedToken;

/// A route's demands: a minimum `acr`, a maximum age of the last authentication, and scopes.
///
/// ```
/// use ladder_guard::{Requirement, LOA2};
/// let payments = Requirement::acr(LOA2).max_age(300).scope("payments:write");
/// assert_eq!(payments.max_age, Some(300));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requirement {
    /// The lowest acceptable level; higher levels (per [`Levels`]) also pass.
    pub acr: Option<String>,
    /// Seconds allowed since `auth_time`; negative values act as 0.
    pub max_age: Option<i64>,
    /// Every one of these must appear in the token's `scope`.
    pub scopes: Vec<String>,
}

impl Requirement {
    /// Any valid token will do.
    pub fn any() -> Requirement {
        Requirement::default()
    }

    /// At least the level `acr`.
    pub fn acr(acr: impl Into<String>) -> Requirement {
        Requirement {
            acr: Some(acr.into()),
            ..Requirement::default()
        }
    }

    /// The user must have actively authenticated within the last `secs` seconds.
    pub fn max_age(mut self, secs: i64) -> Requirement {
        self.max_age = Some(secs.max(0));
        self
    }

    /// Also requires `scope`.
    pub fn scope(mut self, scope: impl Into<String>) -> Requirement {
        let scope = scope.into();
        if !self.scopes.contains(&scope) {
            self.scopes.push(scope);
        }
        self
    }

    /// Also requires each of `scopes`.
    pub fn scopes<I, S>(self, scopes: I) -> Requirement
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        scopes.into_iter().fold(self, Requirement::scope)
    }

    /// Checks an already verified token against this requirement at time `now`.
    ///
    /// Authentication strength is checked before scope: a step-up re-authorization can also
    /// request the missing scope, whereas a new scope alone would still fail the level.
    pub fn evaluate(
        &self,
        token: &VerifiedToken,
        levels: &Levels,
        now: i64,
        leeway: i64,
    ) -> Result<(), GuardError> {
        let level_met = self
            .acr
            .as_deref()
            .is_none_or(|need| levels.satisfies(token.acr(), need));
        // Leeway absorbs clock skew between Ladder, which stamped auth_time, and this server.
        let fresh = self.max_age.is_none_or(|max| {
            token
                .auth_time()
                .is_some_and(|at| now.saturating_sub(at) <= max.max(0).saturating_add(leeway))
        });
        if !level_met || !fresh {
            let description = match (level_met, fresh) {
                (false, false) => {
                    "A higher level of authentication, performed more recently, is required."
                }
                (false, true) => "A higher level of authentication is required.",
                _ => "A more recent authentication is required.",
            };
            return Err(GuardError::InsufficientUserAuthentication {
                description,
                acr_values: self.acr.clone(),
                max_age: self.max_age.map(|m| m.max(0)),
            });
        }
        if self.scopes.iter().any(|s| !token.has_scope(s)) {
            return Err(GuardError::InsufficientScope {
                scope: self.scopes.join(" "),
            });
        }
        Ok(())
    }
}
