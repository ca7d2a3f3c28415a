//! RFC 7517 JSON Web Key Set: every key that may still verify a token we issued.

use actix_web::{HttpResponse, get, http::header, web};

use crate::state::AppState;

#[get("/jwks.json")]
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    let keys = state.keys.get().await;
    HttpResponse::Ok()
        .content_type("application/json")
        // Short enough that a rotation is picked up quickly; clients refetch on an unknown kid anyway.
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .body(keys.jwks_json().to_owned())
}
