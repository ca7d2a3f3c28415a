//! Typed settings, loaded once: defaults ← `config/ladder.toml` (or `--config FILE`) ←
//! `LADDER_SECTION__KEY` environment variables. Validated at start-up; passed around as app data.

use std::path::Path;

use ladder_core::risk::RiskConfig;
use ladder_core::{LevelConfig, Levels, ScopeRule, check_scope_rules};
use secrecy::SecretString;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub security: SecuritySettings,
    pub session: SessionSettings,
    pub tokens: TokenSettings,
    pub login: LoginSettings,
    pub totp: TotpSettings,
    pub webauthn: WebauthnSettings,
    pub metrics: MetricsSettings,
    pub audit: AuditSettings,
    pub maintenance: MaintenanceSettings,
    pub console: ConsoleSettings,
    /// `[[levels]]`: the acr levels, lowest rank first (DESIGN §1).
    pub levels: Vec<LevelConfig>,
    /// `[[scope_rules]]`: scopes that require a level.
    pub scope_rules: Vec<ScopeRule>,
    /// `[risk]` and `[[risk.rules]]`: signals that raise the level.
    pub risk: RiskConfig,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            server: Default::default(),
            database: Default::default(),
            security: Default::default(),
            session: Default::default(),
            tokens: Default::default(),
            login: Default::default(),
            totp: Default::default(),
            webauthn: Default::default(),
            metrics: Default::default(),
            audit: Default::default(),
            maintenance: Default::default(),
            console: Default::default(),
            levels: Levels::default_config(),
            scope_rules: vec![ScopeRule { scope: "payments:write".into(), level: ladder_core::levels::LOA2.into() }],
            risk: RiskConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TotpSettings {
    /// The issuer name authenticator apps show next to the account.
    pub issuer_label: String,
}

