//! The real binary: healthcheck flag, and graceful shutdown on SIGTERM
//! (a request in flight completes, new connections are refused after).

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

#[test]
fn sigterm_drains_in_flight_request_then_refuses() {
    let model = assets::detection_model();
    let photo = std::fs::read(assets::require("photos/yaoming.jpg")).unwrap();
    let port = free_port();
    assert_eq!(healthcheck(port), 1, "nothing listens yet");

    let mut child = Command::new(BIN)
        .env("HOSTNAME", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("DETECTION_MODEL_PATH", &model)
        .env("ORT_DYLIB_PATH", assets::runtime_library())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while healthcheck(port) != 0 {
        assert!(
            Instant::now() < deadline,
            "service did not become healthy in 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

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
