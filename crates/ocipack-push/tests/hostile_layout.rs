//! Layouts that lie (issue 11, push side): a blob that is a symlink to a file
//! outside the layout, FIFOs, a wrong manifest size in index.json, index
//! fan-outs and index entry counts meant to exhaust time, memory or the
//! registry. Each is refused before any byte of it leaves, or pushed with
//! bounded work.

mod common;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use ocipack_push::{push, Error, NoProgress, Progress, PushOptions, Target};

/// A target where nothing listens: a push that gets past its pre-flight
/// fails with a connection error, one refused by the pre-flight never tries.
fn nowhere() -> Target {
    Target::parse("127.0.0.1:1/app:1").unwrap()
}

fn nowhere_untagged() -> Target {
    Target::parse("127.0.0.1:1/app").unwrap()
}

fn rewrite_index(dir: &std::path::Path, f: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("index.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
}

#[derive(Default)]
struct Record {
    progress: Mutex<Vec<(String, u64)>>,
    manifests: Mutex<Vec<String>>,
}

impl Progress for Record {
    fn blob_progress(&self, digest: &str, sent: u64, _size: u64) {
        self.progress
            .lock()
            .unwrap()
            .push((digest.to_string(), sent));
    }
    fn manifest_pushed(&self, _repository: &str, reference: &str) {
        self.manifests.lock().unwrap().push(reference.to_string());
    }
}

// Issue 11, item 6: a chunked push sent 3 MB of a file outside the layout
// before the digest mismatch cancelled the upload.
#[test]
fn a_blob_linked_to_a_file_outside_the_layout_sends_no_byte() {
    let reg = Registry::start(None);
    let tmp = tempfile::tempdir().unwrap();
    let big = random_bytes(3 * 1024 * 1024, 11);
    let img = write_layout(&tmp.path().join("img"), "1", &[b"small", &big]);
    let digest = img.layer_digests[1].clone();
    // A "secret" of the same size outside the layout, linked in its place.
    let secret = tmp.path().join("secret.env");
    std::fs::write(&secret, random_bytes(big.len(), 12)).unwrap();
    let blob = img.blob_path(&digest);
    std::fs::remove_file(&blob).unwrap();
    std::os::unix::fs::symlink(&secret, &blob).unwrap();

    let rec = Record::default();
    let t = Target::parse(&format!("{}/leak:1", reg.host())).unwrap();
    let err = push(&img.dir, &t, insecure_opts(), &rec).unwrap_err();
    assert!(
        matches!(&err, Error::DigestMismatch { expected, .. } if *expected == digest),
        "{err}"
    );
    let sent: Vec<_> = rec
        .progress
        .lock()
        .unwrap()
        .iter()
        .filter(|(d, _)| *d == digest)
        .cloned()
        .collect();
    assert!(
        sent.is_empty(),
        "bytes of the outside file reached the registry: {sent:?}"
    );
    // No upload session was even opened for it.
    let uploads = reg
        .dir
        .path()
        .join("data/docker/registry/v2/repositories/leak/_uploads");
    let open: Vec<_> = std::fs::read_dir(&uploads)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(open.is_empty(), "upload sessions left: {open:?}");
    assert!(!blob_exists(&reg.host(), "leak", &digest));
}

// Issue 11, item 10: a wrong manifest size in index.json was pushed without
// complaint.
#[test]
fn a_wrong_manifest_size_in_the_index_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let img = write_layout(&tmp.path().join("img"), "1", &[b"x"]);
    rewrite_index(&img.dir, |v| {
        let size = v["manifests"][0]["size"].as_u64().unwrap();
        v["manifests"][0]["size"] = (size + 1).into();
    });
    let err = push(&img.dir, &nowhere(), insecure_opts(), &NoProgress).unwrap_err();
    assert!(matches!(err, Error::Layout { .. }), "{err}");
    assert!(err.to_string().contains("descriptor says"), "{err}");
}

fn mkfifo(path: &std::path::Path) {
    let st = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success());
}

// Issue 11, item 4: index.json or a manifest that is a FIFO was read forever.
#[test]
fn fifos_in_place_of_index_or_manifest_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let a = write_layout(&tmp.path().join("a"), "1", &[b"x"]);
    std::fs::remove_file(a.dir.join("index.json")).unwrap();
    mkfifo(&a.dir.join("index.json"));
    let b = write_layout(&tmp.path().join("b"), "1", &[b"x"]);
    let m = b.blob_path(&b.manifest_digest);
    std::fs::remove_file(&m).unwrap();
    mkfifo(&m);
    let c = write_layout(&tmp.path().join("c"), "1", &[b"x"]);
    let l = c.blob_path(&c.layer_digests[0]);
    std::fs::remove_file(&l).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &l).unwrap();
    for dir in [a.dir, b.dir, c.dir] {
        let err = within(Duration::from_secs(10), move || {
            push(&dir, &nowhere(), insecure_opts(), &NoProgress).unwrap_err()
        });
        assert!(matches!(err, Error::Layout { .. }), "{err}");
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }
}

