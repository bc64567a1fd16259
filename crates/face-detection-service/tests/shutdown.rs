//! The real binary: healthcheck flag, graceful shutdown on SIGTERM (a
//! request in flight completes, new connections are refused after; with a
//! shutdown delay, not ready at once but still serving during it), and the
//! paired benchmark against a running service.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use service_kit::assets;

const BIN: &str = env!("CARGO_BIN_EXE_face-detection-service");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn healthcheck(port: u16) -> i32 {
    Command::new(BIN)
        .args(["--healthcheck"])
        .env("PORT", port.to_string())
        .status()
        .unwrap()
        .code()
        .unwrap()
}

/// Starts the service on `port` (with `extra` environment) and waits until
/// its healthcheck passes.
fn start_service(port: u16, extra: &[(&str, &str)]) -> std::process::Child {
    let mut command = Command::new(BIN);
    command
        .env("HOSTNAME", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("DETECTION_MODEL_PATH", assets::detection_model())
        .env("ORT_DYLIB_PATH", assets::runtime_library())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null());
    for (k, v) in extra {
        command.env(k, v);
    }
    let child = command.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while healthcheck(port) != 0 {
        assert!(
            Instant::now() < deadline,
            "service did not become healthy in 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    child
}

#[test]
fn sigterm_drains_in_flight_request_then_refuses() {
    let photo = std::fs::read(assets::require("photos/yaoming.jpg")).unwrap();
    let port = free_port();
    assert_eq!(healthcheck(port), 1, "nothing listens yet");

    let mut child = start_service(port, &[]);

    // Start a request and send only half of its body: it is in flight.
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        conn,
        "POST /api/v1/detect HTTP/1.1\r\nHost: t\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        photo.len()
    )
    .unwrap();
    let half = photo.len() / 2;
    conn.write_all(&photo[..half]).unwrap();
    std::thread::sleep(Duration::from_millis(200));

    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    std::thread::sleep(Duration::from_millis(300));

    // The listener is closed: a new connection is refused.
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "new connection accepted after SIGTERM"
    );

    // The in-flight request still completes.
    conn.write_all(&photo[half..]).unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "in-flight request: {answer}"
    );
    assert!(answer.contains("\"face_count\":1"), "{answer}");

    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "process did not exit after draining"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}");
}

/// One HTTP/1.1 request on a new connection: status and whole answer.
fn request(port: u16, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        conn,
        "{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    conn.write_all(body).unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    let status = answer.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, answer)
}

#[test]
fn sigterm_with_delay_answers_not_ready_but_keeps_serving() {
    let photo = std::fs::read(assets::require("photos/yaoming.jpg")).unwrap();
    let port = free_port();
    let mut child = start_service(port, &[("SHUTDOWN_DELAY_SECS", "3")]);
    assert_eq!(request(port, "GET", "/api/ready", b"").0, 200);

    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let signalled = Instant::now();
    std::thread::sleep(Duration::from_millis(300));

    // During the delay: not ready, yet a new request is accepted and served.
    let (status, answer) = request(port, "GET", "/api/ready", b"");
    assert_eq!(status, 503, "{answer}");
    assert!(answer.contains("\"stopping\""), "{answer}");
    let (status, answer) = request(port, "POST", "/api/v1/detect", &photo);
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("\"face_count\":1"), "{answer}");
    assert!(
        signalled.elapsed() < Duration::from_secs(3),
        "the checks above took the whole delay; the test proves nothing"
    );

    // After it: the listener closes and the process exits cleanly.
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "process did not exit after the delay"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        signalled.elapsed() >= Duration::from_secs(3),
        "exited before the delay"
    );
    assert!(status.success(), "exit status {status}");
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn bench_paired_times_raw_runs_against_requests_to_the_running_service() {
    let photo = assets::require("photos/yaoming.jpg");
    let port = free_port();
    let mut child = start_service(port, &[]);
    let url = format!("http://127.0.0.1:{port}/api/v1/detect");
    let bench = |url: &str| {
        Command::new(BIN)
            .args(["--bench-paired", "3", "--bench-url", url, "--bench-image"])
            .arg(&photo)
            .env("DETECTION_MODEL_PATH", assets::detection_model())
            .env("ORT_DYLIB_PATH", assets::runtime_library())
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    };
    let out = bench(&url);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["pairs"], 3, "{summary}");
    for field in ["raw_p50_ms", "http_p50_ms", "served_run_p50_ms"] {
        assert!(summary[field].as_f64().unwrap() > 0.0, "{field}: {summary}");
    }
    // the request includes the service's own model run
    assert!(
        summary["http_p50_ms"].as_f64().unwrap() > summary["served_run_p50_ms"].as_f64().unwrap(),
        "{summary}"
    );

    // A service that answers an error fails the benchmark, naming it.
    let out = bench(&format!("http://127.0.0.1:{port}/api/v1/nowhere"));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("404"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Not plain http: refused before any request.
    let out = bench("https://127.0.0.1:1/api/v1/detect");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("give an http:// URL"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A usage error (exit 2), before any model is loaded: its message.
    let usage_error = |args: &[&str]| {
        let out = Command::new(BIN).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        stderr
    };
    // No URL, no image.
    usage_error(&["--bench-paired", "3"]);
    let stderr = usage_error(&["--bench-paired", "3", "--bench-url", &url]);
    assert!(stderr.contains("--bench-image"), "{stderr}");
    child.kill().unwrap();
    child.wait().unwrap();
}
