//! Ladder's own pages while an authorization request is pending. `GET /interaction/{id}` asks the
//! step-up plan what is still missing and shows that one step (password, TOTP, TOTP enrolment);
//! each step's POST records its proof and moves on, until the plan is satisfied and the browser is
//! sent back to the relying party with a code.

pub mod pages;
pub mod passkey;
pub mod password;
pub mod totp;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use ladder_core::{Factor, Plan, Reason, Step};
use ladder_store::clients::{self, Client};
use ladder_store::interactions::{self, Interaction};
use ladder_store::{Conn, StoreError};
use serde_json::json;

use crate::audit::{self, Subject};
use crate::browser::{ClientInfo, browser_hash, check_csrf};
use crate::endpoints::authorize::unmet;
use crate::errors::{AppError, PageError};
use crate::grant::{self, AuthRequest, Grant, redirect_with};
use crate::session::{self, ActiveSession, PreparedProof};
use crate::risk::Assessment;
use crate::state::AppState;
use crate::stepup::{self, Evaluation};

/// One pending request, loaded and checked.
pub struct Pending {
    pub interaction: Interaction,
    pub request: AuthRequest,
    pub client: Client,
}

impl Pending {
    pub fn url(&self) -> String {
        format!("/interaction/{}", self.interaction.id)
    }
}

fn expired() -> PageError {
    PageError::bad_request(
        "This sign-in has expired",
        "Too much time passed, or it was already completed. Go back to the application and start again.",
    )
}

/// The pending interaction, only in the browser that started it.
pub async fn load(state: &AppState, req: &HttpRequest, id: String) -> Result<Pending, PageError> {
    Ok(load_with(state, req, id, |_| Ok(())).await?.0)
}

/// `load`, and what `also` reads, in one round trip.
async fn load_with<T: Send + 'static>(
    state: &AppState,
    req: &HttpRequest,
    id: String,
    also: impl FnOnce(&mut Conn) -> Result<T, StoreError> + Send + 'static,
) -> Result<(Pending, T), PageError> {
    let (now, cache) = (state.now(), state.clients.clone());
    let found = state
        .lookup(move |conn| {
            let Some(interaction) = interactions::find_interaction(conn, &id, now)? else { return Ok(None) };
            // The client as /authorize and /token see it (cached for a few seconds).
            let client = match cache.get(&interaction.client_id, now) {
                Some(c) => c,
                None => {
                    let Some(c) = clients::find_client(conn, &interaction.client_id)? else { return Ok(None) };
                    cache.put(&c, now);
                    c
                }
            };
            Ok(Some((interaction, client, also(conn)?)))
        })
        .await?;
    let (interaction, client, also) = found.ok_or_else(expired)?;
    let browser = req.cookie(state.cookies.browser).map(|c| c.value().to_owned()).unwrap_or_default();
    if browser.is_empty() || browser_hash(&browser) != interaction.browser_hash {
        return Err(PageError::forbidden(
            "This sign-in belongs to another browser",
            "Start again from the application in this browser.",
        ));
    }
    let request: AuthRequest = serde_json::from_str(&interaction.request).map_err(AppError::from)?;
    Ok((Pending { interaction, request, client }, also))
}

/// Loads the interaction for a form POST and checks its CSRF token.
pub async fn load_for_post(state: &AppState, req: &HttpRequest, id: String, csrf: &str) -> Result<Pending, PageError> {
    Ok(load_for_post_with(state, req, id, csrf, |_| Ok(())).await?.0)
}

/// `load_for_post`, and what `also` reads (nothing of it is used unless the CSRF token is
/// right), in one round trip.
pub async fn load_for_post_with<T: Send + 'static>(
    state: &AppState,
    req: &HttpRequest,
    id: String,
    csrf: &str,
    also: impl FnOnce(&mut Conn) -> Result<T, StoreError> + Send + 'static,
) -> Result<(Pending, T), PageError> {
    let (pending, also) = load_with(state, req, id, also).await?;
    if !check_csrf(state, req, csrf, &pending.interaction.browser_hash) {
        return Err(PageError::forbidden(
            "This form has expired",
            "The page was open too long or came from elsewhere. Go back to the application and start again.",
        ));
    }
    Ok((pending, also))
}

