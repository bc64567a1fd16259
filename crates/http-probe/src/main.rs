//! `http-probe URL [--timeout-ms N]`: a healthcheck for images without a shell.
//!
//! Sends one HTTP/1.0 `GET` to a plain-`http` URL and exits 0 on a 2xx status,
//! 1 otherwise (printing one line saying why). Standard library only, so it
//! adds nothing to an image's library closure beyond libc. The timeout bounds
//! the connect, the write and every read, so a hung server cannot stall the
//! container runtime's healthcheck.
//!
//! ```text
//! http-probe http://127.0.0.1:6333/readyz --timeout-ms 2000
//! ```

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Default for `--timeout-ms`.
const DEFAULT_TIMEOUT_MS: u64 = 2000;

/// Most bytes read while looking for the status line; the body is ignored.
const MAX_HEAD: usize = 8192;

/// A parsed `http://host:port/path` URL.
#[derive(Debug, PartialEq, Eq)]
struct Url {
    host: String,
    port: u16,
    path: String,
}

fn parse_url(url: &str) -> Result<Url, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.contains('@') {
        return Err(format!("{url}: user info in URLs is not supported"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("{url}: unterminated [ in host"))?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(format!("{url}: no host"));
    }
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| format!("{url}: port `{p}` is not a number from 0 to 65535"))?,
        None => 80,
    };
    Ok(Url {
        host: host.to_owned(),
        port,
        path: path.to_owned(),
    })
}

/// The status code of a response head like `HTTP/1.1 200 OK`.
fn status_code(head: &[u8]) -> Result<u16, String> {
    let line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let line = String::from_utf8_lossy(&head[..line_end]);
    let mut parts = line.split_whitespace();
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/") {
        return Err(format!("not an HTTP response: `{}`", line.trim()));
    }
    parts
        .next()
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status code in `{}`", line.trim()))
}

fn probe(url: &Url, timeout: Duration) -> Result<u16, String> {
    let deadline = Instant::now() + timeout;
    let addrs: Vec<_> = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", url.host))?
        .collect();
    let mut last = format!("{} resolved to no address", url.host);
    let mut stream = None;
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = format!("connect {addr}: {e}"),
        }
    }
    let mut stream = stream.ok_or(last)?;
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    stream
        .set_read_timeout(Some(left))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(left))
        .map_err(|e| e.to_string())?;
    let host = if url.host.contains(':') {
        format!("[{}]", url.host)
    } else {
        url.host.clone()
    };
    let request = format!(
        "GET {} HTTP/1.0\r\nHost: {host}:{}\r\nUser-Agent: http-probe\r\nConnection: close\r\n\r\n",
        url.path, url.port
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("send request: {e}"))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.contains(&b'\n') && head.len() < MAX_HEAD {
        if Instant::now() >= deadline {
            return Err("timed out waiting for the status line".to_owned());
        }
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("read response: {e}")),
        }
    }
    status_code(&head)
}

fn run(args: &[String]) -> Result<(), String> {
    let usage = "usage: http-probe http://HOST:PORT/PATH [--timeout-ms N]";
    let mut url = None;
    let mut timeout_ms = DEFAULT_TIMEOUT_MS;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--timeout-ms" => {
                let v = it.next().ok_or(usage)?;
                timeout_ms = v
                    .parse()
                    .map_err(|_| format!("--timeout-ms `{v}` is not a number of milliseconds"))?;
            }
            "-h" | "--help" => return Err(usage.to_owned()),
            _ if url.is_none() && !arg.starts_with('-') => url = Some(arg.clone()),
            _ => return Err(format!("unexpected argument `{arg}`; {usage}")),
        }
    }
    let url = url.ok_or(usage)?;
    let parsed = parse_url(&url)?;
    match probe(&parsed, Duration::from_millis(timeout_ms.max(1))) {
        Ok(code) if (200..300).contains(&code) => Ok(()),
        Ok(code) => Err(format!("{url}: status {code}")),
        Err(e) => Err(format!("{url}: {e}")),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("http-probe: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let u = parse_url("http://127.0.0.1:6333/readyz").unwrap();
        assert_eq!(
            u,
            Url {
                host: "127.0.0.1".into(),
                port: 6333,
                path: "/readyz".into()
            }
        );
        assert_eq!(parse_url("http://localhost").unwrap().port, 80);
        assert_eq!(parse_url("http://localhost").unwrap().path, "/");
        assert_eq!(parse_url("http://[::1]:8080/x").unwrap().host, "::1");
        assert!(parse_url("https://127.0.0.1/").is_err());
        assert!(parse_url("http://127.0.0.1:99999/").is_err());
        assert!(parse_url("http://:80/").is_err());
    }

    #[test]
    fn reads_status_codes() {
        assert_eq!(status_code(b"HTTP/1.1 204 No Content\r\n"), Ok(204));
        assert_eq!(status_code(b"HTTP/1.0 500 Oops\r\n"), Ok(500));
        assert!(status_code(b"SSH-2.0-OpenSSH\r\n").is_err());
        assert!(status_code(b"").is_err());
    }
}
