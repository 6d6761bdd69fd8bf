-- Who liked what (tombstones keep the version of an unlike: I4) and the exact counts (I1).
-- SQLite has no unsigned 64-bit integer: ids and versions are stored bit-for-bit as i64.
CREATE TABLE likes (
    content_id    INTEGER NOT NULL,
    user_id       INTEGER NOT NULL,
    liked         INTEGER NOT NULL CHECK (liked IN (0, 1)),
    version       INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (content_id, user_id)
) WITHOUT ROWID;

CREATE INDEX likes_by_user ON likes (user_id, updated_at_ms, content_id);

CREATE TABLE like_counts (
    content_id    INTEGER PRIMARY KEY,
    -- No CHECK (count >= 0): SQLite checks the candidate row of an upsert, whose count is
    -- the delta, before it resolves the conflict.
    count         INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);
