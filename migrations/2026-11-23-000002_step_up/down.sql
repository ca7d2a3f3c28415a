ALTER TABLE authorization_codes DROP COLUMN acr_expires_at;
ALTER TABLE clients DROP COLUMN strict_acr;
DROP TABLE recovery_codes;
DROP TABLE totp_credentials;
