//! The paired benchmark behind the ML services' `--bench-paired` flag:
//! raw model runs and whole HTTP requests to a running service, alternated
//! one by one in one process.
//!
//! Comparing two separate measurements (a raw-inference run, then wrk a
//! minute later) mixes the overhead being measured with whatever the machine
//! did in between; on a shared 2-core VM that drift is larger than the 10 %
//! being checked. Here every request has a raw run right before or after it
//! (the order alternates), so both series see the same conditions, and the
//! service's own `inference_ms` splits each request into the model run and
//! everything around it (decode, pre- and post-processing, HTTP).
//!
//! The HTTP client is a plain keep-alive HTTP/1.1 POST over `std::net`, for
//! loopback benchmarks only: no TLS, no redirects, no chunked bodies.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// One keep-alive connection to `http://host:port`, for benchmark POSTs.
#[derive(Debug)]
pub struct Client {
    reader: BufReader<TcpStream>,
    host: String,
    path: String,
}

/// What one POST gave back.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

/// The Content-Type to send `bytes` with: from the image's magic number
/// ([`crate::imaging::sniff`]), `image/jpeg` when it is none of the three.
pub fn content_type(bytes: &[u8]) -> &'static str {
    match crate::imaging::sniff(bytes) {
        Some(image::ImageFormat::Png) => "image/png",
        Some(image::ImageFormat::WebP) => "image/webp",
        _ => "image/jpeg",
    }
}

fn invalid(what: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what)
}

impl Client {
    /// Connects to `url`, which must be `http://HOST:PORT/PATH`.
    ///
    /// # Errors
    ///
    /// When the URL is not of that form or the connection fails.
    pub fn connect(url: &str, timeout: Duration) -> std::io::Result<Self> {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            invalid(format!(
                "{url}: give an http:// URL (the paired benchmark speaks plain HTTP to loopback)"
            ))
        })?;
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let stream = TcpStream::connect(host)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            reader: BufReader::new(stream),
            host: host.to_owned(),
            path: if path.is_empty() { "/" } else { path }.to_owned(),
        })
    }

    /// POSTs `body` to the connection's path and reads the whole answer,
    /// keeping the connection open.
    ///
    /// # Errors
    ///
    /// I/O errors, a malformed answer, or an answer without Content-Length.
    pub fn post(&mut self, content_type: &str, body: &[u8]) -> std::io::Result<Answer> {
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            self.path,
            self.host,
            body.len()
        );
        // one write, as wrk sends a request: a head written apart from its
        // body can make the server wait for the body's own segment
        let mut request = Vec::with_capacity(head.len() + body.len());
        request.extend_from_slice(head.as_bytes());
        request.extend_from_slice(body);
        self.reader.get_mut().write_all(&request)?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid(format!("not an HTTP status line: {line:?}")))?;
        let mut length = None;
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(invalid("connection closed in the headers".into()));
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse::<usize>().ok();
                }
            }
        }
        let length = length.ok_or_else(|| invalid("answer without Content-Length".into()))?;
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body)?;
        Ok(Answer { status, body })
    }
}

/// Times of a paired run, in ms, one entry per pair.
#[derive(Debug, Default)]
pub struct Paired {
    /// Raw model runs.
    pub raw: Vec<f64>,
    /// Whole requests, as the client saw them.
    pub http: Vec<f64>,
    /// The model run inside each request (the service's `inference_ms`).
    pub served_run: Vec<f64>,
}

/// Runs `pairs` pairs of one raw run (`raw`, returning its time) and one
/// request (`request`, returning its time and the service's own model-run
/// time in ms), alternating which goes first, after `warmup` unrecorded
/// pairs.
///
/// # Errors
///
/// The first error either side returns.
pub fn paired<E>(
    pairs: usize,
    warmup: usize,
    mut raw: impl FnMut() -> Result<Duration, E>,
    mut request: impl FnMut() -> Result<(Duration, f64), E>,
) -> Result<Paired, E> {
    let mut out = Paired::default();
    for i in 0..warmup + pairs {
        let (r, (h, served)) = if i % 2 == 0 {
            let r = raw()?;
            (r, request()?)
        } else {
            let h = request()?;
            (raw()?, h)
        };
        if i >= warmup {
            out.raw.push(r.as_secs_f64() * 1e3);
            out.http.push(h.as_secs_f64() * 1e3);
            out.served_run.push(served);
        }
    }
    Ok(out)
}

