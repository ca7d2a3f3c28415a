//! The optional JSON-lines mirror of the audit trail (`[audit] mirror_file`), for log shippers
//! that tail files. It follows the committed chain from the database, so the mirror never shows
//! an event whose transaction rolled back, and it resumes after the last line already written.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use actix_web::web;
use ladder_store::audit;

use crate::state::AppState;

/// The `seq` of the last event in the file, if any.
fn last_mirrored(path: &PathBuf) -> i64 {
    let Ok(file) = std::fs::File::open(path) else { return 0 };
    std::io::BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
        .filter_map(|v| v.get("seq").and_then(|s| s.as_i64()))
        .last()
        .unwrap_or(0)
}

/// Appends new events every second, for as long as the server runs.
pub fn spawn(state: web::Data<AppState>, path: PathBuf) {
    tokio::spawn(async move {
        let mut after = last_mirrored(&path);
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            let since = after;
            let page = match state.read(move |conn| audit::events_since(conn, i64::MIN, since, 500)).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "audit mirror: reading events");
                    continue;
                }
            };
            if page.is_empty() {
                continue;
            }
            let written = std::fs::OpenOptions::new().create(true).append(true).open(&path).and_then(|mut f| {
                for e in &page {
                    writeln!(f, "{}", e.to_json())?;
                }
                f.flush()
            });
            match written {
                Ok(()) => after = page.last().map_or(after, |e| e.seq),
                Err(e) => tracing::warn!(error = %e, path = %path.display(), "audit mirror: writing"),
            }
        }
    });
}
