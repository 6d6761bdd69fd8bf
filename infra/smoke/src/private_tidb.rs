//! A TiDB of one test's own, for the tests that stop the database (an outage) without taking
//! the shared server away from every other test: the cached `tidb-server` binary
//! (`LIKES_TIDB_BIN` in the env file) on its embedded unistore store in a temp dir, on free
//! loopback ports. Stopping it is a real SIGTERM; restarting reuses the same data and port, so
//! clients reconnect to the same URL, as after a real restart.

use crate::ServicesEnv;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct PrivateTidb {
    binary: PathBuf,
    dir: PathBuf,
    port: u16,
    status_port: u16,
    child: Option<Child>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl PrivateTidb {
    /// Starts it with its data under `dir` and waits until it answers SQL (panics after 120 s).
    pub async fn start(dir: &Path) -> PrivateTidb {
        let binary = PathBuf::from(ServicesEnv::load().get("LIKES_TIDB_BIN"));
        std::fs::create_dir_all(dir.join("tmp")).expect("tidb dir");
        let config = format!(
            "temp-dir = \"{tmp}\"\ntmp-storage-path = \"{tmp}/tmp-storage\"\n\
             [log]\nlevel = \"warn\"\nslow-query-file = \"{dir}/tidb-slow.log\"\n",
            tmp = dir.join("tmp").display(),
            dir = dir.display()
        );
        std::fs::write(dir.join("tidb.toml"), config).expect("tidb config");
        let mut tidb = PrivateTidb {
            binary,
            dir: dir.to_path_buf(),
            port: free_port(),
            status_port: free_port(),
            child: None,
        };
        tidb.restart().await;
        tidb
    }

    /// `mysql://root@127.0.0.1:<port>/`: the server, no database.
    pub fn server_url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}/", self.port)
    }

    /// Stops the server with SIGTERM, as an operator or a crash-only supervisor would, and waits
    /// for it to exit (SIGKILL after 30 s).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill").arg(child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts the server (again) on the same data and ports and waits until it answers.
    pub async fn restart(&mut self) {
        self.stop();
        let log = std::fs::File::create(self.dir.join("stdout.log")).expect("tidb stdout log");
        let child = Command::new(&self.binary)
            .arg("-config")
            .arg(self.dir.join("tidb.toml"))
            .args(["-store", "unistore", "-path"])
            .arg(self.dir.join("data"))
            .args(["-host", "127.0.0.1", "-status-host", "127.0.0.1"])
            .args([
                "-P",
                &self.port.to_string(),
                "-status",
                &self.status_port.to_string(),
            ])
            .arg("-log-file")
            .arg(self.dir.join("tidb-server.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("log handle")))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.binary.display()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            use sqlx::Connection as _;
            match sqlx::MySqlConnection::connect(&self.server_url()).await {
                Ok(conn) => {
                    let _ = conn.close().await;
                    return;
                }
                Err(e) if Instant::now() > deadline => {
                    panic!("private TiDB on port {} did not answer: {e}", self.port)
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
}

impl Drop for PrivateTidb {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
