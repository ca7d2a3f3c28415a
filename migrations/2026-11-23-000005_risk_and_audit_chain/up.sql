-- Known devices (for the new-device signal) and a tamper-evident audit chain.

CREATE TABLE devices (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- SHA-256 (hex) of the long-lived device cookie.
    token_hash TEXT NOT NULL UNIQUE,
    user_agent TEXT,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    forgotten_at BIGINT
);
CREATE INDEX devices_user ON devices(user_id);

-- Each audit row stores its position, the previous row's hash and its own hash over its canonical
-- content and that previous hash: editing, deleting or reordering rows breaks the chain.
ALTER TABLE audit_events ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE audit_events ADD COLUMN prev_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_events ADD COLUMN hash TEXT NOT NULL DEFAULT '';

-- The chain's head; updating it serializes writers (a row lock on PostgreSQL, the write lock on SQLite).
CREATE TABLE audit_head (
    id INTEGER PRIMARY KEY NOT NULL,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '');