/// The signed-in user this interaction continues (if the request is pinned, only that user), or
/// None: the flow starts over at sign-in.
pub async fn pinned_session(state: &AppState, req: &HttpRequest, pending: &Pending) -> Result<Option<ActiveSession>, AppError> {
    Ok(session::current(state, req).await?.filter(|s| is_pinned_user(&pending.request, s)))
}

pub fn is_pinned_user(request: &AuthRequest, session: &ActiveSession) -> bool {
    request.pinned_sub.as_deref().is_none_or(|pin| pin == session.user.id)
}

/// Where the flow stands.
pub enum Next {
    /// Completed: send the browser to the RP with its code (and, for a browser new to this user,
    /// the cookie that remembers it as their device).
    Done { location: String, device: Option<actix_web::cookie::Cookie<'static>> },
    /// Failed (e.g. unmet requirements): send the browser to the RP with the error.
    Leave(String),
    /// Show this step; `why` is the risk sentence when a signal raised the level.
    Step { step: Step, reason: Reason, why: Option<String>, session: Option<Box<ActiveSession>>, enrolled: Vec<Factor> },
}

/// What the step-up plan says for a session, decided before anything is written.
pub enum Decision {
    /// No session (of the pinned user): sign in first.
    SignIn,
    /// Nothing is missing: issue the code.
    Complete(Box<Completion>),
    /// The user cannot reach what the request requires.
    Unmet(Box<Unmet>),
    /// Show this step; `why` is the risk sentence when a signal raised the level.
    Step { step: Step, reason: Reason, why: Option<String> },
}

/// Asks the plan what is missing for the (pinned) session. `assessed` is the risk this request
/// has already read (at `/authorize`); without it, the signals are read now.
pub async fn decide(
    state: &AppState,
    req: &HttpRequest,
    pending: &Pending,
    active: Option<&ActiveSession>,
    assessed: Option<Assessment>,
) -> Result<Decision, PageError> {
    let Some(active) = active.filter(|s| is_pinned_user(&pending.request, s)) else {
        return Ok(Decision::SignIn);
    };
    let now = state.now();
    let risk = match assessed {
        Some(risk) => risk,
        None => {
            let moment = crate::risk::Moment::InFlow;
            crate::risk::assess(state, req, &pending.request, Some(active), &pending.client, moment).await?
        }
    };
    let evaluation =
        stepup::evaluate(&state.policy, &pending.client, &pending.request, &active.proofs, &active.enrolled, &risk.raises, now)
            .map_err(|e| AppError::Policy(e.to_string()))?;
    let unmet = |evaluation: &Evaluation| Decision::Unmet(Box::new(Unmet::new(req, pending, active, evaluation)));
    Ok(match &evaluation.plan {
        Plan::Satisfied => match Completion::new(state, req, pending, active, &evaluation, &risk, now) {
            Some(completion) => Decision::Complete(Box::new(completion)),
            None => unmet(&evaluation),
        },
        Plan::Unreachable => unmet(&evaluation),
        Plan::Prove { reason, steps, .. } => match steps.first() {
            Some(step) => Decision::Step { step: *step, reason: reason.clone(), why: stepup::risk_reason(&evaluation.target) },
            None => unmet(&evaluation),
        },
    })
}

/// Asks the plan what is missing for the (pinned) session; completes the request when nothing is.
pub async fn advance(
    state: &AppState,
    req: &HttpRequest,
    pending: &Pending,
    active: Option<ActiveSession>,
    assessed: Option<Assessment>,
) -> Result<Next, PageError> {
    let decision = decide(state, req, pending, active.as_ref(), assessed).await?;
    act(state, decision, active).await
}

/// Carries out a decision made for `active`.
async fn act(state: &AppState, decision: Decision, active: Option<ActiveSession>) -> Result<Next, PageError> {
    Ok(match decision {
        Decision::SignIn => {
            let first = Step::Prove(Factor::Password);
            Next::Step { step: first, reason: Reason::NoSession, why: None, session: None, enrolled: vec![] }
        }
        Decision::Complete(completion) => {
            let (location, device) = completion.commit(state).await?;
            Next::Done { location, device }
        }
        Decision::Unmet(unmet) => Next::Leave(unmet.commit(state).await?),
        Decision::Step { step, reason, why } => {
            let enrolled = active.as_ref().map(|a| a.enrolled.clone()).unwrap_or_default();
            Next::Step { step, reason, why, session: active.map(Box::new), enrolled }
        }
    })
}

/// Issuing the code of a request whose plan is satisfied: prepared outside the transaction, run
/// inside it (`run`, which can share the transaction of the proof that satisfied the plan).
pub struct Completion {
    ending: Ending,
    grant: Grant,
    visit: crate::risk::DeviceVisit,
    issuer: String,
    ttl: i64,
    level: String,
    signals: Vec<&'static str>,
    now: i64,
}

/// How a pending request ends, either way: its interaction deleted and the outcome audited for
/// the user and session it concerns.
struct Ending {
    request: AuthRequest,
    interaction_id: String,
    user_id: String,
    session_id: String,
    info: ClientInfo,
    detail: serde_json::Value,
}

impl Ending {
    fn new(req: &HttpRequest, pending: &Pending, active: &ActiveSession, detail: serde_json::Value) -> Self {
        Ending {
            request: pending.request.clone(),
            interaction_id: pending.interaction.id.clone(),
            user_id: active.user.id.clone(),
            session_id: active.session.id.clone(),
            info: ClientInfo::from_request(req),
            detail,
        }
    }

