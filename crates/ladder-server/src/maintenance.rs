//! Background upkeep: expired interactions, codes, challenges, tokens, sessions and counters are
//! purged on a timer, so tables stay the size of what is live.

use actix_web::web;
use ladder_store::purge::{self, Purged};

use crate::errors::AppError;
use crate::state::AppState;

/// How long past expiry rows are kept (a replayed code is still recognised as one until then).
const GRACE_SECS: i64 = 24 * 3600;

/// Rows deleted per write transaction: a short hold on SQLite's single writer.
const BATCH: usize = 500;

/// Purges every kind in turn: a read finds a batch of expired keys (scanning beside the writer,
/// not in it), a write deletes them, until a batch comes back short.
pub async fn purge_now(state: &AppState) -> Result<Purged, AppError> {
    let now = state.now();
    let mut purged = Purged::default();
    for kind in purge::Kind::ALL {
        loop {
            let keys = state.read(move |conn| purge::expired_keys(conn, kind, now, GRACE_SECS, BATCH as i64)).await?;
            let full = keys.len() == BATCH;
            if keys.is_empty() {
                break;
            }
            let n = state.write(move |conn| purge::delete_expired(conn, kind, &keys, now, GRACE_SECS)).await?;
            purged.add(kind, n);
            // A full batch none of which went came back to life in between: leave the rest for next time.
            if !full || n == 0 {
                break;
            }
        }
    }
    Ok(purged)
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
