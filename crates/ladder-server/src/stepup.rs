//! Where the server meets the pure step-up engine (ladder-core): one function turns a client, a
//! request and a session's proofs into the target level and the plan. `/authorize`, the
//! interaction pages and `ladder policy explain` all call it, so they always agree.

use ladder_core::{
    AcrRequest, ClientAcrPolicy, Factor, Plan, Prompt, ProvenFactor, Raise, RaiseReason, Reason, Recency, Target,
    TargetError, TargetInput, compute_target, plan,
};
use ladder_store::clients::Client;

use crate::grant::AuthRequest;
use crate::settings::Policy;

#[derive(Debug, Clone)]
pub struct Evaluation {
    pub target: Target,
    pub plan: Plan,
}

/// The client's `default_acr_values`, stored space-separated.
pub fn client_defaults(client: &Client) -> Vec<String> {
    client.default_acr_values.as_deref().unwrap_or_default().split_whitespace().map(str::to_owned).collect()
}

pub fn recency(request: &AuthRequest) -> Recency {
    let prompt = Prompt { login: request.prompt_login, ..Prompt::default() };
    Recency::new(request.max_age, prompt, request.requested_at)
}

/// The target and the plan for `request` given what the session has proven and what the user has
/// enrolled (`Factor::ALL` while the user is not yet known).
pub fn evaluate(
    policy: &Policy,
    client: &Client,
    request: &AuthRequest,
    proofs: &[ProvenFactor],
    enrolled: &[Factor],
    risk: &[Raise],
    now: i64,
) -> Result<Evaluation, TargetError> {
    let target = target_with(policy, client, &request.acr, &request.scope, enrolled, risk)?;
    let plan = plan(&target, proofs, enrolled, &recency(request), now);
    Ok(Evaluation { target, plan })
}

pub fn target(
    policy: &Policy,
    client: &Client,
    acr: &AcrRequest,
    scopes: &[String],
    enrolled: &[Factor],
) -> Result<Target, TargetError> {
    target_with(policy, client, acr, scopes, enrolled, &[])
}

/// The target with risk raises (from fired signals) added to the floor.
pub fn target_with(
    policy: &Policy,
    client: &Client,
    acr: &AcrRequest,
    scopes: &[String],
    enrolled: &[Factor],
    risk: &[Raise],
) -> Result<Target, TargetError> {
    let defaults = client_defaults(client);
    compute_target(
        &policy.levels,
        &TargetInput {
            request: acr,
            client: ClientAcrPolicy {
                default_acr_values: &defaults,
                minimum: client.min_acr.as_deref(),
                strict: client.strict_acr,
            },
            scopes,
            scope_rules: &policy.scope_rules,
            extra: risk,
            enrolled,
        },
    )
}

/// The risk sentence behind the target, when a signal is what raised it ("You're signing in
/// from a new device."): the page leads with it.
pub fn risk_reason(target: &Target) -> Option<String> {
    target.reasons.iter().find_map(|r| match &r.reason {
        RaiseReason::Risk(text) if r.level == target.level.name() => Some(text.clone()),
        _ => None,
    })
}

/// What the page tells the user about why Ladder asks for more.
pub fn explain_to_user(reason: &Reason, client_name: &str) -> String {
    match reason {
        Reason::NoSession | Reason::IdTokenHintMismatch => format!("Sign in to continue to {client_name}."),
        Reason::PromptLogin | Reason::MaxAge => format!("{client_name} asks you to confirm it's you again."),
        Reason::AcrNotMet { lapsed, .. } if !lapsed.is_empty() => {
            format!("Your earlier verification has expired. {client_name} needs you to verify again.")
        }
        Reason::AcrNotMet { .. } => format!("{client_name} needs extra verification for this action."),
    }
}

/// A line for audit rows and `ladder policy explain`: what raised the target, in order.
pub fn raise_reasons(target: &Target) -> Vec<String> {
    target.reasons.iter().map(|r| r.to_string()).collect()
}
