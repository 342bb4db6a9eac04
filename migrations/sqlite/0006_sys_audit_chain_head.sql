-- sys_audit: the chain head, which every appending transaction updates first (so appends are
-- serialized by the database itself), and the paths redaction changed in each record (sqlite).

CREATE TABLE sys_audit_chain_head (
    id INTEGER NOT NULL CHECK (id = 1),
    seq INTEGER NOT NULL,
    entry_hash TEXT NOT NULL,
    PRIMARY KEY (id)
);

INSERT INTO sys_audit_chain_head (id, seq, entry_hash) VALUES (1, 0, 'genesis');

ALTER TABLE sys_audit_audit_logs ADD COLUMN redactions TEXT NOT NULL DEFAULT '[]';
