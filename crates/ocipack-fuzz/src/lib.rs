//! Fuzzing on stable Rust, offline: a mutation fuzzer (no coverage feedback)
//! over a committed seed corpus, for the inputs this project reads from
//! people it does not trust.
//!
//! Why not cargo-fuzz: it needs a nightly toolchain (`-Zsanitizer`) and
//! builds libFuzzer's C++ sources; neither is available to `.ci/run` here.
//! This harness runs in `cargo test` (a few seconds per target, fixed seed)
//! and for longer through `scripts/fuzz.sh` (random seed, any duration).
//!
//! Targets:
//! - `plan`: `Plan::from_json` (the plan parser and its validation);
//! - `layout`: a layout whose `index.json` or manifest is the input, read by
//!   `verify`, `inspect`, `export` and `Layout::graph`;
//! - `tar`: a layer blob (plain tar) read by `verify` and `inspect` (the tar
//!   entry scanner, name normalisation, the policy);
//! - `image`: `service_kit::imaging::check`, the services' header check.
//!
//! A finding is a panic (saved under `crates/ocipack-fuzz/artifacts/`) or one input taking
//! longer than [`SLOW`]; errors returned are the expected outcome.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One input slower than this is reported.
pub const SLOW: Duration = Duration::from_secs(2);

/// The targets, by name.
pub const TARGETS: [&str; 4] = ["plan", "layout", "tar", "image"];

/// xorshift64*: small, seedable, good enough to pick mutations.
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (0 is replaced).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// A number below `n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b",",
    b":",
    b"null",
    b"-1",
    b"0",
    b"1e999",
    b"18446744073709551616",
    b"\"..\"",
    b"\"/\"",
    b"../",
    b"//",
    b"/..",
    b"\\u0000",
    b"\"kind\":\"files\"",
    b"\"kind\":\"model\"",
    b"\"kind\":\"prebuilt\"",
    b"\"kind\":\"base\"",
    b"\"mediaType\":\"application/vnd.oci.image.index.v1+json\"",
    b"\"manifests\":[",
    b"\"layers\":[",
    b"sha256:",
    b"\xff\xd8",
    b"\xff\xc0",
    b"\xff\xd9",
    b"IHDR",
    b"IDAT",
    b"VP8L",
    b"VP8X",
    b"RIFF",
    b"ustar\x00",
    b"././@LongLink",
];

const INTERESTING: &[u64] = &[
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0x7fff,
    0xffff,
    0x7fff_ffff,
    0xffff_ffff,
    u64::MAX,
];

/// Applies 1 to 8 random mutations to `data`, splicing from `other`.
pub fn mutate(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8]) {
    for _ in 0..1 + rng.below(8) {
        let len = data.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                data[i] = rng.next_u64() as u8;
            }
            2 => {
                let i = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                data.splice(i..i, bytes);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(64));
                data.drain(i..i + n);
            }
            4 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(256));
                let copy = data[i..i + n].to_vec();
                let at = rng.below(len + 1);
                data.splice(at..at, copy);
            }
            5 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                let i = rng.below(len + 1);
                data.splice(i..i, t.iter().copied());
            }
            6 if len >= 8 => {
                let v = INTERESTING[rng.below(INTERESTING.len())];
                let w = [1usize, 2, 4, 8][rng.below(4)];
                let i = rng.below(len - w + 1);
                let bytes = if rng.below(2) == 0 {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                };
                data[i..i + w].copy_from_slice(&bytes[..w]);
            }
            7 if !other.is_empty() => {
                let a = rng.below(other.len());
                let b = a + rng.below(other.len() - a + 1);
                let i = rng.below(len + 1);
                data.splice(i..i, other[a..b].iter().copied());
            }
            8 if len > 0 => data.truncate(rng.below(len)),
            _ => {}
        }
    }
}

/// The committed seed corpus, `tests/data/fuzz-corpus` (under tests/data so
/// that the Nix check's test source, `.config/nix-test-sources`, holds it).
fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/fuzz-corpus")
}

/// The seed corpus of a target: every file of `tests/data/fuzz-corpus/<target>`
/// (the image target's includes the hostile headers of the services' tests).
pub fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = corpus_dir().join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    assert!(!seeds.is_empty(), "{}: empty corpus", dir.display());
    seeds
}

/// What one run found.
#[derive(Debug, Default)]
pub struct Report {
    /// Inputs tried.
    pub iterations: u64,
    /// Panics: the message and the saved input.
    pub panics: Vec<(String, PathBuf)>,
    /// The slowest input and its time.
    pub slowest: Duration,
}

