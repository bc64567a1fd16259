//! Basic authentication against a real htpasswd-protected docker-registry.

mod common;

use common::*;
use ocipack_push::{push, Credentials, Error, NoProgress, PushOptions, Target};

fn opts(creds: Option<(&str, &str)>) -> PushOptions {
    PushOptions {
        credentials: creds.map(|(u, p)| Credentials {
            user: u.into(),
            password: p.into(),
        }),
        ..insecure_opts()
    }
}

#[test]
fn basic_auth_pushes_and_rejects_wrong_or_missing_credentials() {
    let reg = Registry::start(Some(("alice", "correct horse")));
    let tmp = tempfile::tempdir().unwrap();
    let img = write_layout(
        &tmp.path().join("img"),
        "1",
        &[&random_bytes(2 * 1024 * 1024 + 5, 9), b"tiny"],
    );
    let t = Target::parse(&format!("{}/private/app:1", reg.host())).unwrap();

    let r = push(
        &img.dir,
        &t,
        opts(Some(("alice", "correct horse"))),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(r.images[0].uploaded.blobs, 3);
    assert_eq!(
        skopeo_digest(&reg.host(), "private/app:1", Some("alice:correct horse")),
        img.manifest_digest
    );

    let err = push(&img.dir, &t, opts(Some(("alice", "wrong"))), &NoProgress).unwrap_err();
    assert!(
        matches!(err, Error::AuthRejected { status: 401, .. }),
        "{err}"
    );
    assert!(err.is_auth());
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "registry {} rejected the credentials for user alice: 401",
            reg.host()
        )),
        "{msg}"
    );
    assert!(
        !msg.contains("wrong"),
        "the password leaked into the message: {msg}"
    );

    let err = push(&img.dir, &t, opts(None), &NoProgress).unwrap_err();
    assert!(matches!(err, Error::AuthRequired { .. }), "{err}");
    assert!(err.is_auth());
    assert!(err.to_string().contains("requires authentication"), "{err}");
}

#[test]
fn credentials_come_from_the_docker_config_file() {
    let reg = Registry::start(Some(("bob", "pw")));
    let tmp = tempfile::tempdir().unwrap();
    let cfg_dir = tmp.path().join("docker");
    std::fs::create_dir_all(&cfg_dir).unwrap();
    // base64("bob:pw")
    std::fs::write(
        cfg_dir.join("config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"Ym9iOnB3"}}}}}}"#, reg.host()),
    )
    .unwrap();
    let creds =
        ocipack_push::Credentials::lookup_in(&cfg_dir.join("config.json"), &reg.host()).unwrap();
    let img = write_layout(&tmp.path().join("img"), "1", &[b"layer"]);
    let t = Target::parse(&format!("{}/bob/app:1", reg.host())).unwrap();
    let r = push(
        &img.dir,
        &t,
        PushOptions {
            credentials: creds,
            ..insecure_opts()
        },
        &NoProgress,
    )
    .unwrap();
    assert_eq!(r.images[0].manifest_digest, img.manifest_digest);
}
