-- sys_audit: the chain head, which every appending transaction updates first (so appends are
-- serialized by the database itself, across replicas), and the paths redaction changed in each
-- record (postgres).

CREATE TABLE sys_audit_chain_head (
    id BIGINT NOT NULL CHECK (id = 1),
    seq BIGINT NOT NULL,
    entry_hash TEXT NOT NULL,
    PRIMARY KEY (id)
);

INSERT INTO sys_audit_chain_head (id, seq, entry_hash) VALUES (1, 0, 'genesis');

ALTER TABLE sys_audit_audit_logs ADD COLUMN redactions JSONB NOT NULL DEFAULT '[]'::jsonb;
