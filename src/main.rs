//! The `ladder` command: serve, migrate, and manage users, clients and keys. Thin: every operation
//! lives in the server crate so the console and the tests share it.

use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use ladder_store::audit;
use clap::{Parser, Subcommand};
use ladder_core::{Clock, SystemClock};
use ladder_server::manage::{self, NewClient, NewUser};
use ladder_server::signing::Alg;
use ladder_server::startup::KeySource;
use ladder_server::{Settings, build_state, resolve_server_key};
use ladder_store::{Db, clients, keys, redact, users};
use serde_json::json;

// mimalloc rather than glibc's malloc: 5–10% less server CPU per request (glibc's free lists were
// a tenth of a sign-in's profile; bench/RESULTS.md, round 9). Built without transparent huge
// pages, which otherwise added 10 MB of resident memory for nothing measurable.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "ladder", version, about = "Ladder: an OpenID Connect provider built around step-up authentication")]
struct Cli {
    /// Configuration file (default: config/ladder.toml; missing is fine, defaults apply).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://USER:PASS@HOST/DB (overrides the config).
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

// Parsed once per run, like ClientCommand below: variant sizes cost nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the provider (migrates the database and creates signing keys when needed).
    Serve {
        /// Address to listen on, e.g. 127.0.0.1:8080.
        #[arg(long)]
        bind: Option<String>,
        /// Public issuer URL, e.g. https://id.example.com.
        #[arg(long)]
        issuer: Option<String>,
    },
    /// Apply pending database migrations.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage relying parties (clients).
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Inspect the step-up policy.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Verify or export the audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the hash chain; report the first broken link and exit non-zero if there is one.
    Verify {
        #[arg(long)]
        json: bool,
    },
    /// Export events (oldest first) for a SIEM.
    Export {
        /// Epoch seconds, or a span back from now such as 30m, 24h or 7d (default: everything).
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value = "jsonl", value_parser = ["jsonl", "csv"])]
        format: String,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Show the target level for a request, every reason that raised it, and what the user would
    /// still be asked to prove (from their latest live session) — the server's own evaluation.
    Explain {
        #[arg(long = "client", value_name = "CLIENT_ID")]
        client_id: String,
        #[arg(long = "user", value_name = "USERNAME")]
        username: String,
        #[arg(long = "scope")]
        scopes: Vec<String>,
        #[arg(long = "acr-values", value_name = "ACR")]
        acr_values: Vec<String>,
        /// The acr request is essential (as with claims={"id_token":{"acr":{"essential":true}}}).
        #[arg(long)]
        essential: bool,
        #[arg(long)]
        max_age: Option<i64>,
        /// As with prompt=login.
        #[arg(long)]
        prompt_login: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; the password is read from standard input.
    Add {
        username: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        name: Option<String>,
        /// Read the password from standard input (required: passwords never go on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Give the user the admin role.
        #[arg(long)]
        admin: bool,
        #[arg(long)]
        json: bool,
    },
    /// List users.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Disable a user and end their sessions.
    Disable { username: String },
    /// Give a user the admin role (access to /admin).
    GrantAdmin { username: String },
    /// Take the admin role away.
    RevokeAdmin { username: String },
}

