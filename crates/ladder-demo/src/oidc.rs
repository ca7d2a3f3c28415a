//! The relying party, with the `openidconnect` crate: discovery (lazy, so the demo may start before
//! Ladder), authorization requests carrying `acr_values` and `max_age`, the code exchange with PKCE,
//! ID token validation, refresh, userinfo, and RP-initiated logout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdTokenClaims, CoreTokenResponse, CoreUserInfoClaims,
};
use openidconnect::reqwest;
use openidconnect::{
    AccessToken, AuthenticationContextClass, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    EndSessionUrl, EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, LogoutRequest, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, PostLogoutRedirectUrl,
    ProviderMetadataWithLogout, RedirectUrl, RefreshToken, Scope, TokenResponse,
};
use tokio::sync::RwLock;

use crate::config::Config;
use crate::session::{Identity, PendingAction, PendingLogin, Tokens};
use crate::time::now;

type Rp = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Discovery results are reused for this long, then fetched again (new signing keys show up).
const METADATA_MAX_AGE: Duration = Duration::from_secs(300);

struct Provider {
    rp: Rp,
    end_session: Option<EndSessionUrl>,
    fetched: Instant,
}

pub struct RelyingParty {
    config: Config,
    http: reqwest::Client,
    provider: RwLock<Option<Arc<Provider>>>,
}

/// What an authorization request asks Ladder for.
#[derive(Debug, Clone, Default)]
pub struct AuthRequest {
    pub acr_values: Vec<String>,
    pub max_age: Option<u64>,
    /// Finished when the user is back (a transfer or payee change waiting for a step-up).
    pub action: Option<PendingAction>,
    /// What led here, told to the user once the action is done.
    pub steps: Vec<crate::session::Step>,
}

