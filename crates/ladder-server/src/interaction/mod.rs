//! Ladder's own pages while an authorization request is pending.

pub mod login;
