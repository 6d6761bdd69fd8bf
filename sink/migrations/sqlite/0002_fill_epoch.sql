-- How far the changes of a content's newest count fill moved its count (see the MySQL
-- migration of the same name). The epoch is a wall-clock millisecond, far below 2^63.
ALTER TABLE like_counts ADD COLUMN fill_epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE like_counts ADD COLUMN epoch_delta INTEGER NOT NULL DEFAULT 0;
