//! The access log: one line per request, written when its span closes, with the method, the route
//! pattern (never the query string), the status, the client's address and the request id that
//! every event inside the request carries.
//!
//! Leaner than tracing-actix-web's default span (fifteen OpenTelemetry fields, the route matched
//! twice, a second span per handler): on the lightest endpoints they cost an eighth of the
//! server's time.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::{Error, HttpMessage};
use tracing::Span;
use tracing::field::Empty;
use tracing_actix_web::{RequestId, RootSpanBuilder};

use crate::browser::client_ip;
use crate::state::AppState;

/// The matched route pattern, looked up once per request and shared with the metrics.
#[derive(Clone)]
pub struct Route(pub String);

/// The route pattern of `req` (`/console/users/{id}`), or "unmatched".
pub fn route_of(req: &actix_web::HttpRequest) -> String {
    if let Some(Route(route)) = req.extensions().get::<Route>() {
        return route.clone();
    }
    req.match_pattern().unwrap_or_else(|| "unmatched".into())
}

pub struct AccessLog;

impl RootSpanBuilder for AccessLog {
    fn on_request_start(req: &ServiceRequest) -> Span {
        let route = route_of(req.request());
        let proxies = req.app_data::<actix_web::web::Data<AppState>>().map(|s| s.settings.server.trusted_proxies.as_slice());
        let ip = client_ip(req.request(), proxies.unwrap_or_default());
        let request_id = req.extensions().get::<RequestId>().copied();
        let span = tracing::info_span!(
            "request",
            method = %req.method(),
            route = %route,
            status = Empty,
            ip = ip.map(tracing::field::display),
            request_id = request_id.map(tracing::field::display),
            error = Empty,
        );
        req.extensions_mut().insert(Route(route));
        span
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        let (status, error) = match outcome {
            Ok(resp) => (resp.status(), resp.response().error().map(|e| e.to_string())),
            Err(e) => (e.as_response_error().status_code(), Some(e.to_string())),
        };
        span.record("status", status.as_u16());
        if let Some(error) = error {
            span.record("error", tracing::field::display(&error));
            // A client's mistake is in its access line; the server's own failure also gets an
            // event of its own at `error`, for alerting.
            if status.is_server_error() {
                span.in_scope(|| tracing::error!(status = status.as_u16(), %error, "request failed"));
            }
        }
    }
}
