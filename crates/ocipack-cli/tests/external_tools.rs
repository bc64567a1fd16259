//! What ocipack writes, checked by tools we did not write: skopeo, umoci,
//! oci-image-tool. Missing tools fail the test loudly.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

#[test]
fn skopeo_and_oci_image_tool_accept_the_layout() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("img");
    build(&plan("gzip-only.json"), &out, &[]);
    let o = run(
        tool("skopeo")
            .arg("inspect")
            .arg(format!("oci:{}:latest", out.display())),
        true,
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["Digest"].as_str().unwrap(), manifest_digest(&out));
    assert_eq!(v["Layers"].as_array().unwrap().len(), 3);
    run(
        tool("oci-image-tool")
            .args(["validate", "--type", "image", "--ref", "name=latest"])
            .arg(&out),
        true,
    );
    // skopeo also reads the zstd golden image; --raw because its parsed view drops the Docker Healthcheck.
    let golden = t.path().join("golden");
    build(&plan("golden.json"), &golden, &[]);
    let o = run(
        tool("skopeo")
            .args(["inspect", "--config", "--raw"])
            .arg(format!("oci:{}:1.0.0", golden.display())),
        true,
    );
    let cfg: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(cfg["config"]["User"], "65532:65532");
    assert_eq!(cfg["config"]["Healthcheck"]["Interval"], 10_000_000_000u64);
}

/// (mode, uid, gid, kind) of every path under `root`.
fn tree(root: &Path) -> BTreeMap<String, (u32, u32, u32, char)> {
    let mut m = BTreeMap::new();
    for entry in walk(root) {
        let meta = std::fs::symlink_metadata(&entry).unwrap();
        let rel = format!("/{}", entry.strip_prefix(root).unwrap().display());
        let kind = if meta.is_dir() {
            'd'
        } else if meta.file_type().is_symlink() {
            'l'
        } else {
            'f'
        };
        let mode = if kind == 'l' {
            0o777
        } else {
            meta.mode() & 0o7777
        };
        m.insert(rel, (mode, meta.uid(), meta.gid(), kind));
    }
    m
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let is_dir = std::fs::symlink_metadata(&p).unwrap().is_dir();
        v.push(p.clone());
        if is_dir {
            v.extend(walk(&p));
        }
    }
    v
}

#[test]
fn umoci_unpacks_the_tree_the_plan_describes() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("img");
    build(&plan("gzip-only.json"), &out, &[]);
    let bundle = t.path().join("bundle");
    run(
        tool("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:latest", out.display()))
            .arg(&bundle),
        true,
    );
    let got = tree(&bundle.join("rootfs"));
    let expect: BTreeMap<String, (u32, u32, u32, char)> = [
        ("/app", (0o755, 0, 0, 'd')),
        ("/app/bin", (0o755, 0, 0, 'd')),
        ("/app/bin/fox-link", (0o777, 0, 0, 'l')),
        ("/app/bin/hello", (0o755, 0, 0, 'f')),
        ("/app/share", (0o755, 0, 0, 'd')),
        ("/app/share/doc", (0o755, 0, 0, 'd')),
        ("/app/share/doc/fox.txt", (0o644, 0, 0, 'f')),
        ("/data", (0o755, 65532, 65532, 'd')),
        ("/etc", (0o755, 0, 0, 'd')),
        ("/etc/group", (0o644, 0, 0, 'f')),
        ("/etc/passwd", (0o644, 0, 0, 'f')),
        ("/home", (0o755, 0, 0, 'd')),
        ("/home/app", (0o755, 65532, 65532, 'd')),
        ("/models", (0o755, 0, 0, 'd')),
        ("/models/fixture", (0o755, 0, 0, 'd')),
        ("/models/fixture/model.onnx", (0o444, 0, 0, 'f')),
        ("/tmp", (0o1777, 0, 0, 'd')),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(got, expect);
    let root = bundle.join("rootfs");
    assert_eq!(
        std::fs::read_link(root.join("app/bin/fox-link")).unwrap(),
        Path::new("../share/doc/fox.txt")
    );
    assert_eq!(
        std::fs::read(root.join("app/bin/hello")).unwrap(),
        std::fs::read(repo().join("tests/data/fixture/app/bin/hello")).unwrap()
    );
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    assert!(
        passwd.contains("app:x:65532:65532:app:/home/app:/sbin/nologin"),
        "{passwd}"
    );
}

#[test]
fn docker_archive_round_trips_through_skopeo() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("img");
    build(&plan("gzip-only.json"), &out, &[]);
    let archive = t.path().join("img.tar");
    run(
        ocipack()
            .arg("export")
            .arg(&out)
            .arg("--docker-archive")
            .arg(&archive)
            .args(["--tag", "gzip-only:latest"]),
        true,
    );
    let back = t.path().join("back");
    run(
        tool("skopeo")
            .arg("copy")
            .arg(format!("docker-archive:{}", archive.display()))
            .arg(format!("oci:{}:latest", back.display())),
        true,
    );
    // skopeo writes its own manifest; the layer content (diff_ids) must be ours.
    let ours = run(
        tool("skopeo")
            .args(["inspect", "--config"])
            .arg(format!("oci:{}:latest", out.display())),
        true,
    );
    let theirs = run(
        tool("skopeo")
            .args(["inspect", "--config"])
            .arg(format!("oci:{}:latest", back.display())),
        true,
    );
    let d = |o: &std::process::Output| {
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["rootfs"]["diff_ids"]
            .clone()
    };
    assert_eq!(d(&ours), d(&theirs));
    // The archive itself is deterministic.
    let again = t.path().join("again.tar");
    run(
        ocipack()
            .arg("export")
            .arg(&out)
            .arg("--docker-archive")
            .arg(&again)
            .args(["--tag", "gzip-only:latest"]),
        true,
    );
    assert_eq!(
        std::fs::read(&archive).unwrap(),
        std::fs::read(&again).unwrap()
    );
}
