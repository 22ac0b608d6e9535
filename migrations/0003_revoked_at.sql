-- When each revocation was recorded (or its expiry extended), by the primary's clock. Every node
-- keeps the unexpired revoked keys in memory and reads the rows changed since its last read every
-- few seconds (server/auth/revocations.ts), instead of asking the primary on each request.
ALTER TABLE revoked_tokens ADD COLUMN revoked_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX revoked_tokens_revoked_at ON revoked_tokens (revoked_at);
