//! `ocipack push`: send OCI layouts to a registry with the ocipack-push library.
//!
//! Wiring (in main.rs / Cargo.toml, owned by the CLI): add
//! `ocipack-push = { path = "../ocipack-push" }`, `mod cmd_push;`, a
//! `Push(cmd_push::PushArgs)` variant and `Command::Push(a) => cmd_push::run(a, json)`.
//! Authentication failures print their message and exit with code 4.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressStyle};
use ocipack_push::{BlobOutcome, Credentials, PushOptions, PushReport, RetryPolicy, Target};

use crate::cmd_push_sign::Staging;

/// Push OCI image layouts to a registry.
///
/// Credentials: OCIPACK_REGISTRY_USER and OCIPACK_REGISTRY_PASSWORD, else the
/// `auths` entry for the registry in $DOCKER_CONFIG/config.json or
/// ~/.docker/config.json, else anonymous.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  ocipack push out/scoring 127.0.0.1:5000/aurum/scoring:1.0 --insecure
  ocipack push out/scoring registry.example/aurum/scoring        # every tag of the layout
  ocipack push --all out/images registry.example/aurum           # out/images/<name> -> aurum/<name>
  ocipack push --all out/images 127.0.0.1:5000/aurum --insecure --sign keys/release.key

Attestations: when LAYOUT.attest/oci exists (written by `ocipack host`, `sign`,
`attest`), its SBOMs, signature and provenance are pushed with the image: OCI 1.1
artifacts by digest with the image as subject, listed through the registry's
referrers API or else the fallback tag sha256-<hex>, and the cosign signature as
the tag sha256-<hex>.sig. The image's tags move last, only once all of that is in.
--no-attest pushes the image alone (with --sign: the image and its signature).

--sign KEY (or --sign-env VAR) signs each pushed manifest for REGISTRY/REPOSITORY
and, when LAYOUT.attest has no provenance of the image (e.g. after `ocipack host`,
which writes only SBOMs), adds the SLSA provenance `ocipack attest` would write
for the same layout, signed with the same key (repository root: --repo-root, else
the nearest directory with models.toml above the current one, else above LAYOUT).
Its SBOM model reuses what `ocipack host` left in the SBOM cache (--cache DIR,
--no-cache: as for `ocipack host`); the bytes are the same either way.
Both go into a temporary copy of LAYOUT.attest; the layout's own is not changed.

Exit codes: 0 pushed; 1 failure (layout, attestations made for another image,
a registry refusing an artifact, network); 2 usage; 4 credentials refused.")]
pub struct PushArgs {
    /// The OCI image layout directory (with --all: a directory of layouts).
    pub layout: PathBuf,
    /// Destination REGISTRY/REPOSITORY[:TAG] (with --all: REGISTRY/PREFIX, no tag).
    /// Without a tag, every manifest of the layout is pushed under its ref name.
    pub target: String,
    /// Push every layout in subdirectories of LAYOUT, each to TARGET/SUBDIRECTORY,
    /// in one session: shared blobs are uploaded once and mounted elsewhere.
    #[arg(long)]
    pub all: bool,
    /// Allow plain HTTP to the registry (http:// targets are refused without it).
    /// `--insecure=HOST[,HOST...]` also allows sending credentials over plain
    /// HTTP to those other hosts (a token server); without naming it, the
    /// password never goes in clear to a host other than the registry.
    #[arg(
        long,
        env = "OCIPACK_INSECURE",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_name = "HOSTS"
    )]
    pub insecure: Option<String>,
    /// Another repository of the same registry to mount shared blobs from (repeatable).
    #[arg(long = "mount-from", value_name = "REPO")]
    pub mount_from: Vec<String>,
    /// Blobs up to this many MiB go in one PUT; larger ones in chunks of this size.
    #[arg(
        long,
        value_name = "MIB",
        default_value_t = 16,
        env = "OCIPACK_PUSH_CHUNK_MIB"
    )]
    pub chunk_mib: usize,
    /// Attempts per request on 5xx, 429, timeouts and refused or reset connections.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub tries: u32,
    /// Total deadline of the whole push, in seconds (0: none). When it passes,
    /// the push stops with an error; blobs already committed stay, and running
    /// the push again sends only the rest.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 3600,
        env = "OCIPACK_PUSH_TIMEOUT"
    )]
    pub timeout: u64,
    /// Longest silence from the registry (no byte sent or received), in
    /// seconds, before an attempt fails and is retried. Connecting has its own
    /// 10 s limit.
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout: u64,
    /// Blobs checked and uploaded at once, each on its own connection
    /// (1: one at a time). Memory stays below JOBS x 2 x the chunk size.
    #[arg(
        long,
        short = 'j',
        value_name = "N",
        default_value_t = 4,
        env = "OCIPACK_PUSH_JOBS",
        value_parser = clap::value_parser!(u16).range(1..=32)
    )]
    pub jobs: u16,
    /// Do not push the attestations in LAYOUT.attest/oci (SBOMs, signature,
    /// provenance), only the image.
    #[arg(long)]
    pub no_attest: bool,
    /// Sign each pushed image manifest with this private key file (PEM, as
    /// `ocipack sign`; the identity signed is REGISTRY/REPOSITORY of the
    /// target) and push the signature as the tag sha256-<hex>.sig and as a
    /// referrer; add the image's provenance (as `ocipack attest`, same key)
    /// when LAYOUT.attest has none. The layout's own LAYOUT.attest is not changed.
    #[arg(long, value_name = "KEY", conflicts_with = "sign_env")]
    pub sign: Option<PathBuf>,
    /// As --sign, with the private key (PEM) read from this environment variable.
    #[arg(long, value_name = "VAR")]
    pub sign_env: Option<String>,
    /// With --sign: the repository root the added provenance names (git
    /// revision, Cargo.lock, flake.lock, models.toml) [default: nearest
    /// ancestor of the current directory, else of LAYOUT, with models.toml].
    #[arg(long, value_name = "DIR")]
    pub repo_root: Option<PathBuf>,
    /// With --sign: the SBOM cache the added provenance's SBOM model uses.
    #[command(flatten)]
    pub cache: crate::cmd_cache::SbomCacheFlags,
    /// No progress bars.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Runs `ocipack push`.