    /// Deletes the interaction; false when it was already gone (completed or ended elsewhere).
    fn end_interaction(&self, conn: &mut Conn) -> Result<bool, StoreError> {
        interactions::delete_interaction(conn, &self.interaction_id)
    }

    fn audit(&self, conn: &mut Conn, now: i64, kind: &str, outcome: &str) -> Result<(), StoreError> {
        let subject = Subject {
            user_id: Some(&self.user_id),
            session_id: Some(&self.session_id),
            client_id: Some(&self.request.client_id),
        };
        audit::record(conn, now, kind, outcome, subject, &self.info, self.detail.clone())
    }
}

/// What `Completion::run` did: the RP's location with the code, and whether the browser is a new
/// device of the user's. None when the interaction had already completed.
pub type Issued = Option<(String, bool)>;

impl Completion {
    /// None when the proofs cannot back a grant (`Grant::from_proofs`): the request is then unmet.
    fn new(
        state: &AppState,
        req: &HttpRequest,
        pending: &Pending,
        active: &ActiveSession,
        evaluation: &Evaluation,
        risk: &Assessment,
        now: i64,
    ) -> Option<Self> {
        let grant = Grant::from_proofs(&evaluation.target, &state.policy.levels, &active.proofs, now)?;
        let request = &pending.request;
        let detail = json!({
            "reason": request.stepup_reason,
            "requested_acr": request.acr.values(),
            "achieved_acr": grant.acr,
            "amr": grant.amr,
            "raised_by": stepup::raise_reasons(&evaluation.target),
            "signals": crate::endpoints::authorize::signal_kinds(&risk.signals),
        });
        Some(Completion {
            ending: Ending::new(req, pending, active, detail),
            grant,
            visit: crate::risk::DeviceVisit::new(state, req),
            issuer: state.issuer.clone(),
            ttl: state.settings.tokens.code_ttl_secs,
            level: evaluation.target.level.name().to_owned(),
            signals: risk.signals.iter().map(|s| s.kind.as_str()).collect(),
            now,
        })
    }

    fn kind(&self) -> &'static str {
        if self.ending.request.stepup_reason.is_some() { "stepup" } else { "login" }
    }

