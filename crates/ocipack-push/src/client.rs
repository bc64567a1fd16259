//! One registry connection: the HTTP agent, authentication, timeouts and retries.
//!
//! Every request body is a byte slice already in memory (blobs are read in
//! bounded chunks), so any request can be replayed after a 401 or a
//! transient failure without re-reading the file.
//!
//! Credentials go only where they were issued for: the registry's bearer
//! token or Basic credentials only to the registry's own origin (scheme,
//! host, port), Basic credentials to the token realm only because the token
//! protocol asks for them there, and never as plain HTTP to another host
//! unless the caller named that host as insecure. An upload `Location` on
//! another origin gets no `Authorization` header at all. Redirects are never
//! followed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ureq::http::{Method, Request, Response};
use ureq::Body;

use crate::auth::{parse_challenge, Challenge, Credentials, TokenResponse};
use crate::error::{Error, Result};
use crate::progress::Progress;

/// Bounded exponential backoff for 5xx, 429 and connection failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, including the first (at least 1).
    pub max_tries: u32,
    /// Delay before the second attempt; doubled for each further one.
    pub initial_delay: Duration,
    /// Upper bound of any single delay (also caps a registry's Retry-After).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_tries: 5,
            initial_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    /// The delay after failed attempt number `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(16);
        self.initial_delay
            .saturating_mul(factor)
            .min(self.max_delay)
    }
}

enum Scheme {
    Anonymous,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// A request whose body is in memory, so it can be sent again.
pub(crate) struct Req<'a> {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<&'a [u8]>,
    /// Token scope(s) the request needs, space-separated.
    pub scope: String,
    /// Attempts for transient failures; 1 disables retrying.
    pub tries: u32,
}

/// Where and how long: what [`Client::new`] needs besides credentials.
pub(crate) struct ClientConfig {
    /// Plain HTTP to the registry.
    pub http: bool,
    /// Other hosts (`host[:port]`) that may be spoken to over plain HTTP
    /// with credentials (a token realm).
    pub insecure_hosts: Vec<String>,
    pub retry: RetryPolicy,
    /// TCP (and TLS) connection set-up, per attempt.
    pub connect_timeout: Duration,
    /// Longest silence while sending or receiving, per read or write.
    pub idle_timeout: Duration,
    /// The whole session must end by then.
    pub deadline: Option<(Instant, Duration)>,
    /// Requests in flight at once (upload threads); the connection pool
    /// keeps that many idle connections so each thread reuses its own.
    pub connections: usize,
}

/// `(scheme, host, port)` of an absolute URL, lowercased, default ports filled in.
pub(crate) fn origin_of(url: &str) -> Option<(String, String, u16)> {
    let uri: ureq::http::Uri = url.parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let host = uri.host()?.to_ascii_lowercase();
    let port = uri.port_u16().unwrap_or(match scheme.as_str() {
        "http" => 80,
        _ => 443,
    });
    Some((scheme, host, port))
}

/// `host[:port]` of an absolute URL as written (for messages and `--insecure=HOST`).
fn authority_of(url: &str) -> String {
    url.parse::<ureq::http::Uri>()
        .ok()
        .and_then(|u| u.authority().map(|a| a.as_str().to_ascii_lowercase()))
        .unwrap_or_else(|| url.to_string())
}

pub(crate) struct Client {
    agent: ureq::Agent,
    pub registry: String,
    pub base: String,
    origin: Option<(String, String, u16)>,
    insecure_hosts: Vec<String>,
    creds: Option<Credentials>,
    pub retry: RetryPolicy,
    idle_timeout: Duration,
    deadline: Option<(Instant, Duration)>,
    /// Learnt on the first request; shared by every upload thread.
    scheme: Mutex<Option<Scheme>>,
    /// Bearer tokens by scope string, with their expiry. This lock is held
    /// only to read or store an entry, never across a request.
    tokens: Mutex<HashMap<String, (String, Instant)>>,
    /// Held while a token is fetched, so that threads missing the cache at
    /// once ask the token server once: the others wait, then find it cached.
    token_fetch: Mutex<()>,
    pub bytes_sent: AtomicU64,
}

