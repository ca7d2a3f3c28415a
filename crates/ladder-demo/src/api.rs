//! The bank's JSON API: a resource server that accepts Ladder access tokens through ladder-guard.
//! What a call needs depends on what it does (RFC 9470):
//!
//! | route | needs |
//! |---|---|
//! | `GET /api/account` | any valid token (`urn:ladder:loa:1`) |
//! | `POST /api/transfer` | loa:1 up to the threshold; above it loa:2 proven within `max_age` |
//! | `POST /api/payees`, `DELETE /api/payees/{id}` | loa:3 (a passkey) proven within `max_age` |
//!
//! A token that falls short is answered `401` with `WWW-Authenticate: Bearer
//! error="insufficient_user_authentication", acr_values="…", max_age="…"`; any client — the web
//! front end in `web.rs`, or curl — then asks Ladder for exactly that and calls again.

use actix_web::{HttpResponse, ResponseError, web};
use ladder_guard::{Guard, LOA1, LOA2, LOA3, Requirement, VerifiedToken};
use serde::Deserialize;
use serde_json::json;

use crate::bank::BankError;
use crate::money::Money;
use crate::state::AppState;
use crate::time::now;

pub fn routes(cfg: &mut web::ServiceConfig, guard: &Guard, max_age: i64) {
    let payees = Requirement::acr(LOA3).max_age(max_age);
    cfg.service(
        web::scope("/api")
            .service(
                web::resource("/account")
                    .wrap(guard.require(Requirement::acr(LOA1)))
                    .route(web::get().to(account)),
            )
            .service(
                web::resource("/transfer")
                    .wrap(guard.require(Requirement::acr(LOA1)))
                    .route(web::post().to(transfer)),
            )
            .service(
                web::resource("/payees")
                    .wrap(guard.require(payees.clone()))
                    .route(web::post().to(add_payee)),
            )
            .service(
                web::resource("/payees/{id}")
                    .wrap(guard.require(payees))
                    .route(web::delete().to(remove_payee)),
            ),
    );
}

/// What a transfer of `amount` demands: above the threshold, two factors and a recent proof.
pub fn transfer_requirement(state: &AppState, amount: Money) -> Requirement {
    if amount > state.config.transfer_threshold {
        Requirement::acr(LOA2).max_age(state.config.step_up_max_age)
    } else {
        Requirement::acr(LOA1)
    }
}

async fn account(state: web::Data<AppState>, token: VerifiedToken) -> HttpResponse {
    HttpResponse::Ok().json(state.bank.account(token.sub()))
}

#[derive(Debug, Deserialize)]
pub struct TransferRequest {
    pub payee_id: String,
    pub amount: Money,
}

async fn transfer(
    state: web::Data<AppState>,
    token: VerifiedToken,
    body: web::Json<TransferRequest>,
) -> HttpResponse {
    // The route let any valid token in; the amount decides what this call needs.
    if let Err(refusal) = state
        .guard
        .authorize(&token, &transfer_requirement(&state, body.amount))
    {
        return refusal.error_response();
    }
    match state
        .bank
        .transfer(token.sub(), &body.payee_id, body.amount, token.acr(), now())
    {
        Ok(transfer) => HttpResponse::Ok().json(json!({
            "transfer": transfer,
            "balance": state.bank.account(token.sub()).balance,
        })),
        Err(e) => refused(e),
    }
}

#[derive(Debug, Deserialize)]
pub struct NewPayee {
    pub name: String,
    pub account: String,
}

async fn add_payee(
    state: web::Data<AppState>,
    token: VerifiedToken,
    body: web::Json<NewPayee>,
) -> HttpResponse {
    match state.bank.add_payee(token.sub(), &body.name, &body.account) {
        Ok(payee) => HttpResponse::Created().json(json!({ "payee": payee })),
        Err(e) => refused(e),
    }
}

async fn remove_payee(
    state: web::Data<AppState>,
    token: VerifiedToken,
    id: web::Path<String>,
) -> HttpResponse {
    match state.bank.remove_payee(token.sub(), &id) {
        Ok(payee) => HttpResponse::Ok().json(json!({ "removed": payee })),
        Err(e) => refused(e),
    }
}

fn refused(e: BankError) -> HttpResponse {
    HttpResponse::UnprocessableEntity()
        .json(json!({ "error": "refused", "error_description": e.to_string() }))
}