// Parsed once per run; the size of the Add variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum ClientCommand {
    /// Register a client; prints its client_id and, for confidential clients, the secret (once).
    Add {
        #[arg(long)]
        name: String,
        /// An exact redirect URI (repeat for several).
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
        /// A public client (no secret; PKCE required), e.g. a SPA or native app.
        #[arg(long)]
        public: bool,
        /// Scopes the client may request besides openid (repeat or space-separate).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// acr value used when a request names no known level (repeat for a preference list).
        #[arg(long = "default-acr", value_name = "ACR")]
        default_acr: Vec<String>,
        /// A level every token for this client must meet, whatever the request says.
        #[arg(long = "min-acr", value_name = "ACR")]
        min_acr: Option<String>,
        /// Treat the client's acr request as essential: unmet means an error, never a lower acr.
        #[arg(long)]
        strict_acr: bool,
        /// Token endpoint authentication: client_secret_basic (default), client_secret_post or private_key_jwt.
        #[arg(long, value_name = "METHOD")]
        auth_method: Option<String>,
        /// For private_key_jwt: a file holding the client's public JWK set.
        #[arg(long, value_name = "FILE")]
        jwks_file: Option<PathBuf>,
        /// For private_key_jwt: where the client publishes its JWK set.
        #[arg(long, value_name = "URL")]
        jwks_uri: Option<String>,
        /// Grant types (repeat): authorization_code, refresh_token, client_credentials.
        #[arg(long = "grant-type", value_name = "GRANT")]
        grant_types: Vec<String>,
        /// Where the client may ask to be sent after logout (repeat).
        #[arg(long = "post-logout-redirect-uri", value_name = "URI")]
        post_logout_redirect_uris: Vec<String>,
        /// Back-channel logout receiver (OpenID Connect Back-Channel Logout 1.0).
        #[arg(long, value_name = "URI")]
        backchannel_logout_uri: Option<String>,
        /// The `aud` of its access tokens (the API it calls), instead of Ladder's userinfo.
        #[arg(long, value_name = "AUD")]
        audience: Option<String>,
        /// Sign its ID tokens with RS256 (default), ES256 or EdDSA.
        #[arg(long, value_name = "ALG")]
        id_token_alg: Option<String>,
        /// Sign its access tokens with ES256 (default), RS256 or EdDSA.
        #[arg(long, value_name = "ALG")]
        access_token_alg: Option<String>,
        /// Access token lifetime for this client, in seconds (default: tokens.access_token_ttl_secs).
        #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
        access_token_ttl: Option<i64>,
        /// ID token lifetime for this client, in seconds (default: tokens.id_token_ttl_secs).
        #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
        id_token_ttl: Option<i64>,
        /// Refresh token lifetime for this client, in seconds (default: tokens.refresh_token_ttl_secs).
        #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
        refresh_token_ttl: Option<i64>,
        #[arg(long)]
        json: bool,
    },
    /// List clients.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Delete a client.
    Remove { client_id: String },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// List signing keys.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Make a new active key (for every algorithm, or one); old keys stay in the JWKS until retired.
    Rotate {
        #[arg(long, value_parser = ["RS256", "ES256", "EdDSA"])]
        alg: Option<String>,
    },
    /// Remove a no-longer-active key from the JWKS.
    Retire { kid: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_settings(cli: &Cli) -> Result<Settings> {
    let (path, required) = match &cli.config {
        Some(p) => (p.clone(), true),
        None => (PathBuf::from("config/ladder.toml"), false),
    };
    let mut settings = Settings::load(&path, required)?;
    if let Some(url) = &cli.database_url {
        settings.database.url = url.clone();
    }
    if let Command::Serve { bind, issuer } = &cli.command {
        if let Some(b) = bind {
            settings.server.bind = b.clone();
        }
        if let Some(i) = issuer {
            settings.server.issuer = i.clone();
        }
    }
    settings.validate()?;
    Ok(settings)
}

fn open_db(settings: &Settings) -> Result<Db> {
    let db = Db::connect(&settings.database.url, settings.database.pool_size)
        .with_context(|| format!("opening {}", redact(&settings.database.url)))?;
    db.migrate().context("migrating the database")?;
    Ok(db)
}

fn now() -> i64 {
    SystemClock.now()
}

fn run(cli: Cli) -> Result<()> {
    let settings = load_settings(&cli)?;
    #[cfg(feature = "bench-insecure-hashing")]
    if settings.security.bench_insecure_hashing {
        ladder_core::password::bench_insecure::enable();
        eprintln!(
            "\n*** WARNING: INSECURE PASSWORD HASHING (security.bench_insecure_hashing) ***\n\
             *** New password hashes use argon2id m=8 KiB, t=1: for benchmarks only. ***\n\
             *** Never use this build, or any password set with it, in production.   ***\n"
        );
    }
    match cli.command {
        Command::Serve { .. } => serve(settings),
        Command::Migrate => {
            let db = Db::connect(&settings.database.url, 1)?;
            let applied = db.migrate()?;
            if applied.is_empty() {
                println!("database is up to date");
            }
            for v in applied {
                println!("applied {v}");
            }
            Ok(())
        }
        Command::User(cmd) => user(settings, cmd),
        Command::Client(cmd) => client(settings, cmd),
        Command::Keys(cmd) => keys_cmd(settings, cmd),
        Command::Policy(cmd) => policy(settings, cmd),
        Command::Audit(cmd) => audit_cmd(settings, cmd),
    }
}

/// `1700000000`, or `30m` / `24h` / `7d` back from now.
fn parse_since(text: &str, now: i64) -> Result<i64> {
    if let Ok(epoch) = text.parse::<i64>() {
        return Ok(epoch);
    }
    let (n, unit) = text.split_at(text.len().saturating_sub(1));
    let n: i64 = n.parse().with_context(|| format!("`{text}` is neither epoch seconds nor a span like 24h"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => bail!("`{text}`: use s, m, h or d"),
    };
    Ok(now - secs)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() }
}

fn audit_cmd(settings: Settings, cmd: AuditCommand) -> Result<()> {
    let db = open_db(&settings)?;
    match cmd {
        AuditCommand::Verify { json } => {
            let (checked, broken) = db.read(audit::verify)?;
            if json {
                println!("{}", json!({ "checked": checked, "broken": broken }));
            }
            match broken {
                None => {
                    if !json {
                        println!("audit chain intact: {checked} events verified");
                    }
                    Ok(())
                }
                Some(b) => {
                    if !json {
                        println!(
                            "audit chain BROKEN at event #{} ({}): {} ({checked} events before it verified)",
                            b.seq,
                            b.id.as_deref().unwrap_or("missing"),
                            b.problem
                        );
                    }
                    std::process::exit(2);
                }
            }
        }
        AuditCommand::Export { since, format } => {
            let since = since.map(|s| parse_since(&s, now())).transpose()?.unwrap_or(i64::MIN);
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            use std::io::Write;
            if format == "csv" {
                writeln!(out, "seq,id,at,kind,outcome,user_id,session_id,client_id,ip,user_agent,detail,hash")?;
            }
            let mut after = 0i64;
            loop {
                let page = db.read(|c| audit::events_since(c, since, after, 1000))?;
                let Some(last) = page.last() else { break };
                after = last.seq;
                for e in &page {
                    if format == "csv" {
                        let o = |v: &Option<String>| csv_field(v.as_deref().unwrap_or_default());
                        writeln!(
                            out,
                            "{},{},{},{},{},{},{},{},{},{},{},{}",
                            e.seq, e.id, e.at, csv_field(&e.kind), csv_field(&e.outcome), o(&e.user_id), o(&e.session_id),
                            o(&e.client_id), o(&e.ip), o(&e.user_agent), csv_field(&e.detail), e.hash
                        )?;
                    } else {
                        writeln!(out, "{}", e.to_json())?;
                    }
                }
            }
            out.flush()?;
            Ok(())
        }
    }
}

fn policy(settings: Settings, cmd: PolicyCommand) -> Result<()> {
    let db = open_db(&settings)?;
    let PolicyCommand::Explain { client_id, username, scopes, acr_values, essential, max_age, prompt_login, json } = cmd;
    let acr_values = acr_values.iter().flat_map(|v| v.split_whitespace()).map(str::to_owned).collect();
    let scopes = scopes.iter().flat_map(|v| v.split_whitespace()).map(str::to_owned).collect();
    let request = manage::ExplainRequest { client_id, username, scopes, acr_values, essential, max_age, prompt_login };
    let e = manage::explain(&db, &settings.policy()?, settings.session.idle_timeout_secs, request, now())?;
    if json {
        println!("{}", serde_json::to_string_pretty(&e)?);
        return Ok(());
    }
    println!("target level:  {}{}", e.target.level.name(), if e.target.is_essential() { " (essential)" } else { "" });
    if e.target.reasons.is_empty() {
        println!("raised by:     nothing (the lowest level)");
    }
    for r in &e.target.reasons {
        println!("raised by:     {r}");
    }
    for i in &e.target.ignored {
        println!("ignored:       {}", serde_json::to_string(i)?);
    }
    let enrolled: Vec<&str> = e.enrolled.iter().map(|f| f.as_str()).collect();
    println!("enrolled:      {}", if enrolled.is_empty() { "nothing".into() } else { enrolled.join(", ") });
    match &e.session_id {
        Some(id) => println!("session:       {id} (proven: {})", if e.proven.is_empty() { "nothing".into() } else { e.proven.join(", ") }),
        None => println!("session:       none live (a fresh sign-in)"),
    }
    match &e.plan {
        ladder_core::Plan::Satisfied => println!("plan:          satisfied; tokens are issued without asking anything"),
        ladder_core::Plan::Unreachable => println!("plan:          unreachable; the request fails with unmet_authentication_requirements"),
        ladder_core::Plan::Prove { reason, steps, .. } => {
            let steps: Vec<String> = steps.iter().map(|s| s.to_string()).collect();
            println!("plan:          {reason}: {}", steps.join(", then "));
        }
    }
    Ok(())
}

fn serve(settings: Settings) -> Result<()> {
    let (log_output, log_flusher) = ladder_server::log_output::batched_stdout()?;
    tracing_subscriber::fmt()
        .with_writer(log_output)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,ladder_server=info".into()),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    #[cfg(feature = "bench-insecure-hashing")]
    tracing::warn!(
        insecure_hashing = ladder_core::password::bench_insecure::is_enabled(),
        "benchmark build (feature bench-insecure-hashing): not for production"
    );
    let (server_key, source) = resolve_server_key(&settings)?;
    match &source {
        KeySource::Generated(path) => tracing::warn!(
            path,
            "generated a new server key; keep this file safe, and give every node the same key (LADDER_SERVER_KEY)"
        ),
        KeySource::File(path) => tracing::info!(path, "server key loaded from file"),
        KeySource::Environment | KeySource::Configured => tracing::info!("server key loaded from configuration"),
    }
    let db = open_db(&settings)?;
    let listener = TcpListener::bind(&settings.server.bind)
        .with_context(|| format!("cannot listen on {}", settings.server.bind))?;
    let (issuer, bind) = (settings.server.issuer.clone(), settings.server.bind.clone());
    let db_label = redact(&settings.database.url);
    let first_run = db.read(users::count_users)? == 0;
    let metrics_listener = match settings.metrics.bind.as_str() {
        "" => None,
        addr => Some(TcpListener::bind(addr).with_context(|| format!("cannot serve metrics on {addr}"))?),
    };
    let state = build_state(settings, db, server_key, Arc::new(SystemClock))?;
    tracing::info!(%issuer, %bind, database = %db_label, "Ladder is listening");
    if first_run {
        log_flusher.flush();
        println!(
            "\nLadder is running at {issuer} (discovery: {issuer}/.well-known/openid-configuration).\n\
             The database has no users yet. Create the first user and a client:\n\n  \
             printf '%s' 'a-long-password' | cargo run --release -- user add alice --email alice@example.com --password-stdin\n  \
             cargo run --release -- client add --name \"My app\" --redirect-uri http://localhost:3000/callback --scope profile --scope email\n"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let state = actix_web_data(state);
        if let Some(listener) = metrics_listener {
            tracing::info!(addr = %listener.local_addr()?, "metrics at /metrics");
            tokio::spawn(ladder_server::startup::run_metrics(state.clone(), listener)?);
        }
        let server = ladder_server::run(state, listener)?;
        server.await?;
        Ok(())
    })
}

fn actix_web_data(state: ladder_server::AppState) -> ladder_server::startup::SharedState {
    ladder_server::startup::SharedState::new(state)
}

fn user(settings: Settings, cmd: UserCommand) -> Result<()> {
    let db = open_db(&settings)?;
    match cmd {
        UserCommand::Add { username, email, name, password_stdin: _, admin, json } => {
            let mut password = String::new();
            std::io::stdin().read_to_string(&mut password).context("reading the password from stdin")?;
            let password = password.trim_end_matches(['\n', '\r']).to_owned();
            let user = manage::add_user(&db, NewUser { username, email, name, password, is_admin: admin }, now())?;
            if json {
                println!("{}", json!({ "id": user.id, "username": user.username }));
            } else {
                println!("created user {} (id {})", user.username, user.id);
            }
        }
        UserCommand::List { json } => {
            let list = db.read(users::list_users)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!("no users");
            } else {
                println!("{:<24} {:<32} {:<8} ID", "USERNAME", "EMAIL", "STATUS");
                for u in list {
                    let status = if u.disabled { "disabled" } else if u.is_admin { "admin" } else { "active" };
                    println!("{:<24} {:<32} {:<8} {}", u.username, u.email.unwrap_or_default(), status, u.id);
                }
            }
        }
        UserCommand::Disable { username } => {
            manage::disable_user(&db, &username, now())?;
            println!("disabled {username}; their sessions have ended");
        }
        UserCommand::GrantAdmin { username } => {
            manage::set_admin(&db, &username, true, now())?;
            println!("{username} is now an administrator");
        }
        UserCommand::RevokeAdmin { username } => {
            manage::set_admin(&db, &username, false, now())?;
            println!("{username} is no longer an administrator");
        }
    }
    Ok(())
}

