-- How far the changes of a content's newest count fill (the state cache's fill epoch) moved
-- its count: the cache refills a lost count of a content that keeps changing from
-- `count - epoch_delta` plus its own sum of the epoch's moves (likes_sink::epoch_deltas).
ALTER TABLE like_counts ADD COLUMN fill_epoch BIGINT UNSIGNED NOT NULL DEFAULT 0;
ALTER TABLE like_counts ADD COLUMN epoch_delta BIGINT NOT NULL DEFAULT 0;
