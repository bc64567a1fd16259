//! A small HTTP/1.1 proxy on loopback in front of the real registry: it
//! logs every request (method, target, status), can answer 500 instead of
//! forwarding chosen requests a given number of times, and can hold blob
//! commits back for a while (so a test can kill a push mid-way), and can
//! refuse chosen requests for good with a 4xx (a registry whose policy
//! refuses OCI 1.1 artifacts: `refuse`).
//!
//! One request per connection: the proxy asks the registry to close after
//! its answer (`Connection: close`, which Go's server echoes), and passes the
//! answer through verbatim until the registry closes.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One request seen by the proxy.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    /// The status sent back (500 for an injected failure).
    pub status: u16,
    pub injected: bool,
}

impl Seen {
    /// The digest a blob upload commits (`PUT ...?digest=sha256%3A...`).
    pub fn committed_digest(&self) -> Option<String> {
        if self.method != "PUT" || !self.target.contains("/blobs/uploads/") {
            return None;
        }
        let at = self.target.find("digest=")? + "digest=".len();
        let v = self.target[at..].split('&').next()?;
        Some(v.replace("%3A", ":").replace("%3a", ":"))
    }
}

/// A rule: answer 500 to the next `times` requests with this method whose
/// target contains `needle`.
struct Fail {
    method: String,
    needle: String,
    times: u32,
}

/// A rule: answer `status` to every request with this method whose target
/// contains `needle` and whose body contains `body_needle`.
struct Refuse {
    method: String,
    needle: String,
    body_needle: String,
    status: u16,
}

