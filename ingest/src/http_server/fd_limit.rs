//! Fitting the connection bound to the open-file limit: a bound above it would let idle
//! connections take every descriptor, and then `accept` fails and the process cannot open its
//! own files or backend connections (issue 13 saw normal requests unanswered for 17 s).

/// Descriptors kept for the process itself (log, database, Redis, Pulsar, listeners): a quarter
/// of the limit, at most this many.
const MAX_RESERVED: u64 = 1_024;

/// `configured`, lowered to fit the soft open-file limit, with a warning when it is lowered.
pub fn fit_connections(configured: usize) -> usize {
    let Some(limit) = soft_open_file_limit() else {
        return configured;
    };
    let usable = limit.saturating_sub((limit / 4).min(MAX_RESERVED)).max(1);
    let usable = usize::try_from(usable).unwrap_or(usize::MAX);
    if configured > usable {
        tracing::warn!(
            configured,
            open_file_limit = limit,
            bound = usable,
            "http.max_connections lowered to fit the open-file limit (raise `ulimit -n` to keep it)"
        );
        usable
    } else {
        configured
    }
}

#[cfg(unix)]
fn soft_open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` into the struct it is given, which lives on this
    // stack frame for the whole call.
    let failed = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0;
    if failed || limit.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    // `rlim_t` is u64 on Linux but not on every Unix.
    #[allow(clippy::unnecessary_cast)]
    Some(limit.rlim_cur as u64)
}

#[cfg(not(unix))]
fn soft_open_file_limit() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_below_the_limit_stays_and_one_above_it_is_lowered() {
        assert_eq!(fit_connections(16), 16);
        if let Some(limit) = soft_open_file_limit() {
            let fitted = fit_connections(usize::MAX);
            assert!((fitted as u64) < limit, "{fitted} of {limit}");
        }
    }
}
