//! The same plan and input bytes give the same digests whatever the
//! conditions: output dir, cwd, umask, TZ, LANG, mtimes, inode numbers,
//! directory order, thread count.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

/// Creates the same tree under `root` with a shell, so umask, creation order
/// and mtimes really differ between variants.
/// The `reverse` variant also stores `d/same` as a hard link where the other
/// copies the file: hard links are always packed as separate regular files.
fn make_tree(root: &Path, umask: &str, reverse: bool, stamp: &str) {
    let mut script = format!(
        "set -e; umask {umask}; mkdir -p {r}; cd {r}; ",
        r = root.display()
    );
    let mut steps = [
        "mkdir -p a/b/c d; printf 'alpha\\n' > a/one.txt",
        "printf '#!/x\\necho\\n' > a/b/run; chmod +x a/b/run",
        "head -c 300000 /dev/zero | tr '\\0' 'z' > a/b/c/big.txt",
        "printf 'delta' > d/four; ln -s ../a/one.txt d/link",
        "for i in 1 2 3 4 5 6 7 8 9; do printf \"$i\" > d/f$i; done",
    ];
    if reverse {
        steps.reverse();
        // Directories must exist before files; create them first in both orders.
        script.push_str("mkdir -p a/b/c d; ");
    }
    script.push_str(&steps.join("; "));
    script.push_str(if reverse {
        "; ln a/one.txt d/same"
    } else {
        "; cp a/one.txt d/same"
    });
    script.push_str(&format!("; find . -exec touch -h -d '{stamp}' {{}} +"));
    let st = Command::new("sh").arg("-c").arg(&script).status().unwrap();
    assert!(st.success());
}

fn plan_for(dir: &Path, src: &Path) -> std::path::PathBuf {
    let p = dir.join("plan.json");
    let plan = serde_json::json!({
        "version": 1, "name": "det",
        "layers": [
            {"kind": "files", "entries": [{"source": src, "target": "/srv"}]},
            {"kind": "files", "compression": "zstd", "entries": [{"source": src.join("a"), "target": "/z"}]},
            {"kind": "model", "name": "m", "source": src.join("a/b/c/big.txt"), "target": "/models/m/big.txt"}
        ]
    });
    std::fs::write(&p, serde_json::to_vec(&plan).unwrap()).unwrap();
    p
}

#[test]
fn same_digest_under_different_conditions() {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("one/src"), t.path().join("two/nested/src"));
    make_tree(&a, "022", false, "2001-01-01 00:00:00");
    make_tree(&b, "077", true, "2031-06-15 12:34:56");
    let pa = plan_for(&t.path().join("one"), &a);
    let pb = plan_for(&t.path().join("two/nested"), &b);

    let out_a = t.path().join("out-a");
    run(
        ocipack()
            .args(["build", "--threads", "1"])
            .arg(&pa)
            .arg("-o")
            .arg(&out_a)
            .env("TZ", "UTC")
            .env("LANG", "C")
            .current_dir(t.path()),
        true,
    );
    let out_b = t.path().join("elsewhere/out-b");
    std::fs::create_dir_all(t.path().join("elsewhere")).unwrap();
    run(
        ocipack()
            .args(["build", "--threads", "2"])
            .arg(&pb)
            .arg("-o")
            .arg(&out_b)
            .env("TZ", "Asia/Kathmandu")
            .env("LANG", "tr_TR.UTF-8")
            .env("LC_ALL", "tr_TR.UTF-8")
            .current_dir(&b),
        true,
    );
    assert_eq!(manifest_digest(&out_a), manifest_digest(&out_b));
    // Not only the manifest: every blob is the same set of bytes.
    assert_eq!(
        listing(&out_a.join("blobs/sha256")),
        listing(&out_b.join("blobs/sha256"))
    );
}

#[test]
fn source_date_epoch_moves_file_layers_but_not_model_or_base_layers() {
    let t = tempfile::tempdir().unwrap();
    let (x, y) = (t.path().join("x"), t.path().join("y"));
    let rx = build(&plan("golden.json"), &x, &[]);
    // The same plan without sourceDateEpoch, moved to a temp dir with absolute sources.
    let text = std::fs::read_to_string(plan("golden.json")).unwrap();
    let text = text.replace(
        "../fixture",
        &repo().join("tests/data/fixture").display().to_string(),
    );
    let mut p: serde_json::Value = serde_json::from_str(&text).unwrap();
    p.as_object_mut().unwrap().remove("sourceDateEpoch");
    let moved = t.path().join("moved.json");
    std::fs::write(&moved, serde_json::to_vec(&p).unwrap()).unwrap();
    let out = ocipack()
        .args(["build", "--json"])
        .arg(&moved)
        .arg("-o")
        .arg(&y)
        .env("SOURCE_DATE_EPOCH", "1800000000")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ry: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let d = |r: &serde_json::Value, i: usize| r["layers"][i]["digest"].as_str().unwrap().to_owned();
    assert_eq!(d(&rx, 0), d(&ry, 0), "base layer is shared");
    assert_ne!(
        d(&rx, 1),
        d(&ry, 1),
        "files layer follows SOURCE_DATE_EPOCH"
    );
    assert_eq!(d(&rx, 2), d(&ry, 2), "model layer is shared");
}
