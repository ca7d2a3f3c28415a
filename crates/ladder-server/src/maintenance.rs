//! Background upkeep: expired interactions, codes, challenges, tokens, sessions and counters are
//! purged on a timer, so tables stay the size of what is live; on SQLite, the write-ahead log is
//! checkpointed every second here rather than inside requests.

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

/// How often the SQLite write-ahead log is copied back into the database.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

pub fn spawn(state: web::Data<AppState>) {
    spawn_checkpoints(state.clone());
    spawn_purge(state);
}

fn spawn_checkpoints(state: web::Data<AppState>) {
    if !state.db.is_sqlite() {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let db = state.db.clone();
            match web::block(move || db.checkpoint()).await {
                Ok(Ok(true)) => tracing::info!("write-ahead log outgrew its bound; truncated"),
                Ok(Ok(false)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "checkpoint failed; will retry"),
                Err(e) => tracing::warn!(error = %e, "checkpoint failed; will retry"),
            }
        }
    });
}

fn spawn_purge(state: web::Data<AppState>) {
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
