//! End-to-end pushes against a real docker-registry, checked with skopeo.

mod common;

use std::path::PathBuf;
use std::sync::Mutex;

use common::*;
use ocipack_push::{push, push_all, BlobOutcome, Error, NoProgress, Progress, PushOptions, Target};

fn target(reg: &Registry, repo_tag: &str) -> Target {
    Target::parse(&format!("{}/{repo_tag}", reg.host())).unwrap()
}

/// config + two small layers + a 5 MiB layer (5 PATCH chunks of 1 MiB).
fn sample(dir: &std::path::Path, tag: &str, big: &[u8]) -> TestImage {
    write_layout(
        dir,
        tag,
        &[b"small layer one", &random_bytes(200_000, 7), big],
    )
}

#[test]
fn first_push_uploads_everything_and_second_sends_no_blob_bytes() {
    let reg = Registry::start(None);
    let tmp = tempfile::tempdir().unwrap();
    let big = random_bytes(5 * 1024 * 1024 + 123, 1);
    let img = sample(&tmp.path().join("img"), "1.0", &big);
    let t = target(&reg, "aurum/app:1.0");

    let first = push(&img.dir, &t, insecure_opts(), &NoProgress).unwrap();
    let im = &first.images[0];
    assert_eq!(im.manifest_digest, img.manifest_digest);
    assert_eq!(im.uploaded.blobs, 4);
    let blob_bytes: u64 = im.blobs.iter().map(|b| b.size).sum();
    assert_eq!(im.uploaded.bytes, blob_bytes);
    assert_eq!((im.skipped.blobs, im.mounted.blobs), (0, 0));
    assert_eq!(
        im.references,
        [
            format!("{}/aurum/app@{}", reg.host(), img.manifest_digest),
            format!("{}/aurum/app:1.0", reg.host())
        ]
    );
    // The registry agrees on the digest, and a copy back is byte-identical.
    assert_eq!(
        skopeo_digest(&reg.host(), "aurum/app:1.0", None),
        img.manifest_digest
    );
    let back = tmp.path().join("back");
    let st = std::process::Command::new("skopeo")
        .args([
            "copy",
            "--quiet",
            "--preserve-digests",
            "--dest-oci-accept-uncompressed-layers",
            "--src-tls-verify=false",
        ])
        .arg(format!("docker://{}/aurum/app:1.0", reg.host()))
        .arg(format!("oci:{}:1.0", back.display()))
        .status()
        .unwrap();
    assert!(st.success(), "skopeo copy back failed");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(back.join("index.json")).unwrap()).unwrap();
    assert_eq!(
        index["manifests"][0]["digest"],
        img.manifest_digest.as_str()
    );
    let big_back = std::fs::read(
        back.join("blobs/sha256")
            .join(img.layer_digests[2].trim_start_matches("sha256:")),
    )
    .unwrap();
    assert!(big_back == big, "the chunked blob came back different");

    let second = push(&img.dir, &t, insecure_opts(), &NoProgress).unwrap();
    let im2 = &second.images[0];
    assert_eq!((im2.uploaded.blobs, im2.uploaded.bytes), (0, 0));
    assert_eq!(im2.skipped.blobs, 4);
    // Only the manifest went out again (by digest and by tag).
    let manifest_len = std::fs::metadata(img.blob_path(&img.manifest_digest))
        .unwrap()
        .len();
    assert_eq!(second.bytes_sent, 2 * manifest_len);
    let json = serde_json::to_value(&second).unwrap();
    assert_eq!(json["images"][0]["blobs"][0]["outcome"], "skipped");
}

