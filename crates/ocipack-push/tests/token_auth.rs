//! Bearer-token authentication against a real docker-registry configured with
//! `auth: token:`. The registry verifies real RS256 JWTs against a real
//! certificate; the token server is the smallest implementation of the Docker
//! token protocol this test needs (no token server ships in Debian), signing
//! with the openssl command line tool.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use common::*;
use ocipack_push::{
    push, push_all, BlobOutcome, Credentials, Error, NoProgress, PushOptions, Target,
};

const SERVICE: &str = "test-registry";
const ISSUER: &str = "test-issuer";

struct TokenServer {
    port: u16,
    stop: Arc<AtomicBool>,
    /// The scope parameters of every token request, in order.
    scopes: Arc<Mutex<Vec<Vec<String>>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TokenServer {
    fn start(dir: &Path, user: &'static str, password: &'static str) -> TokenServer {
        let key = dir.join("key.pem");
        let st = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=token-signer",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(dir.join("cert.pem"))
            .stderr(Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(st.success());
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(dir.join("cert.pem"))
            .output()
            .unwrap()
            .stdout;
        let x5c = base64::engine::general_purpose::STANDARD.encode(der);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let scopes = Arc::new(Mutex::new(Vec::new()));
        let (stop2, scopes2) = (stop.clone(), scopes.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(s) = conn {
                    serve(s, &key, &x5c, user, password, &scopes2);
                }
            }
        });
        TokenServer {
            port,
            stop,
            scopes,
            thread: Some(thread),
        }
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    stream: TcpStream,
    key: &PathBuf,
    x5c: &str,
    user: &str,
    password: &str,
    scopes: &Mutex<Vec<Vec<String>>>,
) {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut auth = None;
    for _ in 0..100 {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("authorization") {
                auth = Some(v.trim().to_string());
            }
        }
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("");
    let query = path.split_once('?').map_or("", |(_, q)| q);
    let mut asked = Vec::new();
    let mut service = String::new();
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "scope" => asked.push(decode(v)),
            "service" => service = decode(v),
            _ => {}
        }
    }
    scopes.lock().unwrap().push(asked.clone());
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    );
    let (status, body) = match auth {
        Some(a) if a != expected => (
            "401 Unauthorized",
            r#"{"details":"wrong user name or password"}"#.to_string(),
        ),
        _ if service != SERVICE => (
            "400 Bad Request",
            r#"{"details":"unknown service"}"#.to_string(),
        ),
        // Anonymous callers get a token that grants nothing, as public registries do.
        None => (
            "200 OK",
            format!(
                r#"{{"token":"{}","expires_in":300}}"#,
                jwt(key, x5c, "", &[])
            ),
        ),
        Some(_) => (
            "200 OK",
            format!(
                r#"{{"access_token":"{}","expires_in":300}}"#,
                jwt(key, x5c, user, &asked)
            ),
        ),
    };
    let mut s = stream;
    let _ = write!(
        s,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(if b[i] == b'+' { b' ' } else { b[i] });
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// An RS256 JWT granting every requested `repository:NAME:ACTIONS` scope.
fn jwt(key: &PathBuf, x5c: &str, subject: &str, scopes: &[String]) -> String {
    let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let access: Vec<serde_json::Value> = scopes
        .iter()
        .filter_map(|s| {
            let mut parts = s.splitn(3, ':');
            let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
            // alice owns team/*; everything else is out of bounds for her.
            if !name.starts_with("team/") {
                return None;
            }
            Some(serde_json::json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
        })
        .collect();
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [x5c]});
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": subject, "aud": SERVICE,
        "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("{now}-{}", scopes.len()),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        b64(&serde_json::to_vec(&header).unwrap()),
        b64(&serde_json::to_vec(&claims).unwrap())
    );
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(signing_input.as_bytes())
        .unwrap();
    let sig = child.wait_with_output().unwrap().stdout;
    format!("{signing_input}.{}", b64(&sig))
}

fn token_registry(dir: &Path, token_port: u16) -> Registry {
    let auth = format!(
        "auth:\n  token:\n    realm: http://127.0.0.1:{token_port}/token\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
        dir.join("cert.pem").display()
    );
    Registry::start_with(None, Some(auth))
}

/// The token server is plain HTTP on another port than the registry (another
/// origin), so it has to be named for the password to go there.
fn with_creds(user: &str, password: &str, tokens: &TokenServer) -> PushOptions {
    PushOptions {
        credentials: Some(Credentials {
            user: user.into(),
            password: password.into(),
        }),
        insecure_hosts: vec![format!("127.0.0.1:{}", tokens.port)],
        ..insecure_opts()
    }
}