    /// Issues the code once (the interaction is deleted in the same transaction), audits the
    /// outcome and remembers the browser as the user's device.
    pub fn run(&self, conn: &mut Conn) -> Result<Issued, StoreError> {
        let (ending, now) = (&self.ending, self.now);
        if !ending.end_interaction(conn)? {
            return Ok(None);
        }
        ending.audit(conn, now, self.kind(), "success")?;
        let (user_id, session_id) = (ending.user_id.as_str(), ending.session_id.as_str());
        let location = grant::issue_code(conn, &ending.request, user_id, session_id, &self.grant, &self.issuer, self.ttl, now)?;
        let new_device = self.visit.record(conn, user_id, now)?;
        Ok(Some((location, new_device)))
    }

    /// After the commit: the location, and the cookie of a new device.
    pub fn finish(
        self,
        state: &AppState,
        issued: Issued,
    ) -> Result<(String, Option<actix_web::cookie::Cookie<'static>>), PageError> {
        let (location, new_device) = issued.ok_or_else(expired)?;
        for kind in &self.signals {
            state.metrics.signal(kind);
        }
        let waited = self.now - self.ending.request.requested_at;
        state.metrics.authentication(self.kind(), &self.level, "success", waited);
        Ok((location, new_device.then(|| self.visit.cookie(state))))
    }

    /// `run` in a transaction of its own, then `finish`.
    async fn commit(self, state: &AppState) -> Result<(String, Option<actix_web::cookie::Cookie<'static>>), PageError> {
        let (completion, issued) = state
            .write(move |conn| {
                let issued = self.run(conn)?;
                Ok((self, issued))
            })
            .await?;
        completion.finish(state, issued)
    }
}

/// Telling the RP that the user cannot reach what its request requires (OIDC Core §3.1.2.6).
pub struct Unmet {
    ending: Ending,
    target: String,
}

impl Unmet {
    fn new(req: &HttpRequest, pending: &Pending, active: &ActiveSession, evaluation: &Evaluation) -> Self {
        let request = &pending.request;
        let detail = json!({
            "reason": request.stepup_reason,
            "requested_acr": request.acr.values(),
            "essential": evaluation.target.is_essential(),
            "target": evaluation.target.level.name(),
            "raised_by": stepup::raise_reasons(&evaluation.target),
        });
        Unmet { ending: Ending::new(req, pending, active, detail), target: evaluation.target.level.name().to_owned() }
    }

    /// Ends the interaction, audits the outcome; the RP's location with the error.
    async fn commit(self, state: &AppState) -> Result<String, PageError> {
        let now = state.now();
        state.metrics.authentication("stepup", &self.target, "unmet", 0);
        let request = &self.ending.request;
        let error = unmet();
        let mut pairs = vec![("error", error.code), ("error_description", error.description.as_str())];
        if let Some(s) = &request.state {
            pairs.push(("state", s));
        }
        pairs.push(("iss", &state.issuer));
        let location = redirect_with(&request.redirect_uri, &pairs);
        let ending = self.ending;
        state
            .write(move |conn| {
                ending.end_interaction(conn)?;
                ending.audit(conn, now, "stepup", "unmet")
            })
            .await?;
        Ok(location)
    }
}

pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// A verified proof on its way in: the session it will leave, and what the plan says for that
/// session, asked before anything is written. When nothing more is missing, the code is issued in
/// the proof's own transaction: one commit and no read-back for a sign-in or step-up.
pub struct ProvenStep {
    prepared: PreparedProof,
    decision: Option<Decision>,
}

impl ProvenStep {
    pub async fn plan(
        state: &AppState,
        req: &HttpRequest,
        pending: &Pending,
        prepared: PreparedProof,
    ) -> Result<Self, PageError> {
        let decision = decide(state, req, pending, Some(&prepared.after), None).await?;
        Ok(ProvenStep { prepared, decision: Some(decision) })
    }

    /// Without asking the plan now: it is asked when the browser continues (a page comes first).
    pub fn unplanned(prepared: PreparedProof) -> Self {
        ProvenStep { prepared, decision: None }
    }

