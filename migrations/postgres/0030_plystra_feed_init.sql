-- plystra_feed: the change feed every plystrad follows (postgres). Each committed write that
-- changes a fact authorization decides on updates the one row of plystra_feed_head (taking its
-- row lock until the transaction ends, so revisions are handed out in commit order and without
-- gaps across every process) and appends its facts under that revision. plystra_feed_followers
-- is where each process says how far it has read, so pruning never removes what one still needs.

CREATE TABLE plystra_feed_head (
    id BIGINT NOT NULL CHECK (id = 1),
    revision BIGINT NOT NULL,
    PRIMARY KEY (id)
);

INSERT INTO plystra_feed_head (id, revision) VALUES (1, 0);

CREATE TABLE plystra_feed_changes (
    revision BIGINT NOT NULL,
    facts TEXT NOT NULL,
    committed_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (revision)
);

CREATE INDEX plystra_feed_changes_committed ON plystra_feed_changes (committed_at);

CREATE TABLE plystra_feed_followers (
    id TEXT NOT NULL,
    revision BIGINT NOT NULL,
    host TEXT NOT NULL,
    pid BIGINT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    seen_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (id)
);
