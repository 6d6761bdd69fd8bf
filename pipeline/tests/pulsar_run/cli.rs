//! `likes-pipeline run` as a process: it refuses to start before `init` (topic or schema
//! missing) with one line naming the fix, and a SIGTERM makes it commit, ack, and exit 0.
//! Two processes at full size are in `two_processes.rs`.

use super::*;
use std::process::{Command, Stdio};

/// `likes-pipeline run` on `deployment`, with a unique consumer name.
pub(super) fn pipeline_command(deployment: &Deployment) -> Command {
    let config = &deployment.config;
    let mut command = Command::new(env!("CARGO_BIN_EXE_likes-pipeline"));
    command
        .arg("run")
        .env("RUST_LOG", "warn")
        .env("LIKES_DATABASE_URL", &config.database_url)
        .env("LIKES_PULSAR_ADMIN_URL", &config.pulsar_admin_url)
        .env("LIKES_PULSAR_URL", &config.pulsar_url)
        .env("LIKES_REDIS_URL", &config.redis_url)
        .env("LIKES_PULSAR__TOPIC", &config.pulsar.topic)
        .env(
            "LIKES_PULSAR__PARTITIONS",
            config.pulsar.partitions.to_string(),
        )
        .env("LIKES_PULSAR__DLQ_TOPIC", &config.pulsar.dlq_topic)
        .env("LIKES_WINDOW_MAX_AGE_MS", "20")
        .env("LIKES_CONSUMER_NAME", unique_name("cli"));
    command
}

fn failed_line(command: &mut Command) -> (Option<i32>, String) {
    let output = command.output().expect("run likes-pipeline");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    eprintln!("likes-pipeline run: {:?}: {stderr}", output.status.code());
    (output.status.code(), stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_refuses_to_start_before_init_naming_the_fix() {
    let _broker = BROKER.read().await;
    let deployment = Deployment::new(2).await;
    let mut command = pipeline_command(&deployment);
    command.env("LIKES_PULSAR__TOPIC", unique_name("never-created"));
    let (code, stderr) = failed_line(&mut command);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("does not exist (run `likes-pipeline init` first)"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    let unmigrated = fresh_database(&ServicesEnv::load().get("LIKES_DATABASE_URL")).await;
    let mut command = pipeline_command(&deployment);
    command.env("LIKES_DATABASE_URL", unmigrated);
    let (code, stderr) = failed_line(&mut command);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("has no likes tables (run `likes-pipeline init` first)"),
        "{stderr}"
    );

    let mut command = pipeline_command(&deployment);
    command.env_remove("LIKES_PULSAR_URL");
    let (code, stderr) = failed_line(&mut command);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("LIKES_PULSAR_URL is not set"), "{stderr}");
    deployment.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_commits_acks_and_exits_zero() {
    let _broker = BROKER.read().await;
    let started = Instant::now();
    let deployment = Deployment::new(2).await;
    let (events, model) = events(3_000, 100, 300, 5);
    let mut producer = deployment.producer().await;
    let child = pipeline_command(&deployment)
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn likes-pipeline run");
    publish(&mut producer, &events).await;
    deployment.wait_exact(&model, Duration::from_secs(45)).await;
    assert_eq!(terminate(child).await, Some(0));
    assert_eq!(deployment.wait_acked(Duration::from_secs(10)).await, 0);
    eprintln!(
        "cli: exact, exit 0 on SIGTERM, fully acked in {:?}",
        started.elapsed()
    );
    deployment.delete().await;
}

/// SIGTERM `child` and wait for its exit code.
pub(super) async fn terminate(mut child: std::process::Child) -> Option<i32> {
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status.code();
        }
        assert!(Instant::now() < deadline, "no exit within 30 s of SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A worker process a failing test must not leave running (std's `Child` is not killed on drop,
/// and an orphan keeps consuming a deleted topic and holds the test's output open): killed on
/// drop unless handed on with [`KilledOnDrop::into_child`].
pub(super) struct KilledOnDrop(Option<std::process::Child>);

impl KilledOnDrop {
    pub(super) fn new(child: std::process::Child) -> Self {
        KilledOnDrop(Some(child))
    }

    pub(super) fn into_child(mut self) -> std::process::Child {
        self.0.take().expect("held until handed on")
    }
}

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
