//! A scripted browser: its own cookies (so many browsers share one connection pool), redirects
//! followed by hand, and sign-in pages answered by an [`Actor`].

use anyhow::{Context, Result, anyhow, bail};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use url::Url;

use crate::html;

#[derive(Debug, Clone)]
struct Cookie {
    name: String,
    value: String,
    path: String,
}

/// One browser's cookie jar (host-only; all requests go to one issuer).
#[derive(Debug, Clone, Default)]
pub struct Browser {
    jar: Vec<Cookie>,
}

pub struct Resp {
    pub status: u16,
    pub url: Url,
    pub location: Option<Url>,
    pub body: String,
}

fn path_matches(cookie_path: &str, path: &str) -> bool {
    path == cookie_path
        || (path.starts_with(cookie_path) && (cookie_path.ends_with('/') || path[cookie_path.len()..].starts_with('/')))
}

impl Browser {
    fn cookie_header(&self, path: &str) -> Option<String> {
        let parts: Vec<String> = self
            .jar
            .iter()
            .filter(|c| path_matches(&c.path, path))
            .map(|c| format!("{}={}", c.name, c.value))
            .collect();
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    fn store(&mut self, header: &str, request_path: &str) {
        let mut parts = header.split(';');
        let Some((name, value)) = parts.next().and_then(|nv| nv.split_once('=')) else { return };
        let (name, value) = (name.trim().to_owned(), value.trim().to_owned());
        // RFC 6265 §5.1.4 default path: the request path up to its last '/'.
        let mut path = match request_path.rfind('/') {
            Some(0) | None => "/".to_owned(),
            Some(i) => request_path[..i].to_owned(),
        };
        let mut delete = value.is_empty();
        for attr in parts {
            let (k, v) = attr.split_once('=').unwrap_or((attr, ""));
            match k.trim().to_ascii_lowercase().as_str() {
                "path" if v.trim().starts_with('/') => path = v.trim().to_owned(),
                "max-age" => delete |= v.trim().parse::<i64>().is_ok_and(|s| s <= 0),
                "expires" => delete |= v.contains("1970"),
                _ => {}
            }
        }
        self.jar.retain(|c| !(c.name == name && c.path == path));
        if !delete {
            self.jar.push(Cookie { name, value, path });
        }
    }

    async fn send(&mut self, rb: reqwest::RequestBuilder, url: &Url) -> Result<Resp> {
        let rb = match self.cookie_header(url.path()) {
            Some(c) => rb.header(COOKIE, c),
            None => rb,
        };
        let resp = rb.send().await.with_context(|| format!("{} {}", "request to", url.path()))?;
        let status = resp.status().as_u16();
        for v in resp.headers().get_all(SET_COOKIE) {
            if let Ok(v) = v.to_str() {
                self.store(v, url.path());
            }
        }
        let location = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(|l| url.join(l))
            .transpose()
            .context("bad Location")?;
        let body = resp.text().await.unwrap_or_default();
        Ok(Resp { status, url: url.clone(), location, body })
    }

    pub async fn get(&mut self, http: &reqwest::Client, url: &Url) -> Result<Resp> {
        self.send(http.get(url.clone()), url).await
    }

    pub async fn post(&mut self, http: &reqwest::Client, url: &Url, form: &[(String, String)]) -> Result<Resp> {
        self.send(http.post(url.clone()).form(form), url).await
    }
}

/// What to do on a page.
pub enum Action {
    Post(Url, Vec<(String, String)>),
    Get(Url),
}

/// Answers sign-in pages: the password form, TOTP (and its enrolment), a consent confirmation.
#[derive(Default)]
pub struct Actor {
    pub username: String,
    pub password: String,
    /// The TOTP secret, and the time step whose code to enter when asked.
    pub totp: Option<(Vec<u8>, i64)>,
    /// Enrol TOTP when offered: the secret read from the page and the step used are kept here.
    pub enrol: bool,
    pub enrolled: Option<(String, i64)>,
    /// Whether a password was asked for (a step-up that asks for one is not a step-up).
    pub asked_password: bool,
    pub asked_totp: bool,
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

impl Actor {
    pub fn login(username: &str, password: &str) -> Actor {
        Actor { username: username.into(), password: password.into(), ..Default::default() }
    }

