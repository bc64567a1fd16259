//! A push session: one registry, one HTTP agent, one token cache, and the
//! memory of which blobs are already in which repository.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::auth::Credentials;
use crate::client::{Client, ClientConfig, RetryPolicy};
use crate::error::{Error, Result};
use ocipack::layout::{Descriptor, ImageGraph, Layout, Manifest, Platform};

use crate::attach::{self, Attachments};
use crate::images;
use crate::progress::{BlobOutcome, Progress};
use crate::reference::Target;
use crate::report::{BlobReport, ChildReport, ImageReport};
use crate::upload::{exists, push_blob, put_manifest, repo_scope, Placed};

/// Default chunk size of a chunked upload, and the largest blob sent in one PUT.
pub const DEFAULT_CHUNK_SIZE: usize = 16 * 1024 * 1024;

/// Default [`PushOptions::jobs`]: blobs checked and uploaded at once.
pub const DEFAULT_JOBS: usize = 4;

/// Upper bound of [`PushOptions::jobs`] (larger values are clamped).
pub const MAX_JOBS: usize = 32;

/// How to push.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// Allow plain HTTP. Without it `http://` targets are refused and
    /// scheme-less targets use HTTPS.
    pub insecure: bool,
    /// Further hosts (`host[:port]`, e.g. a token realm) that may receive
    /// credentials over plain HTTP. Empty: only the registry itself, and
    /// only with `insecure`.
    pub insecure_hosts: Vec<String>,
    /// Blobs up to this size go in one PUT; larger ones in PATCH chunks of it.
    pub chunk_size: usize,
    /// Retries for transient failures.
    pub retry: RetryPolicy,
    /// Repositories of the same registry to try cross-repository mounts from.
    pub mount_from: Vec<String>,
    /// Credentials; `None` pushes anonymously. See [`Credentials::lookup`].
    pub credentials: Option<Credentials>,
    /// TCP and TLS connection set-up, per attempt.
    pub connect_timeout: Duration,
    /// Longest silence while sending to or waiting for the registry (per
    /// socket read or write); an attempt that stalls longer fails and is retried.
    pub idle_timeout: Duration,
    /// Total deadline of the session, from [`Session::new`]; `None` for none.
    pub timeout: Option<Duration>,
    /// Blobs checked (HEAD), mounted or uploaded at once, each on its own
    /// thread and connection; 1 pushes one blob at a time. Clamped to
    /// 1..=[`MAX_JOBS`]. Memory stays below `jobs` times twice the chunk size.
    pub jobs: usize,
}

/// Default [`PushOptions::connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`PushOptions::idle_timeout`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default [`PushOptions::timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            insecure: false,
            chunk_size: DEFAULT_CHUNK_SIZE,
            retry: RetryPolicy::default(),
            mount_from: Vec::new(),
            insecure_hosts: Vec::new(),
            credentials: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            timeout: Some(DEFAULT_TIMEOUT),
            jobs: DEFAULT_JOBS,
        }
    }
}

/// The HTTP client for `registry` as `opts` say (plain HTTP only with
/// `insecure`, or for an explicit `http://` with it).
pub(crate) fn client_for(
    registry: &str,
    explicit_http: Option<bool>,
    opts: &PushOptions,
) -> Result<Client> {
    let http = match explicit_http {
        Some(true) if !opts.insecure => {
            return Err(Error::InsecureRefused {
                registry: registry.to_owned(),
            })
        }
        Some(explicit) => explicit,
        None => opts.insecure,
    };
    Ok(Client::new(
        registry,
        opts.credentials.clone(),
        ClientConfig {
            http,
            insecure_hosts: opts.insecure_hosts.clone(),
            retry: opts.retry,
            connect_timeout: opts.connect_timeout,
            idle_timeout: opts.idle_timeout,
            deadline: opts.timeout.map(|t| (Instant::now() + t, t)),
            connections: opts.jobs.clamp(1, MAX_JOBS),
        },
    ))
}

/// What happened to a blob, and the repository it was mounted from.
type Placement = (BlobOutcome, Option<String>);

