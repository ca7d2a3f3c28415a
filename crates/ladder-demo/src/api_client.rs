//! The web front end's client for the bank API, over HTTP with the user's access token, as any
//! separate client would call it. It knows three answers besides success: an expired or revoked
//! token (refresh once, then sign in again), an RFC 9470 step-up challenge, and a refusal.

use anyhow::{Context, Result};
use openidconnect::reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::challenge::{BearerChallenge, StepUp};
use crate::session::SignedIn;
use crate::state::AppState;

#[derive(Debug)]
pub enum ApiOutcome {
    Ok(Value),
    /// `insufficient_user_authentication`: ask Ladder for this, then call again.
    StepUp(StepUp),
    /// The token is no good and no refresh helped.
    SignInAgain(String),
    /// The bank said no (unknown payee, insufficient funds, …).
    Refused(String),
}

/// Calls `method path` with `body`; refreshes the access token once if the API calls it invalid.
/// `user.tokens` is updated in place when a refresh happened.
pub async fn call(
    state: &AppState,
    user: &mut SignedIn,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Result<ApiOutcome> {
    let first = send(state, &user.tokens.access_token, method.clone(), path, body).await?;
    let expired = matches!(&first, Answer::Challenge(c) if c.error() == Some("invalid_token"));
    if !expired || user.tokens.refresh_token.is_none() {
        return Ok(first.outcome());
    }
    match state.rp.refresh(&user.tokens).await {
        Ok(tokens) => {
            tracing::info!("access token refreshed");
            user.tokens = tokens;
            Ok(send(state, &user.tokens.access_token, method, path, body)
                .await?
                .outcome())
        }
        Err(e) => Ok(ApiOutcome::SignInAgain(format!("{e:#}"))),
    }
}

enum Answer {
    Ok(Value),
    Challenge(BearerChallenge),
    Other(StatusCode, Value),
}

impl Answer {
    fn outcome(self) -> ApiOutcome {
        match self {
            Answer::Ok(v) => ApiOutcome::Ok(v),
            Answer::Challenge(c) => match c.step_up() {
                Some(step_up) => ApiOutcome::StepUp(step_up),
                None => ApiOutcome::SignInAgain(c.raw),
            },
            Answer::Other(status, body) => ApiOutcome::Refused(
                body.get("error_description")
                    .and_then(Value::as_str)
                    .map_or_else(|| format!("The bank answered {status}."), str::to_owned),
            ),
        }
    }
}

async fn send(
    state: &AppState,
    access_token: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Result<Answer> {
    let url = format!("{}{path}", state.config.api_url);
    let mut request = state
        .api_http
        .request(method, &url)
        .bearer_auth(access_token);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("calling {url}"))?;
    let status = response.status();
    let challenge = response
        .headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(BearerChallenge::parse);
    let body: Value = response.json().await.unwrap_or(Value::Null);
    Ok(match (status, challenge) {
        (s, _) if s.is_success() => Answer::Ok(body),
        (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN, Some(c)) => Answer::Challenge(c),
        (s, _) => Answer::Other(s, body),
    })
}
