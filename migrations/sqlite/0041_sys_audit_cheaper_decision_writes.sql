-- sys_audit: cheaper decision records (sqlite).
--
-- No unique index on entry_hash. Nothing looks a record up by its hash; the chain (unique seq,
-- each entry hash covering its seq and its predecessor's hash) already makes every entry hash
-- distinct, and `audit verify` recomputes them all. A SHA-256 key lands on a random page of the
-- index for every record, which made it the costliest part of a decision's durable write.

DROP INDEX sys_audit_audit_logs_entry_hash;
