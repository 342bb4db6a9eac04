-- sys_audit: cheaper decision records (postgres).
--
-- No unique index on entry_hash. Nothing looks a record up by its hash; the chain (unique seq,
-- each entry hash covering its seq and its predecessor's hash) already makes every entry hash
-- distinct, and `audit verify` recomputes them all. A SHA-256 key lands on a random page of the
-- index for every record, which made it the costliest part of a decision's durable write.

DROP INDEX sys_audit_audit_logs_entry_hash;

-- Decision traces (about 2 KB of JSONB) are compressed with lz4 instead of pglz, which took a
-- sixth of the database's time under check load, on the path of the one serial audit writer.
-- Records already written keep their compression. (SQLite stores the trace as text.)

ALTER TABLE sys_audit_audit_logs ALTER COLUMN trace SET COMPRESSION lz4;
