-- sys_identity: a session carries a refresh token beside its access token, and a user may hold
-- several bindings to one member (an active one next to a revoked or expired one) (postgres).

DROP INDEX sys_identity_user_members_user_member;

CREATE INDEX sys_identity_user_members_user ON sys_identity_user_members (user_id, member_id);

ALTER TABLE sys_identity_sessions ADD COLUMN refresh_token_hmac TEXT;

ALTER TABLE sys_identity_sessions ADD COLUMN refresh_expires_at TIMESTAMPTZ;

CREATE UNIQUE INDEX sys_identity_sessions_refresh_token_hmac ON sys_identity_sessions (refresh_token_hmac);
