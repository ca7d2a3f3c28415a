//! Gathering what the risk signals look at (device cookie, addresses, idleness, recent failures,
//! the clock, a declared transaction value) and turning the fired signals into target raises.
//! The decisions themselves are ladder-core's `risk` module.

use actix_web::HttpRequest;
use actix_web::cookie::Cookie;
use ladder_core::Raise;
use ladder_core::risk::{self, Observation, Signal};
use ladder_store::clients::Client;
use ladder_store::{Conn, StoreError, audit, devices};

use crate::browser::{ClientInfo, device_cookie, device_token};
use crate::crypto::{new_keyed_secret, secret_key};
use crate::errors::AppError;
use crate::grant::AuthRequest;
use crate::session::ActiveSession;
use crate::state::AppState;

#[derive(Debug, Clone, Default)]
pub struct Assessment {
    pub signals: Vec<Signal>,
    pub raises: Vec<Raise>,
}

/// When in the flow signals are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    /// At `/authorize`: the session's idleness is what it was when the RP sent the user.
    Arrival,
    /// On Ladder's pages: the session was just used, so idleness is not read again (what was
    /// seen on arrival travels with the request).
    InFlow,
}

/// The signals this request fires for this session, and the raises they ask for — together with
/// those seen when the request arrived. Nothing is even looked up when no rule is configured.
pub async fn assess(
    state: &AppState,
    req: &HttpRequest,
    request: &AuthRequest,
    active: Option<&ActiveSession>,
    client: &Client,
    moment: Moment,
) -> Result<Assessment, AppError> {
    let config = &state.settings.risk;
    if config.rules.is_empty() {
        return Ok(Assessment::default());
    }
    let now = state.now();
    let info = ClientInfo::from_request(req);
    let mut obs = Observation {
        request_ip: info.ip.as_deref().and_then(|ip| ip.parse().ok()),
        now,
        value: request.authorization_details.as_deref().and_then(risk::value_from_authorization_details),
        value_thresholds: client.settings.value_thresholds.iter().map(|(c, v)| (c.to_ascii_uppercase(), *v)).collect(),
        ..Observation::default()
    };
    if let Some(active) = active {
        obs.session_ip = active.session.ip.as_deref().and_then(|ip| ip.parse().ok());
        if moment == Moment::Arrival {
            obs.idle_secs = Some(now - active.session.last_seen_at);
        }
        let user_id = active.user.id.clone();
        let token_hash = device_token(state, req).map(|t| secret_key(&t));
        let since = now - config.failure_window_secs;
        let (known, failures) = state
            .lookup(move |conn| {
                let known = match token_hash {
                    Some(h) => devices::find_known(conn, &user_id, &h)?.is_some(),
                    None => false,
                };
                Ok((known, audit::count_failures(conn, &user_id, since)?))
            })
            .await?;
        obs.device_known = Some(known);
        obs.recent_failures = u32::try_from(failures).unwrap_or(u32::MAX);
    }
    let signals = risk::signals(config, &obs);
    let mut raises = request.risk.clone();
    for r in risk::raises(config, &signals) {
        if !raises.contains(&r) {
            raises.push(r);
        }
    }
    Ok(Assessment { signals, raises })
}

/// After a completed sign-in, this browser is remembered as one of the user's devices (the
/// new-device signal), unless it already is. Prepared outside the transaction that completes the
/// sign-in, recorded inside it.
pub struct DeviceVisit {
    existing: Option<String>,
    token: String,
    agent: Option<String>,
}

impl DeviceVisit {
    pub fn new(state: &AppState, req: &HttpRequest) -> Self {
        DeviceVisit {
            existing: device_token(state, req).map(|t| secret_key(&t)),
            token: new_keyed_secret(),
            agent: ClientInfo::from_request(req).user_agent,
        }
    }

    /// Touches the known device or records a new one; true when the browser needs its cookie.
    pub fn record(&self, conn: &mut Conn, user_id: &str, now: i64) -> Result<bool, StoreError> {
        if let Some(h) = &self.existing
            && let Some(d) = devices::find_known(conn, user_id, h)?
        {
            devices::touch(conn, &d.id, now)?;
            return Ok(false);
        }
        devices::insert(conn, user_id, &secret_key(&self.token), self.agent.as_deref(), now)?;
        Ok(true)
    }

    pub fn cookie(self, state: &AppState) -> Cookie<'static> {
        device_cookie(state, self.token)
    }
}