/// Runs `target` for `budget`, mutating from `seed`.
///
/// # Panics
/// On an unknown target name.
pub fn run(target: &str, budget: Duration, seed: u64) -> Report {
    let seeds = corpus(target);
    let one: fn(&[u8], &Path) = match target {
        "plan" => targets::plan,
        "layout" => targets::layout,
        "tar" => targets::tar,
        "image" => targets::image,
        _ => panic!("unknown target {target}; known: {TARGETS:?}"),
    };
    let scratch = tempfile::tempdir().expect("scratch directory");
    let mut rng = Rng::new(seed);
    let mut report = Report::default();
    let start = Instant::now();
    // The seeds themselves first, then mutants.
    let mut queue: Vec<Vec<u8>> = seeds.clone();
    // Panics are caught and reported here; the default hook would print
    // each one. Set once, for the whole process.
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    while start.elapsed() < budget || !queue.is_empty() {
        let input = queue.pop().unwrap_or_else(|| {
            let mut d = seeds[rng.below(seeds.len())].clone();
            let other = &seeds[rng.below(seeds.len())];
            mutate(&mut rng, &mut d, other);
            d
        });
        let dir = scratch.path().join(report.iterations.to_string());
        std::fs::create_dir(&dir).expect("scratch");
        let t = Instant::now();
        let result = std::panic::catch_unwind(|| one(&input, &dir));
        let took = t.elapsed();
        let _ = std::fs::remove_dir_all(&dir);
        report.slowest = report.slowest.max(took);
        if let Err(p) = result {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            let saved = save(target, &input);
            report.panics.push((msg, saved));
        } else if took > SLOW {
            let saved = save(target, &input);
            report.panics.push((format!("slow input: {took:?}"), saved));
        }
        report.iterations += 1;
    }
    report
}

fn save(target: &str, input: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("artifacts")
        .join(target);
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(&ocipack::digest::sha256(input)[7..23]);
    let _ = std::fs::write(&path, input);
    path
}

/// The targets: each takes one input and a scratch directory, and may only
/// return; a panic is a finding.
pub mod targets {
    use std::path::Path;

    use ocipack::digest::sha256;

    /// The plan parser: any bytes as a plan file.
    pub fn plan(input: &[u8], dir: &Path) {
        let Ok(text) = std::str::from_utf8(input) else {
            return;
        };
        let _ = ocipack::plan::Plan::from_json(text, "fuzz", Some(dir));
    }

    fn put(dir: &Path, bytes: &[u8]) -> (String, u64) {
        let d = sha256(bytes);
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        std::fs::write(blobs.join(&d[7..]), bytes).unwrap();
        (d, bytes.len() as u64)
    }

    fn read_all(dir: &Path) {
        let _ = ocipack::verify::verify(dir, ocipack::verify::Policy::default());
        let _ = ocipack::inspect::inspect(dir);
        let _ =
            ocipack::export::export_docker_archive(dir, None, "fuzz:latest", &mut std::io::sink());
        if let Ok(l) = ocipack::layout::Layout::open(dir) {
            if let Ok(roots) = l.index_descriptors() {
                if let Ok(g) = l.graph(&roots) {
                    for r in &roots {
                        let _ = g.children_first(&r.digest);
                        let _ = g.blobs(&r.digest);
                    }
                }
            }
        }
    }

    /// A layout whose manifest (first byte even) or `index.json` (odd) is the input.
    pub fn layout(input: &[u8], dir: &Path) {
        let Some((&mode, body)) = input.split_first() else {
            return;
        };
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let tar = crate::targets::small_tar();
        // Byte for byte what the seed manifests name (sorted keys, compact).
        let config = format!(
            r#"{{"architecture":"amd64","config":{{"User":"1:1"}},"os":"linux","rootfs":{{"diff_ids":["{}"],"type":"layers"}}}}"#,
            sha256(&tar)
        );
        put(dir, &tar);
        put(dir, config.as_bytes());
        if mode % 2 == 0 {
            let (md, ms) = put(dir, body);
            let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
                "annotations": {"org.opencontainers.image.ref.name": "latest"}}]});
            std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
        } else {
            std::fs::write(dir.join("index.json"), body).unwrap();
        }
        read_all(dir);
    }

    /// A one-layer image whose (plain tar) layer is the input.
    pub fn tar(input: &[u8], dir: &Path) {
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let (ld, ls) = put(dir, input);
        let config = serde_json::json!({"architecture": "amd64", "os": "linux",
            "config": {"User": "1:1"}, "rootfs": {"type": "layers", "diff_ids": [sha256(input)]}});
        let (cd, cs) = put(dir, &serde_json::to_vec(&config).unwrap());
        let m = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": ls}]});
        let (md, ms) = put(dir, &serde_json::to_vec(&m).unwrap());
        let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
            "annotations": {"org.opencontainers.image.ref.name": "latest"}}]});
        std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
        read_all(dir);
    }

    /// The services' image header check.
    pub fn image(input: &[u8], _dir: &Path) {
        let _ = service_kit::imaging::check(input, service_kit::imaging::ImageLimits::default());
    }

    /// The tar of `tests/data/fuzz-corpus/tar/base.tar`, the layer behind the layout target.
    pub fn small_tar() -> Vec<u8> {
        std::fs::read(super::corpus_dir().join("tar/base.tar"))
            .expect("tests/data/fuzz-corpus/tar/base.tar")
    }
}
