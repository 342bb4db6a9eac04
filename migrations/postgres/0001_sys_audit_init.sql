-- sys_audit: initial tables (postgres).

CREATE TABLE sys_audit_audit_logs (
    id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    event_type TEXT NOT NULL,
    request_id TEXT,
    space_id TEXT,
    actor_user_id TEXT,
    actor_member_id TEXT,
    actor_user_member_id TEXT,
    action TEXT NOT NULL,
    resource_type TEXT,
    resource_id TEXT,
    decision TEXT NOT NULL,
    deny_code TEXT,
    ip_address TEXT,
    user_agent TEXT,
    trace JSONB NOT NULL,
    prev_hash TEXT,
    entry_hash TEXT NOT NULL,
    redaction_version BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (id)
);

CREATE UNIQUE INDEX sys_audit_audit_logs_seq ON sys_audit_audit_logs (seq);

CREATE UNIQUE INDEX sys_audit_audit_logs_entry_hash ON sys_audit_audit_logs (entry_hash);

CREATE INDEX sys_audit_audit_logs_space_created ON sys_audit_audit_logs (space_id, created_at);

CREATE INDEX sys_audit_audit_logs_request ON sys_audit_audit_logs (request_id);

CREATE INDEX sys_audit_audit_logs_actor_user ON sys_audit_audit_logs (actor_user_id, created_at);

CREATE INDEX sys_audit_audit_logs_resource ON sys_audit_audit_logs (resource_type, resource_id);

CREATE FUNCTION sys_audit_reject_mutation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'P0001';
END;
$$;

CREATE TRIGGER sys_audit_audit_logs_no_update BEFORE UPDATE ON sys_audit_audit_logs
    FOR EACH ROW EXECUTE FUNCTION sys_audit_reject_mutation();

CREATE TRIGGER sys_audit_audit_logs_no_delete BEFORE DELETE ON sys_audit_audit_logs
    FOR EACH ROW EXECUTE FUNCTION sys_audit_reject_mutation();

CREATE TRIGGER sys_audit_audit_logs_no_truncate BEFORE TRUNCATE ON sys_audit_audit_logs
    FOR EACH STATEMENT EXECUTE FUNCTION sys_audit_reject_mutation();