/// Writes an image index blob listing `child` `n` times; returns its descriptor.
fn index_listing(dir: &std::path::Path, child: &serde_json::Value, n: usize) -> serde_json::Value {
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": vec![child.clone(); n],
    }))
    .unwrap();
    let digest = sha256(&index);
    std::fs::write(
        dir.join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
        &index,
    )
    .unwrap();
    serde_json::json!({
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": digest, "size": index.len(),
    })
}

fn image_descriptor(img: &TestImage) -> serde_json::Value {
    let size = std::fs::metadata(img.blob_path(&img.manifest_digest))
        .unwrap()
        .len();
    serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": img.manifest_digest, "size": size,
    })
}

// Issue 11, item 4: a 4-level index fan-out expanded into a tree (4 GB RSS
// for a 64 KB layout; 11,110 manifest PUTs for a smaller one). Each distinct
// manifest is read and put once.
#[test]
fn a_fan_out_of_shared_indexes_is_pushed_once_per_manifest() {
    let reg = Registry::start(None);
    let tmp = tempfile::tempdir().unwrap();
    let img = write_layout(&tmp.path().join("fan"), "x", &[b"the only layer"]);
    let mut d = image_descriptor(&img);
    for _ in 0..3 {
        d = index_listing(&img.dir, &d, 10);
    }
    let top = d["digest"].as_str().unwrap().to_string();
    rewrite_index(&img.dir, |v| {
        let mut e = d.clone();
        e["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": "fan"});
        v["manifests"] = serde_json::json!([e]);
    });
    let rec = Record::default();
    let t = Target::parse(&format!("{}/fan:fan", reg.host())).unwrap();
    let started = Instant::now();
    let r = push(&img.dir, &t, insecure_opts(), &rec).unwrap();
    assert_eq!(r.images[0].manifest_digest, top);
    // The image, three indexes, the top one again by tag.
    let puts = rec.manifests.lock().unwrap().clone();
    assert_eq!(puts.len(), 5, "{} manifest PUTs", puts.len());
    assert_eq!(skopeo_digest(&reg.host(), "fan:fan", None), top);
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn an_index_wider_than_the_limit_is_refused_before_any_request() {
    let tmp = tempfile::tempdir().unwrap();
    let img = write_layout(&tmp.path().join("wide"), "x", &[b"layer"]);
    let d = index_listing(&img.dir, &image_descriptor(&img), 1025);
    rewrite_index(&img.dir, |v| v["manifests"] = serde_json::json!([d]));
    let err = push(&img.dir, &nowhere(), insecure_opts(), &NoProgress).unwrap_err();
    assert!(matches!(err, Error::Layout { .. }), "{err}");
    assert!(err.to_string().contains("limit max_index_entries"), "{err}");
}

// Issue 11, item 4: push's pre-flight was quadratic in index entries
// (40,000 entries: 52 s). The reader's limits (4 MiB, 1024 entries per
// index) refuse such an index at once, whether the entries name distinct
// manifests or one manifest under 40,000 tags (40,001 PUTs before).
#[test]
fn forty_thousand_index_entries_are_refused_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let img = write_layout(&tmp.path().join("many"), "x", &[b"layer"]);
    let one = image_descriptor(&img);
    for distinct in [true, false] {
        rewrite_index(&img.dir, |v| {
            let entries: Vec<serde_json::Value> = (0..40_000u64)
                .map(|i| {
                    let mut e = one.clone();
                    if distinct {
                        e["digest"] = format!("sha256:{i:064x}").into();
                    }
                    e["annotations"] =
                        serde_json::json!({"org.opencontainers.image.ref.name": format!("t{i}")});
                    e
                })
                .collect();
            v["manifests"] = entries.into();
        });
        let dir = img.dir.clone();
        let started = Instant::now();
        let err = within(Duration::from_secs(30), move || {
            push(&dir, &nowhere_untagged(), insecure_opts(), &NoProgress).unwrap_err()
        });
        let took = started.elapsed();
        assert!(matches!(err, Error::Layout { .. }), "{err}");
        assert!(err.to_string().contains("(limit max_"), "{err}");
        assert!(took < Duration::from_secs(5), "took {took:?}");
    }
}

// Well under the limits, one tag out of 1,000 entries is found at once and
// needs no other manifest.
#[test]
fn one_tag_of_a_thousand_index_entries_passes_the_pre_flight() {
    let tmp = tempfile::tempdir().unwrap();
    let img = write_layout(&tmp.path().join("many"), "x", &[b"layer"]);
    let one = image_descriptor(&img);
    rewrite_index(&img.dir, |v| {
        let entries: Vec<serde_json::Value> = (0..1000u64)
            .map(|i| {
                let mut e = one.clone();
                e["annotations"] =
                    serde_json::json!({"org.opencontainers.image.ref.name": format!("t{i}")});
                e
            })
            .collect();
        v["manifests"] = entries.into();
    });
    let err = push(
        &img.dir,
        &Target::parse("127.0.0.1:1/app:t999").unwrap(),
        PushOptions {
            retry: ocipack_push::RetryPolicy {
                max_tries: 1,
                ..fast_retry()
            },
            ..insecure_opts()
        },
        &NoProgress,
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::Http { .. }),
        "got past pre-flight: {err}"
    );
}