    fn act(&mut self, page: &Resp) -> Result<Action> {
        let forms = html::forms(&page.body);
        let join = |a: &str| page.url.join(if a.is_empty() { page.url.as_str() } else { a }).context("form action");
        let refused = |what: &str| {
            anyhow!("{what} refused: {}", html::alert(&page.body).unwrap_or_else(|| html::title(&page.body)))
        };
        if let Some(f) = forms.iter().find(|f| f.has_password()) {
            if self.asked_password {
                return Err(refused("password"));
            }
            self.asked_password = true;
            let user_field = if f.has_input("login") { "login" } else { "username" };
            let fields = f.fill(&[(user_field, &self.username), ("password", &self.password)]);
            return Ok(Action::Post(join(&f.action)?, fields));
        }
        if let Some(f) = forms.iter().find(|f| f.action.ends_with("/totp/enrol")) {
            if !self.enrol {
                bail!("asked to enrol TOTP");
            }
            if self.enrolled.is_some() {
                return Err(refused("TOTP enrolment code"));
            }
            let secret_b32 = html::secret(&page.body).ok_or_else(|| anyhow!("enrolment page without a secret"))?;
            let secret = ladder_core::totp::secret_from_base32(&secret_b32).ok_or_else(|| anyhow!("bad secret"))?;
            let step = unix_now() / 30;
            let code = ladder_core::totp::generate(&secret, step * 30).ok_or_else(|| anyhow!("totp"))?;
            self.enrolled = Some((secret_b32, step));
            return Ok(Action::Post(join(&f.action)?, f.fill(&[("code", &code)])));
        }
        if let Some(f) = forms.iter().find(|f| f.action.ends_with("/totp") && f.hidden("kind") == Some("totp")) {
            if self.asked_totp {
                return Err(refused("TOTP code"));
            }
            self.asked_totp = true;
            let (secret, step) = self.totp.as_ref().ok_or_else(|| anyhow!("asked for a TOTP code"))?;
            let code = ladder_core::totp::generate(secret, step * 30).ok_or_else(|| anyhow!("totp"))?;
            return Ok(Action::Post(join(&f.action)?, f.fill(&[("code", &code)])));
        }
        // node-oidc-provider's development consent page.
        if let Some(f) = forms.iter().find(|f| f.hidden("prompt") == Some("consent")) {
            return Ok(Action::Post(join(&f.action)?, f.fill(&[])));
        }
        // Ladder's recovery-codes page: "Continue to …".
        if let Some(href) = html::link(&page.body, "/interaction/") {
            return Ok(Action::Get(page.url.join(&href)?));
        }
        bail!("stuck on page {:?} ({})", html::title(&page.body), page.url.path())
    }
}

/// The authorization response at the redirect URI.
pub struct Callback {
    pub code: String,
}

/// Follows the authorization request through redirects and pages until the browser is sent to
/// `redirect_uri`; returns the code (checking `state`), or the error the provider sent.
pub async fn authorize(
    http: &reqwest::Client,
    browser: &mut Browser,
    actor: &mut Actor,
    start: Url,
    redirect_uri: &str,
    state: &str,
) -> Result<Callback> {
    let mut resp = browser.get(http, &start).await?;
    for _ in 0..16 {
        match resp.status {
            301 | 302 | 303 | 307 => {
                let loc = resp.location.take().ok_or_else(|| anyhow!("redirect without Location"))?;
                if loc.as_str().starts_with(redirect_uri) {
                    let q: Vec<(String, String)> = loc.query_pairs().into_owned().collect();
                    let get = |n: &str| q.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
                    if let Some(e) = get("error") {
                        bail!("authorization error {e}: {}", get("error_description").unwrap_or_default());
                    }
                    if get("state").as_deref() != Some(state) {
                        bail!("state mismatch");
                    }
                    return Ok(Callback { code: get("code").ok_or_else(|| anyhow!("no code"))? });
                }
                resp = browser.get(http, &loc).await?;
            }
            200 => {
                resp = match actor.act(&resp)? {
                    Action::Post(url, form) => browser.post(http, &url, &form).await?,
                    Action::Get(url) => browser.get(http, &url).await?,
                };
            }
            s => bail!("HTTP {s} at {}: {}", resp.url.path(), html::title(&resp.body)),
        }
    }
    bail!("too many hops")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_follow_paths_and_deletion() {
        let mut b = Browser::default();
        b.store("_interaction=abc; path=/interaction/x1; httponly", "/auth");
        b.store("_session=s; path=/; samesite=lax", "/interaction/x1");
        b.store("ladder_browser=b; Path=/; HttpOnly", "/authorize");
        assert_eq!(
            b.cookie_header("/interaction/x1").as_deref(),
            Some("_interaction=abc; _session=s; ladder_browser=b")
        );
        assert_eq!(b.cookie_header("/interaction/x10").as_deref(), Some("_session=s; ladder_browser=b"));
        b.store("_session=; path=/; expires=Thu, 01 Jan 1970 00:00:00 GMT", "/");
        assert_eq!(b.cookie_header("/token").as_deref(), Some("ladder_browser=b"));
    }
}
