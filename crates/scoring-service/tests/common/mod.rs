//! Real components for the scoring tests: redis-server and the two ML
//! services (real models) on loopback ports.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use service_kit::assets;

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A redis-server child process, killed on drop.
pub struct Redis {
    pub port: u16,
    child: Child,
}

impl Redis {
    /// Starts redis-server on a free port; with `dir`, append-only
    /// persistence in it (fsync always), else no persistence.
    pub fn start(dir: Option<&Path>) -> Self {
        Self::start_on(free_port(), dir)
    }

    pub fn start_on(port: u16, dir: Option<&Path>) -> Self {
        let mut cmd = Command::new("redis-server");
        cmd.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ]);
        match dir {
            Some(d) => cmd.args([
                "--dir",
                d.to_str().unwrap(),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ]),
            None => cmd.args(["--appendonly", "no"]),
        };
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server)");
        let r = Self { port, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return r;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server on port {port} did not start within 10 s");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A synchronous client for assertions.
    pub fn client(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .unwrap()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Serves `router` on a loopback port in the background; returns its base URL.
pub async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

/// The real detection and embedding services, in-process: their base URLs.
pub async fn ml_services() -> (String, String) {
    let det = assets::detection_model();
    let emb = assets::embedding_model();
    let d = face_detection_service::Args::parse_from(["t", "--model-path", det.to_str().unwrap()]);
    let e = face_embedding_service::Args::parse_from(["t", "--model-path", emb.to_str().unwrap()]);
    let d = face_detection_service::app(face_detection_service::AppState::load(&d).unwrap());
    let e = face_embedding_service::app(face_embedding_service::AppState::load(&e).unwrap());
    (serve(d).await, serve(e).await)
}

/// Scoring settings against the given services and Redis.
pub fn scoring_args(
    detection: &str,
    embedding: &str,
    redis_url: &str,
    extra: &[&str],
) -> scoring_service::Args {
    let mut argv = vec![
        "t",
        "--face-detection-service",
        detection,
        "--face-embedding-service",
        embedding,
        "--redis-url",
        redis_url,
        "--upstream-timeout-ms",
        "20000",
        // The service only logs a failed Redis write (the score still
        // answers 200); with the 500 ms default, an fsync stalled by a
        // loaded CI disk (appendfsync always) lost a histogram update once.
        "--redis-timeout-ms",
        "10000",
    ];
    argv.extend_from_slice(extra);
    scoring_service::Args::parse_from(argv)
}

pub fn photo(name: &str) -> Vec<u8> {
    std::fs::read(assets::require(&format!("photos/{name}"))).unwrap()
}

/// A multipart body with `image` and optional `userId`.
pub fn form(image: &[u8], user: Option<&str>) -> (String, Vec<u8>) {
    let boundary = "sc0reb0undary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"p.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(image);
    body.extend_from_slice(b"\r\n");
    if let Some(u) = user {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"userId\"\r\n\r\n{u}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Sends a request through the router: status and JSON body.
pub async fn call(
    router: &axum::Router,
    request: axum::http::Request<axum::body::Body>,
) -> (u16, serde_json::Value) {
    use tower::ServiceExt;
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

pub async fn score(
    router: &axum::Router,
    image: &[u8],
    user: Option<&str>,
) -> (u16, serde_json::Value) {
    let (ct, body) = form(image, user);
    let request = axum::http::Request::post("/api/score")
        .header("content-type", ct)
        .body(axum::body::Body::from(body))
        .unwrap();
    call(router, request).await
}
