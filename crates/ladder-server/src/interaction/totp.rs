//! The TOTP step (with recovery codes as its fallback) and TOTP enrolment inside the flow.
//! Each accepted code's time step is stored, so a code is accepted once (RFC 6238 §5.2); failures
//! are throttled per account and per IP; the secret is sealed under the server key.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use ladder_core::{Factor, ProvenFactor, Reason, Step, recovery, totp};
use ladder_store::factors;
use serde::Deserialize;
use serde_json::json;

use super::pages::{self, NoticePage, RecoveryCodesPage, totp_context};
use super::{Pending, ProvenStep, Recorded, is_pinned_user, load_for_post, load_for_post_with, pinned_session, see_other};
use crate::attempts::{self, AttemptKeys};
use crate::audit::{self, Subject};
use crate::browser::{ClientInfo, session_cookie};
use crate::crypto::sha256_hex;
use crate::errors::{AppError, PageError};
use crate::session::{self, ActiveSession, PreparedProof};
use crate::state::AppState;

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    code: String,
}

impl std::fmt::Debug for CodeForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeForm").field("kind", &self.kind).finish_non_exhaustive()
    }
}

/// How recovery codes are stored: salted with the user id, so equal codes never collide.
pub fn recovery_hash(user_id: &str, typed: &str) -> String {
    sha256_hex(&format!("{user_id}:{}", recovery::normalize(typed)))
}

/// A fresh set of recovery codes (shown once; only their hashes are kept).
pub fn new_recovery_codes() -> Result<Vec<String>, AppError> {
    let mut codes = Vec::with_capacity(recovery::COUNT);
    for _ in 0..recovery::COUNT {
        let mut bytes = [0u8; recovery::BYTES_PER_CODE];
        openssl::rand::rand_bytes(&mut bytes).map_err(|e| AppError::Keys(e.to_string()))?;
        codes.push(recovery::format_code(&bytes));
    }
    Ok(codes)
}

enum Outcome {
    Accepted { recorded: Box<Recorded>, recovery_left: Option<i64> },
    Wrong,
    Replayed,
}