///
/// # Errors
/// Any push failure, with context; authentication failures become exit code 4.
pub fn run(a: PushArgs, json: bool) -> Result<()> {
    let items = jobs(&a)?;
    let registry = items[0].1.registry.clone();
    let credentials = Credentials::lookup(&registry).context("cannot load registry credentials")?;
    let (insecure, insecure_hosts) = insecure_hosts(a.insecure.as_deref());
    let opts = PushOptions {
        insecure,
        insecure_hosts,
        timeout: (a.timeout > 0).then(|| Duration::from_secs(a.timeout)),
        idle_timeout: Duration::from_secs(a.idle_timeout),
        chunk_size: a.chunk_mib.clamp(1, 1024) * 1024 * 1024,
        retry: RetryPolicy {
            max_tries: a.tries,
            ..RetryPolicy::default()
        },
        mount_from: a.mount_from.clone(),
        credentials,
        jobs: usize::from(a.jobs),
        ..PushOptions::default()
    };
    let key = match (&a.sign, &a.sign_env) {
        (None, None) => None,
        (file, env) => Some(crate::cmd_sign::load_key(file.as_deref(), env.as_deref())?),
    };
    // Only a provenance made for --sign reads the SBOM cache.
    let cache = match &key {
        Some(_) if !a.no_attest => a.cache.open()?,
        _ => None,
    };
    let staging = Staging::default();
    let mut with_attest = Vec::new();
    for (dir, target) in items {
        let attest = crate::cmd_push_sign::attest_for(
            &dir,
            &target,
            a.no_attest,
            key.as_ref(),
            a.repo_root.as_deref(),
            cache.as_ref(),
            &staging,
        )?;
        with_attest.push((dir, target, attest));
    }
    let bars = Bars::new(a.quiet || json);
    let result = ocipack_push::push_all_attested(&with_attest, opts, &bars);
    bars.clear();
    let report = match result {
        Ok(r) => r,
        Err(e) if e.is_auth() => {
            eprintln!("ocipack: error: {e}");
            return Err(crate::exit::Exit(4).into());
        }
        Err(e) => return Err(e).with_context(|| format!("cannot push {}", a.layout.display())),
    };
    if json {
        return crate::exit::print_json(&report);
    }
    print_summary(&report);
    Ok(())
}

/// `--insecure` alone (or `true`): plain HTTP to the registry; a list of
/// hosts: that, and credentials over plain HTTP to those hosts too.
pub(crate) fn insecure_hosts(value: Option<&str>) -> (bool, Vec<String>) {
    match value.map(str::trim) {
        None | Some("false" | "0") => (false, vec![]),
        Some("" | "true" | "1") => (true, vec![]),
        Some(list) => (
            true,
            list.split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .map(str::to_string)
                .collect(),
        ),
    }
}

