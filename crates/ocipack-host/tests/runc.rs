//! End to end: the host-built redis image (images/redis.toml) packed by
//! ocipack, unpacked by umoci and run by runc on loopback. Proves the
//! closure is complete (the binary starts in a root holding nothing else),
//! the merged-/usr loader path works, and the image has no shell.

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

fn build_redis(dir: &Path) -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let def = load_definition(&repo.join("images/redis.toml")).unwrap();
    let ctx = HostContext::new(&repo, &repo.join("target/release")).unwrap();
    let plan = plan_for(&def, &ctx).unwrap();
    let text = serde_json::to_string(&plan).unwrap();
    let plan = Plan::from_json(&text, "redis plan", None).unwrap();
    let layout = dir.join("layout");
    ocipack::build(&plan, "redis plan", &layout, &BuildOptions::default()).unwrap();
    layout
}

#[test]
fn host_built_redis_image_serves_on_loopback() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = build_redis(tmp.path());
    let bundle = tmp.path().join("bundle");
    run(Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:latest", layout.display()))
        .arg(&bundle));

    let rootfs = bundle.join("rootfs");
    assert!(!rootfs.join("bin/sh").exists() && !rootfs.join("usr/bin/sh").exists());
    assert!(rootfs.join("lib64/ld-linux-x86-64.so.2").exists());

    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config_path = bundle.join("config.json");
    let mut config: Value = serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
    let args = [
        "/usr/bin/redis-server",
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        "/data",
    ];
    config["process"]["args"] = json!(args);
    config["process"]["terminal"] = json!(false);
    config["root"]["readonly"] = json!(true);
    // Share the host's network namespace so the test reaches it on loopback.
    let namespaces = config["linux"]["namespaces"].as_array_mut().unwrap();
    namespaces.retain(|ns| ns["type"] != "network");
    std::fs::write(&config_path, serde_json::to_vec(&config).unwrap()).unwrap();

    let id = format!("ocipack-host-test-{}", std::process::id());
    let child = Command::new("runc")
        .args(["run", "--bundle"])
        .arg(&bundle)
        .arg(&id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run runc");
    let container = Container {
        id: id.clone(),
        child,
    };

    let deadline = Instant::now() + Duration::from_secs(15);
    let mut reply = None;
    while Instant::now() < deadline {
        reply = redis_ping(port);
        if reply.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(reply.as_deref(), Some("+PONG\r\n"));

    // The image's own healthcheck command runs inside it.
    let out = run(Command::new("runc").args([
        "exec",
        &id,
        "/usr/bin/redis-cli",
        "-p",
        &port.to_string(),
        "ping",
    ]));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "PONG");
    // It runs as the unprivileged user of the plan.
    let out = run(Command::new("runc").args([
        "exec",
        &id,
        "/usr/bin/redis-cli",
        "-p",
        &port.to_string(),
        "info",
        "server",
    ]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("redis_version:"));
    assert_eq!(config["process"]["user"]["uid"], 65532);
    // No shell to exec into.
    let sh = Command::new("runc")
        .args(["exec", &id, "/bin/sh", "-c", "true"])
        .output()
        .unwrap();
    assert!(!sh.status.success());
    drop(container);
}