impl Client {
    pub fn new(registry: &str, creds: Option<Credentials>, cfg: ClientConfig) -> Self {
        let http = cfg.http;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .https_only(!http)
            // Registries redirect blob GETs to storage; pushes need no
            // redirects, and following one would re-send a body (and, in
            // some clients, the Authorization header) to another origin.
            .max_redirects(0)
            .timeout_connect(Some(cfg.connect_timeout))
            .timeout_per_read(Some(cfg.idle_timeout))
            .timeout_per_write(Some(cfg.idle_timeout))
            .max_idle_connections_per_host(cfg.connections.max(3))
            .max_idle_connections(cfg.connections.max(10))
            .user_agent(concat!("ocipack-push/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let scheme = if http { "http" } else { "https" };
        let base = format!("{scheme}://{registry}");
        Client {
            agent,
            registry: registry.to_string(),
            origin: origin_of(&base),
            base,
            insecure_hosts: cfg
                .insecure_hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            creds,
            retry: RetryPolicy {
                max_tries: cfg.retry.max_tries.max(1),
                ..cfg.retry
            },
            idle_timeout: cfg.idle_timeout,
            deadline: cfg.deadline,
            scheme: Mutex::new(None),
            tokens: Mutex::new(HashMap::new()),
            token_fetch: Mutex::new(()),
            bytes_sent: AtomicU64::new(0),
        }
    }

    /// Whether `url` is on the registry's own origin (scheme, host, port).
    pub fn is_registry_origin(&self, url: &str) -> bool {
        self.origin.is_some() && origin_of(url) == self.origin
    }

    /// Whether Basic credentials may go to the token realm `realm`: over
    /// HTTPS always (the token protocol sends them there), over plain HTTP
    /// only on the registry's own origin or a host named insecure.
    fn may_send_basic_to_realm(&self, realm: &str) -> bool {
        match origin_of(realm) {
            Some((scheme, _, _)) if scheme == "https" => true,
            Some(_) => {
                self.is_registry_origin(realm) || self.insecure_hosts.contains(&authority_of(realm))
            }
            None => false,
        }
    }

    fn user(&self) -> String {
        self.creds
            .as_ref()
            .map_or_else(|| "anonymous".to_string(), |c| c.user.clone())
    }

    /// Resolves a Location header against the registry base URL.
    pub fn absolute(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else {
            format!("{}{}", self.base, location)
        }
    }

    /// `GET /v2/`: learns the auth scheme and checks Basic credentials early,
    /// so a wrong password fails before any blob is read.
    pub fn ping(&self, progress: &dyn Progress) -> Result<()> {
        if lock(&self.scheme).is_some() {
            return Ok(());
        }
        let url = format!("{}/v2/", self.base);
        let resp = self.transport(&self.plain_get(&url), None, progress)?;
        let status = resp.status().as_u16();
        let scheme = match status {
            200 => Scheme::Anonymous,
            401 => match challenge_of(&resp) {
                Some(Challenge::Basic) => {
                    let Some(creds) = &self.creds else {
                        return Err(Error::AuthRequired {
                            registry: self.registry.clone(),
                            detail: format!("401 {}", detail_of(resp)),
                        });
                    };
                    let again = self.transport(
                        &self.plain_get(&url),
                        Some(creds.basic_header()),
                        progress,
                    )?;
                    let s = again.status().as_u16();
                    if s == 401 || s == 403 {
                        return Err(Error::AuthRejected {
                            registry: self.registry.clone(),
                            user: creds.user.clone(),
                            status: s,
                            detail: detail_of(again),
                        });
                    }
                    Scheme::Basic
                }
                Some(Challenge::Bearer { realm, service, .. }) => Scheme::Bearer { realm, service },
                None => {
                    return Err(Error::Protocol {
                        registry: self.registry.clone(),
                        reason: "GET /v2/ answered 401 without a usable WWW-Authenticate header"
                            .into(),
                    })
                }
            },
            _ => return Err(status_error("GET", &url, resp)),
        };
        *lock(&self.scheme) = Some(scheme);
        Ok(())
    }

    /// Sends with authentication and retries; returns any response that is
    /// neither 401 (handled here) nor retryable. 401/403 after a fresh
    /// credential become auth errors.
    pub fn send(&self, req: &Req, progress: &dyn Progress) -> Result<Response<Body>> {
        self.ping(progress)?;
        let ours = self.is_registry_origin(&req.url);
        let mut refreshed = false;
        loop {
            let auth = if ours {
                self.authorization(&req.scope, progress)?
            } else {
                None
            };
            let resp = self.transport(req, auth, progress)?;
            let status = resp.status().as_u16();
            if status != 401 && status != 403 {
                return Ok(resp);
            }
            if !ours {
                return Err(Error::Protocol {
                    registry: self.registry.clone(),
                    reason: format!(
                        "{} {} (another origin than the registry, named by the registry's \
                         Location header) answered {status}; credentials are only sent to \
                         the registry itself, so this request cannot proceed",
                        method_name(&req.method),
                        req.url
                    ),
                });
            }
            let bearer = matches!(*lock(&self.scheme), Some(Scheme::Bearer { .. }));
            if status == 401 && bearer && !refreshed {
                // The token expired or lacks a scope the registry now names.
                refreshed = true;
                let scope = match challenge_of(&resp) {
                    Some(Challenge::Bearer { scope: Some(s), .. }) => s,
                    _ => req.scope.clone(),
                };
                lock(&self.tokens).remove(&req.scope);
                let token = self.fetch_token(&scope, progress)?;
                lock(&self.tokens).insert(req.scope.clone(), token);
                continue;
            }
            let repository = req
                .scope
                .split(':')
                .nth(1)
                .unwrap_or(&req.scope)
                .to_string();
            return Err(match (&self.creds, status) {
                (None, _) => Error::AuthRequired {
                    registry: self.registry.clone(),
                    detail: format!("{status} {}", detail_of(resp)),
                },
                (Some(_), _) => Error::Denied {
                    registry: self.registry.clone(),
                    user: self.user(),
                    repository,
                    status,
                    detail: detail_of(resp),
                },
            });
        }
    }

    fn authorization(&self, scope: &str, progress: &dyn Progress) -> Result<Option<String>> {
        let bearer = match &*lock(&self.scheme) {
            None | Some(Scheme::Anonymous) => false,
            Some(Scheme::Basic) => return Ok(self.creds.as_ref().map(Credentials::basic_header)),
            Some(Scheme::Bearer { .. }) => true,
        };
        if !bearer {
            return Ok(None);
        }
        let cached = || {
            let now = Instant::now();
            lock(&self.tokens)
                .get(scope)
                .filter(|(_, expiry)| *expiry > now)
                .map(|(token, _)| format!("Bearer {token}"))
        };
        if let Some(header) = cached() {
            return Ok(Some(header));
        }
        let _fetching = lock(&self.token_fetch);
        // Another thread may have fetched it while this one waited.
        if let Some(header) = cached() {
            return Ok(Some(header));
        }
        let fresh = self.fetch_token(scope, progress)?;
        let header = format!("Bearer {}", fresh.0);
        lock(&self.tokens).insert(scope.to_string(), fresh);
        Ok(Some(header))
    }

    /// Asks the token server for `scope` (space-separated scopes become
    /// repeated `scope` parameters, as the token spec wants).
    fn fetch_token(&self, scope: &str, progress: &dyn Progress) -> Result<(String, Instant)> {
        let (realm, service) = match &*lock(&self.scheme) {
            Some(Scheme::Bearer { realm, service }) => (realm.clone(), service.clone()),
            _ => unreachable!("fetch_token is only called in bearer mode"),
        };
        let mut url = realm.clone();
        let mut sep = if url.contains('?') { '&' } else { '?' };
        let mut push = |k: &str, v: &str| {
            url.push(sep);
            url.push_str(k);
            url.push('=');
            url.push_str(&percent_encode(v));
            sep = '&';
        };
        if let Some(s) = &service {
            push("service", s);
        }
        for s in scope.split_whitespace() {
            push("scope", s);
        }
        if self.creds.is_some() && !self.may_send_basic_to_realm(&realm) {
            return Err(Error::InsecureRealm {
                registry: self.registry.clone(),
                realm: realm.clone(),
                host: authority_of(&realm),
            });
        }
        let started = Instant::now();
        let resp = self.transport(
            &self.plain_get(&url),
            self.creds.as_ref().map(Credentials::basic_header),
            progress,
        )?;
        let status = resp.status().as_u16();
        if status == 401 || status == 403 {
            return Err(match &self.creds {
                Some(c) => Error::AuthRejected {
                    registry: self.registry.clone(),
                    user: c.user.clone(),
                    status,
                    detail: format!("from token server {realm}: {}", detail_of(resp)),
                },
                None => Error::AuthRequired {
                    registry: self.registry.clone(),
                    detail: format!("token server {realm} answered {status}"),
                },
            });
        }
        if status != 200 {
            return Err(status_error("GET", &url, resp));
        }
        let mut resp = resp;
        let body = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| Error::Protocol {
                registry: self.registry.clone(),
                reason: format!("unreadable token response from {realm}: {e}"),
            })?;
        let parsed: TokenResponse = serde_json::from_str(&body).map_err(|e| Error::Protocol {
            registry: self.registry.clone(),
            reason: format!("token response from {realm} is not JSON ({e})"),
        })?;
        // Renew a little early so a token does not expire mid-request.
        let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(60).max(10));
        let expiry = started + lifetime - Duration::from_secs(5);
        let token = parsed.into_token().ok_or_else(|| Error::Protocol {
            registry: self.registry.clone(),
            reason: format!("token response from {realm} has neither token nor access_token"),
        })?;
        Ok((token, expiry))
    }

