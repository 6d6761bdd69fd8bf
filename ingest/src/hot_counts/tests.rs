use super::*;

fn id(n: u64) -> ContentId {
    ContentId::new(n).expect("non-zero")
}

fn hot_counts(ttl_ms: u64) -> HotCounts {
    let config = HotCountsConfig {
        ttl_ms,
        top_k: 4,
        min_reads: 8,
        ..HotCountsConfig::default()
    };
    HotCounts::new(config, HotCountsMetrics::new().expect("metrics"))
}

/// What the service does per read: look up locally, fill misses with `count` from "Redis".
fn read(hot: &HotCounts, content: ContentId, count: i64) -> (i64, bool) {
    match hot.lookup(&[content])[0] {
        Some(local) => (local, true),
        None => {
            hot.fill(content, count);
            (count, false)
        }
    }
}

#[test]
fn a_content_read_often_becomes_hot_and_is_served_locally() {
    let hot = hot_counts(60_000);
    let viral = id(7);
    let mut served_locally = 0;
    for _ in 0..50 {
        let (count, local) = read(&hot, viral, 41);
        assert_eq!(count, 41);
        served_locally += usize::from(local);
    }
    assert!(hot.is_hot(viral));
    // The first reads (below min_reads) and the one that filled it went to "Redis".
    assert!(
        served_locally >= 40,
        "served locally {served_locally} of 50"
    );
    // A newer value in "Redis" is not seen until the entry expires: that is the TTL's price.
    assert_eq!(read(&hot, viral, 99), (41, true));
    assert_eq!(hot.metrics.hits.get(), served_locally as u64 + 1);
    assert_eq!(hot.metrics.misses.get(), 50 - served_locally as u64);
}

#[test]
fn a_cold_content_is_not_cached() {
    let hot = hot_counts(60_000);
    // Keep the top-k busy with heavier contents, then read a quiet one a few times.
    for round in 0..40 {
        for n in 1..=4 {
            read(&hot, id(n), n as i64);
        }
        if round % 10 == 0 {
            assert_eq!(read(&hot, id(100), 5), (5, false));
        }
    }
    assert!(!hot.is_hot(id(100)));
    assert_eq!(hot.peek(id(100)), None, "a cold content was cached");
    assert_eq!(
        read(&hot, id(100), 6),
        (6, false),
        "a cold read must go to Redis"
    );
    // And a few reads of a content the top-k has room for are still below min_reads.
    let quiet = hot_counts(60_000);
    for _ in 0..3 {
        assert_eq!(read(&quiet, id(9), 1), (1, false));
    }
    assert_eq!(quiet.peek(id(9)), None);
}

#[test]
fn an_action_drops_the_cached_count_and_a_fill_never_replaces_one() {
    let hot = hot_counts(60_000);
    let viral = id(3);
    for _ in 0..20 {
        read(&hot, viral, 10);
    }
    assert_eq!(hot.peek(viral), Some(10));
    hot.fill(viral, 9);
    assert_eq!(hot.peek(viral), Some(10), "a fill replaced a cached count");
    hot.invalidate(viral);
    assert_eq!(hot.peek(viral), None);
    assert_eq!(
        read(&hot, viral, 11),
        (11, false),
        "read through after the action"
    );
    assert_eq!(read(&hot, viral, 12), (11, true));
}

#[test]
fn entries_expire_after_the_ttl() {
    let hot = hot_counts(50);
    let viral = id(5);
    for _ in 0..20 {
        read(&hot, viral, 1);
    }
    assert_eq!(hot.peek(viral), Some(1));
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(hot.peek(viral), None, "served past its TTL");
    assert_eq!(read(&hot, viral, 2), (2, false));
    assert_eq!(read(&hot, viral, 3), (2, true), "refilled after expiry");
}

#[test]
fn disabled_caches_nothing() {
    let config = HotCountsConfig {
        enabled: false,
        min_reads: 1,
        ..HotCountsConfig::default()
    };
    let hot = HotCounts::new(config, HotCountsMetrics::new().expect("metrics"));
    for _ in 0..100 {
        assert_eq!(read(&hot, id(1), 4), (4, false));
    }
    hot.fill(id(1), 5);
    assert_eq!(hot.peek(id(1)), None);
}