#[test]
fn shared_layer_is_mounted_not_uploaded() {
    let reg = Registry::start(None);
    let tmp = tempfile::tempdir().unwrap();
    let model = random_bytes(3 * 1024 * 1024, 2);
    let a = write_layout(&tmp.path().join("a"), "1", &[&model, b"service a"]);
    let b = write_layout(&tmp.path().join("b"), "1", &[&model, b"service b"]);
    let c = write_layout(&tmp.path().join("c"), "1", &[&model, b"service c"]);

    // One session: b mounts the model from a, which the session pushed.
    let items = vec![
        (a.dir.clone(), target(&reg, "svc-a:1")),
        (b.dir.clone(), target(&reg, "svc-b:1")),
    ];
    let before = reg.blob_store_bytes();
    let r = push_all(&items, insecure_opts(), &NoProgress).unwrap();
    let rb = &r.images[1];
    let model_digest = &a.layer_digests[0];
    let model_blob = rb.blobs.iter().find(|x| &x.digest == model_digest).unwrap();
    assert_eq!(model_blob.outcome, BlobOutcome::Mounted);
    assert_eq!(model_blob.mounted_from.as_deref(), Some("svc-a"));
    assert_eq!(rb.mounted.bytes, model.len() as u64);
    assert!(
        r.bytes_sent < model.len() as u64 + 64 * 1024,
        "model sent twice: {}",
        r.bytes_sent
    );
    // The blob store grew by one model, not two.
    let growth = reg.blob_store_bytes() - before;
    assert!(growth < 2 * model.len() as u64, "store grew by {growth}");

    // A new session learns candidates from the caller.
    let opts = PushOptions {
        mount_from: vec!["nothing-here".into(), "svc-a".into()],
        ..insecure_opts()
    };
    let r = push(&c.dir, &target(&reg, "svc-c:1"), opts, &NoProgress).unwrap();
    let im = &r.images[0];
    assert_eq!(im.mounted.blobs, 1);
    assert_eq!(
        im.uploaded.bytes,
        im.blobs
            .iter()
            .filter(|x| x.outcome == BlobOutcome::Uploaded)
            .map(|x| x.size)
            .sum::<u64>()
    );
    assert!(r.bytes_sent < 64 * 1024);
    for (repo, img) in [("svc-a:1", &a), ("svc-b:1", &b), ("svc-c:1", &c)] {
        assert_eq!(skopeo_digest(&reg.host(), repo, None), img.manifest_digest);
    }
}

/// Kills the registry from inside the push once enough of the big blob went out.
struct Killer<'a> {
    reg: Mutex<&'a mut Registry>,
    digest: String,
    after: u64,
    killed: Mutex<bool>,
    retries: Mutex<u32>,
}

impl Progress for Killer<'_> {
    fn blob_progress(&self, digest: &str, sent: u64, _size: u64) {
        let mut killed = self.killed.lock().unwrap();
        if digest == self.digest && sent >= self.after && !*killed {
            self.reg.lock().unwrap().kill();
            *killed = true;
        }
    }
    fn retrying(&self, _what: &str, _attempt: u32, _delay: std::time::Duration, _reason: &str) {
        *self.retries.lock().unwrap() += 1;
    }
}

#[test]
fn interrupted_push_resumes_and_sends_only_what_is_missing() {
    let mut reg = Registry::start(None);
    let tmp = tempfile::tempdir().unwrap();
    let big = random_bytes(8 * 1024 * 1024, 3);
    let img = sample(&tmp.path().join("img"), "v1", &big);
    let t = target(&reg, "resume:v1");
    let killer = Killer {
        reg: Mutex::new(&mut reg),
        digest: img.layer_digests[2].clone(),
        after: 3 * 1024 * 1024,
        killed: Mutex::new(false),
        retries: Mutex::new(0),
    };
    let err = push(&img.dir, &t, insecure_opts(), &killer).unwrap_err();
    assert!(*killer.killed.lock().unwrap());
    assert!(
        *killer.retries.lock().unwrap() >= 2,
        "retries were not attempted"
    );
    assert!(matches!(err, Error::Http { .. }), "unexpected error: {err}");
    drop(killer);

    reg.restart();
    let r = push(&img.dir, &t, insecure_opts(), &NoProgress).unwrap();
    let im = &r.images[0];
    // Config and the two small layers went in before the kill.
    assert_eq!(im.skipped.blobs, 3, "{im:#?}");
    assert_eq!(im.uploaded.blobs, 1);
    assert_eq!(im.uploaded.bytes, big.len() as u64);
    assert_eq!(
        skopeo_digest(&reg.host(), "resume:v1", None),
        img.manifest_digest
    );
}

#[test]
fn corrupt_blob_is_refused_and_never_committed() {
    let reg = Registry::start(None);
    let tmp = tempfile::tempdir().unwrap();
    let big = random_bytes(3 * 1024 * 1024, 4);
    for (i, which) in [1usize, 2].into_iter().enumerate() {
        // 1: a small layer (single PUT), 2: the big one (chunked PATCH).
        let img = sample(&tmp.path().join(format!("img{i}")), "x", &big);
        let digest = &img.layer_digests[which];
        let path: PathBuf = img.blob_path(digest);
        let mut bytes = std::fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff; // same size: only the hash can tell
        std::fs::write(&path, &bytes).unwrap();

        let repo = format!("corrupt{i}");
        let err = push(
            &img.dir,
            &target(&reg, &format!("{repo}:x")),
            insecure_opts(),
            &NoProgress,
        )
        .unwrap_err();
        match &err {
            Error::DigestMismatch {
                path: p, expected, ..
            } => {
                assert_eq!(p, &path);
                assert_eq!(expected, digest);
            }
            other => panic!("expected a digest mismatch, got {other}"),
        }
        assert!(err.to_string().contains(&path.display().to_string()));
        assert!(
            !blob_exists(&reg.host(), &repo, digest),
            "corrupt blob was committed"
        );
        assert_eq!(
            status_of(
                &format!("http://{}/v2/{repo}/manifests/x", reg.host()),
                "HEAD"
            ),
            404
        );
    }
}