    /// A GET without scope or body (the API root, token endpoints), retried as usual.
    fn plain_get(&self, url: &str) -> Req<'static> {
        Req {
            method: Method::GET,
            url: url.to_owned(),
            headers: vec![],
            body: None,
            scope: String::new(),
            tries: self.retry.max_tries,
        }
    }

    /// One request, retried on 5xx, 429 and connection failures.
    fn transport(
        &self,
        req: &Req,
        auth: Option<String>,
        progress: &dyn Progress,
    ) -> Result<Response<Body>> {
        let mut attempt = 1;
        loop {
            let remaining = self.remaining(req)?;
            let mut b = Request::builder().method(req.method.clone()).uri(&req.url);
            for (k, v) in &req.headers {
                b = b.header(*k, v);
            }
            if let Some(a) = &auth {
                b = b.header("Authorization", a);
            }
            let result = match req.body {
                Some(body) => b.body(body).map_err(ureq::Error::from).and_then(|r| {
                    let r = self
                        .agent
                        .configure_request(r)
                        .timeout_global(remaining)
                        .build();
                    self.agent.run(r)
                }),
                None => b.body(()).map_err(ureq::Error::from).and_then(|r| {
                    let r = self
                        .agent
                        .configure_request(r)
                        .timeout_global(remaining)
                        .build();
                    self.agent.run(r)
                }),
            };
            if let Some(body) = req.body {
                self.bytes_sent
                    .fetch_add(body.len() as u64, Ordering::Relaxed);
            }
            let (reason, retry_after) = match result {
                Ok(resp) => {
                    let s = resp.status().as_u16();
                    if !(s == 429 || (500..600).contains(&s)) {
                        return Ok(resp);
                    }
                    if attempt >= req.tries {
                        return Err(status_error(method_name(&req.method), &req.url, resp));
                    }
                    let after = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    (format!("status {s}"), after)
                }
                Err(ureq::Error::Timeout(ureq::Timeout::Global)) => {
                    return Err(self.deadline_error(req));
                }
                Err(e) if is_transient(&e) && attempt < req.tries => (e.to_string(), None),
                Err(ureq::Error::Timeout(_)) => {
                    return Err(Error::NoAnswer {
                        method: method_name(&req.method),
                        url: req.url.clone(),
                        tries: attempt,
                        idle: self.idle_timeout,
                    })
                }
                Err(e) => {
                    return Err(Error::Http {
                        method: method_name(&req.method),
                        url: req.url.clone(),
                        tries: attempt,
                        source: Box::new(e),
                    })
                }
            };
            let delay = retry_after
                .unwrap_or_else(|| self.retry.delay(attempt))
                .min(self.retry.max_delay);
            if let Some((at, _)) = self.deadline {
                if Instant::now() + delay >= at {
                    return Err(self.deadline_error(req));
                }
            }
            progress.retrying(
                &format!("{} {}", method_name(&req.method), req.url),
                attempt,
                delay,
                &reason,
            );
            std::thread::sleep(delay);
            attempt += 1;
        }
    }

    /// Time left before the session's deadline (`None`: no deadline).
    fn remaining(&self, req: &Req) -> Result<Option<Duration>> {
        match self.deadline {
            None => Ok(None),
            Some((at, _)) => match at.checked_duration_since(Instant::now()) {
                Some(d) if !d.is_zero() => Ok(Some(d)),
                _ => Err(self.deadline_error(req)),
            },
        }
    }

    fn deadline_error(&self, req: &Req) -> Error {
        Error::Deadline {
            limit: self.deadline.map(|(_, l)| l).unwrap_or_default(),
            method: method_name(&req.method),
            url: req.url.clone(),
        }
    }
}

