//! Step-up authentication for resource servers (RFC 9470) that accept Ladder access tokens.
//!
//! Ladder issues JWT access tokens (RFC 9068, `typ: at+jwt`) that carry the authentication
//! level (`acr`), methods (`amr`) and time (`auth_time`) behind them. A [`Guard`] verifies such a
//! token against the issuer's JWKS (cached, refetched when a token names an unknown key), checks
//! issuer, audience and lifetime, and then a route's [`Requirement`]:
//!
//! - no, invalid or expired token: `401`, `WWW-Authenticate: Bearer error="invalid_token", …`
//!   (RFC 6750 §3.1; a bare `Bearer` challenge when no token was sent);
//! - level too low or authentication too old: `401`, `WWW-Authenticate: Bearer
//!   error="insufficient_user_authentication", error_description="…", acr_values="…", max_age="…"` (quoted, as in the RFC's examples)
//!   (RFC 9470 §3), telling the client what to ask Ladder for in its next authorization request;
//! - missing scope: `403`, `Bearer error="insufficient_scope", error_description="…", scope="…"`.
//!
//! Each refusal also has a JSON body `{"error": …, "error_description": …}`.
//!
//! Levels are ordered ([`Levels`]), so a route that needs `urn:ladder:loa:2` accepts a
//! `urn:ladder:loa:3` token.
//!
//! # Example
//!
//! A payments API whose `POST /payments` needs two-factor authentication performed within the
//! last five minutes, and whose `GET /statements` checks inside the handler:
//!
//! ```no_run
//! use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
//! use ladder_guard::{Guard, GuardError, LOA1, LOA2, Requirement, VerifiedToken};
//!
//! async fn pay(token: VerifiedToken) -> HttpResponse {
//!     HttpResponse::Ok().body(format!("payment by {} at {:?}", token.sub(), token.acr()))
//! }
//!
//! async fn statements(req: HttpRequest, guard: web::Data<Guard>) -> Result<HttpResponse, GuardError> {
//!     let token = guard.check(&req, &Requirement::acr(LOA1).scope("statements:read")).await?;
//!     Ok(HttpResponse::Ok().body(format!("statements of {}", token.sub())))
//! }
//!
//! #[actix_web::main]
//! async fn main() -> std::io::Result<()> {
//!     // Keys come from https://id.example.com/jwks.json; use `.discover().await` to read
//!     // the issuer's discovery document instead.
//!     let guard = Guard::builder("https://id.example.com", "https://api.example.com").build();
//!     HttpServer::new(move || {
//!         App::new()
//!             .app_data(web::Data::new(guard.clone()))
//!             .service(
//!                 web::resource("/payments")
//!                     .wrap(guard.require(Requirement::acr(LOA2).max_age(300)))
//!                     .route(web::post().to(pay)),
//!             )
//!             .route("/statements", web::get().to(statements))
//!     })
//!     .bind(("127.0.0.1", 8080))?
//!     .run()
//!     .await
//! }
//! ```
//!
//! A `loa:1` token sent to `/payments` is answered with
//!
//! ```text
//! HTTP/1.1 401 Unauthorized
//! WWW-Authenticate: Bearer error="insufficient_user_authentication", error_description="A higher level of authentication is required.", acr_values="urn:ladder:loa:2", max_age="300"
//! ```
//!
//! and the client starts a new authorization request with `acr_values=urn:ladder:loa:2` and
//! `max_age=300`; Ladder asks only for the missing factor.

mod error;
mod guard;
mod jwks;
mod levels;
mod middleware;
mod requirement;
mod token;

pub use error::{GuardError, TokenRejection};
pub use guard::{Clock, DiscoveryError, Guard, GuardBuilder, SystemClock};
pub use levels::{LOA1, LOA2, LOA3, Levels};
pub use middleware::{RequireAuth, RequireAuthMiddleware};
pub use requirement::Requirement;
pub use token::VerifiedToken;