#[test]
fn image_index_pushes_children_first() {
    let reg = Registry::start(None);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("multi");
    let amd = write_layout(&dir, "amd64", &[b"amd64 layer"]);
    let arm = write_layout(&dir, "arm64", &[b"arm64 layer", b"shared"]);
    let entry = |img: &TestImage, arch: &str| {
        let size = std::fs::metadata(img.blob_path(&img.manifest_digest))
            .unwrap()
            .len();
        serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": img.manifest_digest, "size": size,
            "platform": {"architecture": arch, "os": "linux"},
        })
    };
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry(&amd, "amd64"), entry(&arm, "arm64")],
    }))
    .unwrap();
    let index_digest = sha256(&index);
    std::fs::write(
        dir.join("blobs/sha256")
            .join(index_digest.trim_start_matches("sha256:")),
        &index,
    )
    .unwrap();
    let top = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": index_digest, "size": index.len(),
        "annotations": {"org.opencontainers.image.ref.name": "multi"},
    }]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();

    let r = push(&dir, &target(&reg, "multi"), insecure_opts(), &NoProgress).unwrap();
    let im = &r.images[0];
    assert_eq!(im.manifest_digest, index_digest);
    assert_eq!(
        im.uploaded.blobs, 5,
        "two configs and three layers: {im:#?}"
    );
    assert_eq!(
        skopeo_digest(&reg.host(), "multi:multi", None),
        index_digest
    );
    for child in [&amd, &arm] {
        assert_eq!(
            skopeo_digest(
                &reg.host(),
                &format!("multi@{}", child.manifest_digest),
                None
            ),
            child.manifest_digest
        );
    }
}

// Layouts built by Nix point their blobs into /nix/store.
#[test]
fn symlinked_blobs_are_followed() {
    let reg = Registry::start(None);
    let tmp = tempfile::tempdir().unwrap();
    let img = write_layout(&tmp.path().join("img"), "s", &[&random_bytes(1_500_000, 5)]);
    let store = tmp.path().join("store");
    std::fs::create_dir_all(&store).unwrap();
    for d in [&img.layer_digests[0], &img.config_digest] {
        let blob = img.blob_path(d);
        let target = store.join(d.trim_start_matches("sha256:"));
        std::fs::rename(&blob, &target).unwrap();
        std::os::unix::fs::symlink(&target, &blob).unwrap();
    }
    let r = push(
        &img.dir,
        &target(&reg, "linked:s"),
        insecure_opts(),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(r.images[0].uploaded.blobs, 2);
    assert_eq!(
        skopeo_digest(&reg.host(), "linked:s", None),
        img.manifest_digest
    );
}

#[test]
fn plain_http_needs_the_insecure_option() {
    let t = Target::parse("http://127.0.0.1:1/app:1").unwrap();
    let err = push(
        std::path::Path::new("/nonexistent"),
        &t,
        PushOptions::default(),
        &NoProgress,
    )
    .unwrap_err();
    assert!(matches!(err, Error::InsecureRefused { .. }), "{err}");
    assert!(err.to_string().contains("--insecure"));
}

#[test]
fn missing_tag_names_the_available_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let a = write_layout(&tmp.path().join("a"), "one", &[b"x"]);
    // Add a second manifest so "only manifest" fallback does not apply.
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.dir.join("index.json")).unwrap()).unwrap();
    let mut second = index["manifests"][0].clone();
    second["annotations"]["org.opencontainers.image.ref.name"] = "two".into();
    index["manifests"].as_array_mut().unwrap().push(second);
    std::fs::write(
        a.dir.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    let t = Target::parse("127.0.0.1:1/app:three").unwrap();
    let err = push(
        &a.dir,
        &t,
        PushOptions {
            insecure: true,
            ..Default::default()
        },
        &NoProgress,
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("\"one\"") && msg.contains("\"two\""), "{msg}");
}
