ALTER TABLE grants DROP COLUMN access_expires_at;
