//! A `redis-server` of a test's own, for tests that kill, freeze or fill it (the shared one of
//! `infra/dev/services` is never touched that way).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` of this test's own on a free loopback port; killed on drop (panics included).
pub struct PrivateRedis {
    port: u16,
    args: Vec<String>,
    child: Option<Child>,
}

impl PrivateRedis {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// With extra `redis-server` arguments (`--maxmemory 2mb`), kept across restarts.
    pub fn start_with(args: &[&str]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut redis = PrivateRedis {
            port,
            args: args.iter().map(|a| a.to_string()).collect(),
            child: None,
        };
        redis.spawn();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts (again) on the same port, empty, and waits until it answers.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--maxmemory-policy", "noeviction"])
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (is it installed?)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers_ping() {
            assert!(Instant::now() < deadline, "private redis did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn answers_ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
        let mut buf = [0u8; 7];
        conn.write_all(b"PING\r\n").is_ok()
            && conn.read_exact(&mut buf).is_ok()
            && &buf == b"+PONG\r\n"
    }

    /// A snapshot now (`SAVE`), into the `--dir` it was started with: a restart loads it, which
    /// is a Redis back with data older than its last answers.
    pub fn save(&self) {
        use std::io::{Read, Write};
        let mut conn =
            std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("connect to save");
        let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
        let mut buf = [0u8; 5];
        conn.write_all(b"SAVE\r\n").expect("send SAVE");
        conn.read_exact(&mut buf).expect("SAVE answers");
        assert_eq!(&buf, b"+OK\r\n", "SAVE");
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let status = Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} {pid}");
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        if self.child.is_some() {
            // A frozen process does not die of SIGKILL any later, but SIGCONT first is harmless.
            self.signal("-CONT");
        }
        self.kill();
    }
}