fn client(settings: Settings, cmd: ClientCommand) -> Result<()> {
    let db = open_db(&settings)?;
    match cmd {
        ClientCommand::Add {
            name,
            redirect_uris,
            public,
            scopes,
            default_acr,
            min_acr,
            strict_acr,
            auth_method,
            jwks_file,
            jwks_uri,
            grant_types,
            post_logout_redirect_uris,
            backchannel_logout_uri,
            audience,
            id_token_alg,
            access_token_alg,
            access_token_ttl,
            id_token_ttl,
            refresh_token_ttl,
            json,
        } => {
            let mut new = NewClient::new(&name, redirect_uris, public, scopes);
            new.default_acr_values = default_acr.iter().flat_map(|v| v.split_whitespace()).map(str::to_owned).collect();
            new.min_acr = min_acr;
            new.strict_acr = strict_acr;
            let s = &mut new.settings;
            if let Some(m) = auth_method {
                s.token_endpoint_auth_method = m;
            }
            if let Some(path) = jwks_file {
                s.jwks = Some(std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?);
            }
            s.jwks_uri = jwks_uri;
            if !grant_types.is_empty() {
                s.grant_types = grant_types;
            }
            s.post_logout_redirect_uris = post_logout_redirect_uris;
            s.backchannel_logout_uri = backchannel_logout_uri;
            s.audience = audience;
            s.id_token_signed_response_alg = id_token_alg;
            s.access_token_signed_response_alg = access_token_alg;
            s.access_token_ttl_secs = access_token_ttl;
            s.id_token_ttl_secs = id_token_ttl;
            s.refresh_token_ttl_secs = refresh_token_ttl;
            let (client, secret) = manage::add_client(&db, &settings.policy()?.levels, new, now())?;
            if json {
                println!("{}", json!({ "client_id": client.id, "client_secret": secret }));
            } else {
                println!("client_id:     {}", client.id);
                match secret {
                    Some(s) => {
                        println!("client_secret: {s}");
                        println!("\nStore the secret now: Ladder keeps only its hash and cannot show it again.");
                    }
                    None if public => println!("public client: no secret; it must use PKCE (S256)"),
                    None => println!("authenticates with private_key_jwt: no secret"),
                }
            }
        }
        ClientCommand::List { json } => {
            let list = db.read(clients::list_clients)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!("no clients");
            } else {
                println!("{:<24} {:<24} {:<12} REDIRECT URIS", "CLIENT_ID", "NAME", "TYPE");
                for c in list {
                    let kind = if c.is_public { "public" } else { "confidential" };
                    println!("{:<24} {:<24} {:<12} {}", c.id, c.name, kind, c.redirect_uris.join(" "));
                }
            }
        }
        ClientCommand::Remove { client_id } => {
            manage::remove_client(&db, &client_id, now())?;
            println!("removed client {client_id}");
        }
    }
    Ok(())
}

