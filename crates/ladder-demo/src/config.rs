//! Settings from environment variables, optionally completed by an env file that `ladder-demo seed`
//! writes (`DEMO_ENV_FILE`, default `data/demo.env`). A variable set in the environment always wins.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::money::Money;

/// The env file `seed` writes and `serve` reads when it exists.
pub const DEFAULT_ENV_FILE: &str = "data/demo.env";

#[derive(Debug, Clone)]
pub struct Config {
    /// Ladder's issuer URL, as it appears in tokens (`LADDER_ISSUER`).
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// Address to listen on (`DEMO_BIND`).
    pub bind: String,
    /// Where browsers reach the demo, without a trailing slash (`DEMO_PUBLIC_URL`).
    pub public_url: String,
    /// Transfers above this need `urn:ladder:loa:2` (`DEMO_TRANSFER_THRESHOLD`).
    pub transfer_threshold: Money,
    /// How recent a step-up must be for a large transfer or a payee change (`DEMO_STEP_UP_MAX_AGE`).
    pub step_up_max_age: i64,
    /// The `aud` of the access tokens the API accepts (`DEMO_API_AUDIENCE`, default PUBLIC_URL/api).
    pub api_audience: String,
    /// Where the web front end calls its own API (`DEMO_API_URL`, default from DEMO_BIND).
    pub api_url: String,
}

impl Config {
    pub fn from_env() -> Result<Config> {
        let file = std::env::var("DEMO_ENV_FILE").unwrap_or_else(|_| DEFAULT_ENV_FILE.to_owned());
        let from_file = read_env_file(Path::new(&file))?;
        let get = |name: &str| -> Option<String> {
            std::env::var(name)
                .ok()
                .or_else(|| from_file.get(name).cloned())
                .filter(|v| !v.trim().is_empty())
        };
        let required = |name: &str| -> Result<String> {
            get(name).with_context(|| {
                format!("{name} is not set; run `ladder-demo seed` first (it writes {file}) or export it")
            })
        };

        let bind = get("DEMO_BIND").unwrap_or_else(|| "127.0.0.1:3000".to_owned());
        let public_url = get("DEMO_PUBLIC_URL")
            .unwrap_or_else(|| "http://localhost:3000".to_owned())
            .trim_end_matches('/')
            .to_owned();
        let transfer_threshold = match get("DEMO_TRANSFER_THRESHOLD") {
            Some(v) => Money::parse(&v)
                .with_context(|| format!("DEMO_TRANSFER_THRESHOLD={v:?} is not an amount"))?,
            None => Money::from_units(1_000),
        };
        let step_up_max_age = match get("DEMO_STEP_UP_MAX_AGE") {
            Some(v) => v.parse().with_context(|| {
                format!("DEMO_STEP_UP_MAX_AGE={v:?} is not a number of seconds")
            })?,
            None => 300,
        };
        if step_up_max_age < 0 {
            bail!("DEMO_STEP_UP_MAX_AGE must not be negative");
        }
        let api_audience = get("DEMO_API_AUDIENCE").unwrap_or_else(|| format!("{public_url}/api"));
        let api_url =
            get("DEMO_API_URL").unwrap_or_else(|| format!("http://{}/api", loopback_for(&bind)));
        Ok(Config {
            issuer: get("LADDER_ISSUER")
                .unwrap_or_else(|| "http://localhost:8080".to_owned())
                .trim_end_matches('/')
                .to_owned(),
            client_id: required("DEMO_CLIENT_ID")?,
            client_secret: required("DEMO_CLIENT_SECRET")?,
            bind,
            public_url,
            transfer_threshold,
            step_up_max_age,
            api_audience,
            api_url: api_url.trim_end_matches('/').to_owned(),
        })
    }

    pub fn redirect_uri(&self) -> String {
        format!("{}/callback", self.public_url)
    }

    pub fn secure_cookies(&self) -> bool {
        self.public_url.starts_with("https://")
    }
}

/// A wildcard bind address is reached on loopback.
fn loopback_for(bind: &str) -> String {
    match bind.rsplit_once(':') {
        Some(("0.0.0.0", port)) => format!("127.0.0.1:{port}"),
        Some(("[::]", port)) => format!("[::1]:{port}"),
        _ => bind.to_owned(),
    }
}

/// `KEY=VALUE` lines; blank lines, `#` comments and an `export ` prefix are allowed.
pub fn parse_env_file(text: &str) -> HashMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("export ").unwrap_or(l).split_once('='))
        .map(|(k, v)| {
            (
                k.trim().to_owned(),
                v.trim().trim_matches(['"', '\'']).to_owned(),
            )
        })
        .collect()
}

fn read_env_file(path: &Path) -> Result<HashMap<String, String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            tracing::info!(path = %path.display(), "settings completed from env file");
            Ok(parse_env_file(&text))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(HashMap::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_lines() {
        let vars =
            parse_env_file("# seeded\nexport DEMO_CLIENT_ID=abc\n\nDEMO_CLIENT_SECRET=\"s=1\"\n");
        assert_eq!(vars["DEMO_CLIENT_ID"], "abc");
        assert_eq!(vars["DEMO_CLIENT_SECRET"], "s=1");
        assert_eq!(vars.len(), 2);
    }

    #[test]
    fn wildcard_bind_is_called_on_loopback() {
        assert_eq!(loopback_for("0.0.0.0:3000"), "127.0.0.1:3000");
        assert_eq!(loopback_for("127.0.0.1:3000"), "127.0.0.1:3000");
    }
}
