//! Ladder's pure domain: no I/O, no database handle, time and randomness passed in.
//!
//! - [`factor`]: the proofs a user can give, their categories and the RFC 8176 `amr` values they produce.
//! - [`clock`]: the injected notion of "now" (epoch seconds), so tests can move time.
//! - [`password`]: argon2id hashing and verification (run it on a blocking pool; it is slow on purpose).
//! - [`totp`], [`recovery`]: the TOTP verifier and recovery-code format.
//! - [`risk`]: risk signals that raise the target level, with the reason shown to the user.
//! - [`levels`]: the configured acr levels, their rules and freshness (DESIGN §1).
//! - [`request`]: `acr_values` / `claims` → [`AcrRequest`], and [`MaxAge`], parsed once.
//! - [`target`]: request + client + scopes + risk → the [`Target`] level, with the reason for each raise.
//! - [`plan`](mod@plan): what the session must still prove, the reported `acr`, `auth_time`, level lapse (DESIGN §3.6).

pub mod clock;
pub mod factor;
pub mod levels;
pub mod password;
pub mod plan;
pub mod prompt;
pub mod recovery;
pub mod risk;
pub mod request;
pub mod target;
pub mod totp;

pub use clock::{Clock, SystemClock};
pub use factor::{Factor, FactorCategory, ProvenFactor, amr_for};
pub use levels::{Level, LevelConfig, LevelRule, Levels, LevelsError};
pub use plan::{
    Plan, Reason, Recency, ReportedAcr, SessionView, Step, access_token_lapse, auth_time, plan, reachable,
    reauth_reason, reported_acr, reported_acr_for,
};
pub use prompt::Prompt;
pub use request::{AcrRequest, MaxAge, RequestError};
pub use target::{
    ClientAcrPolicy, Ignored, Raise, RaiseReason, ScopeRule, Target, TargetError, TargetInput, check_scope_rules,
    compute_target,
};
