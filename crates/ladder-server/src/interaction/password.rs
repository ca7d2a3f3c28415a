//! The password step. One generic failure message whether the username or the password was wrong
//! (no user enumeration); an unknown user costs the same argon2 work as a known one; failures are
//! throttled per account and per IP; success answers 303 (never re-POSTable).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use ladder_core::{Factor, ProvenFactor, Reason, Step, password};
use ladder_store::{factors, users};
use serde::Deserialize;
use serde_json::json;

use super::{Pending, ProvenStep, load_for_post_with, pages};
use crate::attempts::{self, AttemptKeys};
use crate::audit::{self, Subject};
use crate::browser::ClientInfo;
use crate::errors::PageError;
use crate::session::{self, PreparedProof};
use crate::state::AppState;

const GENERIC_FAILURE: &str = "That username and password don't match. Check them and try again.";

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

impl std::fmt::Debug for PasswordForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordForm").field("username", &self.username).finish_non_exhaustive()
    }
}

async fn again(
    state: &AppState,
    req: &HttpRequest,
    pending: &Pending,
    error: String,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    let active = session::current(state, req).await?;
    let reason = if active.is_some() { Reason::PromptLogin } else { Reason::NoSession };
    let step = Step::Prove(Factor::Password);
    let shown = pages::Shown { reason: &reason, why: None };
    pages::render_step(state, req, pending, step, shown, active.as_ref(), &[], Some((error, status))).await
}

#[tracing::instrument(name = "password", level = "debug", skip_all)]
pub async fn submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<PasswordForm>,
) -> Result<HttpResponse, PageError> {
    let form = form.into_inner();
    let client = ClientInfo::from_request(&req);
    let username = form.username.trim().to_owned();
    let keys = AttemptKeys::new("password", &username, &client);
    // The interaction, the lock and the account in one round trip.
    let (lookup, lock_keys, now) = (username.clone(), keys.clone(), state.now());
    let (pending, (locked, found)) = load_for_post_with(&state, &req, path.into_inner(), &form.csrf, move |conn| {
        let locked = attempts::locked_for_in(conn, &lock_keys, now)?;
        let Some(user) = users::find_user_by_username(conn, &lookup)? else { return Ok((locked, None)) };
        let hash = users::find_password_hash(conn, &user.id)?;
        let enrolled = factors::enrolled(conn, &user.id)?;
        Ok((locked, Some((user, hash, enrolled))))
    })
    .await?;
    if let Some(wait) = locked {
        let message = format!("Too many failed attempts. Wait {} and try again.", attempts::human_wait(wait));
        return again(&state, &req, &pending, message, StatusCode::TOO_MANY_REQUESTS).await;
    }

    // Same argon2 cost whether or not the account exists or can sign in.
    let phc = found.as_ref().and_then(|(_, h, _)| h.clone()).unwrap_or_else(|| password::dummy_hash().to_owned());
    let matched = state.verify_password(form.password, phc).await?;
    // Kept server-side only (the page says the same either way): feeds the recent-failures signal.
    let known_id = found.as_ref().map(|(u, ..)| u.id.clone());
    let user = found.filter(|(u, ..)| matched && !u.disabled);
    let now = state.now();

    let Some((user, _, enrolled)) = user else {
        let (policies, client_id, info) = (attempts::policies(&state), pending.client.id.clone(), client.clone());
        state
            .write(move |conn| {
                attempts::record_failure(conn, &policies, &keys, known_id.as_deref(), &info, now)?;
                audit::record(
                    conn,
                    now,
                    "login",
                    "failure",
                    Subject { user_id: known_id.as_deref(), client_id: Some(&client_id), ..Default::default() },
                    &info,
                    json!({ "factor": "password" }),
                )
            })
            .await?;
        state.metrics.factor("password", "failure");
        return again(&state, &req, &pending, GENERIC_FAILURE.into(), StatusCode::OK).await;
    };

    // Subject pinning: a step-up (or a request naming its user) is finished by that user only.
    if pending.request.pinned_sub.as_deref().is_some_and(|pin| pin != user.id) {
        let (client_id, info, user_id) = (pending.client.id.clone(), client.clone(), user.id.clone());
        state
            .write(move |conn| {
                audit::record(
                    conn,
                    now,
                    "login",
                    "refused",
                    Subject { user_id: Some(&user_id), client_id: Some(&client_id), ..Default::default() },
                    &info,
                    json!({ "factor": "password", "reason": "subject_mismatch" }),
                )
            })
            .await?;
        return Err(PageError::forbidden(
            "This request is for another account",
            "You signed in as a different user than the one this application asked for. Nothing was \
             changed. Go back to the application and start again with the right account.",
        ));
    }

    let proof = ProvenFactor { factor: Factor::Password, proven_at: now, user_verified: false };
    let current = session::current(&state, &req).await?;
    let (absolute, user_id) = (state.settings.session.absolute_timeout_secs, user.id.clone());
    let prepared = PreparedProof::joining(current, user, enrolled, proof, &client, absolute);
    // Asked before anything is written: a sign-in that needs nothing more gets its code in the
    // proof's own transaction.
    let step = ProvenStep::plan(&state, &req, &pending, prepared).await?;
    let client_id = pending.client.id.clone();
    let recorded = state
        .write(move |conn| {
            attempts::record_success(conn, &keys)?;
            audit::record(
                conn,
                now,
                "factor",
                "success",
                Subject { user_id: Some(&user_id), session_id: Some(step.session_id()), client_id: Some(&client_id) },
                &client,
                json!({ "factor": "password" }),
            )?;
            step.record(conn)
        })
        .await?;
    state.metrics.factor("password", "success");
    recorded.respond(&state, &req, &pending).await
}
