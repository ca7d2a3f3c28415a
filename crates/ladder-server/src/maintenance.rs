//! Background upkeep: expired interactions, codes, challenges, tokens, sessions and counters are
//! purged on a timer, so tables stay the size of what is live.

use actix_web::web;
use ladder_store::purge::{self, Purged};

use crate::errors::AppError;
use crate::state::AppState;

/// How long past expiry rows are kept (a replayed code is still recognised as one until then).
const GRACE_SECS: i64 = 24 * 3600;

pub async fn purge_now(state: &AppState) -> Result<Purged, AppError> {
    let now = state.now();
    state.write(move |conn| purge::purge_expired(conn, now, GRACE_SECS)).await
}

pub fn spawn(state: web::Data<AppState>) {
    let every = state.settings.maintenance.purge_interval_secs;
    if every == 0 {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(every));
        tick.tick().await;
        loop {
            tick.tick().await;
            match purge_now(&state).await {
                Ok(p) if p.total() > 0 => tracing::info!(purged = p.total(), "purged expired rows"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "purge failed; will retry"),
            }
        }
    });
}
