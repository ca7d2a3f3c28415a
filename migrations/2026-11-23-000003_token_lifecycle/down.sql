DROP TABLE logout_deliveries;
ALTER TABLE clients DROP COLUMN settings;
DROP TABLE client_assertions;
DROP TABLE access_tokens;
DROP TABLE refresh_tokens;
DROP TABLE grants;
