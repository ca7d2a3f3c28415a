//! What every handler shares.

use anyhow::Result;
use ladder_guard::Guard;
use openidconnect::reqwest;

use crate::bank::Bank;
use crate::config::Config;
use crate::oidc::RelyingParty;
use crate::session::Sessions;

pub struct AppState {
    pub config: Config,
    /// The resource server's token checks (used by `api.rs`).
    pub guard: Guard,
    pub bank: Bank,
    /// The web front end's side: a relying party of Ladder and a client of the API.
    pub rp: RelyingParty,
    pub api_http: reqwest::Client,
    pub sessions: Sessions,
}

impl AppState {
    pub fn new(config: Config) -> Result<AppState> {
        // Keys come from {issuer}/jwks.json, fetched on first use, so Ladder may start after us.
        let guard = Guard::builder(config.issuer.clone(), config.api_audience.clone()).build();
        Ok(AppState {
            rp: RelyingParty::new(config.clone())?,
            api_http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()?,
            guard,
            bank: Bank::default(),
            sessions: Sessions::default(),
            config,
        })
    }
}
