-- Who liked what (tombstones keep the version of an unlike: I4) and the exact counts (I1), for
-- TiDB and any MySQL-protocol server. `/*T![clustered_index] CLUSTERED */` is TiDB's own comment
-- syntax: TiDB stores the rows in primary-key order (a point read of (content, user) is one key
-- lookup, no row id indirection); MySQL and MariaDB ignore the comment and cluster by the primary
-- key anyway.
--
-- updated_at is DATETIME(3) in UTC (every connection runs with time_zone '+00:00'), not
-- TIMESTAMP(3): TIMESTAMP ends in January 2038, and an event time the column cannot take would
-- turn every like after that date into a dead letter.
CREATE TABLE IF NOT EXISTS likes (
    content_id BIGINT UNSIGNED NOT NULL,
    user_id    BIGINT UNSIGNED NOT NULL,
    liked      TINYINT         NOT NULL,
    version    BIGINT UNSIGNED NOT NULL,
    updated_at DATETIME(3)     NOT NULL,
    PRIMARY KEY (content_id, user_id) /*T![clustered_index] CLUSTERED */,
    -- `me/likes` and a cold user's cache fill: one user's rows, newest first.
    KEY by_user (user_id, updated_at, content_id)
);

CREATE TABLE IF NOT EXISTS like_counts (
    content_id BIGINT UNSIGNED NOT NULL,
    count      BIGINT          NOT NULL,
    updated_at DATETIME(3)     NOT NULL,
    PRIMARY KEY (content_id) /*T![clustered_index] CLUSTERED */
);
