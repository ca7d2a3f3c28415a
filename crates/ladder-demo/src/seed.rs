//! `ladder-demo seed`: creates the demo user and registers Acme Bank with Ladder through the
//! `ladder` command line (`--json`), then writes the settings `ladder-demo` reads on start.
//! Running it again reuses what is there, so it is safe in a container's start-up.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::config::parse_env_file;

pub struct SeedOptions {
    /// The `ladder` program; default: next to this binary, else on PATH.
    pub ladder: Option<PathBuf>,
    /// Passed on to every `ladder` command (`--config`, `--database-url`).
    pub ladder_args: Vec<String>,
    pub env_file: PathBuf,
    pub issuer: String,
    pub public_url: String,
    pub username: String,
    pub password: String,
    /// Register a new client even when the env file names one that still exists.
    pub force: bool,
}

struct Ladder {
    program: PathBuf,
    args: Vec<String>,
}

impl Ladder {
    fn locate(explicit: Option<PathBuf>, args: Vec<String>) -> Ladder {
        let sibling = std::env::current_exe().ok().and_then(|exe| {
            let candidate = exe.with_file_name(format!("ladder{}", std::env::consts::EXE_SUFFIX));
            candidate.is_file().then_some(candidate)
        });
        let program = explicit
            .or(sibling)
            .unwrap_or_else(|| PathBuf::from("ladder"));
        Ladder { program, args }
    }

    /// Runs `ladder ARGS…`, feeding `stdin`; returns stdout, or the command's own complaint.
    fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<String> {
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| {
                format!(
                    "cannot run {} (build it with `cargo build --release`, or pass --ladder PATH)",
                    self.program.display()
                )
            })?;
        if let Some(mut input) = child.stdin.take() {
            input.write_all(stdin.unwrap_or_default().as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "`ladder {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8(out.stdout)?)
    }

    fn json(&self, args: &[&str], stdin: Option<&str>) -> Result<Value> {
        let out = self.run(args, stdin)?;
        serde_json::from_str(out.trim())
            .with_context(|| format!("`ladder {}` printed no JSON: {out}", args.join(" ")))
    }
}

pub fn run(opts: SeedOptions) -> Result<()> {
    let ladder = Ladder::locate(opts.ladder.clone(), opts.ladder_args.clone());
    ensure_user(&ladder, &opts)?;

    let existing = read_existing(&opts.env_file)?;
    let (client_id, client_secret) = match existing {
        Some((id, secret)) if !opts.force && client_exists(&ladder, &id)? => {
            eprintln!(
                "client {id} is already registered (from {}); reusing it",
                opts.env_file.display()
            );
            (id, secret)
        }
        _ => register_client(&ladder, &opts)?,
    };

    let vars = [
        ("LADDER_ISSUER", opts.issuer.as_str()),
        ("DEMO_CLIENT_ID", client_id.as_str()),
        ("DEMO_CLIENT_SECRET", client_secret.as_str()),
        ("DEMO_PUBLIC_URL", opts.public_url.as_str()),
    ];
    let body: String = vars.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    if let Some(dir) = opts.env_file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    write_private(
        &opts.env_file,
        &format!("# Written by `ladder-demo seed`; read by `ladder-demo` on start.\n{body}"),
    )?;

    println!("Demo user:   {} / {}", opts.username, opts.password);
    println!(
        "Settings:    {} (read by ladder-demo on start)\n",
        opts.env_file.display()
    );
    for (k, v) in vars {
        println!("export {k}={v}");
    }
    println!("\nNow run `ladder-demo` and open {}.", opts.public_url);
    Ok(())
}

fn ensure_user(ladder: &Ladder, opts: &SeedOptions) -> Result<()> {
    let users = ladder.json(&["user", "list", "--json"], None)?;
    let exists = users.as_array().is_some_and(|list| {
        list.iter()
            .any(|u| u["username"].as_str() == Some(opts.username.as_str()))
    });
    if exists {
        eprintln!("user {} already exists; keeping it", opts.username);
        return Ok(());
    }
    ladder.json(
        &[
            "user",
            "add",
            &opts.username,
            "--name",
            "Dana Demo",
            "--email",
            &format!("{}@acme.example", opts.username),
            "--password-stdin",
            "--json",
        ],
        Some(&opts.password),
    )?;
    eprintln!("created user {}", opts.username);
    Ok(())
}

fn register_client(ladder: &Ladder, opts: &SeedOptions) -> Result<(String, String)> {
    let public = &opts.public_url;
    let (redirect, home, audience) = (
        format!("{public}/callback"),
        format!("{public}/"),
        format!("{public}/api"),
    );
    let out = ladder.json(
        &[
            "client",
            "add",
            "--name",
            "Acme Bank",
            "--redirect-uri",
            &redirect,
            "--scope",
            "profile",
            "--auth-method",
            "client_secret_basic",
            "--grant-type",
            "authorization_code",
            "--grant-type",
            "refresh_token",
            "--post-logout-redirect-uri",
            &home,
            "--audience",
            &audience,
            "--json",
        ],
        None,
    )?;
    let id = out["client_id"]
        .as_str()
        .context("no client_id in the output")?
        .to_owned();
    let secret = out["client_secret"]
        .as_str()
        .context("no client_secret in the output")?
        .to_owned();
    eprintln!("registered client {id} (redirect URI {redirect}, API audience {audience})");
    Ok((id, secret))
}

fn client_exists(ladder: &Ladder, id: &str) -> Result<bool> {
    let clients = ladder.json(&["client", "list", "--json"], None)?;
    Ok(clients
        .as_array()
        .is_some_and(|list| list.iter().any(|c| c["id"].as_str() == Some(id))))
}

fn read_existing(path: &Path) -> Result<Option<(String, String)>> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let vars = parse_env_file(&text);
            Ok(vars
                .get("DEMO_CLIENT_ID")
                .cloned()
                .zip(vars.get("DEMO_CLIENT_SECRET").cloned()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The file holds a client secret: readable by its owner only.
fn write_private(path: &Path, text: &str) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}
