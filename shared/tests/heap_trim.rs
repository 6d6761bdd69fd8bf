//! `trim_now` gives back what a burst freed. Its own test binary: the resident size of a
//! process running other tests in parallel would say nothing.

use likes_shared::heap_trim::trim_now;

fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line")
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn a_burst_freed_below_the_top_of_the_heap_is_given_back() {
    const CHUNKS: usize = 64 * 1024; // 64 MiB in 1 KiB chunks, as a burst of small buffers
    let before = resident_kib();
    let mut burst: Vec<Box<[u8; 1024]>> = (0..CHUNKS).map(|i| Box::new([i as u8; 1024])).collect();
    // The last chunk stays, as live memory does: it pins the top of the heap, so free() alone
    // cannot shrink it.
    let pinned = burst.pop().expect("a chunk");
    drop(burst);
    let freed = resident_kib();
    assert!(
        freed > before + 48 * 1024,
        "the freed burst is still resident before the trim: {before} KiB -> {freed} KiB"
    );
    let took = trim_now();
    eprintln!("malloc_trim over a 64 MiB burst freed: {took:?}");
    let trimmed = resident_kib();
    assert!(
        trimmed + 48 * 1024 < freed,
        "the trim gave back less than 48 of the burst's 64 MiB: {freed} KiB -> {trimmed} KiB"
    );
    assert_eq!(pinned[0], (CHUNKS - 1) as u8);
}