/// Locks `m`; a panic in another upload thread does not make the cache unusable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether a transport error is worth another try.
pub(crate) fn is_transient(e: &ureq::Error) -> bool {
    use std::io::ErrorKind as K;
    match e {
        ureq::Error::Io(io) => matches!(
            io.kind(),
            K::ConnectionRefused
                | K::ConnectionReset
                | K::ConnectionAborted
                | K::BrokenPipe
                | K::UnexpectedEof
                | K::TimedOut
                | K::Interrupted
                | K::NotConnected
        ),
        ureq::Error::ConnectionFailed | ureq::Error::Timeout(_) | ureq::Error::Protocol(_) => true,
        _ => false,
    }
}

pub(crate) fn method_name(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        _ => "request",
    }
}

fn challenge_of(resp: &Response<Body>) -> Option<Challenge> {
    resp.headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(parse_challenge)
        // Prefer Bearer when a registry offers both.
        .max_by_key(|c| matches!(c, Challenge::Bearer { .. }))
}

/// The registry's error body condensed to `CODE: message` items.
pub(crate) fn detail_of(mut resp: Response<Body>) -> String {
    let text = resp
        .body_mut()
        .with_config()
        .limit(64 * 1024)
        .read_to_string()
        .unwrap_or_default();
    let parsed: Option<serde_json::Value> = serde_json::from_str(&text).ok();
    let errors = parsed
        .as_ref()
        .and_then(|v| v.get("errors"))
        .and_then(|v| v.as_array());
    match errors {
        Some(list) if !list.is_empty() => list
            .iter()
            .map(|e| {
                let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("?");
                let msg = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
                format!("{code}: {msg}")
            })
            .collect::<Vec<_>>()
            .join("; "),
        _ => {
            let t = text.trim();
            let cut: String = t.chars().take(300).collect();
            if cut.is_empty() {
                "(empty body)".into()
            } else {
                cut
            }
        }
    }
}

pub(crate) fn status_error(method: &'static str, url: &str, resp: Response<Body>) -> Error {
    let status = resp.status().as_u16();
    Error::Status {
        method,
        url: url.to_string(),
        status,
        detail: detail_of(resp),
    }
}

/// Percent-encodes a query value (RFC 3986 unreserved characters stay).
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = RetryPolicy {
            max_tries: 5,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(500),
        };
        let d: Vec<u128> = (1..=5).map(|a| p.delay(a).as_millis()).collect();
        assert_eq!(d, [100, 200, 400, 500, 500]);
    }

    #[test]
    fn percent_encoding_keeps_unreserved() {
        assert_eq!(
            percent_encode("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
    }
}
