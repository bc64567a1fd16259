//! Idle connections cannot starve health checks (issue 11 item 8).
//!
//! The real binary runs with a small file-descriptor limit (96, inherited
//! from this test process, which then raises its own back) and a 1 s
//! header-read timeout. 200 connections that never send a request fill its
//! descriptors; without the timeout they are held forever and the health
//! check waits in the accept queue behind them. Loopback only, bounded.
//! One test per binary: it changes this process's own limit for a moment.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
use service_kit::assets;

const BIN: &str = env!("CARGO_BIN_EXE_face-detection-service");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET /api/health on a new connection, waiting at most `within`.
fn health(port: u16, within: Duration) -> std::io::Result<String> {
    let mut conn = TcpStream::connect(("127.0.0.1", port))?;
    conn.set_read_timeout(Some(within))?;
    conn.write_all(b"GET /api/health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer)?;
    Ok(answer)
}

/// Kills the child when the test ends, passed or not.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn idle_connections_are_closed_and_health_checks_get_through() {
    let model = assets::detection_model();
    let port = free_port();
    let original = getrlimit(Resource::Nofile);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(96),
            maximum: original.maximum,
        },
    )
    .unwrap();
    let spawned = Command::new(BIN)
        .env("HOSTNAME", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("DETECTION_MODEL_PATH", &model)
        .env("ORT_DYLIB_PATH", assets::runtime_library())
        .env("HEADER_READ_TIMEOUT_MS", "1000")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .spawn();
    setrlimit(Resource::Nofile, original).unwrap();
    let _child = Killed(spawned.unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    while !health(port, Duration::from_secs(2)).is_ok_and(|a| a.starts_with("HTTP/1.1 200")) {
        assert!(
            Instant::now() < deadline,
            "service did not become healthy in 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let idle: Vec<TcpStream> = (0..200)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let answer = health(port, Duration::from_secs(15));
    let waited = started.elapsed();
    let answer = answer.unwrap_or_else(|e| panic!("health check starved after {waited:?}: {e}"));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    eprintln!("health answered after {waited:?} behind 200 idle connections");

    // The server closed the idle ones (EOF or reset, not a read timeout).
    let mut first = &idle[0];
    first
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 16];
    match first.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("idle connection got {n} bytes"),
        Err(e) => assert!(
            !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "idle connection still open: {e}"
        ),
    }
}
