//! Runs the real `http-probe` binary against a std TcpListener server on loopback.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

/// Serves one connection with `status_line`, returns the URL and the request it saw.
fn serve_once(status_line: &'static str) -> (String, thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/api/health", listener.local_addr().unwrap());
    let handle = thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 512];
        while !request.ends_with(b"\r\n\r\n") {
            let n = conn.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            request.extend_from_slice(&buf[..n]);
        }
        let body = "{}";
        // The probe may hang up as soon as it has the status line, so the
        // write can meet a reset connection (seen in release builds): fine.
        let _ = write!(
            conn,
            "{status_line}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        String::from_utf8(request).unwrap()
    });
    (url, handle)
}

fn probe(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_http-probe"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn status_200_exits_0() {
    let (url, server) = serve_once("HTTP/1.1 200 OK");
    let out = probe(&[&url]);
    let request = server.join().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(out.stderr.is_empty());
    assert!(
        request.starts_with("GET /api/health HTTP/1.0\r\n"),
        "{request}"
    );
}

#[test]
fn status_500_exits_1_with_one_line() {
    let (url, server) = serve_once("HTTP/1.1 500 Internal Server Error");
    let out = probe(&[&url, "--timeout-ms", "3000"]);
    server.join().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("status 500"), "{stderr}");
}

#[test]
fn connection_refused_exits_1_quickly() {
    // Bind then drop to get a loopback port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let start = Instant::now();
    let out = probe(&[&format!("http://127.0.0.1:{port}/")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("refused"), "{stderr}");
}

#[test]
fn silent_server_times_out() {
    // Accepts but never answers: the probe must give up after its timeout.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let start = Instant::now();
    let out = probe(&[&url, "--timeout-ms", "300"]);
    drop(listener);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn https_and_bad_arguments_are_refused() {
    for args in [
        &["https://127.0.0.1/"][..],
        &[][..],
        &["http://127.0.0.1/", "--timeout-ms", "soon"][..],
    ] {
        let out = probe(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
    }
}