#[test]
fn bearer_tokens_push_mount_and_reject() {
    let tmp = tempfile::tempdir().unwrap();
    let tokens = TokenServer::start(tmp.path(), "alice", "pw");
    let reg = token_registry(tmp.path(), tokens.port);
    let model = random_bytes(2 * 1024 * 1024 + 1, 11);
    let a = write_layout(&tmp.path().join("a"), "1", &[&model, b"a"]);
    let b = write_layout(&tmp.path().join("b"), "1", &[&model, b"b"]);
    let ta = Target::parse(&format!("{}/team/a:1", reg.host())).unwrap();
    let tb = Target::parse(&format!("{}/team/b:1", reg.host())).unwrap();

    let r = push_all(
        &[(a.dir.clone(), ta.clone()), (b.dir.clone(), tb)],
        with_creds("alice", "pw", &tokens),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(r.images[0].uploaded.blobs, 3);
    let model_b = r.images[1]
        .blobs
        .iter()
        .find(|x| x.digest == a.layer_digests[0])
        .unwrap();
    assert_eq!(model_b.outcome, BlobOutcome::Mounted);
    // The mount asked for push on the target and pull on the source in one token.
    let asked = tokens.scopes.lock().unwrap().clone();
    assert!(
        asked
            .iter()
            .any(|s| s == &["repository:team/b:pull,push", "repository:team/a:pull"]),
        "{asked:?}"
    );
    // One token per scope set: the cache works.
    let for_a = asked
        .iter()
        .filter(|s| *s == &["repository:team/a:pull,push"])
        .count();
    assert_eq!(for_a, 1, "{asked:?}");
    assert_eq!(
        skopeo_digest(&reg.host(), "team/a:1", Some("alice:pw")),
        a.manifest_digest
    );
    assert_eq!(
        skopeo_digest(&reg.host(), "team/b:1", Some("alice:pw")),
        b.manifest_digest
    );

    let err = push(
        &a.dir,
        &ta,
        with_creds("alice", "nope", &tokens),
        &NoProgress,
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::AuthRejected { status: 401, .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("rejected the credentials for user alice"),
        "{err}"
    );

    // The parser reads the registry's own challenge for a mount.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!(
        "http://{}/v2/team/c/blobs/uploads/?mount={}&from=team/a",
        reg.host(),
        a.layer_digests[0]
    );
    let resp = agent.post(&url).send_empty().unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let header = resp
        .headers()
        .get("www-authenticate")
        .unwrap()
        .to_str()
        .unwrap();
    match ocipack_push::parse_challenge(header) {
        Some(ocipack_push::Challenge::Bearer {
            realm,
            service,
            scope,
        }) => {
            assert_eq!(realm, format!("http://127.0.0.1:{}/token", tokens.port));
            assert_eq!(service.as_deref(), Some(SERVICE));
            // Order-free: the registry joins scopes and their actions in
            // Go map order ("pull,push" or "push,pull"), which once failed
            // an exact comparison.
            let scope = scope.unwrap();
            let mut parts: Vec<String> = scope
                .split(' ')
                .map(|part| {
                    let (resource, actions) = part.rsplit_once(':').unwrap();
                    let mut actions: Vec<&str> = actions.split(',').collect();
                    actions.sort_unstable();
                    format!("{resource}:{}", actions.join(","))
                })
                .collect();
            parts.sort();
            assert_eq!(
                parts,
                ["repository:team/a:pull", "repository:team/c:pull,push"],
                "{header}"
            );
        }
        other => panic!("unexpected challenge {other:?} from {header}"),
    }

    let elsewhere = Target::parse(&format!("{}/other/x:1", reg.host())).unwrap();
    let err = push(
        &a.dir,
        &elsewhere,
        with_creds("alice", "pw", &tokens),
        &NoProgress,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Denied { status: 401, .. }), "{err}");
    assert!(err.is_auth());
    assert!(
        err.to_string().contains("denied alice access to other/x"),
        "{err}"
    );

    let anon = PushOptions {
        credentials: None,
        ..insecure_opts()
    };
    let err = push(&a.dir, &ta, anon, &NoProgress).unwrap_err();
    assert!(matches!(err, Error::AuthRequired { .. }), "{err}");
}
