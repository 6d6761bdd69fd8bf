//! Configuration loading shared by every binary: typed defaults, then an optional TOML file, then
//! `LIKES_*` environment variables (`LIKES_HTTP_ADDR` sets `http_addr`; `__` separates nested
//! keys, so `LIKES_RATE__PER_USER` sets `rate.per_user`). The file is the one named by
//! `--config <path>` on the command line or `LIKES_CONFIG`.

use figment::providers::{Env, Format, Serialized, Toml};
use figment::{Figment, Provider};
use serde::{de::DeserializeOwned, Serialize};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(#[from] Box<figment::Error>);

/// Loads `T` from its defaults, the config file (if any) and `LIKES_*` variables.
pub fn load<T: Serialize + DeserializeOwned + Default>() -> Result<T, ConfigError> {
    let file = config_path_from(std::env::args())
        .or_else(|| std::env::var_os("LIKES_CONFIG").map(PathBuf::from));
    load_from(file, Env::prefixed("LIKES_").split("__"))
}

/// Like [`load`], for a binary of the distributed deployment, where one `LIKES_*` environment
/// (the env file of DESIGN section 11) configures every binary: a variable whose top-level key
/// `T` does not have (`LIKES_TIDB_BIN` for ingest) is someone else's and is ignored. Within a key
/// `T` has (`LIKES_AUTH__JTW_SECRET`), and in the file, unknown keys are still errors.
pub fn load_in_shared_env<T: Serialize + DeserializeOwned + Default>() -> Result<T, ConfigError> {
    let file = config_path_from(std::env::args())
        .or_else(|| std::env::var_os("LIKES_CONFIG").map(PathBuf::from));
    load_from(
        file,
        own_keys_only::<T>(Env::prefixed("LIKES_").split("__"))?,
    )
}

/// `env` without the variables whose top-level key `T`'s defaults do not have.
fn own_keys_only<T: Serialize + Default>(env: Env) -> Result<Env, ConfigError> {
    let defaults = Figment::from(Serialized::defaults(T::default()));
    let known: Vec<String> = defaults
        .data()
        .map_err(|e| ConfigError(Box::new(e)))?
        .into_values()
        .flat_map(|dict| dict.into_keys())
        .collect();
    Ok(env.filter(move |key| {
        let top = key.as_str().split('.').next().unwrap_or_default();
        known.iter().any(|k| k.eq_ignore_ascii_case(top))
    }))
}

/// The URL without its password, for messages.
pub fn redacted_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

fn load_from<T: Serialize + DeserializeOwned + Default>(
    file: Option<PathBuf>,
    env: Env,
) -> Result<T, ConfigError> {
    let mut figment = Figment::from(Serialized::defaults(T::default()));
    if let Some(path) = file {
        // `Toml::file` silently skips a missing file; a path the operator named must exist.
        if !path.exists() {
            return Err(ConfigError(Box::new(figment::Error::from(format!(
                "config file {} does not exist",
                path.display()
            )))));
        }
        figment = figment.merge(Toml::file(path));
    }
    figment
        .merge(env.ignore(&["config"]))
        .extract()
        .map_err(|e| ConfigError(Box::new(e)))
}

/// The command-line arguments without `--config FILE` / `--config=FILE`, which [`load`] reads
/// itself: what a binary's own argument parsing should see.
pub fn without_config_flag(args: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "--config" {
            args.next();
        } else if !arg.starts_with("--config=") {
            out.push(arg);
        }
    }
    out
}

fn config_path_from(args: impl Iterator<Item = String>) -> Option<PathBuf> {
    let mut args = args.skip(1);
    while let Some(arg) = args.next() {
        if arg == "--config" {
            return args.next().map(PathBuf::from);
        }
        if let Some(path) = arg.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Sample {
        http_addr: String,
        workers: u32,
        nested: Nested,
    }

    #[derive(Debug, Serialize, Deserialize, PartialEq, Default)]
    #[serde(default, deny_unknown_fields)]
    struct Nested {
        per_user: u32,
    }

    impl Default for Sample {
        fn default() -> Self {
            Sample {
                http_addr: "127.0.0.1:8080".into(),
                workers: 1,
                nested: Nested::default(),
            }
        }
    }

    #[test]
    fn defaults_then_file_then_env() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("likes.toml", "workers = 4\nhttp_addr = \"0.0.0.0:1\"")?;
            jail.set_env("LIKES_TEST_HTTP_ADDR", "127.0.0.1:9");
            jail.set_env("LIKES_TEST_NESTED__PER_USER", "7");
            let got: Sample = load_from(
                Some("likes.toml".into()),
                Env::prefixed("LIKES_TEST_").split("__"),
            )
            .map_err(|e| e.to_string())?;
            assert_eq!(got.workers, 4);
            assert_eq!(got.http_addr, "127.0.0.1:9");
            assert_eq!(got.nested.per_user, 7);
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_and_missing_files_are_errors() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "wrokers = 4")?;
            let typo = load_from::<Sample>(Some("bad.toml".into()), Env::prefixed("LIKES_NONE_"));
            assert!(typo.is_err());
            let missing =
                load_from::<Sample>(Some("nope.toml".into()), Env::prefixed("LIKES_NONE_"));
            assert!(missing
                .err()
                .is_some_and(|e| e.to_string().contains("does not exist")));
            Ok(())
        });
    }

    #[test]
    fn a_shared_environment_configures_only_the_keys_a_binary_has() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("LIKES_SHARED_HTTP_ADDR", "127.0.0.1:9");
            jail.set_env("LIKES_SHARED_TIDB_BIN", "/somewhere/else");
            let env = || Env::prefixed("LIKES_SHARED_").split("__");
            assert!(
                load_from::<Sample>(None, env()).is_err(),
                "strict without the filter"
            );
            let got: Sample = load_from(
                None,
                own_keys_only::<Sample>(env()).map_err(|e| e.to_string())?,
            )
            .map_err(|e| e.to_string())?;
            assert_eq!(got.http_addr, "127.0.0.1:9");
            jail.set_env("LIKES_SHARED_NESTED__PRE_USER", "7");
            let typo = load_from::<Sample>(
                None,
                own_keys_only::<Sample>(env()).map_err(|e| e.to_string())?,
            );
            assert!(typo.is_err(), "a typo inside a known key is still an error");
            Ok(())
        });
    }

    #[test]
    fn config_flag_is_found() {
        let args = ["bin", "--x", "--config", "a.toml"].map(String::from);
        assert_eq!(
            config_path_from(args.into_iter()),
            Some(PathBuf::from("a.toml"))
        );
        let args = ["bin", "--config=b.toml"].map(String::from);
        assert_eq!(
            config_path_from(args.into_iter()),
            Some(PathBuf::from("b.toml"))
        );
    }
}
