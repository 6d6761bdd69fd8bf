//! Key names and entry encoding of the Redis layout (DESIGN section 7), on the Rust side.
//!
//! Every key carries a hash tag (`{u:..}`, `{c:..}`) so one user's hash, and one content's count
//! with its last-change time, each sit in one Redis Cluster slot: every script touches one slot.

use likes_shared::store::RowState;
use likes_shared::{ContentId, UserId};

/// The fill marker field of a user hash (see `scripts.rs`).
pub(super) const FILLED_FIELD: &str = "_f";

/// The key names under one namespace (`likes` by default).
pub(super) struct Keys {
    namespace: String,
}

impl Keys {
    pub fn new(namespace: &str) -> Self {
        Keys {
            namespace: namespace.to_owned(),
        }
    }

    pub fn user(&self, user: UserId) -> String {
        format!("{}:{{u:{}}}", self.namespace, user.get())
    }

    pub fn count(&self, content: ContentId) -> String {
        format!("{}:{{c:{}}}:n", self.namespace, content.get())
    }

    /// When the count last moved (wall-clock ms): a fill from the store read before that may
    /// lack it.
    pub fn changed(&self, content: ContentId) -> String {
        format!("{}:{{c:{}}}:t", self.namespace, content.get())
    }
}

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

    #[test]
    fn keys_carry_hash_tags() {
        let (u, c) = (UserId::new(7).expect("id"), ContentId::new(9).expect("id"));
        let keys = Keys::new("likes");
        assert_eq!(keys.user(u), "likes:{u:7}");
        assert_eq!(keys.count(c), "likes:{c:9}:n");
        assert_eq!(keys.changed(c), "likes:{c:9}:t");
    }
}
