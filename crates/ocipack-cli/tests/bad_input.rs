//! Every bad input: a one-line error naming the plan location and the path,
//! a non-zero exit, and no output directory (nor leftovers beside it).

mod common;
use common::*;
use std::path::Path;

struct Case {
    name: &'static str,
    /// Builds the plan JSON given a scratch directory.
    plan: fn(&Path) -> serde_json::Value,
    /// Substrings the error must contain.
    expect: &'static [&'static str],
}

fn files(entries: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"version": 1, "name": "bad", "layers": [{"kind": "files", "entries": entries}]})
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "missing source",
            plan: |d| files(serde_json::json!([{"source": d.join("nope"), "target": "/x"}])),
            expect: &["layer 1 entry 1", "nope", "cannot be read"],
        },
        Case {
            name: "fifo",
            plan: |d| {
                let p = d.join("fifo");
                assert!(std::process::Command::new("mkfifo")
                    .arg(&p)
                    .status()
                    .unwrap()
                    .success());
                files(serde_json::json!([{"source": p, "target": "/x"}]))
            },
            expect: &["layer 1 entry 1", "fifo", "is a fifo"],
        },
        Case {
            name: "socket in a directory",
            plan: |d| {
                let dir = d.join("withsock");
                std::fs::create_dir(&dir).unwrap();
                let _l = std::os::unix::net::UnixListener::bind(dir.join("s.sock")).unwrap();
                std::mem::forget(_l);
                files(serde_json::json!([{"source": dir, "target": "/x"}]))
            },
            expect: &["s.sock", "is a socket"],
        },
        Case {
            name: "device",
            plan: |_| files(serde_json::json!([{"source": "/dev/null", "target": "/x"}])),
            expect: &["/dev/null", "character device"],
        },
        Case {
            name: "relative target",
            plan: |d| files(serde_json::json!([{"source": d.join("f"), "target": "x/y"}])),
            expect: &["layer 1", "\"x/y\"", "relative"],
        },
        Case {
            name: "dot-dot target",
            plan: |d| files(serde_json::json!([{"source": d.join("f"), "target": "/a/../etc"}])),
            expect: &["layer 1", "/a/../etc", ".."],
        },
        Case {
            name: "collision",
            plan: |d| {
                files(
                    serde_json::json!([{"source": d.join("f"), "target": "/x"}, {"source": d.join("g"), "target": "/x"}]),
                )
            },
            expect: &[
                "layer 1 entry 2",
                "/x",
                "given twice with different content",
            ],
        },
        Case {
            name: "symlink loop",
            plan: |d| {
                let dir = d.join("loopy");
                std::fs::create_dir(&dir).unwrap();
                std::os::unix::fs::symlink("b", dir.join("a")).unwrap();
                std::os::unix::fs::symlink("a", dir.join("b")).unwrap();
                files(serde_json::json!([{"source": dir, "target": "/l"}]))
            },
            expect: &["layer 1", "symlink loop"],
        },
        Case {
            name: "too many layers",
            plan: |d| {
                let layer = serde_json::json!({"kind": "files", "entries": [{"source": d.join("f"), "target": "/x"}]});
                serde_json::json!({"version": 1, "name": "bad", "layers": vec![layer; 127]})
            },
            expect: &["127 layers", "limit of 127"],
        },
        Case {
            name: "unknown field",
            plan: |_| serde_json::json!({"version": 1, "name": "bad", "layers": [], "labels": {}}),
            expect: &["unknown field `labels`"],
        },
        Case {
            name: "unknown nested field",
            plan: |d| {
                files(serde_json::json!([{"source": d.join("f"), "target": "/x", "owner": "root"}]))
            },
            expect: &["unknown field `owner`"],
        },
        Case {
            name: "root user",
            plan: |_| serde_json::json!({"version": 1, "name": "bad", "user": {"uid": 0}, "layers": []}),
            expect: &["root is refused", "allowRoot"],
        },
        Case {
            name: "root config user",
            plan: |_| serde_json::json!({"version": 1, "name": "bad", "config": {"user": "0:0"}, "layers": []}),
            expect: &["runs as root"],
        },
        Case {
            name: "setuid file",
            plan: |d| {
                files(serde_json::json!([{"source": d.join("f"), "target": "/x", "mode": "4755"}]))
            },
            expect: &["setuid"],
        },
        Case {
            name: "world-writable dir",
            plan: |_| {
                files(serde_json::json!([{"target": "/srv", "directory": true, "mode": "0777"}]))
            },
            expect: &["world-writable"],
        },
        Case {
            name: "wrong version",
            plan: |_| serde_json::json!({"version": 2, "name": "bad", "layers": []}),
            expect: &["version 2 is not supported"],
        },
        Case {
            name: "missing model",
            plan: |d| serde_json::json!({"version": 1, "name": "bad", "layers": [{"kind": "model", "name": "m", "source": d.join("none.onnx"), "target": "/models/m/m.onnx"}]}),
            expect: &["model m", "none.onnx"],
        },
    ]
}

