-- sys_identity: failed logins, counted in the database so the login lockout holds across every
-- plystrad on it. email_key is the SHA-256 (hex) of the trimmed, lowercased email, never the
-- email; rows older than the lockout window are deleted as new failures arrive (sqlite).

CREATE TABLE sys_identity_login_failures (
    id TEXT NOT NULL,
    email_key TEXT NOT NULL,
    ip_address TEXT NOT NULL,
    failed_at TEXT NOT NULL,
    PRIMARY KEY (id)
);

CREATE INDEX sys_identity_login_failures_pair ON sys_identity_login_failures (email_key, ip_address, failed_at);
