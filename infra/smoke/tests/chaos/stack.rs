//! The stack under test, driven through `infra/dev/services` the way an operator would: `up
//! stack`, `kill`/`stop`/`start` of one member or service, `down stack` when the test is done.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `likes-ingest` and `likes-pipeline` as `cargo test --workspace` built them, beside this test.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps")
        .to_path_buf();
    for bin in ["likes-ingest", "likes-pipeline"] {
        assert!(
            dir.join(bin).is_file(),
            "{bin} is not in {} (build the workspace: cargo test --workspace --no-run)",
            dir.display()
        );
    }
    dir
}

/// Runs `infra/dev/services ARGS`, panicking with its output if it fails.
pub fn services(args: &[&str]) {
    let out = Command::new(repo_root().join("infra/dev/services"))
        .args(args)
        .env("LIKES_STACK_BIN_DIR", bin_dir())
        .output()
        .expect("run infra/dev/services");
    assert!(
        out.status.success(),
        "infra/dev/services {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The stack, up for the test's length; `down stack` on drop (the services stay).
pub struct Stack {
    pub settings: HashMap<String, String>,
}

impl Stack {
    pub fn up() -> Stack {
        services(&["up", "stack"]);
        let path = likes_smoke::env_file_path().with_file_name("stack.env");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{} after `up stack`: {e}", path.display()));
        let settings = likes_smoke::parse_env(&text);
        Stack { settings }
    }

    pub fn get(&self, key: &str) -> &str {
        self.settings
            .get(key)
            .unwrap_or_else(|| panic!("{key} missing from stack.env"))
    }

    /// Peak RSS (VmHWM) in MiB of each running member.
    pub fn peak_rss_mib(&self) -> Vec<(String, u64)> {
        let run_dir = likes_smoke::env_file_path()
            .parent()
            .expect("run dir")
            .to_path_buf();
        ["ingest1", "ingest2", "worker1", "worker2", "nginx"]
            .iter()
            .filter_map(|member| {
                let pid = std::fs::read_to_string(run_dir.join(member).join("pid")).ok()?;
                let status =
                    std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).ok()?;
                let kib: u64 = status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))?
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .ok()?;
                Some((member.to_string(), kib / 1024))
            })
            .collect()
    }
}

impl Stack {
    /// On a failed run, before `down stack` deletes them: every member's log and Pulsar's are
    /// copied beside the test executable (`chaos-logs/<time>/`), and the warnings and errors
    /// of the members are printed, so a failure in CI says what the stack saw.
    fn keep_logs(&self) {
        let run_dir = match likes_smoke::env_file_path().parent() {
            Some(dir) => dir.to_path_buf(),
            None => return,
        };
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let Some(kept) = exe
            .parent()
            .map(|deps| deps.join(format!("chaos-logs/{stamp}")))
        else {
            return;
        };
        let _ = std::fs::create_dir_all(&kept);
        eprintln!("chaos: the stack's logs are kept in {}", kept.display());
        for member in [
            "ingest1", "ingest2", "worker1", "worker2", "nginx", "pulsar",
        ] {
            let log = run_dir.join(member).join(format!("{member}.log"));
            let Ok(text) = std::fs::read_to_string(&log) else {
                continue;
            };
            let _ = std::fs::write(kept.join(format!("{member}.log")), &text);
            if member == "pulsar" || member == "nginx" {
                continue;
            }
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                .collect();
            eprintln!(
                "--- {member}: {} warnings and errors, the last 40:",
                lines.len()
            );
            for line in lines.iter().skip(lines.len().saturating_sub(40)) {
                eprintln!("{}", line.chars().take(300).collect::<String>());
            }
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.keep_logs();
        }
        let _ = Command::new(repo_root().join("infra/dev/services"))
            .args(["down", "stack"])
            .status();
    }
}

/// One fault of the run: what is done to which member or service, and for how long.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    Kill(&'static str, Duration),
    Stop(&'static str, Duration),
}

impl Fault {
    pub fn label(&self) -> String {
        match self {
            Fault::Kill(name, down) => format!("{name} kill -9, back after {}s", down.as_secs()),
            Fault::Stop(name, down) => format!("{name} stopped {}s", down.as_secs()),
        }
    }

    /// Does it and undoes it (blocking: run it on a blocking thread).
    pub fn inflict(&self) {
        let (verb, name, down) = match *self {
            Fault::Kill(name, down) => ("kill", name, down),
            Fault::Stop(name, down) => ("stop", name, down),
        };
        services(&[verb, name]);
        std::thread::sleep(down);
        services(&["start", name]);
    }
}
