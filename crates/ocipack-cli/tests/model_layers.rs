//! Model layers: content-addressed, shared byte for byte between images,
//! streamed in bounded memory.

mod common;
use common::*;

#[test]
fn two_images_share_the_model_layer_byte_for_byte() {
    let t = tempfile::tempdir().unwrap();
    let model = t.path().join("weights.onnx");
    std::fs::write(
        &model,
        (0..200_000u32)
            .flat_map(|i| i.to_le_bytes())
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let mk = |name: &str, extra: &str| {
        let dir = t.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("bin"), extra).unwrap();
        let p = dir.join("plan.json");
        let plan = serde_json::json!({"version": 1, "name": name, "sourceDateEpoch": extra.len(),
        "config": {"env": [format!("NAME={name}")]},
        "layers": [
            {"kind": "files", "entries": [{"source": dir.join("bin"), "target": "/app/bin/x"}]},
            {"kind": "model", "name": "w", "source": model, "target": "/models/w/weights.onnx"}
        ]});
        std::fs::write(&p, serde_json::to_vec(&plan).unwrap()).unwrap();
        build(&p, &t.path().join(format!("{name}-out")), &[])
    };
    let a = mk("detector", "one binary");
    let b = mk("embedder", "a different binary");
    assert_ne!(a["manifestDigest"], b["manifestDigest"]);
    assert_ne!(a["layers"][1]["digest"], b["layers"][1]["digest"]);
    assert_eq!(
        a["layers"][2]["digest"], b["layers"][2]["digest"],
        "model layers must be identical"
    );
    assert_eq!(
        a["layers"][2]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar"
    );
    assert_eq!(
        a["layers"][2]["digest"], a["layers"][2]["diffId"],
        "model layers are uncompressed"
    );
    let blob = |r: &serde_json::Value, name: &str| {
        let hex = r["layers"][2]["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:")
            .to_owned();
        std::fs::read(t.path().join(format!("{name}-out/blobs/sha256/{hex}"))).unwrap()
    };
    assert_eq!(blob(&a, "detector"), blob(&b, "embedder"));
}

/// A 2 GiB model passes through with peak RSS under 100 MiB. The file is
/// sparse so making it is cheap; ocipack still reads and hashes every byte.
#[test]
fn two_gib_model_streams_in_bounded_memory() {
    let t = tempfile::tempdir().unwrap();
    let model = t.path().join("big.onnx");
    let f = std::fs::File::create(&model).unwrap();
    f.set_len(2 << 30).unwrap();
    std::fs::write(t.path().join("small"), vec![7u8; 64 << 20]).unwrap();
    let p = t.path().join("plan.json");
    let plan = serde_json::json!({"version": 1, "name": "big", "layers": [
        {"kind": "files", "entries": [{"source": t.path().join("small"), "target": "/app/small"}]},
        {"kind": "model", "name": "big", "source": model, "target": "/models/big/big.onnx"}]});
    std::fs::write(&p, serde_json::to_vec(&plan).unwrap()).unwrap();
    let kib = peak_rss_kib(
        ocipack()
            .arg("build")
            .arg(&p)
            .arg("-o")
            .arg(t.path().join("out"))
            // Through the cache (hashing and storing the 2 GiB too), kept in the tempdir.
            .arg("--cache")
            .arg(t.path().join("cache")),
    );
    eprintln!(
        "peak RSS packing a 2 GiB model and a 64 MiB gzip layer: {} MiB",
        kib / 1024
    );
    assert!(kib < 100 * 1024, "peak RSS {kib} KiB exceeds 100 MiB");
    run(ocipack().arg("verify").arg(t.path().join("out")), true);
}

/// Runs `cmd` to success and returns its peak resident set size in KiB: the
/// kernel's high-water mark (VmHWM in /proc/PID/status), sampled every 10 ms
/// until the process exits. VmHWM only grows, so the last sample is the peak
/// up to a few ms before exit, when the buffers are long freed.
fn peak_rss_kib(cmd: &mut std::process::Command) -> u64 {
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
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
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{stderr}");
    assert!(peak > 0, "no VmHWM sample from {status_file}");
    peak
}
