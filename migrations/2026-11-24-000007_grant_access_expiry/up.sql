-- A grant's access tokens name their grant (the `grant_id` claim) and get a row only when one is
-- revoked, as a client's own tokens always did. Their rows were what kept a grant from the purge
-- while its access tokens lived; now the grant keeps the expiry of its newest access token.
ALTER TABLE grants ADD COLUMN access_expires_at BIGINT;