impl RelyingParty {
    pub fn new(config: Config) -> Result<RelyingParty> {
        let http = reqwest::Client::builder()
            // openidconnect's advice: never follow redirects from the provider's endpoints.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(RelyingParty {
            config,
            http,
            provider: RwLock::new(None),
        })
    }

    async fn provider(&self) -> Result<Arc<Provider>> {
        if let Some(p) = self.provider.read().await.as_ref()
            && p.fetched.elapsed() < METADATA_MAX_AGE
        {
            return Ok(p.clone());
        }
        let issuer = IssuerUrl::new(self.config.issuer.clone())?;
        let metadata = ProviderMetadataWithLogout::discover_async(issuer, &self.http)
            .await
            .with_context(|| format!("discovering {} (is Ladder running?)", self.config.issuer))?;
        let end_session = metadata.additional_metadata().end_session_endpoint.clone();
        let rp = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.config.client_id.clone()),
            Some(ClientSecret::new(self.config.client_secret.clone())),
        )
        .set_redirect_uri(RedirectUrl::new(self.config.redirect_uri())?);
        let provider = Arc::new(Provider {
            rp,
            end_session,
            fetched: Instant::now(),
        });
        *self.provider.write().await = Some(provider.clone());
        Ok(provider)
    }

    /// The URL to send the browser to, and what to remember until it comes back.
    pub async fn start(&self, request: AuthRequest) -> Result<(String, PendingLogin)> {
        let provider = self.provider().await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut auth = provider
            .rp
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("profile".into()))
            .set_pkce_challenge(challenge);
        for acr in &request.acr_values {
            auth = auth.add_auth_context_value(AuthenticationContextClass::new(acr.clone()));
        }
        if let Some(secs) = request.max_age {
            auth = auth.set_max_age(Duration::from_secs(secs));
        }
        let (url, state, nonce) = auth.url();
        let pending = PendingLogin {
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
            request,
            started_at: now(),
        };
        Ok((url.to_string(), pending))
    }

    /// Redeems the code and validates the ID token (signature, issuer, audience, expiry, nonce,
    /// and `auth_time` against the `max_age` that was asked for).
    pub async fn finish(&self, code: String, pending: &PendingLogin) -> Result<(Identity, Tokens)> {
        let provider = self.provider().await?;
        let response: CoreTokenResponse = provider
            .rp
            .exchange_code(AuthorizationCode::new(code))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
            .request_async(&self.http)
            .await
            .map_err(|e| anyhow!("the token endpoint refused the code: {}", describe(&e)))?;
        let id_token = response
            .id_token()
            .context("the token response has no ID token")?;
        let claims: &CoreIdTokenClaims = id_token
            .claims(
                &provider.rp.id_token_verifier(),
                &Nonce::new(pending.nonce.clone()),
            )
            .context("the ID token did not validate")?;
        let auth_time = claims.auth_time().map(|t| t.timestamp());
        if let Some(max_age) = pending.request.max_age {
            // OIDC Core §3.1.3.7 (13): with max_age, auth_time must be present and recent enough.
            let at =
                auth_time.context("max_age was requested but the ID token has no auth_time")?;
            if now() - at > max_age as i64 + 60 {
                bail!("the ID token's auth_time is older than the max_age requested");
            }
        }
        let mut identity = Identity {
            sub: claims.subject().to_string(),
            display_name: None,
            acr: claims.auth_context_ref().map(|a| a.to_string()),
            amr: claims
                .auth_method_refs()
                .map(|m| m.iter().map(|a| a.to_string()).collect())
                .unwrap_or_default(),
            auth_time,
        };
        identity.display_name = self
            .display_name(&provider, response.access_token(), claims)
            .await;
        let tokens = Tokens {
            id_token: id_token.to_string(),
            access_token: response.access_token().secret().clone(),
            refresh_token: response.refresh_token().map(|r| r.secret().clone()),
            access_expires_at: response.expires_in().map(|d| now() + d.as_secs() as i64),
        };
        Ok((identity, tokens))
    }

    /// The ID token's name claims, else what UserInfo says (OIDC Core §5.3).
    async fn display_name(
        &self,
        provider: &Provider,
        access: &AccessToken,
        claims: &CoreIdTokenClaims,
    ) -> Option<String> {
        let from_id = claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.to_string())
            .or_else(|| claims.preferred_username().map(|u| u.to_string()));
        if from_id.is_some() {
            return from_id;
        }
        let request = provider
            .rp
            .user_info(access.clone(), Some(claims.subject().clone()))
            .ok()?;
        let info: CoreUserInfoClaims = request.request_async(&self.http).await.ok()?;
        info.name()
            .and_then(|n| n.get(None))
            .map(|n| n.to_string())
            .or_else(|| info.preferred_username().map(|u| u.to_string()))
    }

    /// A new access token from the refresh token (rotated: the response carries the next one).
    pub async fn refresh(&self, tokens: &Tokens) -> Result<Tokens> {
        let refresh = tokens.refresh_token.clone().context("no refresh token")?;
        let provider = self.provider().await?;
        let response: CoreTokenResponse = provider
            .rp
            .exchange_refresh_token(&RefreshToken::new(refresh))?
            .request_async(&self.http)
            .await
            .map_err(|e| anyhow!("the refresh was refused: {}", describe(&e)))?;
        Ok(Tokens {
            id_token: response
                .id_token()
                .map_or_else(|| tokens.id_token.clone(), |t| t.to_string()),
            access_token: response.access_token().secret().clone(),
            refresh_token: response.refresh_token().map(|r| r.secret().clone()),
            access_expires_at: response.expires_in().map(|d| now() + d.as_secs() as i64),
        })
    }

    /// RP-initiated logout: Ladder ends its session and sends the browser back to the demo.
    pub async fn logout_url(&self, id_token: &str) -> Result<Option<String>> {
        let provider = self.provider().await?;
        let Some(endpoint) = provider.end_session.clone() else {
            return Ok(None);
        };
        let hint: openidconnect::core::CoreIdToken = id_token.parse()?;
        let url = LogoutRequest::from(endpoint)
            .set_id_token_hint(&hint)
            .set_client_id(ClientId::new(self.config.client_id.clone()))
            .set_post_logout_redirect_uri(PostLogoutRedirectUrl::new(format!(
                "{}/",
                self.config.public_url
            ))?)
            .http_get_url();
        Ok(Some(url.to_string()))
    }
}

/// A token-endpoint error as one line: the OAuth error code and description when there is one.
fn describe<RE: std::error::Error + 'static, T: openidconnect::ErrorResponse + 'static>(
    e: &openidconnect::RequestTokenError<RE, T>,
) -> String {
    match e {
        openidconnect::RequestTokenError::ServerResponse(r) => serde_json::to_value(r)
            .map(|v| v.to_string())
            .unwrap_or_else(|_| e.to_string()),
        other => other.to_string(),
    }
}
