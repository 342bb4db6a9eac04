-- sys_audit: each record's content hash, computed by its producer; the writer links
-- entry_hash = SHA-256(prev_hash ‖ ":" ‖ seq ‖ ":" ‖ content_hash). Records written before this
-- migration keep NULL and the legacy rule (see system/audit/src/chain.rs) (postgres).

ALTER TABLE sys_audit_audit_logs ADD COLUMN content_hash TEXT;