impl Default for TotpSettings {
    fn default() -> Self {
        TotpSettings { issuer_label: "Ladder".into() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleSettings {
    /// The level administrators sign in to the console with.
    pub level: String,
    /// Destructive actions ask for this level, proven within `destructive_max_age_secs`.
    pub destructive_level: String,
    pub destructive_max_age_secs: i64,
    /// How long a console sign-in lasts (never beyond the Ladder session it came from).
    pub session_secs: i64,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        ConsoleSettings {
            level: ladder_core::levels::LOA2.into(),
            destructive_level: ladder_core::levels::LOA2.into(),
            destructive_max_age_secs: 300,
            session_secs: 3600,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MaintenanceSettings {
    /// How often expired rows are purged; 0 turns the purge off.
    pub purge_interval_secs: u64,
}

impl Default for MaintenanceSettings {
    fn default() -> Self {
        MaintenanceSettings { purge_interval_secs: 300 }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct AuditSettings {
    /// A file to append every audit event to, as JSON lines; empty for none.
    pub mirror_file: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// Where `/metrics` is served (Prometheus text format); empty turns it off.
    pub bind: String,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings { bind: "127.0.0.1:9464".into() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebauthnSettings {
    /// Empty: the issuer's host.
    pub rp_id: String,
    /// Empty: the issuer's origin.
    pub origin: String,
    pub rp_name: String,
}

impl Default for WebauthnSettings {
    fn default() -> Self {
        WebauthnSettings { rp_id: String::new(), origin: String::new(), rp_name: "Ladder".into() }
    }
}

impl WebauthnSettings {
    /// The relying-party id and origin in force for this issuer.
    pub fn resolve(&self, issuer: &str) -> Result<(String, url::Url), SettingsError> {
        let issuer = url::Url::parse(issuer).map_err(|e| SettingsError::Invalid(format!("issuer: {e}")))?;
        let origin = if self.origin.is_empty() {
            url::Url::parse(&issuer.origin().ascii_serialization())
        } else {
            url::Url::parse(&self.origin)
        }
        .map_err(|e| SettingsError::Invalid(format!("webauthn.origin: {e}")))?;
        let rp_id = if self.rp_id.is_empty() { origin.host_str().unwrap_or_default().to_owned() } else { self.rp_id.clone() };
        Ok((rp_id, origin))
    }
}

/// The step-up policy in force: validated levels and scope rules.
#[derive(Debug, Clone)]
pub struct Policy {
    pub levels: Levels,
    pub scope_rules: Vec<ScopeRule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    pub bind: String,
    /// The issuer identifier: scheme, host, optional port and path; no query or fragment.
    pub issuer: String,
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
    /// Proxies (addresses or CIDR ranges) whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<String>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        // localhost rather than 127.0.0.1: passkeys (WebAuthn) need a domain name.
        ServerSettings {
            bind: "127.0.0.1:8080".into(),
            issuer: "http://localhost:8080".into(),
            workers: 0,
            trusted_proxies: vec![],
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: String,
    /// Connections kept per node; 0 leaves it to the backend (4 for SQLite, 8 for PostgreSQL).
    pub pool_size: u32,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        DatabaseSettings { url: "sqlite://data/ladder.db".into(), pool_size: 0 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecuritySettings {
    /// The server key itself (base64, 32 bytes). Prefer `LADDER_SERVER_KEY` or the key file.
    pub server_key: Option<SecretString>,
    /// Where the server key is read from, or generated into on a local first run.
    pub server_key_file: String,
    /// Password hashes computed at once; 0 means one per core. Bounds memory and CPU under load.
    pub hashing_concurrency: usize,
    /// Benchmarks only: new password hashes at a trivial argon2 cost. The key exists only in builds
    /// with the `bench-insecure-hashing` feature; every other build refuses it as unknown.
    #[cfg(feature = "bench-insecure-hashing")]
    pub bench_insecure_hashing: bool,
}

impl Default for SecuritySettings {
    fn default() -> Self {
        SecuritySettings {
            server_key: None,
            server_key_file: "data/server.key".into(),
            hashing_concurrency: 0,
            #[cfg(feature = "bench-insecure-hashing")]
            bench_insecure_hashing: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionSettings {
    pub idle_timeout_secs: i64,
    pub absolute_timeout_secs: i64,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings { idle_timeout_secs: 2 * 3600, absolute_timeout_secs: 24 * 3600 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenSettings {
    pub code_ttl_secs: i64,
    pub id_token_ttl_secs: i64,
    pub access_token_ttl_secs: i64,
    /// Refresh tokens rotate at every use; this bounds each one's life.
    pub refresh_token_ttl_secs: i64,
    /// How long a user may take on Ladder's pages before the authorization request expires.
    pub interaction_ttl_secs: i64,
}

impl Default for TokenSettings {
    fn default() -> Self {
        TokenSettings {
            code_ttl_secs: 60,
            id_token_ttl_secs: 3600,
            access_token_ttl_secs: 600,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            interaction_ttl_secs: 900,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoginSettings {
    pub max_failures_per_user: i32,
    pub max_failures_per_ip: i32,
    pub failure_window_secs: i64,
    pub lock_secs: i64,
    pub max_lock_secs: i64,
}

impl Default for LoginSettings {
    fn default() -> Self {
        LoginSettings {
            max_failures_per_user: 5,
            max_failures_per_ip: 30,
            failure_window_secs: 900,
            lock_secs: 30,
            max_lock_secs: 900,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("invalid configuration: {0}")]
    Parse(String),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Settings {
    /// Loads `path` (a missing default file is fine: defaults apply) and the environment overrides.
    pub fn load(path: &Path, required: bool) -> Result<Settings, SettingsError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => String::new(),
            Err(source) => return Err(SettingsError::Read { path: path.display().to_string(), source }),
        };
        Self::from_toml_and_env(&text, std::env::vars())
    }

    pub fn from_toml_and_env(
        text: &str,
        env: impl Iterator<Item = (String, String)>,
    ) -> Result<Settings, SettingsError> {
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| SettingsError::Parse(e.to_string()))?;
        for (name, value) in env {
            let Some(path) = name.strip_prefix("LADDER_") else { continue };
            let Some((section, key)) = path.split_once("__") else { continue };
            let section = table
                .entry(section.to_ascii_lowercase())
                .or_insert_with(|| toml::Value::Table(Default::default()));
            let toml::Value::Table(section) = section else {
                return Err(SettingsError::Invalid(format!("{name}: not a section")));
            };
            section.insert(key.to_ascii_lowercase(), env_value(&value));
        }
        let settings: Settings =
            toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| SettingsError::Parse(e.to_string()))?;
        Ok(settings)
    }

    /// Checks what types cannot: called once at start-up.
    pub fn validate(&mut self) -> Result<(), SettingsError> {
        self.server.issuer = normalize_issuer(&self.server.issuer)?;
        let t = &self.tokens;
        if !(1..=600).contains(&t.code_ttl_secs) {
            return Err(SettingsError::Invalid("tokens.code_ttl_secs must be between 1 and 600".into()));
        }
        for (name, v) in [
            ("tokens.id_token_ttl_secs", t.id_token_ttl_secs),
            ("tokens.access_token_ttl_secs", t.access_token_ttl_secs),
            ("tokens.refresh_token_ttl_secs", t.refresh_token_ttl_secs),
            ("tokens.interaction_ttl_secs", t.interaction_ttl_secs),
            ("session.idle_timeout_secs", self.session.idle_timeout_secs),
            ("session.absolute_timeout_secs", self.session.absolute_timeout_secs),
            ("login.failure_window_secs", self.login.failure_window_secs),
            ("login.lock_secs", self.login.lock_secs),
        ] {
            if v <= 0 {
                return Err(SettingsError::Invalid(format!("{name} must be positive")));
            }
        }
        if self.login.max_failures_per_user < 1 || self.login.max_failures_per_ip < 1 {
            return Err(SettingsError::Invalid("login.max_failures_* must be at least 1".into()));
        }
        self.policy()?;
        Ok(())
    }

    /// The levels and scope rules, checked against each other.
    pub fn policy(&self) -> Result<Policy, SettingsError> {
        let levels = Levels::from_config(self.levels.clone()).map_err(|e| SettingsError::Invalid(format!("levels: {e}")))?;
        check_scope_rules(&levels, &self.scope_rules).map_err(|e| SettingsError::Invalid(format!("scope_rules: {e}")))?;
        for (name, level) in [("console.level", &self.console.level), ("console.destructive_level", &self.console.destructive_level)] {
            if levels.resolve(level).is_none() {
                return Err(SettingsError::Invalid(format!("{name}: `{level}` names no configured level")));
            }
        }
        if let Some(rule) = self.risk.rules.iter().find(|r| levels.resolve(&r.level).is_none()) {
            return Err(SettingsError::Invalid(format!("risk.rules: `{}` names no configured level", rule.level)));
        }
        for proxy in &self.server.trusted_proxies {
            crate::browser::parse_cidr(proxy)
                .ok_or_else(|| SettingsError::Invalid(format!("server.trusted_proxies: `{proxy}` is not an address or CIDR range")))?;
        }
        Ok(Policy { levels, scope_rules: self.scope_rules.clone() })
    }

    pub fn issuer_is_https(&self) -> bool {
        self.server.issuer.starts_with("https://")
    }
}

/// Environment values are typed the way TOML would read them: integers and booleans, else text.
fn env_value(raw: &str) -> toml::Value {
    if let Ok(i) = raw.parse::<i64>() {
        toml::Value::Integer(i)
    } else if let Ok(b) = raw.parse::<bool>() {
        toml::Value::Boolean(b)
    } else {
        toml::Value::String(raw.to_owned())
    }
}

fn normalize_issuer(raw: &str) -> Result<String, SettingsError> {
    let url = url::Url::parse(raw)
        .map_err(|e| SettingsError::Invalid(format!("server.issuer `{raw}` is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.query().is_some() || url.fragment().is_some() {
        return Err(SettingsError::Invalid(format!(
            "server.issuer `{raw}` must be an http(s) URL without query or fragment"
        )));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_file() {
        let env = vec![
            ("LADDER_SERVER__BIND".to_string(), "0.0.0.0:9000".to_string()),
            ("LADDER_TOKENS__CODE_TTL_SECS".to_string(), "30".to_string()),
            ("LADDER_SERVER_KEY".to_string(), "ignored-here".to_string()),
        ];
        let mut s = Settings::from_toml_and_env("[server]\nissuer = \"https://id.example.com/\"\n", env.into_iter())
            .unwrap();
        s.validate().unwrap();
        assert_eq!(s.server.bind, "0.0.0.0:9000");
        assert_eq!(s.server.issuer, "https://id.example.com");
        assert_eq!(s.tokens.code_ttl_secs, 30);
    }

    #[test]
    fn refuses_unknown_keys_and_bad_values() {
        assert!(Settings::from_toml_and_env("[server]\nbnd = 1\n", std::iter::empty()).is_err());
        let mut s = Settings::from_toml_and_env("[tokens]\ncode_ttl_secs = 3600\n", std::iter::empty()).unwrap();
        assert!(s.validate().is_err());
        let mut s = Settings::from_toml_and_env("[server]\nissuer = \"ftp://x\"\n", std::iter::empty()).unwrap();
        assert!(s.validate().is_err());
    }
}

#[cfg(test)]
mod shipped_config {
    use super::*;

    /// The documented file must load as-is and describe the defaults.
    #[test]
    fn config_file_loads_and_matches_defaults() {
        let text = include_str!("../../../config/ladder.toml");
        let mut from_file = Settings::from_toml_and_env(text, std::iter::empty()).unwrap();
        from_file.validate().unwrap();
        let mut defaults = Settings::default();
        defaults.validate().unwrap();
        assert_eq!(format!("{from_file:?}"), format!("{defaults:?}"));
    }
}
