//! Ladder's HTTP server: the OpenID Connect endpoints, the sign-in pages, and the management
//! operations the CLI (and the admin console) perform.

pub mod access_log;
pub mod account;
pub mod attempts;
pub mod audit;
pub mod audit_mirror;
pub mod backchannel;
pub mod browser;
pub mod client_auth;
pub mod client_cache;
pub mod client_rules;
pub mod console;
pub mod crypto;
pub mod endpoints;
pub mod errors;
pub mod es256;
pub mod grant;
pub mod interaction;
pub mod jwt;
pub mod log_output;
pub mod maintenance;
pub mod manage;
pub mod metrics;
pub mod params;
pub mod risk;
pub mod session;
pub mod settings;
pub mod signing;
pub mod startup;
pub mod stepup;
pub mod state;
pub mod tokens;
pub mod verified_tokens;

pub use settings::Settings;
pub use startup::{build_state, resolve_server_key, run};
pub use state::AppState;
