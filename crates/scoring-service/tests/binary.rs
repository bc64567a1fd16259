//! The real scoring binary: secrets never reach its output (issue 11 item 9,
//! contract 1): not in `--help`, not in a startup error for a malformed
//! REDIS_URL, and the service token not in any log line.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_scoring-service");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn help_and_startup_errors_redact_the_redis_password() {
    let out = Command::new(BIN)
        .arg("--help")
        .env("REDIS_URL", "redis://:hunter2pw@redis:6379/0")
        .env("QDRANT_URL", "http://user:qdrantpw@qdrant:6333")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("REDIS_URL"), "{text}");
    assert!(
        !text.contains("hunter2pw") && !text.contains("qdrantpw"),
        "{text}"
    );

    let out = Command::new(BIN)
        .env("REDIS_URL", "redis//:hunter2pw@redis:6379")
        .env("HOSTNAME", "127.0.0.1")
        .env("PORT", free_port().to_string())
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{all}");
    assert!(all.contains("REDIS_URL"), "{all}");
    assert!(!all.contains("hunter2pw"), "{all}");
}

fn request(port: u16, auth: &str) -> String {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        conn,
        "POST /api/score HTTP/1.1\r\nHost: t\r\n{auth}Content-Type: image/jpeg\r\nContent-Length: 4\r\nConnection: close\r\n\r\nxxxx"
    )
    .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn the_service_token_never_appears_in_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "tok-never-logged-8d2f\n").unwrap();
    let port = free_port();
    let mut child = Command::new(BIN)
        .env("HOSTNAME", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("SERVICE_TOKEN_FILE", &token_file)
        .env("REDIS_URL", format!("redis://127.0.0.1:{}", free_port()))
        .env(
            "FACE_DETECTION_SERVICE",
            format!("http://127.0.0.1:{}", free_port()),
        )
        .env("RUST_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "scoring did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let denied = request(port, "Authorization: Bearer tok-never-logged-8d2e\r\n");
    assert!(denied.starts_with("HTTP/1.1 401"), "{denied}");
    let allowed = request(port, "Authorization: Bearer tok-never-logged-8d2f\r\n");
    assert!(
        allowed.starts_with("HTTP/1.1 422"),
        "past auth, a bad image: {allowed}"
    );
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(logs.contains("401"), "{logs}");
    assert!(!logs.contains("tok-never-logged"), "{logs}");
}
