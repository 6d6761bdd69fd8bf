//! The sink: turns collapsed windows into committed rows and exact counts.
//!
//! # Layout
//! - [`transitions`] — which rows a window writes and how far counts move (I2, I4); no I/O.
//! - [`dead_letter`] — `DeadLetterPublisher` and the embedded file of dead letters.
//! - [`dlq`] — what `likes-dlq` does to that file: summarize, replay into the log, purge.
//! - [`sqlite`] — the embedded store (SQLite via sqlx), one transaction per window.
//! - [`mysql`] — the distributed store (TiDB, or MariaDB/MySQL), the same rules and schema.

pub mod dead_letter;
pub mod dlq;
pub mod mysql;
mod retry_logic;
pub mod sqlite;
pub mod transitions;

pub use mysql::{MySqlConfig, MySqlStore};
pub use sqlite::{SqliteConfig, SqliteStore};
