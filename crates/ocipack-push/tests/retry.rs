//! Retries on 5xx: nginx answers 502 while the registry behind it is down,
//! and the push must ride that out within its bounded backoff.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use ocipack_push::{push, Progress, PushOptions, RetryPolicy, Target};

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn nginx_in_front_of(dir: &std::path::Path, upstream: u16) -> (Nginx, u16) {
    let port = free_port();
    let d = dir.display();
    std::fs::create_dir_all(dir.join("ngx")).unwrap();
    // One process (no master/worker split): killing the child then stops
    // nginx entirely instead of orphaning a worker.
    let conf = format!(
        "master_process off; pid {d}/ngx/pid; error_log {d}/ngx/error.log; daemon off;
events {{ worker_connections 64; }}
http {{
  client_body_temp_path {d}/ngx/b; proxy_temp_path {d}/ngx/p; fastcgi_temp_path {d}/ngx/f;
  uwsgi_temp_path {d}/ngx/u; scgi_temp_path {d}/ngx/s; access_log off;
  server {{
    listen 127.0.0.1:{port};
    client_max_body_size 0;
    location / {{ proxy_pass http://127.0.0.1:{upstream}; proxy_set_header Host $http_host; proxy_http_version 1.1; }}
  }}
}}
"
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let child = Command::new("nginx")
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-p")
        .arg(dir.join("ngx"))
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx runs (apt-get install nginx-light)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nginx did not listen within 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (Nginx(child), port)
}

#[derive(Default)]
struct Retries(std::sync::Mutex<Vec<String>>);

impl Progress for Retries {
    fn retrying(&self, _what: &str, _attempt: u32, _delay: Duration, reason: &str) {
        self.0.lock().unwrap().push(reason.to_string());
    }
}

#[test]
fn bad_gateway_is_retried_until_the_registry_is_back() {
    let mut reg = Registry::start(None);
    reg.kill();
    let tmp = tempfile::tempdir().unwrap();
    let (_nginx, port) = nginx_in_front_of(tmp.path(), reg.port);
    let img = write_layout(&tmp.path().join("img"), "1", &[b"layer"]);

    let starter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        reg.restart();
        reg
    });
    let opts = PushOptions {
        insecure: true,
        retry: RetryPolicy {
            max_tries: 8,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(400),
        },
        ..PushOptions::default()
    };
    let seen = Retries::default();
    let t = Target::parse(&format!("127.0.0.1:{port}/retry:1")).unwrap();
    let r = push(&img.dir, &t, opts, &seen).unwrap();
    let reg = starter.join().unwrap();
    assert_eq!(r.images[0].manifest_digest, img.manifest_digest);
    let reasons = seen.0.lock().unwrap();
    assert!(reasons.iter().any(|r| r == "status 502"), "{reasons:?}");
    assert_eq!(
        skopeo_digest(&reg.host(), "retry:1", None),
        img.manifest_digest
    );
}
