//! Acme Bank: a demo relying party and API for Ladder.
//!
//! - `web.rs` the pages: sign-in, balance, the ID token panel, transfers and payees;
//! - `oidc.rs` the relying party (`openidconnect`): acr_values, max_age, PKCE, ID token checks;
//! - `api.rs` the JSON API, protected by `ladder-guard` (RFC 9470 challenges);
//! - `api_client.rs` + `challenge.rs` how the pages call that API and react to a challenge;
//! - `bank.rs` the in-memory accounts; `session.rs` browser sessions; `seed.rs` first-run setup.

mod api;
mod api_client;
mod bank;
mod challenge;
mod config;
mod money;
mod oidc;
mod seed;
mod session;
mod state;
mod time;
mod views;
mod web;

use std::path::PathBuf;

use actix_web::{App, HttpServer, web as aweb};
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ladder-demo",
    about = "Acme Bank: a demo relying party that steps up with Ladder"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the web app and its API (the default). Settings: LADDER_ISSUER, DEMO_CLIENT_ID,
    /// DEMO_CLIENT_SECRET, DEMO_BIND, DEMO_PUBLIC_URL, DEMO_TRANSFER_THRESHOLD (or the env file).
    Serve,
    /// Create the demo user and register Acme Bank with Ladder (through the `ladder` CLI), then
    /// write the settings `serve` reads.
    Seed {
        /// The `ladder` program (default: next to this binary, else on PATH).
        #[arg(long, env = "LADDER_BIN", value_name = "PATH")]
        ladder: Option<PathBuf>,
        /// Ladder's configuration file, passed on to the `ladder` CLI.
        #[arg(long, value_name = "FILE")]
        config: Option<String>,
        /// Ladder's database, passed on to the `ladder` CLI (else its config / LADDER_DATABASE__URL).
        #[arg(long, value_name = "URL")]
        database_url: Option<String>,
        /// Where to write the settings.
        #[arg(long, env = "DEMO_ENV_FILE", default_value = config::DEFAULT_ENV_FILE, value_name = "FILE")]
        env_file: PathBuf,
        #[arg(long, env = "LADDER_ISSUER", default_value = "http://localhost:8080")]
        issuer: String,
        #[arg(long, env = "DEMO_PUBLIC_URL", default_value = "http://localhost:3000")]
        public_url: String,
        #[arg(long, default_value = "demo")]
        username: String,
        #[arg(
            long,
            env = "DEMO_USER_PASSWORD",
            default_value = "correct horse battery staple"
        )]
        password: String,
        /// Register a new client even if the env file names one that still exists.
        #[arg(long)]
        force: bool,
    },
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,actix_server=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match Cli::parse().command.unwrap_or(Command::Serve) {
        Command::Serve => serve(),
        Command::Seed {
            ladder,
            config,
            database_url,
            env_file,
            issuer,
            public_url,
            username,
            password,
            force,
        } => {
            let mut ladder_args = Vec::new();
            if let Some(c) = config {
                ladder_args.extend(["--config".to_owned(), c]);
            }
            if let Some(d) = database_url {
                ladder_args.extend(["--database-url".to_owned(), d]);
            }
            seed::run(seed::SeedOptions {
                ladder,
                ladder_args,
                env_file,
                issuer: issuer.trim_end_matches('/').to_owned(),
                public_url: public_url.trim_end_matches('/').to_owned(),
                username,
                password,
                force,
            })
        }
    }
}

fn serve() -> Result<()> {
    let config = config::Config::from_env()?;
    let bind = config.bind.clone();
    tracing::info!(
        issuer = %config.issuer,
        public_url = %config.public_url,
        threshold = %config.transfer_threshold,
        "Acme Bank is listening on {bind}"
    );
    let state = aweb::Data::new(state::AppState::new(config)?);
    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(move || {
            let guard = state.guard.clone();
            let max_age = state.config.step_up_max_age;
            App::new()
                .app_data(state.clone())
                .configure(|cfg| api::routes(cfg, &guard, max_age))
                .configure(web::routes)
        })
        .workers(2)
        .bind(&bind)
        .with_context(|| format!("cannot listen on {bind}"))?
        .run()
        .await
        .context("server stopped")
    })
}
