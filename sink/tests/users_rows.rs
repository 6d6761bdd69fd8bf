//! `LikeStore::users_rows` on the real servers (TiDB and MariaDB, a database of their own
//! each): many cold users' rows in one statement, bounded, and the users the bound left out
//! named by their absence, so a caller asks again for them alone.

use likes_shared::store::{LikeChange, LikeStore};
use likes_shared::UserId;
use likes_smoke::MYSQL_SERVERS;

#[path = "support/mysql.rs"]
mod mysql;
use mysql::{change, store_on};

fn user(n: u64) -> UserId {
    UserId::new(n).expect("non-zero")
}

#[tokio::test]
async fn a_read_of_many_users_gives_each_its_newest_rows_or_leaves_it_to_be_asked_again() {
    for server in MYSQL_SERVERS {
        let store = store_on(server, 1_000).await;
        // User 1 has no rows; 2 has three (one a tombstone); 3 has seven; 4 has two.
        let mut window: Vec<LikeChange> = vec![
            change(1, 2, true, 10),
            change(2, 2, false, 11),
            change(3, 2, true, 12),
            change(9, 4, true, 30),
            change(8, 4, true, 31),
        ];
        window.extend((1..=7).map(|c| change(c, 3, c % 3 != 0, 20 + c)));
        store.apply_window(&window).await.expect("apply");

        // At most 5 rows a user, so at most 10 rows in all, read from the highest user down:
        // 4's two, 3's seven, then the bound ends the read inside user 2's rows.
        let users = [user(1), user(2), user(3), user(4)];
        let first = store.users_rows(&users, 5).await.expect("users rows");
        let answered: Vec<UserId> = first.iter().map(|(u, _)| *u).collect();
        assert_eq!(answered, vec![user(4), user(3)], "{server}");
        for (u, rows) in &first {
            assert_eq!(
                rows,
                &store.user_rows(*u, 5).await.expect("user rows"),
                "{server}: user {u:?} as a read of it alone gives it (newest first, bounded)"
            );
        }
        assert_eq!(
            first[1].1.len(),
            5,
            "{server}: user 3's seven rows, bounded"
        );

        // Asked again, the rest fit.
        let second = store
            .users_rows(&[user(1), user(2)], 5)
            .await
            .expect("users rows");
        assert_eq!(second.len(), 2, "{server}: {second:?}");
        for (u, rows) in &second {
            assert_eq!(rows, &store.user_rows(*u, 5).await.expect("user rows"));
        }
        let two = second.iter().find(|(u, _)| *u == user(2)).expect("user 2");
        assert_eq!(two.1.len(), 3, "{server}: tombstones included");
        assert!(
            second
                .iter()
                .any(|(u, rows)| *u == user(1) && rows.is_empty()),
            "{server}: a user with no rows is answered, empty"
        );

        // One heavy user alone is answered with its first `limit` rows.
        let heavy = store.users_rows(&[user(3)], 2).await.expect("users rows");
        assert_eq!(heavy.len(), 1, "{server}");
        assert_eq!(heavy[0].1.len(), 2, "{server}");
    }
}
