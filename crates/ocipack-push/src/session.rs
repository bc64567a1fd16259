//! A push session: one registry, one HTTP agent, one token cache, and the
//! memory of which blobs are already in which repository.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use crate::auth::Credentials;
use crate::client::{Client, RetryPolicy};
use crate::error::{Error, Result};
use crate::layout::{Layout, Manifest};
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
    /// Blobs up to this size go in one PUT; larger ones in PATCH chunks of it.
    pub chunk_size: usize,
    /// Retries for transient failures.
    pub retry: RetryPolicy,
    /// Repositories of the same registry to try cross-repository mounts from.
    pub mount_from: Vec<String>,
    /// Credentials; `None` pushes anonymously. See [`Credentials::lookup`].
    pub credentials: Option<Credentials>,
    /// Upper bound for one HTTP request, body included.
    pub request_timeout: Duration,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            insecure: false,
            chunk_size: DEFAULT_CHUNK_SIZE,
            retry: RetryPolicy::default(),
            mount_from: Vec::new(),
            credentials: None,
            request_timeout: Duration::from_secs(600),
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
            http,
            opts.credentials.clone(),
            opts.retry,
            opts.request_timeout,
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
        })
    }

    /// The registry this session talks to.
    pub fn registry(&self) -> &str {
        &self.client.registry
    }

    /// Request body bytes sent so far, retries included.
    pub fn bytes_sent(&self) -> u64 {
        self.client.bytes_sent.get()
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
        // layout is refused with nothing sent.
        let mut manifests = Vec::new();
        for (desc, tags) in selected {
            let m = layout.manifest(&desc)?;
            for b in m.all_blobs() {
                let path = layout.blob_path(&b.digest)?;
                let meta = std::fs::metadata(&path).map_err(|e| Error::io(&path, e))?;
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

    /// Children of an index go in by digest, deepest first, before their parent.
    fn put_children(&self, m: &Manifest, repo: &str) -> Result<()> {
        for c in &m.children {
            self.put_children(c, repo)?;
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
