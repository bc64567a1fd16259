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
    password: Option<String>,
    child: Child,
}

impl Redis {
    /// Starts redis-server on a free port; with `dir`, append-only
    /// persistence in it (fsync always), else no persistence.
    pub fn start(dir: Option<&Path>) -> Self {
        Self::start_on(free_port(), dir)
    }

    pub fn start_on(port: u16, dir: Option<&Path>) -> Self {
        Self::start_with(port, dir, None)
    }

    /// Like [`Redis::start_on`], requiring `password` when given.
    pub fn start_with(port: u16, dir: Option<&Path>, password: Option<&str>) -> Self {
        let mut cmd = Command::new("redis-server");
        if let Some(p) = password {
            cmd.args(["--requirepass", p]);
        }
        cmd.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            // DEBUG POPULATE (a large dataset, to test LOADING), loopback only
            "--enable-debug-command",
            "local",
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
        let mut r = Self {
            port,
            password: password.map(str::to_owned),
            child,
        };
        r.wait_pong(Duration::from_secs(30));
        r
    }

    /// Waits until the server answers PING with PONG: an open port is not
    /// enough, a restarted Redis answers `LOADING` while it replays its
    /// append-only file (the BusyLoading failure of issue 17 item 5).
    pub fn wait_pong(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        let mut last = String::from("not tried");
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("redis-server on port {} exited with {status}", self.port);
            }
            match redis::Client::open(self.url()).and_then(|c| {
                let mut conn = c.get_connection_with_timeout(Duration::from_secs(1))?;
                redis::cmd("PING").query::<String>(&mut conn)
            }) {
                Ok(pong) if pong == "PONG" => return,
                Ok(other) => last = other,
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "redis-server on port {} did not answer PONG within {within:?}; last answer: {last}",
            self.port
        );
    }

    pub fn url(&self) -> String {
        match &self.password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
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
    ml_services_with(&[]).await
}

/// Like [`ml_services`] with extra flags for both (e.g. `--service-token-file`).
pub async fn ml_services_with(extra: &[&str]) -> (String, String) {
    let det = assets::detection_model();
    let emb = assets::embedding_model();
    let argv = |model: &std::path::PathBuf| {
        let mut v = vec![
            "t".to_owned(),
            "--model-path".into(),
            model.to_str().unwrap().into(),
        ];
        v.extend(extra.iter().map(|s| (*s).to_owned()));
        v
    };
    let d = face_detection_service::Args::parse_from(argv(&det));
    let e = face_embedding_service::Args::parse_from(argv(&emb));
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

/// The Qdrant server binary: `QDRANT_BIN`, else `<repo>/.cache/qdrant/qdrant`
/// (unpacked by scripts/setup.sh). Missing is a failure, not a skip.
pub fn qdrant_bin() -> std::path::PathBuf {
    let path = std::env::var_os("QDRANT_BIN").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.cache/qdrant/qdrant"),
        std::path::PathBuf::from,
    );
    assert!(
        path.is_file(),
        "the Qdrant server {} is missing: run scripts/setup.sh (it unpacks ../shared/qdrant) or set QDRANT_BIN",
        path.display()
    );
    path
}

/// A real Qdrant server on loopback with its storage in `dir` and an API
/// key required; killed on drop.
pub struct Qdrant {
    pub port: u16,
    grpc_port: u16,
    dir: std::path::PathBuf,
    api_key: String,
    child: Option<Child>,
}

impl Qdrant {
    pub async fn start(dir: &Path, api_key: &str) -> Self {
        let mut q = Self {
            port: free_port(),
            grpc_port: free_port(),
            dir: dir.to_owned(),
            api_key: api_key.to_owned(),
            child: None,
        };
        q.spawn().await;
        q
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("qdrant.log"))
            .unwrap();
        let child = Command::new(qdrant_bin())
            .current_dir(&self.dir)
            .env("QDRANT__SERVICE__HOST", "127.0.0.1")
            .env("QDRANT__SERVICE__HTTP_PORT", self.port.to_string())
            .env("QDRANT__SERVICE__GRPC_PORT", self.grpc_port.to_string())
            .env("QDRANT__SERVICE__API_KEY", &self.api_key)
            .env("QDRANT__STORAGE__STORAGE_PATH", self.dir.join("storage"))
            .env(
                "QDRANT__STORAGE__SNAPSHOTS_PATH",
                self.dir.join("snapshots"),
            )
            .env("QDRANT__TELEMETRY_DISABLED", "true")
            .env("QDRANT__LOG_LEVEL", "WARN")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", qdrant_bin().display()));
        self.child = Some(child);
        let url = format!("{}/readyz", self.url());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                let log = std::fs::read_to_string(self.dir.join("qdrant.log")).unwrap_or_default();
                panic!("qdrant exited with {status} at start:\n{log}");
            }
            if let Ok(r) = reqwest::get(&url).await {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "qdrant on port {} was not ready within 60 s",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills the server (SIGKILL: only what it made durable survives) and
    /// starts it again on the same ports and storage.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Qdrant {
    fn drop(&mut self) {
        self.kill();
    }
}