#[test]
fn each_bad_input_fails_cleanly() {
    for case in cases() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("f"), "f").unwrap();
        std::fs::write(t.path().join("g"), "g").unwrap();
        let plan_path = t.path().join("plan.json");
        std::fs::write(
            &plan_path,
            serde_json::to_vec(&(case.plan)(t.path())).unwrap(),
        )
        .unwrap();
        let outdir = t.path().join("outputs");
        std::fs::create_dir(&outdir).unwrap();
        let out = ocipack()
            .arg("build")
            .arg(&plan_path)
            .arg("-o")
            .arg(outdir.join("image"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {err}", case.name);
        assert!(
            err.contains("plan.json"),
            "{}: error does not name the plan: {err}",
            case.name
        );
        for e in case.expect {
            assert!(err.contains(e), "{}: error lacks {e:?}: {err}", case.name);
        }
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{}: error is not one line: {err}",
            case.name
        );
        assert!(
            listing(&outdir).is_empty(),
            "{}: left {:?}",
            case.name,
            listing(&outdir)
        );
    }
}

#[test]
fn malformed_json_names_line_and_column() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("plan.json");
    std::fs::write(&p, "{\"version\": 1,\n \"name\": }").unwrap();
    let out = ocipack()
        .arg("build")
        .arg(&p)
        .arg("-o")
        .arg(t.path().join("o"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("plan.json:2:"), "{err}");
    assert!(!t.path().join("o").exists());
}

#[test]
fn unreadable_file_fails_and_keeps_previous_output() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("f");
    std::fs::write(&f, "ok").unwrap();
    let p = t.path().join("plan.json");
    std::fs::write(
        &p,
        serde_json::to_vec(&files(serde_json::json!([{"source": f, "target": "/f"}]))).unwrap(),
    )
    .unwrap();
    let out = t.path().join("image");
    build(&p, &out, &[]);
    let good = manifest_digest(&out);
    // Root reads anything regardless of mode, so make the file unreadable by
    // making it a directory we cannot list instead when running as root.
    std::fs::remove_file(&f).unwrap();
    std::fs::create_dir(&f).unwrap();
    std::fs::write(f.join("inner"), "x").unwrap();
    std::fs::write(&p, serde_json::to_vec(&files(serde_json::json!([{"source": f.join("inner"), "target": "/f", "mode": "0755"}, {"source": "/proc/self/mem", "target": "/mem"}]))).unwrap()).unwrap();
    let o = ocipack()
        .arg("build")
        .arg(&p)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("/proc/self/mem"));
    assert_eq!(
        manifest_digest(&out),
        good,
        "previous good output must survive a failed build"
    );
    assert_eq!(listing(t.path()), vec!["f", "image", "plan.json"]);
}
