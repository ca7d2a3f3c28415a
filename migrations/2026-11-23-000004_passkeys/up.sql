-- Passkeys (WebAuthn credentials) and the server-side state of pending ceremonies.

CREATE TABLE passkeys (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- base64url credential id: one credential belongs to one account.
    cred_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    -- The credential (public key, counter, backup flags), as JSON.
    credential TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX passkeys_user ON passkeys(user_id);

-- A challenge lives for one ceremony, in one interaction, and is taken once.
CREATE TABLE webauthn_challenges (
    id TEXT PRIMARY KEY NOT NULL,
    interaction_id TEXT NOT NULL,
    -- 'register', 'authenticate' or 'discover'.
    kind TEXT NOT NULL,
    user_id TEXT,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
