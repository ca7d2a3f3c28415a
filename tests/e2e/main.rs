//! End-to-end tests: a real Ladder server on 127.0.0.1:0 with its own database (a temp SQLite file,
//! or a fresh PostgreSQL schema when LADDER_TEST_DATABASE_URL is set), driven over HTTP by a
//! cookie-keeping browser and by the `openidconnect` crate as the relying party.

mod harness;

mod lifecycle;

mod account;
mod authorize_errors;
mod chromium;
mod cli;
mod guard;
mod conformance;
mod console;
mod crash;
mod db_outage;
mod login;
mod passkeys;
mod risk;
mod scale_out;
mod stepup;
mod token_errors;
