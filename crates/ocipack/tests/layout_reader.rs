//! The one layout reader (issue 11 "reading untrusted layouts as a rule",
//! issue 12 "one OCI layout module"): verified streaming, regular files only,
//! and bounded walks over nested indexes.

use std::io::Read;
use std::path::Path;

use ocipack::digest::sha256;
use ocipack::layout::{BlobMismatch, Descriptor, Layout, Limits, VerifiedReader};
use ocipack::Error;

mod common;
use common::{put, INDEX, MANIFEST};

fn layout_dir() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(
        t.path().join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    std::fs::write(
        t.path().join("index.json"),
        r#"{"schemaVersion":2,"manifests":[]}"#,
    )
    .unwrap();
    t
}

fn image(dir: &Path, tag: &str) -> Descriptor {
    let layer = put(
        dir,
        "application/vnd.oci.image.layer.v1.tar",
        tag.as_bytes(),
    );
    let config = put(dir, "application/vnd.oci.image.config.v1+json", b"{}");
    let m = serde_json::json!({"schemaVersion": 2, "mediaType": MANIFEST, "config": config, "layers": [layer]});
    put(dir, MANIFEST, &serde_json::to_vec(&m).unwrap())
}

fn index_of(dir: &Path, children: &[Descriptor]) -> Descriptor {
    let i = serde_json::json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": children});
    put(dir, INDEX, &serde_json::to_vec(&i).unwrap())
}

#[test]
fn verified_reader_hands_on_nothing_unverified() {
    let good = b"hello world";
    let d = sha256(good);
    let mut r = VerifiedReader::new(&good[..], &d, Some(good.len() as u64));
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    assert!(r.is_verified());
    assert_eq!(out, good);

    // Same size, other bytes: the final read fails, carrying the mismatch.
    let bad = b"hello worle";
    let mut r = VerifiedReader::new(&bad[..], &d, Some(11));
    let e = r.read_to_end(&mut Vec::new()).unwrap_err();
    let m = e.get_ref().unwrap().downcast_ref::<BlobMismatch>().unwrap();
    assert_eq!(m.actual_digest.as_deref(), Some(sha256(bad).as_str()));
    assert!(!r.is_verified());

    // Longer than declared: stops one byte past and yields none of the excess.
    let long = vec![7u8; 1 << 20];
    let mut r = VerifiedReader::new(&long[..], &d, Some(11));
    let mut buf = vec![0u8; 1 << 16];
    let mut handed = 0;
    let err = loop {
        match r.read(&mut buf) {
            Ok(0) => panic!("a longer blob reached a clean end"),
            Ok(n) => handed += n,
            Err(e) => break e,
        }
    };
    assert!(handed <= 11, "handed on {handed} bytes");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
}

#[test]
fn open_blob_refuses_fifos_devices_and_wrong_sizes_before_reading() {
    let t = layout_dir();
    let d = put(t.path(), "x", b"data");
    let layout = Layout::open(t.path()).unwrap();
    let path = layout.blob_path(&d.digest).unwrap();

    let mut wrong = d.clone();
    wrong.size = 5;
    assert!(matches!(layout.open_blob(&wrong), Err(Error::Blob { .. })));

    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
    let e = layout.open_blob(&d).unwrap_err().to_string();
    assert!(e.contains("character device, not a regular file"), "{e}");

    std::fs::remove_file(&path).unwrap();
    assert!(std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .unwrap()
        .success());
    // Opening a FIFO nobody writes to would block forever without O_NONBLOCK.
    let e = layout.open_blob(&d).unwrap_err().to_string();
    assert!(e.contains("a fifo, not a regular file"), "{e}");
    let e = layout.read_blob(&d.digest, None).unwrap_err().to_string();
    assert!(e.contains("fifo"), "{e}");
}

#[test]
fn nested_indexes_are_bounded_in_depth() {
    let t = layout_dir();
    let mut top = image(t.path(), "a");
    for _ in 0..5 {
        top = index_of(t.path(), &[top]);
    }
    let layout = Layout::open(t.path()).unwrap();
    match layout.graph(&[top.clone()]) {
        Err(Error::Limit { limit, .. }) => assert_eq!(limit, "max_index_depth"),
        other => panic!("{other:?}"),
    }
    // Four levels of index below the root are fine.
    let ok = Limits {
        max_index_depth: 5,
        ..Limits::default()
    };
    let layout = Layout::open_with(t.path(), ok, Default::default()).unwrap();
    let g = layout.graph(&[top.clone()]).unwrap();
    assert_eq!(g.children_first(&top.digest).len(), 6);
}

#[test]
fn fan_out_reads_each_manifest_once_and_is_bounded() {
    let t = layout_dir();
    // The same image listed 1000 times by one index, that index 1000 times
    // by the next: one million references, two distinct manifests below.
    let img = image(t.path(), "a");
    let mid = index_of(t.path(), &vec![img.clone(); 1000]);
    let top = index_of(t.path(), &vec![mid.clone(); 1000]);
    let layout = Layout::open(t.path()).unwrap();
    let g = layout.graph(std::slice::from_ref(&top)).unwrap();
    let order: Vec<&str> = g
        .children_first(&top.digest)
        .iter()
        .map(|m| m.descriptor.digest.as_str())
        .collect();
    assert_eq!(order, [&img.digest, &mid.digest, &top.digest]);
    assert_eq!(g.blobs(&top.digest).len(), 2, "config and layer once");

    // Many distinct manifests: refused at the limit, quickly.
    let imgs: Vec<_> = (0..40).map(|i| image(t.path(), &format!("i{i}"))).collect();
    let mids: Vec<_> = (0..40)
        .map(|i| {
            let mut v = imgs.clone();
            v.rotate_left(i);
            v.truncate(39);
            index_of(t.path(), &v)
        })
        .collect();
    let top = index_of(t.path(), &mids);
    let small = Limits {
        max_manifests: 50,
        ..Limits::default()
    };
    let layout = Layout::open_with(t.path(), small, Default::default()).unwrap();
    match layout.graph(&[top]) {
        Err(Error::Limit { limit, .. }) => assert_eq!(limit, "max_manifests"),
        other => panic!("{other:?}"),
    }
    let many = index_of(t.path(), &vec![img; 1025]);
    let layout = Layout::open(t.path()).unwrap();
    match layout.graph(&[many]) {
        Err(Error::Limit { limit, .. }) => assert_eq!(limit, "max_index_entries"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_manifest_named_with_the_wrong_size_is_refused() {
    let t = layout_dir();
    let mut img = image(t.path(), "a");
    img.size += 1;
    let layout = Layout::open(t.path()).unwrap();
    assert!(matches!(layout.graph(&[img]), Err(Error::Blob { .. })));
}