/// Times one request with `client`: POSTs `body`, checks for status 200 and
/// reads the number field `run_field` (the service's model time in ms) out
/// of the JSON answer.
///
/// # Errors
///
/// A failed request, another status, or an answer without that field.
pub fn timed_post(
    client: &mut Client,
    content_type: &str,
    body: &[u8],
    run_field: &str,
) -> std::io::Result<(Duration, f64)> {
    let started = Instant::now();
    let answer = client.post(content_type, body)?;
    let took = started.elapsed();
    if answer.status != 200 {
        return Err(invalid(format!(
            "the service answered {}: {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        )));
    }
    let served = serde_json::from_slice::<serde_json::Value>(&answer.body)
        .ok()
        .and_then(|v| v.get(run_field).and_then(serde_json::Value::as_f64))
        .ok_or_else(|| invalid(format!("the answer has no number {run_field:?}")))?;
    Ok((took, served))
}

/// The whole `--bench-paired` of an ML service: connects to `url`, runs
/// `pairs` pairs of one raw run of `model` on the ready `input` (of
/// `shape`) and one POST of `body` (its Content-Type from its magic number)
/// after a warm-up of two pairs per session (at least 5), and returns the
/// summary line named `what`.
///
/// # Errors
///
/// The connection, a failed run or request, naming `url`.
#[cfg(feature = "onnx")]
pub fn run_paired(
    what: &str,
    model: &crate::onnx::Model,
    shape: &[usize],
    input: &[f32],
    url: &str,
    body: &[u8],
    pairs: usize,
) -> std::io::Result<String> {
    let content_type = content_type(body);
    let mut client = Client::connect(url, Duration::from_secs(30))
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot connect to {url}: {e}")))?;
    let result = paired(
        pairs,
        (2 * model.threads.sessions).max(5),
        || crate::onnx::time_raw_run(model, shape, input).map_err(std::io::Error::other),
        || {
            timed_post(&mut client, content_type, body, "inference_ms")
                .map_err(|e| std::io::Error::new(e.kind(), format!("POST {url}: {e}")))
        },
    )?;
    Ok(result.summary_json(what))
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s
}

impl Paired {
    /// One JSON line: p50/p99 of each series, the p50 overhead of requests
    /// over raw runs in percent, the median of the per-pair overheads, and
    /// the p50 time a request spent outside the model (request minus its
    /// own model run).
    pub fn summary_json(&self, what: &str) -> String {
        let (raw, http, served) = (
            sorted(&self.raw),
            sorted(&self.http),
            sorted(&self.served_run),
        );
        let per_pair: Vec<f64> = self
            .raw
            .iter()
            .zip(&self.http)
            .map(|(r, h)| (h / r - 1.0) * 100.0)
            .collect();
        let outside: Vec<f64> = self
            .http
            .iter()
            .zip(&self.served_run)
            .map(|(h, s)| h - s)
            .collect();
        let (raw50, http50) = (quantile(&raw, 0.5), quantile(&http, 0.5));
        serde_json::json!({
            "model": what,
            "pairs": self.raw.len(),
            "raw_p50_ms": raw50,
            "raw_p99_ms": quantile(&raw, 0.99),
            "http_p50_ms": http50,
            "http_p99_ms": quantile(&http, 0.99),
            "served_run_p50_ms": quantile(&served, 0.5),
            "outside_model_p50_ms": quantile(&sorted(&outside), 0.5),
            "p50_overhead_pct": if raw50 > 0.0 { (http50 / raw50 - 1.0) * 100.0 } else { 0.0 },
            "pair_overhead_median_pct": quantile(&sorted(&per_pair), 0.5),
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn paired_alternates_and_drops_the_warmup() {
        let mut order = Vec::new();
        let order = std::cell::RefCell::new(&mut order);
        let mut n = 0u64;
        let p = paired::<()>(
            3,
            1,
            || {
                order.borrow_mut().push('r');
                Ok(Duration::from_millis(10))
            },
            || {
                n += 1;
                order.borrow_mut().push('h');
                Ok((Duration::from_millis(10 + n), 9.0))
            },
        )
        .unwrap();
        assert_eq!(order.borrow().iter().collect::<String>(), "rhhrrhhr");
        assert_eq!(p.raw, vec![10.0; 3]);
        assert_eq!(p.http, vec![12.0, 13.0, 14.0]);
        let s: serde_json::Value = serde_json::from_str(&p.summary_json("m")).unwrap();
        assert_eq!(s["pairs"], 3);
        assert!((s["p50_overhead_pct"].as_f64().unwrap() - 30.0).abs() < 1e-9);
        assert!((s["outside_model_p50_ms"].as_f64().unwrap() - 4.0).abs() < 1e-9);
    }

    #[test]
    fn client_posts_on_one_connection_and_reads_the_answers() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream);
            for i in 0..2 {
                let mut length = 0;
                let mut line = String::new();
                loop {
                    line.clear();
                    reader.read_line(&mut line).unwrap();
                    if line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.strip_prefix("Content-Length: ") {
                        length = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                let answer = format!("{{\"inference_ms\": {i}.5, \"len\": {length}}}");
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n",
                    answer.len()
                );
                let s = reader.get_mut();
                s.write_all(head.as_bytes()).unwrap();
                s.write_all(answer.as_bytes()).unwrap();
            }
        });
        let mut c =
            Client::connect(&format!("http://{addr}/api/x"), Duration::from_secs(5)).unwrap();
        for i in 0..2 {
            let (_, served) = timed_post(&mut c, "image/png", b"abc", "inference_ms").unwrap();
            assert_eq!(served, f64::from(i) + 0.5);
        }
        server.join().unwrap();
        assert!(Client::connect("https://127.0.0.1:1/", Duration::from_secs(1)).is_err());
    }
}