/// The (layout, target) pairs to push.
fn jobs(a: &PushArgs) -> Result<Vec<(PathBuf, Target)>> {
    if !a.all {
        let t = Target::parse(&a.target)?;
        return Ok(vec![(a.layout.clone(), t)]);
    }
    let prefix = Target::parse(&a.target)?;
    if prefix.tag.is_some() {
        bail!("--all takes REGISTRY/PREFIX without a tag; each layout is pushed under its own ref names, got {}", a.target);
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&a.layout)
        .with_context(|| format!("cannot list {}", a.layout.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("oci-layout").is_file())
        .collect();
    dirs.sort();
    if dirs.is_empty() {
        bail!("{} has no subdirectory holding an OCI layout (an oci-layout file); build images first or drop --all", a.layout.display());
    }
    let mut out = Vec::new();
    for d in dirs {
        let name = d
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let reference = format!("{}/{}/{name}", target_host(&prefix), prefix.repository);
        let t = Target::parse(&reference)
            .with_context(|| format!("layout {} has no valid repository name", d.display()))?;
        out.push((d, t));
    }
    Ok(out)
}

fn target_host(t: &Target) -> String {
    match t.explicit_http {
        Some(true) => format!("http://{}", t.registry),
        Some(false) => format!("https://{}", t.registry),
        None => t.registry.clone(),
    }
}

fn print_summary(r: &PushReport) {
    for im in &r.images {
        let tags: Vec<&str> = im.references.iter().skip(1).map(String::as_str).collect();
        println!("pushed {} ({})", tags.join(", "), im.manifest_digest);
        println!(
            "  {} uploaded ({}), {} already there ({}), {} mounted ({})",
            im.uploaded.blobs,
            HumanBytes(im.uploaded.bytes),
            im.skipped.blobs,
            HumanBytes(im.skipped.bytes),
            im.mounted.blobs,
            HumanBytes(im.mounted.bytes)
        );
        if let Some(at) = &im.attached {
            let via = match at.via {
                ocipack_push::Via::Api => "the referrers API".to_owned(),
                ocipack_push::Via::Tag => format!(
                    "the fallback tag {}",
                    at.fallback_tag.as_deref().unwrap_or("(none: no referrers)")
                ),
            };
            println!(
                "  {} referrer(s) attached, listed through {via}",
                at.referrers.len()
            );
            for r in &at.referrers {
                println!("    {} {} ({})", r.artifact_type, r.digest, r.name);
            }
            if let Some(sig) = &at.signature {
                println!("  signature {sig}");
            }
        }
        for c in &im.children {
            let platform = c.platform.as_ref().map(ToString::to_string);
            println!(
                "  {} {}",
                platform.as_deref().unwrap_or("(no platform)"),
                c.digest
            );
        }
    }
    println!("sent {} in total", HumanBytes(r.bytes_sent));
}

/// One bar per blob in flight on a terminal (up to `--jobs` at once, fed
/// from the upload threads); nothing otherwise. Uploaded blobs keep their
/// finished line; blobs already there or mounted leave none, so pushing a
/// 100-layer image again does not print 100 lines.
struct Bars {
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Bars {
    fn new(quiet: bool) -> Bars {
        let multi = (!quiet && std::io::stderr().is_terminal()).then(MultiProgress::new);
        Bars {
            multi,
            bars: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ProgressBar>> {
        self.bars
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn clear(&self) {
        if let Some(m) = &self.multi {
            let _ = m.clear();
        }
    }
}

fn short(digest: &str) -> &str {
    digest.get(7..19).unwrap_or(digest)
}

impl ocipack_push::Progress for Bars {
    fn blob_started(&self, digest: &str, size: u64) {
        let Some(m) = &self.multi else { return };
        let b = m.add(ProgressBar::new(size));
        b.set_style(
            ProgressStyle::with_template(
                "{prefix} {msg:9} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        b.set_prefix(short(digest).to_string());
        b.set_message("checking");
        self.lock().insert(digest.to_string(), b);
    }
    fn blob_progress(&self, digest: &str, sent: u64, _size: u64) {
        if let Some(b) = self.lock().get(digest) {
            b.set_message("uploading");
            b.set_position(sent);
        }
    }
    fn blob_finished(&self, digest: &str, outcome: BlobOutcome) {
        let Some(b) = self.lock().remove(digest) else {
            return;
        };
        match outcome {
            BlobOutcome::Uploaded => {
                b.set_message("uploaded");
                b.set_position(b.length().unwrap_or(0));
                b.finish();
            }
            BlobOutcome::Skipped | BlobOutcome::Mounted => b.finish_and_clear(),
        }
    }
    fn retrying(&self, what: &str, attempt: u32, delay: Duration, reason: &str) {
        if let Some(m) = &self.multi {
            let _ = m.println(format!("retry {attempt} of {what} in {delay:?}: {reason}"));
        }
    }
}
