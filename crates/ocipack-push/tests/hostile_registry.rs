//! Registries that misbehave on purpose (issue 11): an upload `Location` on
//! another origin, a token realm on plain HTTP elsewhere, a registry that
//! never answers. Small loopback servers written here play the registry and
//! record every header they receive; a second server on another port is
//! another origin.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::hostile::{Reply, Seen, Server, Silent};
use common::*;
use ocipack_push::{push, Credentials, Error, NoProgress, PushOptions, Target};

const TOKEN: &str = "tok-for-the-registry-only";

fn creds() -> Credentials {
    Credentials {
        user: "alice".into(),
        password: "s3cret".into(),
    }
}

fn basic() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("alice:s3cret")
    )
}

/// Upload storage on its own port: accepts PATCH and PUT, records headers.
fn storage() -> Server {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    Server::serve(
        listener,
        Arc::new(move |s: &Seen| match s.method.as_str() {
            "PATCH" => Reply::new(202)
                .header("Location", &format!("http://127.0.0.1:{port}/upload/1"))
                .header("Range", "0-0"),
            "PUT" => Reply::new(201),
            _ => Reply::new(404),
        }),
    )
}

/// A registry that authenticates with the challenge `challenge(own port)`,
/// accepts `good` as the Authorization value, hands out tokens at `/token`
/// and sends every upload to `upload_host`.
fn registry(challenge: impl Fn(u16) -> String, good: String, upload_host: String) -> Server {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let challenge = challenge(listener.local_addr().unwrap().port());
    Server::serve(
        listener,
        Arc::new(move |s: &Seen| {
            if s.path.starts_with("/token") {
                return Reply::new(200).body(format!(r#"{{"token":"{TOKEN}"}}"#).as_bytes());
            }
            if s.header("authorization") != Some(good.as_str()) {
                return Reply::new(401)
                    .header("WWW-Authenticate", &challenge)
                    .body(br#"{"errors":[{"code":"UNAUTHORIZED","message":"auth"}]}"#);
            }
            match (s.method.as_str(), s.path.as_str()) {
                ("GET", "/v2/") => Reply::new(200),
                ("HEAD", p) if p.contains("/blobs/") => Reply::new(404),
                ("POST", p) if p.contains("/blobs/uploads/") => Reply::new(202)
                    .header("Location", &format!("http://{upload_host}/upload/1"))
                    .header("Range", "0-0"),
                ("PUT", p) if p.contains("/manifests/") => Reply::new(201),
                _ => Reply::new(404),
            }
        }),
    )
}

fn opts() -> PushOptions {
    PushOptions {
        credentials: Some(creds()),
        ..insecure_opts()
    }
}

/// One small layer (monolithic PUT) and one of 1.5 MiB (PATCH chunks of 1 MiB).
fn layout(dir: &std::path::Path) -> TestImage {
    write_layout(
        dir,
        "1",
        &[b"small", &random_bytes(1024 * 1024 + 512 * 1024, 9)],
    )
}

fn no_credentials_reached(storage: &Server) {
    let seen = storage.requests();
    assert!(
        seen.iter().any(|s| s.method == "PUT"),
        "the upload never reached the other origin: {seen:?}"
    );
    for s in &seen {
        assert_eq!(
            s.header("authorization"),
            None,
            "{} {} on another origin carried credentials",
            s.method,
            s.path
        );
    }
}

// Issue 11, item 2: `Authorization: Basic` followed an upload Location to
// another origin.
#[test]
fn basic_credentials_never_follow_a_location_to_another_origin() {
    let store = storage();
    let reg = registry(|_| r#"Basic realm="hostile""#.into(), basic(), store.host());
    let tmp = tempfile::tempdir().unwrap();
    let img = layout(&tmp.path().join("img"));
    let t = Target::parse(&format!("{}/app:1", reg.host())).unwrap();
    let r = push(&img.dir, &t, opts(), &NoProgress).unwrap();
    assert_eq!(r.images[0].uploaded.blobs, 3);
    no_credentials_reached(&store);
    // The registry itself did get them, so the test is not vacuous.
    assert!(reg
        .requests()
        .iter()
        .any(|s| s.header("authorization") == Some(basic().as_str())));
}

#[test]
fn bearer_tokens_never_follow_a_location_to_another_origin() {
    let store = storage();
    // The realm is on the registry's own origin (plain HTTP is fine there).
    let reg = registry(
        |port| format!(r#"Bearer realm="http://127.0.0.1:{port}/token",service="t""#),
        format!("Bearer {TOKEN}"),
        store.host(),
    );
    let tmp = tempfile::tempdir().unwrap();
    let img = layout(&tmp.path().join("img"));
    let t = Target::parse(&format!("{}/app:1", reg.host())).unwrap();
    let r = push(&img.dir, &t, opts(), &NoProgress).unwrap();
    assert_eq!(r.images[0].uploaded.blobs, 3);
    no_credentials_reached(&store);
    let seen = reg.requests();
    assert!(seen
        .iter()
        .any(|s| s.header("authorization") == Some(format!("Bearer {TOKEN}").as_str())));
    // The token request (and only it) carried the password.
    for s in &seen {
        if s.header("authorization") == Some(basic().as_str()) {
            assert!(s.path.starts_with("/token"), "Basic sent to {}", s.path);
        }
    }
}

// The token protocol sends the password to the realm; over plain HTTP to
// another host that is the password in clear to whoever runs that host.
#[test]
fn basic_is_not_sent_to_a_plain_http_realm_on_another_host_unless_named() {
    let realm = Server::start(|s: &Seen| {
        if s.path.starts_with("/token") {
            Reply::new(200).body(format!(r#"{{"token":"{TOKEN}"}}"#).as_bytes())
        } else {
            Reply::new(404)
        }
    });
    let challenge = format!(
        r#"Bearer realm="http://{}/token",service="t""#,
        realm.host()
    );
    let reg = Server::start(move |s: &Seen| {
        if s.header("authorization") != Some(format!("Bearer {TOKEN}").as_str()) {
            return Reply::new(401).header("WWW-Authenticate", &challenge);
        }
        match (s.method.as_str(), s.path.as_str()) {
            ("GET", "/v2/") => Reply::new(200),
            ("HEAD", p) if p.contains("/blobs/") => Reply::new(200),
            ("PUT", p) if p.contains("/manifests/") => Reply::new(201),
            _ => Reply::new(404),
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let img = write_layout(&tmp.path().join("img"), "1", &[b"x"]);
    let t = Target::parse(&format!("{}/app:1", reg.host())).unwrap();

    let err = push(&img.dir, &t, opts(), &NoProgress).unwrap_err();
    assert!(matches!(err, Error::InsecureRealm { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("--insecure={}", realm.host())),
        "{msg}"
    );
    assert!(
        realm.requests().is_empty(),
        "the realm was contacted: {:?}",
        realm.requests()
    );

    // Named insecure: the realm gets the password, on the token request only.
    let named = PushOptions {
        insecure_hosts: vec![realm.host()],
        ..opts()
    };
    push(&img.dir, &t, named, &NoProgress).unwrap();
    let seen = realm.requests();
    assert!(!seen.is_empty());
    for s in &seen {
        assert!(s.path.starts_with("/token"));
        assert_eq!(s.header("authorization"), Some(basic().as_str()));
    }
    for s in reg.requests() {
        assert_ne!(s.header("authorization"), Some(basic().as_str()));
    }
}

// Issue 11, item 7: a registry that accepts connections and never answers
// held a push for up to ~50 minutes.
#[test]
fn a_registry_that_never_answers_ends_the_push_at_the_deadline() {
    let silent = Silent::start();
    let tmp = tempfile::tempdir().unwrap();
    let img = write_layout(&tmp.path().join("img"), "1", &[b"x"]);
    let t = Target::parse(&format!("127.0.0.1:{}/app:1", silent.port)).unwrap();
    let started = Instant::now();
    let err = within(Duration::from_secs(15), move || {
        let o = PushOptions {
            timeout: Some(Duration::from_secs(2)),
            idle_timeout: Duration::from_secs(60),
            ..insecure_opts()
        };
        push(&img.dir, &t, o, &NoProgress).unwrap_err()
    });
    let took = started.elapsed();
    assert!(matches!(err, Error::Deadline { .. }), "{err}");
    assert!(err.to_string().contains("--timeout"), "{err}");
    assert!(took < Duration::from_secs(4), "took {took:?}");
}

#[test]
fn a_registry_that_never_answers_fails_each_try_after_the_idle_timeout() {
    let silent = Silent::start();
    let tmp = tempfile::tempdir().unwrap();
    let img = write_layout(&tmp.path().join("img"), "1", &[b"x"]);
    let t = Target::parse(&format!("127.0.0.1:{}/app:1", silent.port)).unwrap();
    let started = Instant::now();
    let err = within(Duration::from_secs(15), move || {
        let o = PushOptions {
            timeout: None,
            idle_timeout: Duration::from_millis(500),
            ..insecure_opts()
        };
        push(&img.dir, &t, o, &NoProgress).unwrap_err()
    });
    let took = started.elapsed();
    // 3 tries of 0.5 s plus 50 + 100 ms of backoff.
    assert!(
        matches!(err, Error::NoAnswer { tries: 3, .. }),
        "{err} ({err:?})"
    );
    assert!(err.to_string().contains("no answer"), "{err}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

// Review of issue 15's reader: registries answer blob GETs with a redirect
// to their storage (GHCR, Docker Hub, ECR); `verify --remote` failed on
// every such registry ("GET .../blobs/... answered 307"). The redirect is
// now followed, and the storage host (another origin) gets no credentials.
#[test]
fn a_blob_redirected_to_storage_is_read_without_sending_credentials_there() {
    use ocipack_push::{Remote, RemoteRef};
    let blob = b"signed payload".to_vec();
    let digest = sha256(&blob);
    let served = blob.clone();
    let store = Server::start(move |s: &Seen| {
        if s.path.starts_with("/bucket/") {
            Reply::new(200).body(&served)
        } else {
            Reply::new(404)
        }
    });
    let to = format!("http://{}/bucket/{digest}?sig=x", store.host());
    let reg = Server::start(move |s: &Seen| {
        if s.header("authorization") != Some(basic().as_str()) {
            return Reply::new(401).header("WWW-Authenticate", r#"Basic realm="r""#);
        }
        match s.path.as_str() {
            "/v2/" => Reply::new(200),
            p if p.starts_with("/v2/app/blobs/") => Reply::new(307).header("Location", &to),
            p if p.starts_with("/v2/loop/blobs/") => Reply::new(302).header("Location", p),
            _ => Reply::new(404),
        }
    });
    let r = RemoteRef::parse(&format!("{}/app:1", reg.host())).unwrap();
    let remote = Remote::new(&r, opts()).unwrap();
    let d = ocipack::layout::Descriptor {
        media_type: "application/octet-stream".into(),
        digest: digest.clone(),
        size: blob.len() as u64,
        annotations: Default::default(),
    };
    assert_eq!(remote.blob("app", &d, 1024).unwrap(), blob);
    let seen = store.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].header("authorization"), None, "{seen:?}");

    // A storage answer of another size or digest is refused.
    let short = ocipack::layout::Descriptor {
        size: blob.len() as u64 - 1,
        ..d.clone()
    };
    let err = remote.blob("app", &short, 1024).unwrap_err();
    assert!(matches!(err, Error::Protocol { .. }), "{err}");

    // Redirects are followed a few hops, not forever.
    let err = remote.blob("loop", &d, 1024).unwrap_err();
    assert!(err.to_string().contains("302"), "{err}");
}

// Review of issue 15: a referrers API answer in pages (`Link: <...>;
// rel="next"`, as the distribution spec allows) was read up to its first
// page, so a signature or SBOM listed later was "missing".
#[test]
fn referrers_api_pages_are_all_read() {
    use ocipack_push::{Remote, RemoteRef, Via};
    let subject = format!("sha256:{}", "d".repeat(64));
    let entry = |c: char| {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{}","size":3,"artifactType":"t/{c}"}}]}}"#,
            c.to_string().repeat(64)
        )
    };
    let (first, second) = (entry('a'), entry('b'));
    let page1 = format!("/v2/app/referrers/{subject}");
    let reg = Server::start(move |s: &Seen| match s.path.as_str() {
        "/v2/" => Reply::new(200),
        p if p == page1 => Reply::new(200)
            .header("Content-Type", "application/vnd.oci.image.index.v1+json")
            .header("Link", &format!(r#"<{page1}?n=1&last=a>; rel="next""#))
            .body(first.as_bytes()),
        p if p.starts_with(&page1) && p.contains("last=a") => Reply::new(200)
            .header("Content-Type", "application/vnd.oci.image.index.v1+json")
            .body(second.as_bytes()),
        _ => Reply::new(404),
    });
    let r = RemoteRef::parse(&format!("{}/app:1", reg.host())).unwrap();
    let remote = Remote::new(&r, insecure_opts()).unwrap();
    let refs = remote.referrers("app", &subject).unwrap();
    assert_eq!(refs.via, Via::Api);
    let types: Vec<&str> = refs
        .manifests
        .iter()
        .map(|m| m.artifact_type.as_str())
        .collect();
    assert_eq!(types, ["t/a", "t/b"]);
}
