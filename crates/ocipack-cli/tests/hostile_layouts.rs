//! Regression tests for issue 11 items 3, 4 and 5: layouts written by
//! someone else. `verify` used to report "ok" for entries escaping the root
//! and let non-normalised names (`bin/../bin/sh`) past the policy; a blob,
//! index or manifest that is a FIFO or a link to /dev/zero was read forever;
//! `export` checked nothing and followed symlinked blobs anywhere.

mod common;
#[path = "common/hostile.rs"]
mod hostile;
use common::*;
use hostile::*;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Runs with a deadline: a hang is a failure, not a stuck test suite.
fn run_bounded(cmd: &mut Command, secs: u64) -> Output {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(secs) {
            child.kill().unwrap();
            panic!("{cmd:?} still running after {secs} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn verify(dir: &Path) -> (Option<i32>, String) {
    let o = run_bounded(ocipack().arg("verify").arg(dir), 60);
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn verify_reports_entries_that_escape_the_root() {
    let t = tempfile::tempdir().unwrap();
    let evil = tar_of(&[
        file("../x", 0o644),
        file("/abs", 0o644),
        symlink("etc/up", "../../../host"),
        hardlink("etc/h1", "../../etc/shadow"),
        hardlink("etc/h2", "/etc/shadow"),
        // Fine: an absolute symlink resolves inside the image's root, and a
        // relative one that stays inside.
        symlink("etc/ok1", "/etc/passwd"),
        symlink("etc/ok2", "passwd"),
    ]);
    layout(t.path(), &[base(), evil]);
    let (code, err) = verify(t.path());
    assert_eq!(code, Some(3), "{err}");
    for needle in [
        "entry \"../x\" escapes the root",
        "entry \"/abs\" has an absolute name",
        "/etc/up is a symlink to \"../../../host\"",
        "/etc/h1 is a hard link to \"../../etc/shadow\"",
        "/etc/h2 is a hard link to \"/etc/shadow\"",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    assert!(!err.contains("ok1") && !err.contains("ok2"), "{err}");
}

#[test]
fn verify_normalises_names_before_the_policy() {
    let t = tempfile::tempdir().unwrap();
    let evil = tar_of(&[
        file("bin/../bin/sh", 0o755),
        file("bin//bash", 0o755),
        file("tmp/../etc/x", 0o666),
    ]);
    layout(t.path(), &[base(), evil]);
    let (code, err) = verify(t.path());
    assert_eq!(code, Some(3), "{err}");
    for needle in [
        "/bin/sh is a shell",
        "/bin/bash is a shell",
        "/etc/x is world-writable (mode 0666) outside /tmp",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
}

#[test]
fn a_clean_hand_made_layout_verifies() {
    // The helpers themselves make a layout verify accepts, so the failures
    // above come from the entries, not the scaffolding.
    let t = tempfile::tempdir().unwrap();
    layout(
        t.path(),
        &[base(), tar_of(&[dir("app/", 0o755), file("app/x", 0o644)])],
    );
    let (code, err) = verify(t.path());
    assert_eq!(code, Some(0), "{err}");
}

/// Replaces `path` by a FIFO nobody writes to.
fn fifo(path: &Path) {
    std::fs::remove_file(path).unwrap();
    assert!(Command::new("mkfifo").arg(path).status().unwrap().success());
}

fn zero(path: &Path) {
    std::fs::remove_file(path).unwrap();
    std::os::unix::fs::symlink("/dev/zero", path).unwrap();
}

fn blob_file(dir: &Path, d: &serde_json::Value) -> std::path::PathBuf {
    dir.join("blobs/sha256")
        .join(d["digest"].as_str().unwrap().trim_start_matches("sha256:"))
}

/// Every reading command on `dir`: ends within seconds with exit `code` and the needle.
fn all_refuse(dir: &Path, needle: &str) {
    let t = tempfile::tempdir().unwrap();
    let archive = t.path().join("a.tar");
    let cmds: [(&str, Vec<std::ffi::OsString>, [i32; 2]); 3] = [
        ("verify", vec!["verify".into(), dir.into()], [1, 3]),
        ("inspect", vec!["inspect".into(), dir.into()], [1, 1]),
        (
            "export",
            vec![
                "export".into(),
                dir.into(),
                "--docker-archive".into(),
                archive.clone().into(),
            ],
            [1, 1],
        ),
    ];
    for (what, args, code) in cmds {
        let mut cmd = ocipack();
        cmd.args(&args);
        let o = run_bounded(&mut cmd, 20);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            code.contains(&o.status.code().unwrap_or(-1)),
            "{what}: exit {:?}: {err}",
            o.status.code()
        );
        // export does not even follow a symlink out of the layout.
        let alt = what == "export" && err.contains("outside the layout; refusing to follow it");
        assert!(
            err.contains(needle) || alt,
            "{what}: lacks {needle:?}: {err}"
        );
        assert!(!archive.exists(), "{what} wrote an archive");
    }
}

#[test]
fn fifo_and_dev_zero_blobs_end_at_once() {
    for (name, spoil) in [("fifo", fifo as fn(&Path)), ("/dev/zero", zero)] {
        // The layer blob.
        let t = tempfile::tempdir().unwrap();
        let m = manifest(t.path(), &[base()]);
        index(t.path(), std::slice::from_ref(&m));
        let layer = blob(t.path(), TAR, &base());
        spoil(&blob_file(t.path(), &layer));
        all_refuse(t.path(), "not a regular file");
        // The manifest.
        spoil(&blob_file(t.path(), &m));
        all_refuse(t.path(), "not a regular file");
        // index.json and oci-layout.
        spoil(&t.path().join("index.json"));
        all_refuse(t.path(), "index.json cannot be read");
        spoil(&t.path().join("oci-layout"));
        all_refuse(t.path(), "oci-layout cannot be read");
        let _ = name;
    }
}

#[test]
fn oversized_index_and_fan_out_are_refused_with_the_limit_named() {
    let t = tempfile::tempdir().unwrap();
    let m = manifest(t.path(), &[base()]);
    index(t.path(), &vec![m; 1025]);
    all_refuse(t.path(), "limit max_index_entries");
    // A 5 MiB index.json.
    std::fs::write(t.path().join("index.json"), vec![b' '; 5 << 20]).unwrap();
    all_refuse(t.path(), "limit max_json_bytes");
}

fn export_fails(dir: &Path, needle: &str) {
    let t = tempfile::tempdir().unwrap();
    let archive = t.path().join("a.tar");
    let o = run_bounded(
        ocipack()
            .arg("export")
            .arg(dir)
            .arg("--docker-archive")
            .arg(&archive),
        20,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(needle), "lacks {needle:?}: {err}");
    assert_eq!(listing(t.path()), Vec::<String>::new(), "export left files");
    // Nothing on stdout either.
    let o = run_bounded(
        ocipack()
            .arg("export")
            .arg(dir)
            .arg("--docker-archive")
            .arg("-"),
        20,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty(), "{} bytes on stdout", o.stdout.len());
}

#[test]
fn export_checks_everything_before_writing() {
    let app = tar_of(&[dir("app/", 0o755), file("app/x", 0o644)]);

    // A corrupt layer (same size, other bytes).
    let t = tempfile::tempdir().unwrap();
    layout(t.path(), &[base(), app.clone()]);
    let l = blob(t.path(), TAR, &app);
    let p = blob_file(t.path(), &l);
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[600] ^= 1;
    std::fs::write(&p, &bytes).unwrap();
    export_fails(t.path(), "hashes to");

    // A size that differs from the descriptor.
    std::fs::write(&p, [&app[..], b"extra"].concat()).unwrap();
    export_fails(t.path(), "its descriptor says");

    // A diff_id that does not match: the layer gzip-free but listed as the wrong tar.
    let t = tempfile::tempdir().unwrap();
    let m = manifest(t.path(), &[base(), app.clone()]);
    let cfg_diff = ocipack::digest::sha256(&app);
    let mp = blob_file(t.path(), &m);
    let mut mj: serde_json::Value = serde_json::from_slice(&std::fs::read(&mp).unwrap()).unwrap();
    let cp = blob_file(t.path(), &mj["config"]);
    let mut cj: serde_json::Value = serde_json::from_slice(&std::fs::read(&cp).unwrap()).unwrap();
    cj["rootfs"]["diff_ids"][1] = serde_json::json!(ocipack::digest::sha256(b"other"));
    assert_ne!(cj["rootfs"]["diff_ids"][1], serde_json::json!(cfg_diff));
    mj["config"] = blob(
        t.path(),
        "application/vnd.oci.image.config.v1+json",
        &serde_json::to_vec(&cj).unwrap(),
    );
    let m = blob(t.path(), MANIFEST, &serde_json::to_vec(&mj).unwrap());
    index(t.path(), &[m]);
    export_fails(t.path(), "the config says");

    // An unknown layer media type.
    let t = tempfile::tempdir().unwrap();
    let m = manifest(t.path(), &[base()]);
    let mp = blob_file(t.path(), &m);
    let mut mj: serde_json::Value = serde_json::from_slice(&std::fs::read(&mp).unwrap()).unwrap();
    mj["layers"][0]["mediaType"] = serde_json::json!("application/x-evil");
    let m = blob(t.path(), MANIFEST, &serde_json::to_vec(&mj).unwrap());
    index(t.path(), &[m]);
    export_fails(t.path(), "unsupported media type");

    // A symlinked blob pointing out of the layout: not followed.
    let t = tempfile::tempdir().unwrap();
    layout(t.path(), &[base(), app.clone()]);
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret");
    std::fs::write(&secret, &app).unwrap();
    let p = blob_file(t.path(), &blob(t.path(), TAR, &app));
    std::fs::remove_file(&p).unwrap();
    std::os::unix::fs::symlink(&secret, &p).unwrap();
    export_fails(t.path(), "outside the layout");
}

#[test]
fn export_still_works_on_a_good_layout() {
    let t = tempfile::tempdir().unwrap();
    layout(t.path(), &[base(), tar_of(&[dir("app/", 0o755)])]);
    let out = t.path().join("a.tar");
    run(
        ocipack()
            .arg("export")
            .arg(t.path())
            .arg("--docker-archive")
            .arg(&out),
        true,
    );
    assert!(std::fs::metadata(&out).unwrap().len() > 0);
}

#[test]
fn a_layer_shared_by_several_images_is_scanned_once() {
    let t = tempfile::tempdir().unwrap();
    let shared = tar_of(&[dir("lib/", 0o755), file("lib/big", 0o644)]);
    let ms: Vec<_> = (0..3)
        .map(|i| {
            let own = tar_of(&[file(&format!("app{i}"), 0o644)]);
            // Leak: the names must outlive the Raw borrow only inside tar_of.
            manifest(t.path(), &[base(), shared.clone(), own])
        })
        .collect();
    index(t.path(), &ms);
    let o = run(ocipack().args(["verify", "--json"]).arg(t.path()), true);
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["images"], 3);
    // base and shared once each, plus one own layer per image.
    assert_eq!(r["layersScanned"], 5, "{r}");
}

/// Issue 11 item 4: a 420 KiB zstd blob holding ten million tiny tar
/// entries took verify to 795 MB. Entries now stream past one at a time and
/// at most `max_tar_entries` (1,048,576) are read: a clear error, bounded
/// memory (peak RSS measured from /proc/PID/status VmHWM, as model_layers.rs).
#[test]
fn ten_million_entry_layer_is_refused_in_bounded_memory() {
    let t = tempfile::tempdir().unwrap();
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..1].copy_from_slice(b"a");
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(0);
    h.set_mtime(1);
    h.set_cksum();
    let chunk: Vec<u8> = h.as_bytes().repeat(1 << 14);
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
    let entries: u64 = 10_000_000;
    let mut written = 0;
    while written < entries {
        let n = (entries - written).min(1 << 14);
        std::io::Write::write_all(&mut enc, &chunk[..n as usize * 512]).unwrap();
        written += n;
    }
    std::io::Write::write_all(&mut enc, &[0u8; 1024]).unwrap();
    let blob_bytes = enc.finish().unwrap();
    eprintln!(
        "10,000,000-entry layer: {} KiB of zstd",
        blob_bytes.len() / 1024
    );
    let l = blob(
        t.path(),
        "application/vnd.oci.image.layer.v1.tar+zstd",
        &blob_bytes,
    );
    let b = blob(t.path(), TAR, &base());
    let config = serde_json::json!({"architecture": "amd64", "os": "linux", "config": {"User": "1:1"},
        "rootfs": {"type": "layers", "diff_ids": [ocipack::digest::sha256(&base()), ocipack::digest::sha256(b"unknown")]}});
    let c = blob(
        t.path(),
        "application/vnd.oci.image.config.v1+json",
        &serde_json::to_vec(&config).unwrap(),
    );
    let m = serde_json::json!({"schemaVersion": 2, "mediaType": MANIFEST, "config": c, "layers": [b, l]});
    let m = blob(t.path(), MANIFEST, &serde_json::to_vec(&m).unwrap());
    index(t.path(), &[m]);

    let start = Instant::now();
    let mut child = ocipack()
        .arg("verify")
        .arg(t.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_file) {
            if let Some(kib) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak = peak.max(kib);
            }
        }
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "verify still running after 120 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    eprintln!(
        "verify of a 10,000,000-entry layer: peak RSS {} MiB, {:.1} s",
        peak / 1024,
        start.elapsed().as_secs_f64()
    );
    assert_eq!(status.code(), Some(3), "{err}");
    assert!(err.contains("limit max_tar_entries"), "{err}");
    assert!(peak > 0);
    assert!(peak < 64 * 1024, "peak RSS {peak} KiB exceeds 64 MiB");
}