#[tracing::instrument(name = "totp", level = "debug", skip_all)]
pub async fn verify(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<CodeForm>,
) -> Result<HttpResponse, PageError> {
    let form = form.into_inner();
    let client = ClientInfo::from_request(&req);
    // The interaction, the session and the lock in one round trip.
    let (read_session, info, now) = (session::current_reader(&state, &req), client.clone(), state.now());
    let (pending, found) = load_for_post_with(&state, &req, path.into_inner(), &form.csrf, move |conn| {
        let Some(active) = read_session(conn)? else { return Ok(None) };
        let keys = AttemptKeys::new("otp", &active.user.id, &info);
        let locked = attempts::locked_for_in(conn, &keys, now)?;
        Ok(Some((active, keys, locked)))
    })
    .await?;
    let Some((active, keys, locked)) = found.filter(|(active, ..)| is_pinned_user(&pending.request, active)) else {
        return Ok(see_other(&pending.url()));
    };
    let use_recovery = form.kind == "recovery";
    let factor = if use_recovery { Factor::RecoveryCode } else { Factor::Totp };
    if let Some(wait) = locked {
        let message = format!("Too many incorrect codes. Wait {} and try again.", attempts::human_wait(wait));
        return retry(&state, &req, &pending, &active, message, StatusCode::TOO_MANY_REQUESTS).await;
    }

    let (server_key, policies) = (state.server_key.clone(), attempts::policies(&state));
    let proof = ProvenFactor { factor, proven_at: now, user_verified: false };
    let prepared = PreparedProof::continuing(active.clone(), proof, &client);
    // Asked before anything is written: a step-up that needs nothing more gets its code in the
    // proof's own transaction. A recovery code first shows how many are left.
    let step = match use_recovery {
        true => ProvenStep::unplanned(prepared),
        false => ProvenStep::plan(&state, &req, &pending, prepared).await?,
    };
    let (user_id, session_id, client_id) = (active.user.id.clone(), active.session.id.clone(), pending.client.id.clone());
    let (info, code, reason) = (client.clone(), form.code, pending.request.stepup_reason.clone());
    let outcome = state
        .write(move |conn| {
            let accepted = if use_recovery {
                recovery::looks_like_code(&code)
                    && factors::use_recovery_code(conn, &user_id, &recovery_hash(&user_id, &code), now)?
            } else {
                let Some(cred) = factors::find_totp(conn, &user_id)?.filter(|t| t.confirmed) else {
                    return Ok(Outcome::Wrong);
                };
                let secret = server_key
                    .decrypt(&totp_context(&user_id), &cred.secret_enc)
                    .map_err(|e| ladder_store::StoreError::Corrupt(e.to_string()))?;
                match totp::check(&secret, &code, now) {
                    None => false,
                    Some(step) if !factors::accept_totp_step(conn, &user_id, step, false, now)? => {
                        audit::record(
                            conn,
                            now,
                            "stepup",
                            "failure",
                            Subject { user_id: Some(&user_id), session_id: Some(&session_id), client_id: Some(&client_id) },
                            &info,
                            json!({ "factor": "totp", "error": "replayed_code", "reason": reason }),
                        )?;
                        return Ok(Outcome::Replayed);
                    }
                    Some(_) => true,
                }
            };
            let subject = Subject { user_id: Some(&user_id), session_id: Some(&session_id), client_id: Some(&client_id) };
            if !accepted {
                attempts::record_failure(conn, &policies, &keys, Some(&user_id), &info, now)?;
                audit::record(conn, now, "stepup", "failure", subject, &info, json!({ "factor": factor, "reason": reason }))?;
                return Ok(Outcome::Wrong);
            }
            attempts::record_success(conn, &keys)?;
            audit::record(conn, now, "factor", "success", subject, &info, json!({ "factor": factor, "reason": reason }))?;
            let recorded = Box::new(step.record(conn)?);
            let recovery_left = if use_recovery { Some(factors::unused_recovery_codes(conn, &user_id)?) } else { None };
            Ok(Outcome::Accepted { recorded, recovery_left })
        })
        .await?;

    let outcome_label = match &outcome {
        Outcome::Accepted { .. } => "success",
        Outcome::Wrong => "failure",
        Outcome::Replayed => "replayed",
    };
    state.metrics.factor(factor.as_str(), outcome_label);
    match outcome {
        Outcome::Accepted { recorded, recovery_left: None } => recorded.respond(&state, &req, &pending).await,
        Outcome::Accepted { recorded, recovery_left: Some(left) } => {
            let message = match left {
                0 => "That was your last recovery code. Set up your authenticator again, or generate new codes from your account, before you need one.".to_owned(),
                1 => "You have 1 recovery code left.".to_owned(),
                n => format!("You have {n} recovery codes left."),
            };
            let page = NoticePage {
                title: "Recovery code accepted".into(),
                message,
                continue_url: pending.url(),
                continue_label: format!("Continue to {}", pending.client.name),
            };
            let mut resp = pages::html(&page, StatusCode::OK)?;
            resp.add_cookie(&session_cookie(&state, recorded.token)).map_err(|e| AppError::Blocking(e.to_string()))?;
            Ok(resp)
        }
        Outcome::Replayed => {
            let message = "That code was already used. Wait for your app to show a new one, then enter it.";
            retry(&state, &req, &pending, &active, message.into(), StatusCode::OK).await
        }
        Outcome::Wrong => {
            let message = if use_recovery {
                "That recovery code isn't valid or was already used."
            } else {
                "That code isn't right. Check your authenticator app and try again."
            };
            retry(&state, &req, &pending, &active, message.into(), StatusCode::OK).await
        }
    }
}

async fn retry(
    state: &AppState,
    req: &HttpRequest,
    pending: &Pending,
    active: &ActiveSession,
    error: String,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    let reason = Reason::AcrNotMet { target: String::new(), lapsed: vec![] };
    let step = Step::Prove(Factor::Totp);
    let shown = pages::Shown { reason: &reason, why: None };
    pages::render_step(state, req, pending, step, shown, Some(active), &active.enrolled, Some((error, status))).await
}

