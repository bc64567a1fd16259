//! The `--healthcheck` client.
//!
//! The images have no shell and no curl, so each binary checks itself:
//! `["CMD", "/app/bin/<binary>", "--healthcheck"]`. A plain HTTP/1.0 GET over
//! `std::net` keeps this free of an HTTP client dependency and of a runtime.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// GETs `http://127.0.0.1:{port}/api/health`; true on status 200 within `timeout`.
pub fn probe(port: u16, timeout: Duration) -> bool {
    match get_status(port, timeout) {
        Ok(200) => true,
        Ok(status) => {
            eprintln!("healthcheck: http://127.0.0.1:{port}/api/health answered {status}");
            false
        }
        Err(e) => {
            eprintln!("healthcheck: http://127.0.0.1:{port}/api/health: {e}");
            false
        }
    }
}

fn get_status(port: u16, timeout: Duration) -> std::io::Result<u16> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream
        .write_all(b"GET /api/health HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    // "HTTP/1.1 200"
    std::str::from_utf8(&head[9..12])
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not an http response"))
}

/// Exit code for `--healthcheck`: 0 when healthy, 1 otherwise.
pub fn run(port: u16) -> i32 {
    if probe(port, Duration::from_secs(2)) {
        0
    } else {
        1
    }
}
