//! The configured verifier: which issuer and audience to trust, the level ordering, the clock.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::HttpRequest;
use actix_web::http::header;
use josekit::jwt;
use serde_json::Value;

use crate::error::{GuardError, TokenRejection};
use crate::jwks::{Alg, KeyCache};
use crate::levels::Levels;
use crate::requirement::Requirement;
use crate::token::{self, Expectations, VerifiedToken};

/// Current time in seconds since the epoch; injected so tests can move time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> i64;
}

impl<F> Clock for F
where
    F: Fn() -> i64 + Send + Sync + 'static,
{
    fn now(&self) -> i64 {
        self()
    }
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }
}

/// Settings for a [`Guard`]; start with [`Guard::builder`].
pub struct GuardBuilder {
    issuer: String,
    audience: String,
    jwks_uri: Option<String>,
    levels: Levels,
    leeway: i64,
    clock: Arc<dyn Clock>,
    jwks_max_age: Duration,
    jwks_refetch_cooldown: Duration,
    http: Option<reqwest::Client>,
}

/// Discovery could not produce a usable configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    #[error("fetching {url}: {source}")]
    Http { url: String, source: reqwest::Error },
    #[error("{url} answered {status}")]
    Status { url: String, status: u16 },
    /// OpenID Connect Discovery §4.3: the document must name exactly the issuer we asked about.
    #[error("discovery names issuer {found:?}, expected {expected:?}")]
    IssuerMismatch {
        expected: String,
        found: Option<String>,
    },
    #[error("discovery document has no jwks_uri")]
    MissingJwksUri,
}

impl GuardBuilder {
    /// Where the issuer publishes its keys; defaults to `{issuer}/jwks.json`, Ladder's path.
    pub fn jwks_uri(mut self, uri: impl Into<String>) -> Self {
        self.jwks_uri = Some(uri.into());
        self
    }

    /// The `acr` ordering; defaults to [`Levels::ladder_defaults`].
    pub fn levels(mut self, levels: Levels) -> Self {
        self.levels = levels;
        self
    }

    /// Clock skew tolerated on `exp`, `nbf`, `iat` and `max_age`, in seconds (default 30).
    pub fn leeway(mut self, secs: i64) -> Self {
        self.leeway = secs.max(0);
        self
    }

    /// The source of "now" for token checks and the key cache (default [`SystemClock`]).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// How long fetched keys are trusted before a refetch (default 5 minutes).
    pub fn jwks_max_age(mut self, max_age: Duration) -> Self {
        self.jwks_max_age = max_age;
        self
    }

    /// Minimum time between two JWKS fetches, which bounds how soon a rotated-in key is
    /// picked up after the previous fetch (default 10 seconds).
    pub fn jwks_refetch_cooldown(mut self, cooldown: Duration) -> Self {
        self.jwks_refetch_cooldown = cooldown;
        self
    }

    /// The HTTP client for JWKS and discovery requests, e.g. one with TLS roots or a proxy.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    fn client(&self) -> reqwest::Client {
        self.http.clone().unwrap_or_else(|| {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                // Fetches are minutes apart and may come from different actix worker runtimes;
                // a pooled connection would be tied to the runtime that opened it.
                .pool_max_idle_per_host(0)
                .build()
                .unwrap_or_default()
        })
    }

    pub fn build(self) -> Guard {
        let http = self.client();
        let jwks_uri = self
            .jwks_uri
            .unwrap_or_else(|| format!("{}/jwks.json", self.issuer.trim_end_matches('/')));
        Guard {
            inner: Arc::new(Inner {
                keys: KeyCache::new(
                    jwks_uri,
                    http,
                    self.jwks_max_age,
                    self.jwks_refetch_cooldown,
                ),
                issuer: self.issuer,
                audience: self.audience,
                levels: self.levels,
                leeway: self.leeway,
                clock: self.clock,
            }),
        }
    }

    /// Reads `{issuer}/.well-known/openid-configuration` for the `jwks_uri`, then builds.
    pub async fn discover(mut self) -> Result<Guard, DiscoveryError> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let http_err = |source| DiscoveryError::Http {
            url: url.clone(),
            source,
        };
        let response = self.client().get(&url).send().await.map_err(http_err)?;
        if !response.status().is_success() {
            return Err(DiscoveryError::Status {
                url,
                status: response.status().as_u16(),
            });
        }
        let doc: Value = response.json().await.map_err(http_err)?;
        let found = doc.get("issuer").and_then(Value::as_str);
        if found != Some(self.issuer.as_str()) {
            return Err(DiscoveryError::IssuerMismatch {
                expected: self.issuer.clone(),
                found: found.map(str::to_owned),
            });
        }
        let jwks_uri = doc
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or(DiscoveryError::MissingJwksUri)?;
        self.jwks_uri = Some(jwks_uri.to_owned());
        Ok(self.build())
    }
}

struct Inner {
    issuer: String,
    audience: String,
    levels: Levels,
    leeway: i64,
    clock: Arc<dyn Clock>,
    keys: KeyCache,
}

/// Verifies Ladder access tokens and enforces [`Requirement`]s. Cheap to clone; clones share
/// one key cache, so build it once and clone it into every worker.
#[derive(Clone)]
pub struct Guard {
    inner: Arc<Inner>,
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("issuer", &self.inner.issuer)
            .field("audience", &self.inner.audience)
            .field("jwks_uri", &self.inner.keys.uri())
            .field("levels", &self.inner.levels)
            .field("leeway", &self.inner.leeway)
            .finish_non_exhaustive()
    }
}

