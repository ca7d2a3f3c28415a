// Minimal oidc-provider peer for side-by-side benchmarking (loopback only).
// Usage: ALG=ES256|RS256|EdDSA FORMAT=jwt|opaque PORT=3000 [ID_TOKEN_ALG=RS256] [ROTATE_REFRESH=1] node peer.js
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const PORT = Number(process.env.PORT || 3000);
const HOST = '127.0.0.1';
const ALG = process.env.ALG || 'ES256';          // access/id token signing alg
// Ladder signs every ID token RS256; ID_TOKEN_ALG=RS256 gives the peer the same work per token.
const ID_TOKEN_ALG = process.env.ID_TOKEN_ALG || ALG;
const FORMAT = process.env.FORMAT || 'jwt';      // client_credentials AT format
// Ladder rotates refresh tokens at every use (RFC 9700 §4.14); ROTATE_REFRESH=1 makes the peer do the
// same work (its default rotates a confidential client's token only after 70% of its lifetime).
const ROTATE_REFRESH = process.env.ROTATE_REFRESH === '1';
const ISSUER = `http://${HOST}:${PORT}`;

function jwk(type, opts, alg, kid) {
  const { privateKey } = generateKeyPairSync(type, opts);
  return { ...privateKey.export({ format: 'jwk' }), alg, use: 'sig', kid };
}

const keys = [
  jwk('ec', { namedCurve: 'P-256' }, 'ES256', 'es256-1'),
  jwk('rsa', { modulusLength: 2048 }, 'RS256', 'rs256-1'),
  jwk('ed25519', {}, 'EdDSA', 'eddsa-1'),
];

const configuration = {
  clients: [{
    client_id: 'bench',
    client_secret: 'benchsecret-benchsecret-benchsecret',
    grant_types: ['client_credentials', 'authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: ['http://127.0.0.1:9/cb'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: ID_TOKEN_ALG,
  }],
  jwks: { keys },
  // In-memory adapter is the default when no `adapter` is given (LRU MemoryAdapter).
  pkce: { required: () => true },              // PKCE (S256) required for every client
  clientDefaults: { id_token_signed_response_alg: ID_TOKEN_ALG },
  enabledJWA: { idTokenSigningAlgValues: ['ES256', 'RS256', 'EdDSA'] },
  features: {
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    devInteractions: { enabled: true },         // built-in dev login/consent pages (accept any login)
    resourceIndicators: {
      enabled: true,
      // client_credentials -> JWT AT for urn:bench:api; auth-code flow -> opaque AT usable at /me (userinfo)
      defaultResource: (ctx) => (ctx.oidc.params?.grant_type === 'client_credentials' ? 'urn:bench:api' : undefined),
      useGrantedResource: () => false,
      getResourceServerInfo: () => ({
        scope: 'api:read',
        audience: 'urn:bench:api',
        accessTokenTTL: 600,
        accessTokenFormat: FORMAT,
        jwt: { sign: { alg: ALG } },
      }),
    },
  },
  loadExistingGrant: async (ctx) => {           // auto-consent so a scripted login needs no consent step
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid profile offline_access');
    await grant.save();
    return grant;
  },
  findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub, name: `user ${sub}` }) }),
  ...(ROTATE_REFRESH ? { rotateRefreshToken: () => true } : {}),
  ttl: { AccessToken: 600, AuthorizationCode: 60, IdToken: 600, RefreshToken: 86400, ClientCredentials: 600, Interaction: 600, Session: 3600, Grant: 86400 },
};

const provider = new Provider(ISSUER, configuration);
provider.on('server_error', (_ctx, err) => console.error('server_error', err));
provider.listen(PORT, HOST, () => console.log(`oidc-provider peer on ${ISSUER} alg=${ALG} id_token_alg=${ID_TOKEN_ALG} format=${FORMAT} rotate_refresh=${ROTATE_REFRESH} pid=${process.pid}`));