/// A rule: answer every request with this method whose target contains
/// `needle` with `status`, `content_type` and `body` (a canned answer).
struct Canned {
    method: String,
    needle: String,
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

#[derive(Default)]
struct Shared {
    canned: Mutex<Vec<Canned>>,
    log: Mutex<Vec<Seen>>,
    fails: Mutex<Vec<Fail>>,
    refusals: Mutex<Vec<Refuse>>,
    commit_delay: Mutex<Duration>,
    stop: AtomicBool,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
}

pub struct Proxy {
    pub port: u16,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl Proxy {
    pub fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, upstream, &s);
                });
            }
        });
        Proxy {
            port,
            shared,
            accept: Some(accept),
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Answer 500 to the next `times` `method` requests whose target contains `needle`.
    pub fn fail(&self, method: &str, needle: &str, times: u32) {
        self.shared.fails.lock().unwrap().push(Fail {
            method: method.into(),
            needle: needle.into(),
            times,
        });
    }

    /// Answer `status` (with a registry-style JSON error) to every `method`
    /// request whose target contains `needle` and body contains `body_needle`.
    pub fn refuse(&self, method: &str, needle: &str, body_needle: &str, status: u16) {
        self.shared.refusals.lock().unwrap().push(Refuse {
            method: method.into(),
            needle: needle.into(),
            body_needle: body_needle.into(),
            status,
        });
    }

    /// Answer every `method` request whose target contains `needle` with
    /// this status, content type and body, without asking the registry.
    pub fn answer_with(
        &self,
        method: &str,
        needle: &str,
        status: u16,
        content_type: &str,
        body: &[u8],
    ) {
        self.shared.canned.lock().unwrap().push(Canned {
            method: method.into(),
            needle: needle.into(),
            status,
            content_type: content_type.into(),
            body: body.to_vec(),
        });
    }

    /// Hold every blob commit (the final PUT) back for `d` before forwarding it.
    pub fn delay_commits(&self, d: Duration) {
        *self.shared.commit_delay.lock().unwrap() = d;
    }

    /// The most requests handled at once since the last call.
    pub fn peak_in_flight_and_reset(&self) -> usize {
        self.shared.peak.swap(0, Ordering::SeqCst)
    }

    pub fn log(&self) -> Vec<Seen> {
        self.shared.log.lock().unwrap().clone()
    }

    /// Digests of blob commits the registry accepted (201), in order.
    pub fn commits(&self) -> Vec<String> {
        self.log()
            .iter()
            .filter(|s| s.status == 201)
            .filter_map(Seen::committed_digest)
            .collect()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn serve(client: TcpStream, upstream: u16, s: &Shared) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head = Vec::new();
    // The request line and headers, up to 64 KiB.
    loop {
        let mut line = Vec::new();
        if reader.read_until(b'\n', &mut line)? == 0 || head.len() > 64 * 1024 {
            return Ok(());
        }
        let end = line == b"\r\n";
        head.push(String::from_utf8_lossy(&line).into_owned());
        if end {
            break;
        }
    }
    let mut parts = head[0].split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let mut length = 0usize;
    let mut forwarded = String::new();
    for h in &head {
        let lower = h.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("connection:") || h == "\r\n" {
            continue;
        }
        forwarded.push_str(h);
    }
    forwarded.push_str("Connection: close\r\n\r\n");
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    // A whole request has arrived: it counts as in flight until its answer
    // is ready. The count drops before the answer is written, so a client
    // that sends its next request as soon as it has the answer is never
    // counted twice (that race showed one request more than --jobs).
    let now = s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    s.peak.fetch_max(now, Ordering::SeqCst);
    let r = answer(upstream, s, &method, &target, &forwarded, &body);
    s.in_flight.fetch_sub(1, Ordering::SeqCst);
    let mut client = client;
    client.write_all(&r?)
}

/// The whole answer to one request, written by `serve`.
fn answer(
    upstream: u16,
    s: &Shared,
    method: &str,
    target: &str,
    forwarded: &str,
    body: &[u8],
) -> std::io::Result<Vec<u8>> {
    let mut seen = Seen {
        method: method.to_string(),
        target: target.to_string(),
        status: 0,
        injected: false,
    };
    let inject = {
        let mut fails = s.fails.lock().unwrap();
        match fails
            .iter_mut()
            .find(|f| f.times > 0 && f.method == method && target.contains(f.needle.as_str()))
        {
            Some(f) => {
                f.times -= 1;
                true
            }
            None => false,
        }
    };
    let refusal = s
        .refusals
        .lock()
        .unwrap()
        .iter()
        .find(|r| {
            r.method == method
                && target.contains(r.needle.as_str())
                && body
                    .windows(r.body_needle.len().max(1))
                    .any(|w| w == r.body_needle.as_bytes())
        })
        .map(|r| r.status);
    let canned = s
        .canned
        .lock()
        .unwrap()
        .iter()
        .find(|c| c.method == method && target.contains(c.needle.as_str()))
        .map(|c| (c.status, c.content_type.clone(), c.body.clone()));
    if let Some((status, content_type, body)) = canned {
        seen.status = status;
        seen.injected = true;
        s.log.lock().unwrap().push(seen);
        let mut out = format!(
            "HTTP/1.1 {status} Canned\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(&body);
        return Ok(out);
    }
    if let Some(status) = refusal {
        seen.status = status;
        seen.injected = true;
        s.log.lock().unwrap().push(seen);
        let body = br#"{"errors":[{"code":"DENIED","message":"artifacts with a subject are refused by policy"}]}"#;
        let mut out = format!(
            "HTTP/1.1 {status} Refused\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(body);
        return Ok(out);
    }
    if inject {
        seen.status = 500;
        seen.injected = true;
        s.log.lock().unwrap().push(seen);
        return Ok(
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                .to_vec(),
        );
    }
    if seen.committed_digest().is_some() {
        let d = *s.commit_delay.lock().unwrap();
        std::thread::sleep(d);
    }
    let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
    up.set_read_timeout(Some(Duration::from_secs(30)))?;
    up.write_all(forwarded.as_bytes())?;
    up.write_all(body)?;
    let mut answer = Vec::new();
    up.read_to_end(&mut answer)?;
    seen.status = std::str::from_utf8(answer.get(9..12).unwrap_or_default())
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    s.log.lock().unwrap().push(seen);
    Ok(answer)
}