enum Enrolled {
    Done { token: String, codes: Vec<String> },
    Wrong,
}

#[tracing::instrument(name = "totp_enrol", level = "debug", skip_all)]
pub async fn enrol(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<CodeForm>,
) -> Result<HttpResponse, PageError> {
    let form = form.into_inner();
    let pending = load_for_post(&state, &req, path.into_inner(), &form.csrf).await?;
    let Some(active) = pinned_session(&state, &req, &pending).await? else {
        return Ok(see_other(&pending.url()));
    };
    let client = ClientInfo::from_request(&req);
    let keys = AttemptKeys::new("otp", &active.user.id, &client);
    let reason = Reason::AcrNotMet { target: String::new(), lapsed: vec![] };
    if let Some(wait) = attempts::locked_for(&state, &keys).await? {
        let message = format!("Too many incorrect codes. Wait {} and try again.", attempts::human_wait(wait));
        let error = Some((message, StatusCode::TOO_MANY_REQUESTS));
        let shown = pages::Shown { reason: &reason, why: None };
        return pages::render_enrolment(&state, &req, &pending, &active, shown, error).await;
    }

    let codes = new_recovery_codes()?;
    let now = state.now();
    let (server_key, policies) = (state.server_key.clone(), attempts::policies(&state));
    let (user_id, session_id, client_id) = (active.user.id.clone(), active.session.id.clone(), pending.client.id.clone());
    let (info, code, stepup_reason) = (client.clone(), form.code, pending.request.stepup_reason.clone());
    let outcome = state
        .write(move |conn| {
            let subject = Subject { user_id: Some(&user_id), session_id: Some(&session_id), client_id: Some(&client_id) };
            let pending_secret = factors::find_totp(conn, &user_id)?.filter(|t| !t.confirmed);
            let step = match pending_secret {
                Some(cred) => {
                    let secret = server_key
                        .decrypt(&totp_context(&user_id), &cred.secret_enc)
                        .map_err(|e| ladder_store::StoreError::Corrupt(e.to_string()))?;
                    totp::check(&secret, &code, now)
                }
                None => None,
            };
            let confirmed = match step {
                Some(step) => factors::accept_totp_step(conn, &user_id, step, true, now)?,
                None => false,
            };
            if !confirmed {
                attempts::record_failure(conn, &policies, &keys, Some(&user_id), &info, now)?;
                audit::record(conn, now, "enrolment", "failure", subject, &info, json!({ "factor": "totp" }))?;
                return Ok(Enrolled::Wrong);
            }
            attempts::record_success(conn, &keys)?;
            let hashes: Vec<String> = codes.iter().map(|c| recovery_hash(&user_id, c)).collect();
            factors::replace_recovery_codes(conn, &user_id, &hashes, now)?;
            let proof = ProvenFactor { factor: Factor::Totp, proven_at: now, user_verified: false };
            let token = session::add_proof(conn, &session_id, &proof, &info)?;
            audit::record(
                conn,
                now,
                "enrolment",
                "success",
                subject,
                &info,
                json!({ "factor": "totp", "recovery_codes": codes.len(), "reason": stepup_reason }),
            )?;
            Ok(Enrolled::Done { token, codes })
        })
        .await?;

    state.metrics.factor("totp_enrolment", if matches!(outcome, Enrolled::Done { .. }) { "success" } else { "failure" });
    match outcome {
        Enrolled::Done { token, codes } => {
            let page = RecoveryCodesPage { codes, continue_url: pending.url(), client_name: pending.client.name.clone() };
            let mut resp = pages::html(&page, StatusCode::OK)?;
            resp.add_cookie(&session_cookie(&state, token)).map_err(|e| AppError::Blocking(e.to_string()))?;
            Ok(resp)
        }
        Enrolled::Wrong => {
            let error = Some(("That code isn't right. Scan the QR code again if needed, then enter the code your app shows.".to_owned(), StatusCode::OK));
            let shown = pages::Shown { reason: &reason, why: None };
            pages::render_enrolment(&state, &req, &pending, &active, shown, error).await
        }
    }
}
