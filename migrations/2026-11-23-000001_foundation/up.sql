-- One portable schema for SQLite and PostgreSQL: TEXT ids, BIGINT epoch seconds, BOOLEAN flags.

CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    username TEXT NOT NULL UNIQUE,
    email TEXT,
    name TEXT,
    is_admin BOOLEAN NOT NULL DEFAULT FALSE,
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE password_credentials (
    user_id TEXT PRIMARY KEY NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    phc_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE clients (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    -- SHA-256 (hex) of the generated secret; NULL for public clients.
    secret_hash TEXT,
    is_public BOOLEAN NOT NULL,
    -- JSON array of exact redirect URIs.
    redirect_uris TEXT NOT NULL,
    -- Space-separated scopes the client may request.
    scopes TEXT NOT NULL,
    default_acr_values TEXT,
    min_acr TEXT,
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY NOT NULL,
    -- SHA-256 (hex) of the cookie value; rotated at every authentication.
    token_hash TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    ip TEXT,
    user_agent TEXT,
    ended_at BIGINT
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE session_factors (
    id TEXT PRIMARY KEY NOT NULL,
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    factor TEXT NOT NULL,
    user_verified BOOLEAN NOT NULL DEFAULT FALSE,
    proven_at BIGINT NOT NULL,
    ip TEXT,
    user_agent TEXT
);
CREATE INDEX session_factors_session ON session_factors(session_id);

CREATE TABLE interactions (
    id TEXT PRIMARY KEY NOT NULL,
    -- SHA-256 (hex) of the browser's CSRF cookie: the interaction only continues in that browser.
    browser_hash TEXT NOT NULL,
    client_id TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    -- The validated authorization request, as JSON.
    request TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE authorization_codes (
    code_hash TEXT PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    session_id TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    scope TEXT NOT NULL,
    nonce TEXT,
    code_challenge TEXT,
    acr TEXT NOT NULL,
    -- JSON array of amr values.
    amr TEXT NOT NULL,
    auth_time BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    consumed_at BIGINT
);

CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY NOT NULL,
    alg TEXT NOT NULL,
    -- Private JWK, encrypted with the server key (AES-256-GCM, base64url).
    private_jwk_enc TEXT NOT NULL,
    public_jwk TEXT NOT NULL,
    -- 'active' signs; 'published' only verifies; 'retired' is gone from JWKS.
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT
);

-- Failed-attempt counters for guessable secrets, keyed by e.g. 'login:user:<id>' or 'login:ip:<addr>'.
CREATE TABLE throttles (
    key TEXT PRIMARY KEY NOT NULL,
    failures INTEGER NOT NULL,
    window_start BIGINT NOT NULL,
    locked_until BIGINT NOT NULL
);

CREATE TABLE audit_events (
    id TEXT PRIMARY KEY NOT NULL,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    outcome TEXT NOT NULL,
    user_id TEXT,
    session_id TEXT,
    client_id TEXT,
    ip TEXT,
    user_agent TEXT,
    -- JSON object with event-specific detail (requested/achieved acr, factor, reason ...).
    detail TEXT NOT NULL
);
CREATE INDEX audit_events_at ON audit_events(at);
