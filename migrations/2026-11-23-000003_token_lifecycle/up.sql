-- Token lifecycle: grants (token families), refresh tokens, issued access tokens, client
-- assertions seen (replay protection), client settings for the new grants, and back-channel
-- logout deliveries.

-- One authorization and every token descended from it; revoking the grant kills them all.
CREATE TABLE grants (
    id TEXT PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    -- NULL for client_credentials.
    user_id TEXT REFERENCES users(id) ON DELETE CASCADE,
    session_id TEXT,
    -- The authorization code it was redeemed from (SHA-256 hex): a replay of it revokes the grant.
    code_hash TEXT,
    scope TEXT NOT NULL,
    acr TEXT,
    amr TEXT NOT NULL,
    auth_time BIGINT,
    acr_expires_at BIGINT,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    revoked_reason TEXT
);
CREATE INDEX grants_code ON grants(code_hash);
CREATE INDEX grants_session ON grants(session_id);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    grant_id TEXT NOT NULL REFERENCES grants(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    -- Set when the token was exchanged for its successor (rotation); a later use is a reuse.
    used_at BIGINT
);
CREATE INDEX refresh_tokens_grant ON refresh_tokens(grant_id);

-- Access tokens are JWTs; their ids are kept so they can be revoked and introspected.
CREATE TABLE access_tokens (
    jti TEXT PRIMARY KEY NOT NULL,
    grant_id TEXT REFERENCES grants(id) ON DELETE CASCADE,
    client_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX access_tokens_grant ON access_tokens(grant_id);

CREATE TABLE client_assertions (
    client_id TEXT NOT NULL,
    jti TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti)
);

-- Protocol settings that grow over time (auth method, keys, grant types, logout URIs, audience),
-- as one JSON object: new settings need no migration, and missing keys take their defaults.
ALTER TABLE clients ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';

CREATE TABLE logout_deliveries (
    id TEXT PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    uri TEXT NOT NULL,
    logout_token TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    delivered_at BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX logout_deliveries_due ON logout_deliveries(next_attempt_at);