/// A connection to one registry that can push several layouts.
pub struct Session<'p> {
    pub(crate) client: Client,
    opts: PushOptions,
    pub(crate) progress: &'p dyn Progress,
    /// digest -> a repository of this registry known to hold it.
    pub(crate) known: HashMap<String, String>,
    /// (repository, digest) pairs known present, to save HEADs.
    pub(crate) present: HashSet<(String, String)>,
    /// (repository, digest) of child manifests this session already put.
    manifests_put: HashSet<(String, String)>,
}

impl<'p> Session<'p> {
    /// Prepares a session for `target`'s registry; no request is made yet.
    ///
    /// # Errors
    /// [`Error::InsecureRefused`] for an `http://` target without `insecure`.
    pub fn new(target: &Target, opts: PushOptions, progress: &'p dyn Progress) -> Result<Self> {
        let client = client_for(&target.registry, target.explicit_http, &opts)?;
        Ok(Session {
            client,
            opts: PushOptions {
                chunk_size: opts.chunk_size.max(1024),
                jobs: opts.jobs.clamp(1, MAX_JOBS),
                ..opts
            },
            progress,
            known: HashMap::new(),
            present: HashSet::new(),
            manifests_put: HashSet::new(),
        })
    }

    /// The registry this session talks to.
    pub fn registry(&self) -> &str {
        &self.client.registry
    }

    /// Blobs pushed at once (the clamped [`PushOptions::jobs`]).
    pub fn jobs(&self) -> usize {
        self.opts.jobs
    }

