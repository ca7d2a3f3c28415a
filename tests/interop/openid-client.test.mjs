// Ladder as seen by an independent relying-party library: panva's openid-client (certified by the
// OpenID Foundation) drives a running Ladder through discovery, the authorization code flow with
// PKCE, a step-up to loa:2 with TOTP, ID token validation, userinfo, introspection, refresh,
// revocation and RP-initiated logout. Ladder's pages are filled in like tests/e2e does: a cookie-keeping fetch.
//
// tests/interop/run.sh starts Ladder and sets the variables read below.

import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as client from 'openid-client';
import { Browser, between, formAction, inputValue, primaryLink } from './browser.mjs';
import { base32Decode, totp } from './totp.mjs';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set; run tests/interop/run.sh`);
  return value;
};

const LOA1 = 'urn:ladder:loa:1';
const LOA2 = 'urn:ladder:loa:2';

const issuer = env('LADDER_ISSUER');
const clientId = env('INTEROP_CLIENT_ID');
const clientSecret = env('INTEROP_CLIENT_SECRET');
const redirectUri = env('INTEROP_REDIRECT_URI');
const postLogoutUri = env('INTEROP_POST_LOGOUT_URI');
const username = env('INTEROP_USERNAME');
const password = env('INTEROP_PASSWORD');

/** Everything the steps hand on to the next ones. */
const state = {};

/** A person takes a moment between seeing a page and sending it. */
const pause = (ms = 1100) => new Promise((resolve) => setTimeout(resolve, ms));

/** Builds an authorization request with the library: PKCE S256, state, nonce, extra parameters. */
async function authorizationRequest(extra = {}) {
  const verifier = client.randomPKCECodeVerifier();
  const request = {
    verifier,
    state: client.randomState(),
    nonce: client.randomNonce(),
  };
  request.url = client.buildAuthorizationUrl(state.config, {
    redirect_uri: redirectUri,
    scope: 'openid profile email',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state: request.state,
    nonce: request.nonce,
    ...extra,
  });
  return request;
}

/** Expects the browser to be sent to the redirect URI; returns that URL. */
function atRedirectUri(landing) {
  assert.ok(landing.rp, `expected a redirect to the RP, got a ${landing.status} page at ${landing.url}:\n${landing.html}`);
  assert.ok(landing.rp.href.startsWith(redirectUri), `sent to ${landing.rp.href}, not the redirect URI`);
  return landing.rp;
}

describe('openid-client against Ladder', () => {
  before(() => {
    state.browser = new Browser(new URL(issuer).origin);
  });

  test('discovery', async () => {
    state.config = await client.discovery(new URL(issuer), clientId, undefined, client.ClientSecretBasic(clientSecret), {
      // Ladder runs on http://localhost here; the library refuses plain HTTP unless told.
      execute: [client.allowInsecureRequests, client.enableNonRepudiationChecks],
    });
    const meta = state.config.serverMetadata();
    assert.equal(meta.issuer, issuer);
    assert.ok(meta.code_challenge_methods_supported.includes('S256'));
    assert.ok(meta.acr_values_supported.includes(LOA2));
    assert.ok(meta.token_endpoint_auth_methods_supported.includes('client_secret_basic'));
    assert.ok(meta.introspection_endpoint, 'introspection_endpoint');
    assert.ok(meta.end_session_endpoint, 'end_session_endpoint');
    assert.equal(meta.authorization_response_iss_parameter_supported, true);
  });

  test('authorization code + PKCE: password sign-in at loa:1', async () => {
    const request = await authorizationRequest({ acr_values: LOA1 });
    const page = await state.browser.open(request.url.href);
    assert.equal(page.status, 200, page.html);
    assert.match(page.html, /name="password"/, 'the sign-in form');
    await pause();
    const { response, landing } = await state.browser.submit(page.url, formAction(page.html), {
      csrf: inputValue(page.html, 'csrf'),
      username,
      password,
    });
    assert.equal(response.status, 303, 'credential POSTs answer 303');
    const callback = atRedirectUri(landing);
    assert.equal(callback.searchParams.get('iss'), issuer, 'RFC 9207 iss in the response');

    // The library checks state, iss, PKCE, and the ID token: signature (non-repudiation checks
    // on), iss, aud, azp, exp, iat, nonce.
    const tokens = await client.authorizationCodeGrant(state.config, callback, {
      pkceCodeVerifier: request.verifier,
      expectedState: request.state,
      expectedNonce: request.nonce,
      idTokenExpected: true,
    });
    const claims = tokens.claims();
    assert.equal(claims.acr, LOA1);
    assert.deepEqual(claims.amr, ['pwd']);
    assert.equal(typeof claims.auth_time, 'number');
    assert.ok(claims.sid, 'sid');
    assert.equal(tokens.token_type.toLowerCase(), 'bearer');
    state.loa1 = { tokens, claims };
  });

  test('step-up to loa:2 with TOTP enrolled inside the flow; max_age checked by the library', async () => {
    const request = await authorizationRequest({ acr_values: LOA2, max_age: '300' });
    const page = await state.browser.open(request.url.href);
    assert.equal(page.status, 200, page.html);
    assert.doesNotMatch(page.html, /name="password"/, 'a step-up never asks for the password again');
    const secretText = between(page.html, '<code class="secret">', '</code>');
    assert.ok(secretText, `the enrolment page shows the secret:\n${page.html}`);
    const secret = base32Decode(secretText);
    await pause();
    const { response, landing } = await state.browser.submit(page.url, formAction(page.html), {
      csrf: inputValue(page.html, 'csrf'),
      code: totp(secret),
    });
    assert.equal(response.status, 200, 'the recovery codes page follows enrolment');
    const codesPage = landing.html;
    assert.match(codesPage, /recovery codes/i);
    const next = new URL(primaryLink(codesPage), page.url).href;
    const callback = atRedirectUri(await state.browser.open(next));

    const tokens = await client.authorizationCodeGrant(state.config, callback, {
      pkceCodeVerifier: request.verifier,
      expectedState: request.state,
      expectedNonce: request.nonce,
      idTokenExpected: true,
      maxAge: 300,
    });
    const claims = tokens.claims();
    assert.equal(claims.acr, LOA2);
    assert.ok(claims.amr.includes('otp'), `amr ${claims.amr}`);
    assert.ok(claims.amr.includes('mfa'), `amr ${claims.amr}`);
    assert.ok(claims.amr.includes('pwd'), `amr ${claims.amr}`);
    assert.equal(claims.sub, state.loa1.claims.sub, 'same user');
    assert.equal(claims.sid, state.loa1.claims.sid, 'same Ladder session, stepped up');
    assert.ok(claims.auth_time >= state.loa1.claims.auth_time, 'auth_time is the newest proof');
    assert.ok(tokens.refresh_token, 'a refresh token');
    state.loa2 = { tokens, claims };
  });

  test('userinfo', async () => {
    const { tokens, claims } = state.loa2;
    const info = await client.fetchUserInfo(state.config, tokens.access_token, claims.sub);
    assert.equal(info.sub, claims.sub);
    assert.equal(info.preferred_username, username);
    assert.equal(info.email, `${username}@example.com`);
  });

  test('introspection (client_secret_basic)', async () => {
    const { tokens, claims } = state.loa2;
    const result = await client.tokenIntrospection(state.config, tokens.access_token);
    assert.equal(result.active, true);
    assert.equal(result.sub, claims.sub);
    assert.equal(result.client_id, clientId);
    assert.equal(result.acr, LOA2);
    assert.ok(result.amr.includes('otp'), `amr ${result.amr}`);
    assert.equal(result.auth_time, claims.auth_time);
  });

  test('an alias (REFEDS MFA) is answered silently, as spelled, once the session is at loa:2', async () => {
    const alias = 'https://refeds.org/profile/mfa';
    const request = await authorizationRequest({ acr_values: alias, prompt: 'none' });
    const callback = atRedirectUri(await state.browser.open(request.url.href));
    const tokens = await client.authorizationCodeGrant(state.config, callback, {
      pkceCodeVerifier: request.verifier,
      expectedState: request.state,
      expectedNonce: request.nonce,
      idTokenExpected: true,
    });
    const claims = tokens.claims();
    assert.equal(claims.acr, alias);
    assert.equal(claims.auth_time, state.loa2.claims.auth_time, 'nothing new was proven');
  });

  test('refresh: a new access token, a rotated refresh token, the level kept', async () => {
    const { tokens, claims } = state.loa2;
    const refreshed = await client.refreshTokenGrant(state.config, tokens.refresh_token);
    assert.ok(refreshed.access_token);
    assert.notEqual(refreshed.access_token, tokens.access_token);
    assert.ok(refreshed.refresh_token, 'rotated');
    assert.notEqual(refreshed.refresh_token, tokens.refresh_token);
    if (refreshed.id_token) {
      // Validated by the library (OIDC Core §12.2): same sub, iss, aud; acr is not raised.
      const idClaims = refreshed.claims();
      assert.equal(idClaims.sub, claims.sub);
      assert.equal(idClaims.acr, LOA2);
    }
    const introspected = await client.tokenIntrospection(state.config, refreshed.access_token);
    assert.equal(introspected.active, true);
    assert.equal(introspected.acr, LOA2, 'a refresh keeps the level');
    const info = await client.fetchUserInfo(state.config, refreshed.access_token, claims.sub);
    assert.equal(info.sub, claims.sub);
    state.refreshed = refreshed;
  });

  test('refresh token reuse is refused and revokes the family', async () => {
    await assert.rejects(
      client.refreshTokenGrant(state.config, state.loa2.tokens.refresh_token),
      (err) => err.error === 'invalid_grant',
    );
    const introspected = await client.tokenIntrospection(state.config, state.refreshed.access_token);
    assert.equal(introspected.active, false, 'tokens from the reused family are revoked');
  });

  test('revocation (RFC 7009)', async () => {
    const { tokens } = state.loa1;
    assert.ok(tokens.refresh_token, 'the loa:1 grant has a refresh token');
    await client.tokenRevocation(state.config, tokens.refresh_token, { token_type_hint: 'refresh_token' });
    await assert.rejects(
      client.refreshTokenGrant(state.config, tokens.refresh_token),
      (err) => err.error === 'invalid_grant',
    );
    const introspected = await client.tokenIntrospection(state.config, tokens.access_token);
    assert.equal(introspected.active, false, 'revoking a refresh token revokes its grant');
  });

  test('RP-initiated logout', async () => {
    const logoutState = client.randomState();
    const url = client.buildEndSessionUrl(state.config, {
      id_token_hint: state.loa2.tokens.id_token,
      post_logout_redirect_uri: postLogoutUri,
      state: logoutState,
    });
    const landing = await state.browser.open(url.href);
    assert.ok(landing.rp, `expected a redirect to the post-logout URI, got a ${landing.status} page:\n${landing.html}`);
    assert.ok(landing.rp.href.startsWith(postLogoutUri), landing.rp.href);
    assert.equal(landing.rp.searchParams.get('state'), logoutState);

    // The Ladder session is gone: a silent request now needs a login.
    const request = await authorizationRequest({ prompt: 'none' });
    const callback = atRedirectUri(await state.browser.open(request.url.href));
    // The library checks the error response too (state, and iss per RFC 9207) before reporting it.
    await assert.rejects(
      client.authorizationCodeGrant(state.config, callback, {
        pkceCodeVerifier: request.verifier,
        expectedState: request.state,
        expectedNonce: request.nonce,
      }),
      (err) => err.error === 'login_required',
    );
  });
});
