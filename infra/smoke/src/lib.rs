//! Test-only helpers for the smoke tests in `tests/real_services.rs`.
//!
//! The tests talk to real servers started by `infra/dev/services up`, which
//! writes their connection settings to an env file. [`ServicesEnv::load`] reads
//! that file and panics, with instructions, when it is missing: a smoke test
//! never passes without having reached its server.

mod private_redis;
mod private_tidb;

pub use private_redis::PrivateRedis;
pub use private_tidb::PrivateTidb;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Environment variable naming the env file (set by `infra/test`).
pub const ENV_FILE_VAR: &str = "LIKES_SERVICES_ENV";

/// Where the env file is: `$LIKES_SERVICES_ENV`, else
/// `${LIKES_RUN_DIR:-${LIKES_CACHE_DIR:-$HOME/.cache/likes}/run}/services.env`,
/// the same default as `infra/dev/services`.
pub fn env_file_path() -> PathBuf {
    if let Some(p) = std::env::var_os(ENV_FILE_VAR) {
        return PathBuf::from(p);
    }
    let run_dir = std::env::var_os("LIKES_RUN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("LIKES_CACHE_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                        .join(".cache/likes")
                })
                .join("run")
        });
    run_dir.join("services.env")
}

/// Parses `KEY=VALUE` lines; blank lines and `#` comments are skipped and one
/// pair of surrounding quotes is removed from values.
pub fn parse_env(text: &str) -> HashMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let l = l.strip_prefix("export ").unwrap_or(l);
            let (k, v) = l.split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
                .unwrap_or(v);
            Some((k.trim().to_string(), v.to_string()))
        })
        .collect()
}

/// The connection settings of the running services.
#[derive(Debug, Clone)]
pub struct ServicesEnv {
    path: PathBuf,
    vars: HashMap<String, String>,
}

impl ServicesEnv {
    /// Reads the env file; panics with how to start the services when it is absent.
    pub fn load() -> Self {
        let path = env_file_path();
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "services env file {} not found ({e}): run `infra/dev/services up` first \
                 (or the whole suite with `infra/test`)",
                path.display()
            )
        });
        Self {
            vars: parse_env(&text),
            path,
        }
    }

    /// The value of `key`; panics naming the service to start when it is missing.
    pub fn get(&self, key: &str) -> String {
        self.vars.get(key).cloned().unwrap_or_else(|| {
            panic!(
                "{key} is not in {}: the service is not up; run `infra/dev/services up {}`",
                self.path.display(),
                service_for(key)
            )
        })
    }

    /// The value of `key` when the service is up.
    pub fn try_get(&self, key: &str) -> Option<String> {
        self.vars.get(key).cloned()
    }

    pub fn path(&self) -> &PathBuf {
        &self.path
    }
}

fn service_for(key: &str) -> &'static str {
    match key {
        k if k.contains("REDIS") => "redis",
        k if k.contains("PULSAR") => "pulsar",
        k if k.contains("MARIADB") => "mariadb",
        _ => "tidb",
    }
}

/// A name unique to this process and call, usable as a table, key or topic name.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000_000,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The MySQL-protocol servers the store tests run on: TiDB (`LIKES_DATABASE_URL`) and MariaDB
/// (`LIKES_MARIADB_URL`). Both must be up; a missing one fails the test naming it.
pub const MYSQL_SERVERS: [&str; 2] = ["LIKES_DATABASE_URL", "LIKES_MARIADB_URL"];

/// Creates a database of its own for one test on the server of `server_url` (a
/// `mysql://…/db` URL) and returns the URL of the new database, so tests running at the same
/// time never see each other's rows. Panics, naming the server, when it cannot.
pub async fn fresh_database(server_url: &str) -> String {
    use sqlx::Connection as _;
    let name = unique_name("likes_t");
    let mut conn = sqlx::MySqlConnection::connect(server_url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {server_url}: {e}"));
    sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE on {server_url}: {e}"));
    let _ = conn.close().await;
    let base = server_url
        .rsplit_once('/')
        .map_or(server_url, |(base, _db)| base);
    format!("{base}/{name}")
}

/// `infra/dev/services <command> <service>`: an outage of a shared service (`stop`), its end
/// (`start`, same ports and data). Tests that call it must keep every other test of their binary
/// off that service meanwhile.
pub fn services(command: &str, service: &str) {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../dev/services");
    let status = std::process::Command::new(script)
        .args([command, service])
        .status()
        .expect("run infra/dev/services");
    assert!(
        status.success(),
        "infra/dev/services {command} {service} failed"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_env_lines() {
        let vars = parse_env("# comment\n\nA=1\nexport B=\"two\"\nC='x=y'\n");
        assert_eq!(vars.get("A").map(String::as_str), Some("1"));
        assert_eq!(vars.get("B").map(String::as_str), Some("two"));
        assert_eq!(vars.get("C").map(String::as_str), Some("x=y"));
        assert_eq!(vars.len(), 3);
    }

    #[test]
    fn unique_names_differ() {
        assert_ne!(unique_name("t"), unique_name("t"));
    }
}