fn keys_cmd(settings: Settings, cmd: KeysCommand) -> Result<()> {
    let db = open_db(&settings)?;
    match cmd {
        KeysCommand::List { json } => {
            let list = db.read(keys::list_all)?;
            if json {
                let rows: Vec<_> = list
                    .iter()
                    .map(|k| json!({ "kid": k.kid, "alg": k.alg, "status": k.status, "created_at": k.created_at }))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if list.is_empty() {
                println!("no keys yet; `ladder serve` creates them on first start");
            } else {
                println!("{:<18} {:<6} {:<10} CREATED (unix)", "KID", "ALG", "STATUS");
                for k in list {
                    println!("{:<18} {:<6} {:<10} {}", k.kid, k.alg, k.status, k.created_at);
                }
            }
        }
        KeysCommand::Rotate { alg } => {
            let (server_key, _) = resolve_server_key(&settings)?;
            let only = alg.as_deref().and_then(Alg::parse);
            for k in manage::rotate_keys(&db, &server_key, only, now())? {
                println!("new active {} key {}", k.alg, k.kid);
            }
            println!("previous keys stay in the JWKS (status published) until retired; running servers pick this up within a minute");
        }
        KeysCommand::Retire { kid } => {
            manage::retire_key(&db, &kid, now())?;
            println!("retired {kid}; it is no longer in the JWKS");
        }
    }
    Ok(())
}
