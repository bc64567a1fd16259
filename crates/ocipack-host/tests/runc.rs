//! End to end: host-built images packed by ocipack, unpacked by umoci and
//! run by runc on loopback. Proves the closures are complete (programs start
//! in a root holding nothing else), the merged-/usr loader path works, and
//! the images have no shell.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ocipack::plan::Plan;
use ocipack::BuildOptions;
use ocipack_host::{load_definition, plan_for, HostContext};
use serde_json::{json, Value};

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {out:?}");
    out
}

/// Kills and deletes the container however the test ends.
struct Container {
    id: String,
    child: Child,
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("runc")
            .args(["kill", &self.id, "KILL"])
            .output();
        let _ = self.child.wait();
        let _ = Command::new("runc")
            .args(["delete", "-f", &self.id])
            .output();
    }
}

fn redis_ping(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"PING\r\n").ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Plans images/<name>.toml with binaries from `bin_dir` and packs it into `dir/layout`.
fn build_image(name: &str, bin_dir: &Path, dir: &Path) -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let def = load_definition(&repo.join(format!("images/{name}.toml"))).unwrap();
    let ctx = HostContext::new(&repo, bin_dir).unwrap();
    let mut plan = serde_json::to_value(plan_for(&def, &ctx).unwrap()).unwrap();
    // These tests are about content; gzip in a debug build would dominate
    // their run time (30 MB of onnxruntime), so the layers go uncompressed.
    for layer in plan["layers"].as_array_mut().unwrap() {
        if layer["kind"] == "files" {
            layer["compression"] = json!("none");
        }
    }
    let text = serde_json::to_string(&plan).unwrap();
    let plan = Plan::from_json(&text, name, None).unwrap();
    let layout = dir.join("layout");
    ocipack::build(&plan, name, &layout, &BuildOptions::default()).unwrap();
    layout
}

/// Unpacks the layout's `latest` image into an OCI runtime bundle.
fn unpack(layout: &Path, bundle: &Path) {
    run(Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:latest", layout.display()))
        .arg(bundle));
}

/// Rewrites the bundle's process arguments, makes the root read-only and
/// shares the host's network namespace (loopback tests).
fn configure(bundle: &Path, args: &[&str]) -> Value {
    let config_path = bundle.join("config.json");
    let mut config: Value = serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
    config["process"]["args"] = json!(args);
    config["process"]["terminal"] = json!(false);
    config["root"]["readonly"] = json!(true);
    let namespaces = config["linux"]["namespaces"].as_array_mut().unwrap();
    namespaces.retain(|ns| ns["type"] != "network");
    std::fs::write(&config_path, serde_json::to_vec(&config).unwrap()).unwrap();
    config
}

#[test]
fn host_built_redis_image_serves_on_loopback() {
    let tmp = tempfile::tempdir().unwrap();
    // Redis needs no workspace binary, so the bin dir can be empty.
    let layout = build_image("redis", tmp.path(), tmp.path());
    let bundle = tmp.path().join("bundle");
    unpack(&layout, &bundle);

    let rootfs = bundle.join("rootfs");
    assert!(!rootfs.join("bin/sh").exists() && !rootfs.join("usr/bin/sh").exists());
    assert!(rootfs.join("lib64/ld-linux-x86-64.so.2").exists());

    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let config = configure(
        &bundle,
        &[
            "/usr/bin/redis-server",
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            "/data",
        ],
    );
    assert_eq!(config["process"]["user"]["uid"], 65532);

    let id = format!("ocipack-host-redis-{}", std::process::id());
    let child = Command::new("runc")
        .args(["run", "--bundle"])
        .arg(&bundle)
        .arg(&id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run runc");
    let container = Container {
        id: id.clone(),
        child,
    };

    let deadline = Instant::now() + Duration::from_secs(15);
    let mut reply = None;
    while Instant::now() < deadline {
        reply = redis_ping(port.parse().unwrap());
        if reply.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(reply.as_deref(), Some("+PONG\r\n"));

    // The image's own healthcheck command runs inside it.
    let out =
        run(Command::new("runc").args(["exec", &id, "/usr/bin/redis-cli", "-p", &port, "ping"]));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "PONG");
    // No shell to exec into.
    let sh = Command::new("runc")
        .args(["exec", &id, "/bin/sh", "-c", "true"])
        .output()
        .unwrap();
    assert!(!sh.status.success());
    drop(container);
}

#[test]
fn onnxruntime_resolves_inside_the_face_detection_image() {
    let tmp = tempfile::tempdir().unwrap();
    // A stand-in for the service binary: the point here is the runtime
    // library's closure, which the real service only dlopens.
    let bin = tmp.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::fs::copy("/usr/bin/true", bin.join("face-detection-service")).unwrap();
    let layout = build_image("face-detection", &bin, tmp.path());
    let bundle = tmp.path().join("bundle");
    unpack(&layout, &bundle);
    assert!(bundle
        .join("rootfs/models/scrfd_500m_bnkps/scrfd_500m_bnkps.onnx")
        .is_file());
    // The image's own loader lists the library's dependencies as it would
    // load them in there, and fails on any it cannot find.
    configure(
        &bundle,
        &[
            "/lib64/ld-linux-x86-64.so.2",
            "--list",
            "/usr/lib/onnxruntime/libonnxruntime.so.1",
        ],
    );
    let id = format!("ocipack-host-ort-{}", std::process::id());
    let out = Command::new("runc")
        .args(["run", "--bundle"])
        .arg(&bundle)
        .arg(&id)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _ = Command::new("runc").args(["delete", "-f", &id]).output();
    assert!(out.status.success(), "{out:?}");
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(!listing.contains("not found"), "{listing}");
    for lib in ["libstdc++.so.6", "libgcc_s.so.1", "libm.so.6", "libc.so.6"] {
        assert!(listing.contains(lib), "{lib} missing from:\n{listing}");
    }
}