    pub fn session_id(&self) -> &str {
        &self.prepared.after.session.id
    }

    /// Inside the step's transaction: records the proof and, when nothing more is missing, issues
    /// the code.
    pub fn record(self, conn: &mut Conn) -> Result<Recorded, StoreError> {
        let live = self.prepared.record(conn)?;
        let PreparedProof { after, token, .. } = self.prepared;
        let onward = match (live, self.decision) {
            (false, _) => Onward::Ask(None),
            (true, Some(Decision::Complete(completion))) => {
                let issued = completion.run(conn)?;
                Onward::Issued(completion, issued)
            }
            (true, Some(decision)) => Onward::Decided(decision, Box::new(after)),
            (true, None) => Onward::Ask(Some(Box::new(after))),
        };
        Ok(Recorded { token, onward })
    }
}

/// A proof recorded: the session's new cookie token, and the way on.
pub struct Recorded {
    pub token: String,
    onward: Onward,
}

enum Onward {
    /// The code was issued in the proof's transaction.
    Issued(Box<Completion>, Issued),
    /// The plan, asked for the session the proof left, said this.
    Decided(Decision, Box<ActiveSession>),
    /// The plan is asked now, for this session (none: it ended meanwhile).
    Ask(Option<Box<ActiveSession>>),
}

impl Recorded {
    /// After the commit: to the RP or the next step, with the new session cookie.
    pub async fn respond(self, state: &AppState, req: &HttpRequest, pending: &Pending) -> Result<HttpResponse, PageError> {
        let next = match self.onward {
            Onward::Issued(completion, issued) => {
                let (location, device) = completion.finish(state, issued)?;
                Next::Done { location, device }
            }
            Onward::Decided(decision, active) => act(state, decision, Some(*active)).await?,
            Onward::Ask(active) => advance(state, req, pending, active.map(|a| *a), None).await?,
        };
        let (location, device) = leave_to(pending, next);
        let mut resp = see_other(&location);
        resp.add_cookie(&crate::browser::session_cookie(state, self.token)).map_err(|e| AppError::Blocking(e.to_string()))?;
        if let Some(cookie) = device {
            resp.add_cookie(&cookie).map_err(|e| AppError::Blocking(e.to_string()))?;
        }
        Ok(resp)
    }
}

/// Where the browser goes after a step, and — when the request completed — the cookie that
/// remembers this browser as the user's device.
pub fn leave_to(pending: &Pending, next: Next) -> (String, Option<actix_web::cookie::Cookie<'static>>) {
    match next {
        Next::Done { location, device } => (location, device),
        Next::Leave(location) => (location, None),
        Next::Step { .. } => (pending.url(), None),
    }
}

/// `GET /interaction/{id}`: the page for the next step, or the way out.
pub async fn show(state: web::Data<AppState>, req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse, PageError> {
    let (pending, active) = load_with(&state, &req, path.into_inner(), session::current_reader(&state, &req)).await?;
    page(&state, &req, &pending, active, None).await
}

/// The page for the interaction's next step, or the way out: what `GET /interaction/{id}` shows,
/// and what `/authorize` shows at once for the interaction it has just started (one round trip
/// fewer for every sign-in and step-up, which passes the risk it has just read as `assessed`).
pub async fn page(
    state: &AppState,
    req: &HttpRequest,
    pending: &Pending,
    active: Option<ActiveSession>,
    assessed: Option<Assessment>,
) -> Result<HttpResponse, PageError> {
    match advance(state, req, pending, active, assessed).await? {
        Next::Step { step, reason, why, session, enrolled } => {
            let shown = pages::Shown { reason: &reason, why: why.as_deref() };
            pages::render_step(state, req, pending, step, shown, session.as_deref(), &enrolled, None).await
        }
        done => {
            let (location, device) = leave_to(pending, done);
            let mut resp = see_other(&location);
            if let Some(cookie) = device {
                resp.add_cookie(&cookie).map_err(|e| AppError::Blocking(e.to_string()))?;
            }
            Ok(resp)
        }
    }
}
