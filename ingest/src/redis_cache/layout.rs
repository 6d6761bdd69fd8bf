//! The encoding of the Redis state entries (DESIGN section 7) on the Rust side; the key names
//! are `likes_sink::redis_counts::Keys`, shared with the reconciler.

use likes_shared::cache::CacheError;
use likes_shared::store::RowState;

/// The fill marker field of a user hash (see `scripts.rs`).
pub(super) const FILLED_FIELD: &str = "_f";

/// The field value of a state read from the store: settled, so current and durable are one.
pub(super) fn settled(state: Option<RowState>) -> String {
    match state {
        Some(s) => format!("{}:{}", s.version, u8::from(s.liked)),
        None => "0:0".to_owned(),
    }
}

/// The durable state of a field value (`v:l` or `v:l/dv:dl`); `None` if it is not one.
pub(super) fn durable(value: &str) -> Option<RowState> {
    let durable = value.rsplit('/').next()?;
    let (version, liked) = durable.split_once(':')?;
    let liked = match liked {
        "1" => true,
        "0" => false,
        _ => return None,
    };
    Some(RowState {
        liked,
        version: version.parse().ok()?,
    })
}

/// A version as the scripts return it (a decimal string: see `scripts.rs`).
pub(super) fn parse_version(v: &str) -> Result<u64, CacheError> {
    v.parse()
        .map_err(|_| CacheError::Unavailable(format!("Redis returned a malformed version {v:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durable_is_the_part_after_the_slash() {
        let row = |liked, version| Some(RowState { liked, version });
        assert_eq!(durable("12:1"), row(true, 12));
        assert_eq!(durable("30:0/12:1"), row(true, 12));
        assert_eq!(durable("0:0"), row(false, 0));
        assert_eq!(durable("18446744073709551615:1"), row(true, u64::MAX));
        assert_eq!(durable("1:2"), None);
        assert_eq!(durable("x"), None);
        assert_eq!(settled(row(true, 7)), "7:1");
        assert_eq!(settled(None), "0:0");
    }
}
