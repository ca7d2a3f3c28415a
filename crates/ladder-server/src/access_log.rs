//! The access log: one line per request, with the method, the route pattern (never the query
//! string), the status, the client's address, the error if any, the time taken, and the request
//! id that every event inside the request carries.
//!
//! Leaner than tracing-actix-web's default span (fifteen OpenTelemetry fields, the route matched
//! twice, a second span per handler): on the lightest endpoints they cost an eighth of the
//! server's time. The request's span holds only its id; the line is an event written when the
//! response is ready, rather than the span's close, which the formatter would time at every poll
//! and whose fields it would format twice (bench/RESULTS.md, round 11).

use std::net::IpAddr;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::{Error, HttpMessage, web};
use tracing::Span;
use tracing_actix_web::{RequestId, RootSpanBuilder};

use crate::browser::client_ip;
use crate::state::AppState;

/// The route pattern of `req` (`/console/users/{id}`), or "unmatched".
fn route_of(req: &actix_web::HttpRequest) -> String {
    req.match_pattern().unwrap_or_else(|| "unmatched".into())
}

/// The request's span: its id, for every event inside it.
pub struct AccessLog;

impl RootSpanBuilder for AccessLog {
    fn on_request_start(req: &ServiceRequest) -> Span {
        let request_id = req.extensions().get::<RequestId>().copied();
        tracing::info_span!("request", request_id = request_id.map(display))
    }

    fn on_request_end<B: MessageBody>(_span: Span, _outcome: &Result<ServiceResponse<B>, Error>) {}
}

/// A request as it arrived: what its access line and the metrics need, read before it is handled.
pub struct Arrival {
    started: Instant,
    method: Method,
    route: String,
    ip: Option<IpAddr>,
    state: Option<web::Data<AppState>>,
}

impl Arrival {
    pub fn of(req: &ServiceRequest) -> Self {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let proxies = state.as_ref().map(|s| s.settings.server.trusted_proxies.as_slice());
        Arrival {
            started: Instant::now(),
            method: req.method().clone(),
            route: route_of(req.request()),
            ip: client_ip(req.request(), proxies.unwrap_or_default()),
            state,
        }
    }

    /// Writes the request's access line (inside its span) and counts it in the metrics.
    pub fn finish<B>(self, outcome: &Result<ServiceResponse<B>, Error>) {
        let elapsed = self.started.elapsed();
        let (status, error) = match outcome {
            Ok(resp) => (resp.status(), resp.response().error().map(|e| e.to_string())),
            Err(e) => (e.as_response_error().status_code(), Some(e.to_string())),
        };
        tracing::info!(
            method = %self.method,
            route = %self.route,
            status = status.as_u16(),
            ip = self.ip.map(display),
            error = error.as_deref().map(display),
            duration_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        );
        // A client's mistake is in its access line; the server's own failure also gets an event
        // of its own at `error`, for alerting.
        if status.is_server_error() {
            let error = error.as_deref().map(tracing::field::display);
            tracing::error!(route = %self.route, status = status.as_u16(), error, "request failed");
        }
        if let Some(state) = &self.state {
            state.metrics.http(&self.route, status, elapsed);
        }
    }
}
