//! A push session: one registry, one HTTP agent, one token cache, and the
//! memory of which blobs are already in which repository.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::auth::Credentials;
use crate::client::{Client, ClientConfig, RetryPolicy};
use crate::error::{Error, Result};
use crate::layout::{Budget, Layout, Manifest, MAX_MANIFESTS, MAX_MANIFEST_PUTS};
use crate::progress::{BlobOutcome, Progress};
use crate::reference::Target;
use crate::report::{BlobReport, ImageReport};
use crate::upload::{exists, push_blob, put_manifest, repo_scope, Placed};

/// Default chunk size of a chunked upload, and the largest blob sent in one PUT.
pub const DEFAULT_CHUNK_SIZE: usize = 16 * 1024 * 1024;

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
        }
    }
}

/// A connection to one registry that can push several layouts.
pub struct Session<'p> {
    client: Client,
    opts: PushOptions,
    progress: &'p dyn Progress,
    /// digest -> a repository of this registry known to hold it.
    known: HashMap<String, String>,
    /// (repository, digest) pairs known present, to save HEADs.
    present: HashSet<(String, String)>,
    /// (repository, digest) of child manifests this session already put.
    manifests_put: HashSet<(String, String)>,
}

impl<'p> Session<'p> {
    /// Prepares a session for `target`'s registry; no request is made yet.
    ///
    /// # Errors
    /// [`Error::InsecureRefused`] for an `http://` target without `insecure`.
    pub fn new(target: &Target, opts: PushOptions, progress: &'p dyn Progress) -> Result<Self> {
        let http = match target.explicit_http {
            Some(true) if !opts.insecure => {
                return Err(Error::InsecureRefused {
                    registry: target.registry.clone(),
                })
            }
            Some(explicit) => explicit,
            None => opts.insecure,
        };
        let client = Client::new(
            &target.registry,
            opts.credentials.clone(),
            ClientConfig {
                http,
                insecure_hosts: opts.insecure_hosts.clone(),
                retry: opts.retry,
                connect_timeout: opts.connect_timeout,
                idle_timeout: opts.idle_timeout,
                deadline: opts.timeout.map(|t| (Instant::now() + t, t)),
            },
        );
        Ok(Session {
            client,
            opts: PushOptions {
                chunk_size: opts.chunk_size.max(1024),
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
        if target.registry != self.client.registry {
            return Err(Error::Reference {
                reference: format!("{}/{}", target.registry, target.repository),
                reason: format!(
                    "this session pushes to {}; push to other registries in separate sessions",
                    self.client.registry
                ),
            });
        }
        let layout = Layout::open(dir)?;
        let selected = layout.select(target.tag.as_deref())?;
        // Read and check everything before the first request, so a broken
        // or hostile layout is refused with nothing sent. Each distinct
        // manifest and blob is checked once: linear in the layout's size.
        let puts: usize = selected.iter().map(|(_, tags)| 1 + tags.len()).sum();
        if selected.len() > MAX_MANIFESTS || puts > MAX_MANIFEST_PUTS {
            return Err(Error::Layout {
                path: dir.join("index.json"),
                reason: format!(
                    "the push selects {} manifests under {} references; at most {MAX_MANIFESTS} \
                     manifests and {MAX_MANIFEST_PUTS} manifest uploads per push; give a tag \
                     (REPO:TAG) to push one",
                    selected.len(),
                    puts
                ),
            });
        }
        let mut budget = Budget::default();
        let mut checked = HashSet::new();
        let mut manifests = Vec::new();
        let mut puts = 0;
        for (desc, tags) in selected {
            let m = layout.manifest(&desc, &mut budget)?;
            puts += 1 + tags.len() + m.children_in_push_order().len();
            if puts > MAX_MANIFEST_PUTS {
                return Err(Error::Layout {
                    path: dir.join("index.json"),
                    reason: format!(
                        "the push would make more than {MAX_MANIFEST_PUTS} manifest uploads; \
                         give a tag (REPO:TAG) to push one image"
                    ),
                });
            }
            for b in m.all_blobs() {
                if !checked.insert(b.digest.clone()) {
                    continue;
                }
                let path = layout.blob_path(&b.digest)?;
                let meta = std::fs::metadata(&path).map_err(|e| Error::io(&path, e))?;
                if !meta.is_file() {
                    return Err(Error::Layout {
                        path,
                        reason: "not a regular file (a FIFO, device, socket or directory, \
                                 directly or through a symlink); layouts hold regular files only"
                            .into(),
                    });
                }
                if meta.len() != b.size {
                    return Err(Error::Layout {
                        path,
                        reason: format!(
                            "the blob has {} bytes, its descriptor says {}",
                            meta.len(),
                            b.size
                        ),
                    });
                }
            }
            manifests.push((m, tags));
        }
        let mut reports = Vec::new();
        for (m, tags) in manifests {
            reports.push(self.push_manifest(&layout, &m, &tags, &target.repository)?);
        }
        Ok(reports)
    }

    fn push_manifest(
        &mut self,
        layout: &Layout,
        m: &Manifest,
        tags: &[String],
        repo: &str,
    ) -> Result<ImageReport> {
        let mut report = ImageReport {
            registry: self.client.registry.clone(),
            repository: repo.to_string(),
            manifest_digest: m.descriptor.digest.clone(),
            ..ImageReport::default()
        };
        for b in m.all_blobs() {
            let path = layout.blob_path(&b.digest)?;
            self.progress.blob_started(&b.digest, b.size);
            let (outcome, mounted_from) = self.place_blob(repo, &b, &path)?;
            self.progress.blob_finished(&b.digest, outcome);
            self.known.insert(b.digest.clone(), repo.to_string());
            self.present.insert((repo.to_string(), b.digest.clone()));
            report.record(BlobReport {
                digest: b.digest.clone(),
                size: b.size,
                outcome,
                mounted_from,
            });
        }
        self.put_children(m, repo)?;
        let p = self.progress;
        put_manifest(
            &self.client,
            repo,
            &m.descriptor.digest,
            m.media_type(),
            &m.bytes,
            &m.descriptor.digest,
            p,
        )?;
        report.references.push(format!(
            "{}/{repo}@{}",
            self.client.registry, m.descriptor.digest
        ));
        for tag in tags {
            put_manifest(
                &self.client,
                repo,
                tag,
                m.media_type(),
                &m.bytes,
                &m.descriptor.digest,
                p,
            )?;
            report
                .references
                .push(format!("{}/{repo}:{tag}", self.client.registry));
        }
        Ok(report)
    }

    /// Children of an index go in by digest, deepest first, before their
    /// parent; each distinct child once per repository.
    fn put_children(&mut self, m: &Manifest, repo: &str) -> Result<()> {
        for c in m.children_in_push_order() {
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
                c.media_type(),
                &c.bytes,
                &c.descriptor.digest,
                self.progress,
            )?;
        }
        Ok(())
    }

    fn place_blob(
        &mut self,
        repo: &str,
        b: &crate::layout::Descriptor,
        path: &Path,
    ) -> Result<(BlobOutcome, Option<String>)> {
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
            path,
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