impl Guard {
    /// Trusts tokens from `issuer` whose `aud` includes `audience` (this resource's identifier).
    pub fn builder(issuer: impl Into<String>, audience: impl Into<String>) -> GuardBuilder {
        GuardBuilder {
            issuer: issuer.into(),
            audience: audience.into(),
            jwks_uri: None,
            levels: Levels::ladder_defaults(),
            leeway: 30,
            clock: Arc::new(SystemClock),
            jwks_max_age: Duration::from_secs(300),
            jwks_refetch_cooldown: Duration::from_secs(10),
            http: None,
        }
    }

    /// A guard for a Ladder issuer with every default: `{issuer}/jwks.json`, levels
    /// `urn:ladder:loa:1..3`, 30 s leeway, the system clock.
    pub fn ladder_defaults(issuer: impl Into<String>, audience: impl Into<String>) -> Guard {
        Guard::builder(issuer, audience).build()
    }

    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    pub fn audience(&self) -> &str {
        &self.inner.audience
    }

    pub fn jwks_uri(&self) -> &str {
        self.inner.keys.uri()
    }

    pub fn levels(&self) -> &Levels {
        &self.inner.levels
    }

    pub fn now(&self) -> i64 {
        self.inner.clock.now()
    }

    /// Verifies a compact JWT access token: signature against the issuer's JWKS, `typ`, `iss`,
    /// `aud`, `exp`/`nbf`/`iat` and the claims RFC 9068 requires.
    pub async fn verify(&self, token: &str) -> Result<VerifiedToken, GuardError> {
        let invalid = GuardError::InvalidToken;
        let header = jwt::decode_header(token).map_err(|_| invalid(TokenRejection::Malformed))?;
        let text = |name| header.claim(name).and_then(Value::as_str);
        let alg = text("alg")
            .and_then(Alg::parse)
            .ok_or(invalid(TokenRejection::UnsupportedAlgorithm))?;
        // Checked before any key lookup so an ID token never costs a JWKS fetch.
        if !token::is_access_token_type(text("typ")) {
            return Err(invalid(TokenRejection::WrongType));
        }
        let kid = text("kid").ok_or(invalid(TokenRejection::UnknownKey))?;
        let now = self.now();
        let verifier = self.inner.keys.verifier(kid, alg, now).await?;
        let (payload, _) = jwt::decode_with_verifier(token, verifier.as_ref())
            .map_err(|_| invalid(TokenRejection::BadSignature))?;
        let expect = Expectations {
            issuer: &self.inner.issuer,
            audience: &self.inner.audience,
            now,
            leeway: self.inner.leeway,
        };
        token::validate_claims(payload.claims_set().clone(), &expect).map_err(invalid)
    }

    /// Checks a verified token against a requirement, at the guard's current time.
    pub fn authorize(
        &self,
        token: &VerifiedToken,
        requirement: &Requirement,
    ) -> Result<(), GuardError> {
        requirement.evaluate(token, &self.inner.levels, self.now(), self.inner.leeway)
    }

    /// Reads the bearer token from `req`, verifies it and checks `requirement`.
    pub async fn check(
        &self,
        req: &HttpRequest,
        requirement: &Requirement,
    ) -> Result<VerifiedToken, GuardError> {
        let token = self.verify(bearer_token(req)?).await?;
        self.authorize(&token, requirement)?;
        Ok(token)
    }
}

/// The token from `Authorization: Bearer …` (RFC 6750 §2.1); other schemes count as no token.
fn bearer_token(req: &HttpRequest) -> Result<&str, GuardError> {
    let mut values = req.headers().get_all(header::AUTHORIZATION);
    let Some(value) = values.next() else {
        return Err(GuardError::MissingToken);
    };
    if values.next().is_some() {
        return Err(GuardError::InvalidRequest(
            "Only one Authorization header is allowed.",
        ));
    }
    let value = value
        .to_str()
        .map_err(|_| GuardError::InvalidRequest("The Authorization header is not valid text."))?
        .trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(GuardError::MissingToken);
    }
    let token = rest.trim();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err(GuardError::InvalidRequest(
            "The Authorization header must be `Bearer <token>`.",
        ));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn bearer_token_parsing() {
        let parse = |values: &[&str]| {
            let mut req = TestRequest::default();
            for v in values {
                req = req.append_header((header::AUTHORIZATION, *v));
            }
            bearer_token(&req.to_http_request()).map(str::to_owned)
        };
        assert_eq!(parse(&["Bearer abc.def.ghi"]), Ok("abc.def.ghi".to_owned()));
        assert_eq!(parse(&["bearer   abc "]), Ok("abc".to_owned()));
        assert_eq!(parse(&[]), Err(GuardError::MissingToken));
        assert_eq!(
            parse(&["Basic dXNlcjpwdw=="]),
            Err(GuardError::MissingToken)
        );
        assert!(matches!(
            parse(&["Bearer"]),
            Err(GuardError::InvalidRequest(_))
        ));
        assert!(matches!(
            parse(&["Bearer a b"]),
            Err(GuardError::InvalidRequest(_))
        ));
        assert!(matches!(
            parse(&["Bearer a", "Bearer b"]),
            Err(GuardError::InvalidRequest(_))
        ));
    }

    #[test]
    fn default_jwks_uri_is_ladders() {
        let guard = Guard::ladder_defaults("http://id.example/", "api");
        assert_eq!(guard.jwks_uri(), "http://id.example/jwks.json");
        assert_eq!(guard.levels(), &Levels::ladder_defaults());
    }
}
