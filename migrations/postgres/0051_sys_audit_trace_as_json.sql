-- sys_audit: decision traces stored as JSON text, not JSONB (postgres).
--
-- A trace (about 1.5–2 KB) was parsed into JSONB on every insert, on the path of the one serial
-- audit writer, and nothing searches inside it by SQL: the audit API filters on columns and
-- returns the trace whole. `json` checks the syntax and keeps the text as written, as SQLite
-- does. In a 512-row batch insert with this table's indexes and lz4 compression, that took
-- 20–22 ms against 23–26 ms (`BENCHMARKS.md`, issue 16).
--
-- The content hash does not change: its canonical form already ignores what JSONB rewrote
-- (member order, whitespace, number notation), and records converted here keep the text JSONB
-- gave back.
--
-- Changing the type resets the column's compression to the server's default, so lz4 (migration
-- 0041) is set again in the same statement.
--
-- This rewrites the table and its indexes under an exclusive lock. Every process's audit writes
-- wait for it, and so do the decisions that need a durable record: on a large audit log, run it
-- in a maintenance window.

ALTER TABLE sys_audit_audit_logs
    ALTER COLUMN trace TYPE JSON USING trace::json,
    ALTER COLUMN trace SET COMPRESSION lz4;
