//! Regression tests for issue 11 item 1 and item 10: `ocipack build -o` and
//! `ocipack layer -o` used to delete whatever the output path held (an
//! unrelated directory, a regular file, the plan's own directory) with exit 0,
//! packed their own staging directory when `-o` was inside a source, and
//! failed forever once a `.NAME.old` was left beside the output.
//!
//! Now an output is replaced only when absent, empty, or ocipack's own
//! (`.ocipack-output` marker plus only the names ocipack writes); anything
//! else is refused with exit 1, a message saying what to do, and nothing
//! deleted.

mod common;
use common::*;
use std::path::Path;

fn write_plan(dir: &Path, source: &Path) -> std::path::PathBuf {
    let p = dir.join("plan.json");
    let plan = serde_json::json!({"version": 1, "name": "safe", "layers": [
        {"kind": "files", "entries": [{"source": source, "target": "/app"}]}
    ]});
    std::fs::write(&p, serde_json::to_vec(&plan).unwrap()).unwrap();
    p
}

fn write_spec(dir: &Path, source: &Path) -> std::path::PathBuf {
    let p = dir.join("spec.json");
    let spec = serde_json::json!({"version": 1, "layer":
        {"kind": "files", "entries": [{"source": source, "target": "/app"}]}});
    std::fs::write(&p, serde_json::to_vec(&spec).unwrap()).unwrap();
    p
}

/// Runs `ocipack CMD INPUT -o OUT`, expects exit 1 and every needle in stderr.
fn refused(cmd: &str, input: &Path, out: &Path, needles: &[&str]) {
    let o = ocipack()
        .arg(cmd)
        .arg(input)
        .arg("-o")
        .arg(out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{cmd} -o {}: {err}",
        out.display()
    );
    for n in needles {
        assert!(err.contains(n), "{cmd}: error lacks {n:?}: {err}");
    }
}

/// Every file under `dir` with its bytes, to prove nothing changed.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            if m.is_dir() {
                v.push((rel + "/", Vec::new()));
                stack.push(p);
            } else if m.is_file() {
                v.push((rel, std::fs::read(&p).unwrap()));
            } else {
                v.push((rel + "@", Vec::new()));
            }
        }
    }
    v.sort();
    v
}

fn fixture() -> (tempfile::TempDir, std::path::PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), "content").unwrap();
    (t, src)
}

#[test]
fn build_refuses_a_non_empty_unrelated_directory() {
    let (t, src) = fixture();
    let plan = write_plan(t.path(), &src);
    let out = t.path().join("precious");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("thesis.txt"), "years of work").unwrap();
    let before = snapshot(t.path());
    refused(
        "build",
        &plan,
        &out,
        &["precious", "did not write", "remove it yourself"],
    );
    assert_eq!(snapshot(t.path()), before);
}

#[test]
fn build_refuses_a_regular_file() {
    let (t, src) = fixture();
    let plan = write_plan(t.path(), &src);
    let out = t.path().join("notes.txt");
    std::fs::write(&out, "keep me").unwrap();
    let before = snapshot(t.path());
    refused("build", &plan, &out, &["notes.txt", "not a directory"]);
    assert_eq!(snapshot(t.path()), before);
}

#[test]
fn build_refuses_the_directory_holding_the_plan() {
    let (t, src) = fixture();
    let plan = write_plan(t.path(), &src);
    let before = snapshot(t.path());
    refused("build", &plan, t.path(), &["did not write"]);
    assert_eq!(snapshot(t.path()), before);
}

#[test]
fn build_refuses_a_symlink() {
    let (t, src) = fixture();
    let plan = write_plan(t.path(), &src);
    let out = t.path().join("link");
    std::os::unix::fs::symlink(&src, &out).unwrap();
    let before = snapshot(t.path());
    refused("build", &plan, &out, &["symlink"]);
    assert_eq!(snapshot(t.path()), before);
}

#[test]
fn build_refuses_an_output_inside_a_source() {
    let (t, src) = fixture();
    let plan = write_plan(t.path(), &src);
    let before = snapshot(t.path());
    refused(
        "build",
        &plan,
        &src.join("out/image"),
        &["inside the source", "outside the plan's sources"],
    );
    assert_eq!(snapshot(t.path()), before, "nothing created in the source");
}

#[test]
fn build_refuses_an_output_that_holds_a_source() {
    let (t, src) = fixture();
    // An earlier output of ours, and then a plan whose source lies inside it.
    let out = t.path().join("out");
    build(&write_plan(t.path(), &src), &out, &[]);
    let inside = out.join("blobs/sha256");
    let plan = write_plan(t.path(), &inside);
    let before = snapshot(t.path());
    refused("build", &plan, &out, &["holds the source"]);
    assert_eq!(snapshot(t.path()), before);
}

#[test]
fn build_replaces_its_own_output_and_an_empty_directory_but_not_after_additions() {
    let (t, src) = fixture();
    let plan = write_plan(t.path(), &src);
    let out = t.path().join("image");
    std::fs::create_dir(&out).unwrap();
    build(&plan, &out, &[]);
    assert_eq!(
        std::fs::read(out.join(".ocipack-output")).unwrap(),
        b"ocipack layout\n"
    );
    let digest = manifest_digest(&out);
    build(&plan, &out, &[]);
    assert_eq!(manifest_digest(&out), digest);
    // Someone put their own file in the layout: it is no longer only ours.
    std::fs::write(out.join("mine.txt"), "mine").unwrap();
    let before = snapshot(t.path());
    refused("build", &plan, &out, &["mine.txt", "move it out"]);
    assert_eq!(snapshot(t.path()), before);
    // A layer output is not a layout.
    std::fs::remove_file(out.join("mine.txt")).unwrap();
    std::fs::write(out.join(".ocipack-output"), "ocipack layer\n").unwrap();
    refused("build", &plan, &out, &["did not write"]);
}

#[test]
fn leftover_old_directory_does_not_break_later_builds() {
    let (t, src) = fixture();
    let plan = write_plan(t.path(), &src);
    let out = t.path().join("image");
    // What a crash of an older ocipack could leave: `.image.old`, not empty.
    let old = t.path().join(".image.old");
    std::fs::create_dir(&old).unwrap();
    std::fs::write(old.join("x"), "left over").unwrap();
    build(&plan, &out, &[]);
    build(&plan, &out, &[]);
    build(&plan, &out, &[]);
    assert_eq!(std::fs::read(old.join("x")).unwrap(), b"left over");
    assert_eq!(
        listing(t.path()),
        vec![".image.old", "image", "plan.json", "src"]
    );
}

#[test]
fn layer_refuses_what_it_did_not_write() {
    let (t, src) = fixture();
    let spec = write_spec(t.path(), &src);
    let dir = t.path().join("precious");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("a"), "a").unwrap();
    let file = t.path().join("file");
    std::fs::write(&file, "f").unwrap();
    let before = snapshot(t.path());
    refused(
        "layer",
        &spec,
        &dir,
        &["did not write", "remove it yourself"],
    );
    refused("layer", &spec, &file, &["not a directory"]);
    refused("layer", &spec, t.path(), &["did not write"]);
    refused("layer", &spec, &src.join("out"), &["inside the source"]);
    assert_eq!(snapshot(t.path()), before);
    // Its own output is replaced.
    let out = t.path().join("layer");
    for _ in 0..2 {
        run(ocipack().arg("layer").arg(&spec).arg("-o").arg(&out), true);
    }
    assert_eq!(
        listing(&out),
        vec![".ocipack-output", "blob", "descriptor.json"]
    );
}
