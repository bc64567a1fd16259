//! Blob uploads: HEAD, cross-repository mount, monolithic PUT, chunked PATCH.
//!
//! No byte leaves the process before it is verified. A blob file is opened
//! once (a regular file of the descriptor's size, symlinks followed), and
//! its sha256 is checked against its name before the first byte is sent:
//! a small blob (at most one chunk) is read whole and hashed; a large one is
//! hashed in one streaming pass over the opened file, then sent from the same
//! file a chunk at a time (two chunk buffers, so that reading overlaps
//! sending). The bytes actually sent are hashed again and compared before
//! the upload is committed, so a file rewritten in place between the two
//! passes is still never committed. Memory stays bounded by the chunk size.

use std::fs::File;
use std::io::{Read, Seek as _, SeekFrom};
use std::path::Path;
use std::sync::mpsc;

use ocipack::digest::Sha256Hasher;
use ocipack::layout::{Descriptor, Layout, VerifiedReader};
use ureq::http::Method;

use crate::client::{percent_encode, status_error, Client, Req};
use crate::error::{Error, Result};
use crate::images;
use crate::progress::Progress;

/// Where a blob upload ended.
pub(crate) enum Placed {
    Uploaded,
    Mounted,
}

pub(crate) fn repo_scope(repo: &str) -> String {
    format!("repository:{repo}:pull,push")
}

/// `HEAD /v2/<repo>/blobs/<digest>`: whether the repository has the blob.
pub(crate) fn exists(
    client: &Client,
    repo: &str,
    digest: &str,
    scope: &str,
    p: &dyn Progress,
) -> Result<bool> {
    let url = format!("{}/v2/{repo}/blobs/{digest}", client.base);
    let resp = client.send(
        &Req {
            method: Method::HEAD,
            url: url.clone(),
            headers: vec![],
            body: None,
            scope: scope.to_string(),
            tries: client.retry.max_tries,
        },
        p,
    )?;
    match resp.status().as_u16() {
        200 => Ok(true),
        404 => Ok(false),
        _ => Err(status_error("HEAD", &url, resp)),
    }
}

/// Starts an upload session, trying a mount from `from` first. `Ok(None)`
/// means the registry mounted the blob and there is nothing to send.
pub(crate) fn start(
    client: &Client,
    repo: &str,
    digest: &str,
    from: Option<&str>,
    p: &dyn Progress,
) -> Result<Option<String>> {
    let mut url = format!("{}/v2/{repo}/blobs/uploads/", client.base);
    let mut scope = repo_scope(repo);
    if let Some(from) = from {
        url.push_str(&format!(
            "?mount={}&from={}",
            percent_encode(digest),
            percent_encode(from)
        ));
        scope.push_str(&format!(" repository:{from}:pull"));
    }
    let resp = client.send(
        &Req {
            method: Method::POST,
            url: url.clone(),
            headers: vec![],
            body: Some(&[]),
            scope,
            tries: client.retry.max_tries,
        },
        p,
    )?;
    match resp.status().as_u16() {
        201 if from.is_some() => Ok(None),
        202 => Ok(Some(location(client, &resp, &url)?)),
        _ => Err(status_error("POST", &url, resp)),
    }
}

fn location(client: &Client, resp: &ureq::http::Response<ureq::Body>, url: &str) -> Result<String> {
    let loc = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Error::Protocol {
            registry: client.registry.clone(),
            reason: format!("{url} answered {} without a Location header", resp.status()),
        })?;
    Ok(client.absolute(loc))
}

fn with_digest(location: &str, digest: &str) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={}", percent_encode(digest))
}

/// Reads up to `buf.len()` bytes, stopping early only at end of file.
fn read_full(file: &mut impl Read, buf: &mut [u8], path: &Path) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    Ok(n)
}

fn mismatch(path: &Path, desc: &Descriptor, actual: String) -> Error {
    Error::DigestMismatch {
        path: path.to_path_buf(),
        expected: desc.digest.clone(),
        actual,
    }
}