    /// Request body bytes sent so far, retries included.
    pub fn bytes_sent(&self) -> u64 {
        self.client
            .bytes_sent
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Pushes the layout at `dir` to `target` (which must be on this
    /// session's registry): blobs first, then child manifests, then the
    /// manifest by digest and by each tag.
    ///
    /// # Errors
    /// Layout, digest, authentication and registry errors; see [`Error`].
    pub fn push(&mut self, dir: &Path, target: &Target) -> Result<Vec<ImageReport>> {
        self.push_attested(dir, target, None)
    }

    /// [`Session::push`], and with `attest` (an attestation layout,
    /// `OUT.attest/oci`) the image's SBOMs, signatures and provenance: each
    /// image's blobs and manifest by digest, then its artifacts (blobs,
    /// manifests by digest), the referrers fallback tag where the registry
    /// has no referrers API, the cosign `.sig` tag, and only then the
    /// image's own tags. A registry refusing an artifact stops the push
    /// before any of those tags moves (docs/push.md, "Attestations").
    ///
    /// # Errors
    /// As [`Session::push`]; [`Error::Attest`] (before any request) for an
    /// attestation layout made for another image; [`Error::ReferrerRefused`].
    pub fn push_attested(
        &mut self,
        dir: &Path,
        target: &Target,
        attest: Option<&Path>,
    ) -> Result<Vec<ImageReport>> {
        if target.registry != self.client.registry {
            return Err(Error::Reference {
                reference: format!("{}/{}", target.registry, target.repository),
                reason: format!(
                    "this session pushes to {}; push to other registries in separate sessions",
                    self.client.registry
                ),
            });
        }
        let layout = images::open(dir)?;
        let index = layout
            .index_descriptors()
            .map_err(|e| images::from_layout(dir, e))?;
        let selected = images::select(dir, &index, target.tag.as_deref())?;
        // Read and check everything before the first request, so a broken
        // or hostile layout is refused with nothing sent. The reader visits
        // each distinct manifest once and bounds depth, entries and counts.
        let roots: Vec<Descriptor> = selected.iter().map(|(d, _)| d.clone()).collect();
        let graph = layout
            .graph(&roots)
            .map_err(|e| images::from_layout(dir, e))?;
        // Manifest uploads are bounded by the reader's limits too: at most
        // `max_index_entries` tags plus `max_manifests` distinct manifests.
        let mut checked = HashSet::new();
        for (root, _) in &selected {
            for b in graph.blobs(&root.digest) {
                if checked.insert(b.digest.clone()) {
                    // A regular file of the descriptor's size (nothing read yet).
                    layout
                        .open_blob(&b)
                        .map_err(|e| images::from_layout(dir, e))?;
                }
            }
        }
        let attached = match attest {
            Some(a) => {
                let digests: Vec<String> = selected.iter().map(|(d, _)| d.digest.clone()).collect();
                let plan = attach::plan(a, &digests)?;
                for b in selected.iter().flat_map(|(d, _)| plan.blobs(&d.digest)) {
                    plan.layout
                        .open_blob(&b)
                        .map_err(|e| images::from_layout(a, e))?;
                }
                Some(plan)
            }
            None => None,
        };
        let mut reports = Vec::new();
        for (root, tags) in &selected {
            reports.push(self.push_manifest(
                &layout,
                &graph,
                &root.digest,
                tags,
                &target.repository,
                attached.as_ref(),
            )?);
        }
        Ok(reports)
    }

    fn push_manifest(
        &mut self,
        layout: &Layout,
        graph: &ImageGraph,
        root: &str,
        tags: &[String],
        repo: &str,
        attached: Option<&Attachments>,
    ) -> Result<ImageReport> {
        let mut report = ImageReport {
            registry: self.client.registry.clone(),
            repository: repo.to_string(),
            manifest_digest: root.to_string(),
            ..ImageReport::default()
        };
        self.place_and_record(repo, &graph.blobs(root), layout, &mut report)?;
        // Every blob is confirmed in the repository (HEAD 200, a 201 for its
        // upload or mount): only now may a manifest that names them go in.
        let p = self.progress;
        // Children of an index by digest, each distinct one once per
        // repository, before the indexes that list them; the root last.
        let order = graph.children_first(root);
        let (top, children) = order.split_last().expect("the root is in its own graph");
        for c in children {
            if !self
                .manifests_put
                .insert((repo.to_string(), c.descriptor.digest.clone()))
            {
                continue;
            }
            put_manifest(
                &self.client,
                repo,
                &c.descriptor.digest,
                &c.descriptor.media_type,
                &c.bytes,
                &c.descriptor.digest,
                p,
            )?;
        }
        put_manifest(
            &self.client,
            repo,
            root,
            &top.descriptor.media_type,
            &top.bytes,
            root,
            p,
        )?;
        report
            .references
            .push(format!("{}/{repo}@{root}", self.client.registry));
        report.children = self.children_of(layout, top, repo);
        if let Some(a) = attached.filter(|a| a.by_image.contains_key(root)) {
            report.attached = Some(self.attach(a, &top.descriptor, repo, &mut report)?);
        }
        // The image's tags last: a tag moves only once all its evidence is in.
        for tag in tags {
            put_manifest(
                &self.client,
                repo,
                tag,
                &top.descriptor.media_type,
                &top.bytes,
                root,
                p,
            )?;
            report
                .references
                .push(format!("{}/{repo}:{tag}", self.client.registry));
        }
        Ok(report)
    }

    /// Places every blob of one manifest, up to `jobs` at once: a pool of
    /// scoped threads takes the blobs in order from a shared counter, each
    /// doing the HEAD, the mount or the upload of its blob on its own
    /// connection. The first failure stops the pool from taking new blobs;
    /// those in flight finish (within their retries and the deadline), so
    /// a rerun finds them committed. Results come back in `blobs` order.
    /// Places `blobs` in `repo` (as [`Session::place_blobs`]), remembers
    /// them as present there and records each in `report`.
    pub(crate) fn place_and_record(
        &mut self,
        repo: &str,
        blobs: &[Descriptor],
        layout: &Layout,
        report: &mut ImageReport,
    ) -> Result<()> {
        for (b, (outcome, mounted_from)) in blobs.iter().zip(self.place_blobs(repo, blobs, layout)?)
        {
            self.known.insert(b.digest.clone(), repo.to_string());
            self.present.insert((repo.to_string(), b.digest.clone()));
            report.record(BlobReport {
                digest: b.digest.clone(),
                size: b.size,
                outcome,
                mounted_from,
            });
        }
        Ok(())
    }

    pub(crate) fn place_blobs(
        &self,
        repo: &str,
        blobs: &[Descriptor],
        layout: &Layout,
    ) -> Result<Vec<Placement>> {
        if blobs.is_empty() {
            return Ok(Vec::new());
        }
        // Learn the registry's auth scheme once, before the threads start.
        self.client.ping(self.progress)?;
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let workers = self.opts.jobs.min(blobs.len());
        let worker = || {
            let mut done = Vec::new();
            while !failed.load(Ordering::Relaxed) {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(b) = blobs.get(i) else { break };
                self.progress.blob_started(&b.digest, b.size);
                let placed = self.place_blob(repo, b, layout);
                match &placed {
                    Ok((outcome, _)) => self.progress.blob_finished(&b.digest, *outcome),
                    Err(_) => failed.store(true, Ordering::Relaxed),
                }
                done.push((i, placed));
            }
            done
        };
        let mut results: Vec<(usize, Result<Placement>)> = if workers == 1 {
            worker()
        } else {
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..workers).map(|_| s.spawn(worker)).collect();
                handles
                    .into_iter()
                    .flat_map(|h| h.join().expect("an upload thread does not panic"))
                    .collect()
            })
        };
        results.sort_by_key(|(i, _)| *i);
        // The first failure in blob order is the one reported.
        results.into_iter().map(|(_, r)| r).collect()
    }

    /// What an index lists, with platforms from the index entries (read
    /// through `Layout::read_index`; where that reader declines, e.g. an
    /// index of indexes, which push also handles, the platform stays empty).
    fn children_of(&self, layout: &Layout, top: &Manifest, repo: &str) -> Vec<ChildReport> {
        if !top.descriptor.is_index() {
            return Vec::new();
        }
        let platforms: HashMap<String, Platform> = layout
            .read_index(&top.descriptor)
            .map(|doc| {
                doc.children
                    .into_iter()
                    .filter_map(|c| Some((c.descriptor.digest, c.platform?)))
                    .collect()
            })
            .unwrap_or_default();
        top.children
            .iter()
            .map(|c| ChildReport {
                digest: c.digest.clone(),
                media_type: c.media_type.clone(),
                platform: platforms.get(&c.digest).cloned(),
                reference: format!("{}/{repo}@{}", self.client.registry, c.digest),
            })
            .collect()
    }

    fn place_blob(&self, repo: &str, b: &Descriptor, layout: &Layout) -> Result<Placement> {
        let p = self.progress;
        let key = (repo.to_string(), b.digest.clone());
        if self.present.contains(&key)
            || exists(&self.client, repo, &b.digest, &repo_scope(repo), p)?
        {
            return Ok((BlobOutcome::Skipped, None));
        }
        let from = self.mount_source(repo, &b.digest)?;
        match push_blob(
            &self.client,
            repo,
            b,
            layout,
            from.as_deref(),
            self.opts.chunk_size,
            p,
        )? {
            Placed::Mounted => Ok((BlobOutcome::Mounted, from)),
            Placed::Uploaded => Ok((BlobOutcome::Uploaded, None)),
        }
    }

    /// A repository to mount `digest` from: one this session put it in, else
    /// the first caller-given candidate that has it (checked with HEAD, so a
    /// useless mount attempt does not leave an upload session behind).
    fn mount_source(&self, repo: &str, digest: &str) -> Result<Option<String>> {
        if let Some(r) = self.known.get(digest).filter(|r| *r != repo) {
            return Ok(Some(r.clone()));
        }
        for cand in self.opts.mount_from.iter().filter(|c| *c != repo) {
            let scope = format!("repository:{cand}:pull");
            // A candidate we may not read is just not a candidate.
            match exists(&self.client, cand, digest, &scope, self.progress) {
                Ok(true) => return Ok(Some(cand.clone())),
                Ok(false) => {}
                Err(e) if e.is_auth() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }
}
