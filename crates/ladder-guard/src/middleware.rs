//! actix-web integration: a middleware that guards a resource or scope, and an extractor that
//! hands the verified token to the handler.

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::{Error, FromRequest, HttpMessage, HttpRequest, web};

use crate::error::GuardError;
use crate::guard::Guard;
use crate::requirement::Requirement;
use crate::token::VerifiedToken;

impl Guard {
    /// Middleware that refuses requests not meeting `requirement` and stores the
    /// [`VerifiedToken`] for the handler to extract.
    pub fn require(&self, requirement: Requirement) -> RequireAuth {
        RequireAuth {
            guard: self.clone(),
            requirement: Arc::new(requirement),
        }
    }
}

/// The middleware made by [`Guard::require`]; pass it to `wrap`.
#[derive(Debug, Clone)]
pub struct RequireAuth {
    guard: Guard,
    requirement: Arc<Requirement>,
}

impl<S, B> Transform<S, ServiceRequest> for RequireAuth
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = RequireAuthMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequireAuthMiddleware {
            service: Rc::new(service),
            guard: self.guard.clone(),
            requirement: Arc::clone(&self.requirement),
        }))
    }
}

#[doc(hidden)]
pub struct RequireAuthMiddleware<S> {
    service: Rc<S>,
    guard: Guard,
    requirement: Arc<Requirement>,
}

impl<S, B> Service<ServiceRequest> for RequireAuthMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = Rc::clone(&self.service);
        let guard = self.guard.clone();
        let requirement = Arc::clone(&self.requirement);
        Box::pin(async move {
            match guard.check(req.request(), &requirement).await {
                Ok(token) => {
                    req.extensions_mut().insert(token);
                    service
                        .call(req)
                        .await
                        .map(ServiceResponse::map_into_left_body)
                }
                // Answered here rather than as an Err so outer middleware sees a normal response.
                Err(refusal) => Ok(req.error_response(refusal).map_into_right_body()),
            }
        })
    }
}

/// Extracting a `VerifiedToken` takes the one checked by [`Guard::require`]; without that
/// middleware it verifies the request's token with a [`Guard`] from app data (plain or
/// `web::Data`) and no further requirement.
impl FromRequest for VerifiedToken {
    type Error = GuardError;
    type Future = Pin<Box<dyn Future<Output = Result<VerifiedToken, GuardError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        if let Some(token) = req.extensions().get::<VerifiedToken>() {
            let token = token.clone();
            return Box::pin(async move { Ok(token) });
        }
        let guard = req.app_data::<Guard>().cloned().or_else(|| {
            req.app_data::<web::Data<Guard>>()
                .map(|g| g.get_ref().clone())
        });
        let req = req.clone();
        Box::pin(async move {
            let guard = guard.ok_or(GuardError::NotConfigured)?;
            guard.check(&req, &Requirement::any()).await
        })
    }
}