/// Pushes one missing blob: mount when `from` is given, else upload.
#[allow(clippy::too_many_arguments)]
pub(crate) fn push_blob(
    client: &Client,
    repo: &str,
    desc: &Descriptor,
    layout: &Layout,
    from: Option<&str>,
    chunk_size: usize,
    p: &dyn Progress,
) -> Result<Placed> {
    let dir = layout.dir();
    if desc.size <= chunk_size as u64 {
        // Read and verify first: a corrupt small blob costs no request at
        // all. The reader refuses non-regular files and a wrong size before
        // reading, and fails at the end on a digest mismatch.
        let mut r = layout
            .open_blob(desc)
            .map_err(|e| images::from_layout(dir, e))?;
        let mut bytes = Vec::with_capacity(desc.size as usize);
        r.read_to_end(&mut bytes)
            .map_err(|e| images::from_layout(dir, layout.read_err(&desc.digest, e)))?;
        let Some(loc) = start(client, repo, &desc.digest, from, p)? else {
            return Ok(Placed::Mounted);
        };
        let url = with_digest(&loc, &desc.digest);
        let resp = client.send(
            &Req {
                method: Method::PUT,
                url: url.clone(),
                headers: vec![("Content-Type", "application/octet-stream".into())],
                body: Some(&bytes),
                scope: repo_scope(repo),
                tries: client.retry.max_tries,
            },
            p,
        )?;
        if resp.status().as_u16() != 201 {
            return Err(status_error("PUT", &url, resp));
        }
        p.blob_progress(&desc.digest, desc.size, desc.size);
        return Ok(Placed::Uploaded);
    }
    // Verify before any byte of it leaves: a blob that is not what its name
    // says (say, a symlink to a file outside the layout) costs no request.
    // The same open file is then sent, so swapping the path afterwards
    // changes nothing.
    let path = layout
        .blob_path(&desc.digest)
        .map_err(|e| images::from_layout(dir, e))?;
    let path = path.as_path();
    let file = open_blob(path, desc)?;
    VerifiedReader::new(&file, &desc.digest, Some(desc.size))
        .verify_to_end()
        .map_err(|e| images::from_layout(dir, layout.read_err(&desc.digest, e)))?;
    let mut session = match start(client, repo, &desc.digest, from, p)? {
        None => return Ok(Placed::Mounted),
        Some(loc) => Some(loc),
    };
    let mut attempt = 1;
    loop {
        let loc = match session.take() {
            Some(l) => l,
            None => start(client, repo, &desc.digest, None, p)?
                .expect("a plain upload start never mounts"),
        };
        (&file)
            .seek(SeekFrom::Start(0))
            .map_err(|e| Error::io(path, e))?;
        let f = file.try_clone().map_err(|e| Error::io(path, e))?;
        match chunked(client, repo, desc, path, f, loc, chunk_size, p) {
            Ok(()) => return Ok(Placed::Uploaded),
            Err(e) if attempt < client.retry.max_tries && restartable(&e) => {
                let delay = client.retry.delay(attempt);
                p.retrying(
                    &format!("upload of {}", desc.digest),
                    attempt,
                    delay,
                    &e.to_string(),
                );
                std::thread::sleep(delay);
                attempt += 1;
                // The commit may have landed even though its answer was lost.
                if exists(client, repo, &desc.digest, &repo_scope(repo), p)? {
                    return Ok(Placed::Uploaded);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Failures after which starting the blob's upload again can succeed.
fn restartable(e: &Error) -> bool {
    match e {
        Error::Http { source, .. } => crate::client::is_transient(source),
        // 404 and 416: the session was lost or is out of step with us.
        Error::Status { status, .. } => matches!(status, 404 | 416 | 429 | 500..=599),
        _ => false,
    }
}

/// Opens a blob: a regular file (symlinks followed, as `Layout::open_blob`
/// does) of the descriptor's size. Push keeps the `File` to send from the
/// very file it verified; see /work/notes/layout-api-requests.md.
fn open_blob(path: &Path, desc: &Descriptor) -> Result<File> {
    let not_regular = || Error::Layout {
        path: path.to_path_buf(),
        reason: "not a regular file (a FIFO, device, socket or directory, directly or \
                 through a symlink); layouts hold regular files only"
            .into(),
    };
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(not_regular());
    }
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    if !f.metadata().map_err(|e| Error::io(path, e))?.is_file() {
        return Err(not_regular());
    }
    if meta.len() != desc.size {
        return Err(Error::Layout {
            path: path.to_path_buf(),
            reason: format!(
                "the blob has {} bytes, its descriptor says {}",
                meta.len(),
                desc.size
            ),
        });
    }
    Ok(f)
}

#[allow(clippy::too_many_arguments)]
fn chunked(
    client: &Client,
    repo: &str,
    desc: &Descriptor,
    path: &Path,
    mut file: File,
    mut loc: String,
    chunk_size: usize,
    p: &dyn Progress,
) -> Result<()> {
    // A reader thread reads and hashes the next chunk while the current one
    // is on the wire, so the registry does not sit idle between PATCHes.
    // Two buffers circulate: memory stays at twice the chunk size.
    let (full_tx, full_rx) = mpsc::sync_channel::<Result<(Vec<u8>, usize)>>(1);
    let (free_tx, free_rx) = mpsc::channel::<Vec<u8>>();
    for _ in 0..2 {
        free_tx
            .send(vec![0u8; chunk_size])
            .expect("receiver is alive");
    }
    let (sent, hasher) = std::thread::scope(|s| {
        let reader = s.spawn(move || {
            let mut hasher = Sha256Hasher::new();
            // Never more than the verified size: a file that grew since the
            // check sends nothing beyond it.
            let mut left = desc.size;
            // Ends when the sender loop hangs up (its error) or at end of file.
            while let Ok(mut buf) = free_rx.recv() {
                let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                match read_full(&mut file, &mut buf[..want], path) {
                    Ok(0) => return Some(hasher),
                    Ok(n) => {
                        left -= n as u64;
                        hasher.update(&buf[..n]);
                        if full_tx.send(Ok((buf, n))).is_err() {
                            return None;
                        }
                    }
                    Err(e) => {
                        let _ = full_tx.send(Err(e));
                        return None;
                    }
                }
            }
            None
        });
        let sent = send_chunks(client, repo, desc, &mut loc, full_rx, free_tx, p);
        (
            sent,
            reader.join().expect("the reader thread does not panic"),
        )
    });
    let offset = sent?;
    let hasher = hasher.expect("the reader finished because the sender saw end of file");
    let actual = hasher.finish();
    if actual != desc.digest || offset != desc.size {
        // Best effort: the registry would refuse the commit anyway, and
        // abandoned sessions are purged; the corrupt file is the news.
        let _ = client.send(
            &Req {
                method: Method::DELETE,
                url: loc,
                headers: vec![],
                body: None,
                scope: repo_scope(repo),
                tries: 1,
            },
            p,
        );
        return Err(mismatch(path, desc, actual));
    }
    let url = with_digest(&loc, &desc.digest);
    let resp = client.send(
        &Req {
            method: Method::PUT,
            url: url.clone(),
            headers: vec![("Content-Type", "application/octet-stream".into())],
            body: Some(&[]),
            scope: repo_scope(repo),
            tries: 1,
        },
        p,
    )?;
    if resp.status().as_u16() != 201 {
        return Err(status_error("PUT", &url, resp));
    }
    Ok(())
}

/// PATCHes every chunk the reader produces; returns the bytes sent. Takes
/// both channel ends by value so that returning early hangs up on the reader.
fn send_chunks(
    client: &Client,
    repo: &str,
    desc: &Descriptor,
    loc: &mut String,
    full: mpsc::Receiver<Result<(Vec<u8>, usize)>>,
    free: mpsc::Sender<Vec<u8>>,
    p: &dyn Progress,
) -> Result<u64> {
    let mut offset: u64 = 0;
    while let Ok(next) = full.recv() {
        let (buf, n) = next?;
        let end = offset + n as u64 - 1;
        // A PATCH is not retried on its own: whether the registry appended
        // part of it is unknown, so the caller restarts the whole blob.
        let resp = client.send(
            &Req {
                method: Method::PATCH,
                url: loc.clone(),
                headers: vec![
                    ("Content-Type", "application/octet-stream".into()),
                    ("Content-Range", format!("{offset}-{end}")),
                ],
                body: Some(&buf[..n]),
                scope: repo_scope(repo),
                tries: 1,
            },
            p,
        )?;
        if resp.status().as_u16() != 202 {
            return Err(status_error("PATCH", loc, resp));
        }
        *loc = location(client, &resp, loc)?;
        offset += n as u64;
        p.blob_progress(&desc.digest, offset, desc.size);
        // The reader may already be gone after its last chunk.
        let _ = free.send(buf);
    }
    Ok(offset)
}

/// `PUT /v2/<repo>/manifests/<reference>` with the exact bytes from the
/// layout; returns the `OCI-Subject` header (a registry with the referrers
/// API sends it for a manifest with a `subject`).
pub(crate) fn put_manifest(
    client: &Client,
    repo: &str,
    reference: &str,
    media_type: &str,
    bytes: &[u8],
    digest: &str,
    p: &dyn Progress,
) -> Result<Option<String>> {
    let url = format!("{}/v2/{repo}/manifests/{reference}", client.base);
    let resp = put_created(client, repo, url, media_type, bytes, p)?;
    if let Some(got) = resp
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
    {
        if got != digest {
            return Err(Error::Protocol {
                registry: client.registry.clone(),
                reason: format!(
                    "stored manifest {repo}:{reference} as {got}, but its bytes hash to {digest}"
                ),
            });
        }
    }
    p.manifest_pushed(repo, reference);
    // A registry with the referrers API names the subject it indexed.
    Ok(resp
        .headers()
        .get("oci-subject")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned))
}

/// Uploads a small blob held in memory (a config ocipack made for the
/// registry, not read from a layout): one POST, one PUT with the digest.
pub(crate) fn put_small_blob(
    client: &Client,
    repo: &str,
    digest: &str,
    bytes: &[u8],
    p: &dyn Progress,
) -> Result<()> {
    let Some(loc) = start(client, repo, digest, None, p)? else {
        return Ok(());
    };
    put_created(
        client,
        repo,
        with_digest(&loc, digest),
        "application/octet-stream",
        bytes,
        p,
    )?;
    Ok(())
}

/// One PUT of `bytes` to `url` that must answer 201 Created.
fn put_created(
    client: &Client,
    repo: &str,
    url: String,
    content_type: &str,
    bytes: &[u8],
    p: &dyn Progress,
) -> Result<ureq::http::Response<ureq::Body>> {
    let resp = client.send(
        &Req {
            method: Method::PUT,
            url: url.clone(),
            headers: vec![("Content-Type", content_type.to_string())],
            body: Some(bytes),
            scope: repo_scope(repo),
            tries: client.retry.max_tries,
        },
        p,
    )?;
    if resp.status().as_u16() != 201 {
        return Err(status_error("PUT", &url, resp));
    }
    Ok(resp)
}
