//! Pushing an OCI image index (issue 16, contract 2): a two-platform layout
//! written by `ocipack index` from two images whose configs differ in
//! architecture and share a layer. Every blob goes once (the shared one
//! too), each child manifest by digest, then the index under the tag; the
//! report lists the children with their platforms.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::proxy::Proxy;
use common::*;
use ocipack_push::{push, NoProgress, PushOptions, Target};

#[test]
fn a_two_platform_index_pushes_children_by_digest_then_the_index_under_the_tag() {
    let reg = Registry::start(None);
    let proxy = Proxy::start(reg.port);
    let tmp = tempfile::tempdir().unwrap();
    let shared = random_bytes(300_000, 21);
    let amd = write_layout_arch(
        &tmp.path().join("amd64"),
        "1.0",
        "amd64",
        &[&shared, b"amd64 app"],
    );
    let arm = write_layout_arch(
        &tmp.path().join("arm64"),
        "1.0",
        "arm64",
        &[&shared, b"arm64 app"],
    );
    let out = tmp.path().join("multi");
    let written = ocipack::index::index(&[amd.dir.clone(), arm.dir.clone()], &out).unwrap();
    let index_digest = written.tags[0].index_digest.clone();

    let t = Target::parse(&format!("{}/multi:1.0", proxy.host())).unwrap();
    let opts = PushOptions {
        jobs: 4,
        ..insecure_opts()
    };
    let r = within(Duration::from_secs(60), move || {
        push(&out, &t, opts, &NoProgress).unwrap()
    });
    let im = &r.images[0];
    assert_eq!(im.manifest_digest, index_digest);
    // Two configs, the shared layer once, two app layers.
    assert_eq!(im.uploaded.blobs, 5, "{im:#?}");
    let commits = proxy.commits();
    let mut per_digest = BTreeMap::new();
    for d in &commits {
        *per_digest.entry(d.clone()).or_insert(0) += 1;
    }
    assert_eq!(per_digest.len(), 5);
    assert!(per_digest.values().all(|n| *n == 1), "{per_digest:?}");

    // The report lists the children with platforms, in index order.
    let kids: Vec<(String, String)> = im
        .children
        .iter()
        .map(|c| {
            (
                c.digest.clone(),
                c.platform
                    .as_ref()
                    .map(|p| p.to_string())
                    .unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        kids,
        [
            (amd.manifest_digest.clone(), "linux/amd64".to_string()),
            (arm.manifest_digest.clone(), "linux/arm64".to_string()),
        ]
    );
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(
        json["images"][0]["children"][1]["platform"]["architecture"],
        "arm64"
    );

    // Order on the wire: both children by digest, then the index by digest
    // and under the tag; no manifest before the last blob commit.
    let log = proxy.log();
    let manifest_puts: Vec<&str> = log
        .iter()
        .filter(|s| s.method == "PUT" && s.target.contains("/manifests/"))
        .map(|s| s.target.rsplit('/').next().unwrap())
        .collect();
    assert_eq!(manifest_puts.len(), 4, "{manifest_puts:?}");
    let mut children_put = manifest_puts[..2].to_vec();
    children_put.sort_unstable();
    let mut want = vec![amd.manifest_digest.as_str(), arm.manifest_digest.as_str()];
    want.sort_unstable();
    assert_eq!(children_put, want);
    assert_eq!(&manifest_puts[2..], [index_digest.as_str(), "1.0"]);
    let last_commit = log
        .iter()
        .rposition(|s| s.committed_digest().is_some())
        .unwrap();
    let first_manifest = log
        .iter()
        .position(|s| s.method == "PUT" && s.target.contains("/manifests/"))
        .unwrap();
    assert!(last_commit < first_manifest);

    // The registry serves the index under the tag, and each child by digest.
    assert_eq!(skopeo_digest(&reg.host(), "multi:1.0", None), index_digest);
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
    // Pushed again: nothing to send but the four manifests.
    let t = Target::parse(&format!("{}/multi:1.0", proxy.host())).unwrap();
    let again = push(&tmp.path().join("multi"), &t, insecure_opts(), &NoProgress).unwrap();
    assert_eq!(again.images[0].skipped.blobs, 5);
    assert_eq!(again.images[0].uploaded.blobs, 0);
}
