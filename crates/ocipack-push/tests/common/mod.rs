//! Test harness: a real `docker-registry` (distribution 2.8) on loopback,
//! hand-built OCI layouts with correct digests, and skopeo as the referee.

#![allow(dead_code)]

pub mod hostile;
pub mod proxy;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// A registry process with its storage in a temp dir; killed on drop.
pub struct Registry {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

impl Registry {
    /// Starts an anonymous registry, or one with htpasswd auth for `user`.
    pub fn start(auth: Option<(&str, &str)>) -> Registry {
        Self::start_with(
            auth.map(|(u, p)| {
                let out = Command::new("htpasswd")
                    .args(["-Bbn", u, p])
                    .output()
                    .expect("htpasswd runs");
                assert!(out.status.success(), "htpasswd failed");
                out.stdout
            }),
            None,
        )
    }

    /// Starts a registry with an optional htpasswd file content and an
    /// optional extra YAML `auth:` block.
    pub fn start_with(htpasswd: Option<Vec<u8>>, auth_yaml: Option<String>) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut cfg = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some(h) = htpasswd {
            let path = dir.path().join("htpasswd");
            std::fs::write(&path, h).unwrap();
            cfg.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                path.display()
            ));
        } else if let Some(a) = auth_yaml {
            cfg.push_str(&a);
        }
        std::fs::write(dir.path().join("config.yml"), cfg).unwrap();
        let mut r = Registry {
            dir,
            port,
            child: None,
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("registry.log")).unwrap();
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("docker-registry starts (apt-get install docker-registry)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "registry did not listen on {} within 15 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Restarts on the same storage and port.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Bytes stored in the registry's blob store (what crossed the wire).
    pub fn blob_store_bytes(&self) -> u64 {
        dir_bytes(&self.dir.path().join("data/docker/registry/v2/blobs"))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
    }
}

fn dir_bytes(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                dir_bytes(&e.path())
            } else {
                m.len()
            }
        })
        .sum()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn sha256(bytes: &[u8]) -> String {
    ocipack::digest::sha256(bytes)
}

/// Deterministic pseudo-random bytes (xorshift64*), so no rand crate is needed.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A layout written by [`write_layout`].
pub struct TestImage {
    pub dir: PathBuf,
    pub manifest_digest: String,
    pub config_digest: String,
    pub layer_digests: Vec<String>,
}

impl TestImage {
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        self.dir
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    }
}

fn put_blob(dir: &Path, bytes: &[u8]) -> String {
    let d = sha256(bytes);
    std::fs::write(
        dir.join("blobs/sha256")
            .join(d.trim_start_matches("sha256:")),
        bytes,
    )
    .unwrap();
    d
}

/// Writes an OCI layout at `dir` with one image manifest tagged `tag`.
pub fn write_layout(dir: &Path, tag: &str, layers: &[&[u8]]) -> TestImage {
    write_layout_arch(dir, tag, "amd64", layers)
}

/// [`write_layout`] with the config's `architecture` set to `arch`.
pub fn write_layout_arch(dir: &Path, tag: &str, arch: &str, layers: &[&[u8]]) -> TestImage {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let layer_digests: Vec<String> = layers.iter().map(|l| put_blob(dir, l)).collect();
    let config = serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": {"Labels": {"tag": tag}},
        "rootfs": {"type": "layers", "diff_ids": layer_digests},
    });
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let config_digest = put_blob(dir, &config_bytes);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_bytes.len()},
        "layers": layers.iter().zip(&layer_digests).map(|(l, d)| serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": l.len()
        })).collect::<Vec<_>>(),
    });
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
    let manifest_digest = put_blob(dir, &manifest_bytes);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_bytes.len(),
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    TestImage {
        dir: dir.to_path_buf(),
        manifest_digest,
        config_digest,
        layer_digests,
    }
}

/// The manifest digest skopeo sees for `host/repo:tag`.
pub fn skopeo_digest(host: &str, repo_tag: &str, creds: Option<&str>) -> String {
    let mut cmd = Command::new("skopeo");
    cmd.args(["inspect", "--raw", "--tls-verify=false"]);
    if let Some(c) = creds {
        cmd.args(["--creds", c]);
    }
    let out = cmd
        .arg(format!("docker://{host}/{repo_tag}"))
        .output()
        .expect("skopeo runs (apt-get install skopeo)");
    assert!(
        out.status.success(),
        "skopeo inspect failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    sha256(&out.stdout)
}

/// Whether the registry has `digest` in `repo` (anonymous HEAD).
pub fn blob_exists(host: &str, repo: &str, digest: &str) -> bool {
    status_of(&format!("http://{host}/v2/{repo}/blobs/{digest}"), "HEAD") == 200
}

pub fn status_of(url: &str, method: &str) -> u16 {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let req = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .body(())
        .unwrap();
    agent.run(req).unwrap().status().as_u16()
}

pub fn fast_retry() -> ocipack_push::RetryPolicy {
    ocipack_push::RetryPolicy {
        max_tries: 3,
        initial_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(200),
    }
}

pub fn insecure_opts() -> ocipack_push::PushOptions {
    ocipack_push::PushOptions {
        insecure: true,
        chunk_size: 1024 * 1024,
        retry: fast_retry(),
        ..Default::default()
    }
}

/// Runs `f` on a thread and fails the test if it is still running after
/// `bound` (a hang on the old code becomes a failure, not a stuck suite).
pub fn within<T: Send + 'static>(bound: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(bound)
        .unwrap_or_else(|_| panic!("still running after {bound:?}"))
}
