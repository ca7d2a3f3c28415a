-- Step-up: TOTP credentials, recovery codes, per-client acr policy, and the lapse of a code's acr.

CREATE TABLE totp_credentials (
    user_id TEXT PRIMARY KEY NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- The secret, encrypted with the server key (AES-256-GCM, base64url).
    secret_enc TEXT NOT NULL,
    -- FALSE while enrolment waits for the first valid code.
    confirmed BOOLEAN NOT NULL,
    -- The last accepted time step: a code for it or an earlier step is a replay.
    last_step BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);

CREATE TABLE recovery_codes (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- SHA-256 (hex) of user id ':' normalised code.
    code_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX recovery_codes_user ON recovery_codes(user_id);

ALTER TABLE clients ADD COLUMN strict_acr BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE authorization_codes ADD COLUMN acr_expires_at BIGINT;
