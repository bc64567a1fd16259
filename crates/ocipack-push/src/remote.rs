//! Reading from a registry: manifests, blobs and referrers, for
//! `ocipack referrers` and `ocipack verify --remote` (and the read half of
//! the referrers fallback tag's read-modify-write during a push).
//!
//! Everything read is bounded and verified: a manifest fetched by digest
//! must hash to it, a blob must have its descriptor's size and digest
//! (checked while streaming), JSON documents are at most 4 MiB.

use std::io::{Read, Write};
use std::path::Path;

use ocipack::digest::Sha256Hasher;
use ocipack::layout::{Descriptor, INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE};
use serde::Serialize;
use serde_json::Value;
use ureq::http::Method;

use crate::client::{status_error, Client, Req};
use crate::error::{Error, Result};
use crate::progress::NoProgress;
use crate::reference::RemoteRef;
use crate::session::{client_for, PushOptions};

/// The largest manifest, index or referrers answer read.
pub const MAX_JSON: u64 = 4 * 1024 * 1024;

/// Pages of a referrers API answer read.
const MAX_PAGES: u32 = 16;

/// Redirects followed for one blob GET (registry to storage, maybe a CDN).
const MAX_REDIRECTS: u32 = 5;

/// Media types a manifest GET accepts.
pub(crate) const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

/// A manifest as the registry served it.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Its exact bytes.
    pub bytes: Vec<u8>,
    /// `Content-Type` of the answer (else the document's `mediaType`).
    pub media_type: String,
    /// sha256 of the bytes.
    pub digest: String,
}

impl Fetched {
    /// The manifest as JSON.
    ///
    /// # Errors
    /// [`Error::Protocol`] when it is not a JSON object.
    pub fn json(&self, registry: &str) -> Result<Value> {
        serde_json::from_slice::<Value>(&self.bytes)
            .ok()
            .filter(Value::is_object)
            .ok_or_else(|| Error::Protocol {
                registry: registry.to_owned(),
                reason: format!("manifest {} is not a JSON object", self.digest),
            })
    }

    /// Its descriptor (media type, digest, size).
    pub fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.bytes.len() as u64,
            annotations: Default::default(),
        }
    }
}

/// How the referrers of a manifest were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// The OCI 1.1 referrers API (`GET /v2/<name>/referrers/<digest>` answered 200 with an index).
    Api,
    /// The distribution spec's fallback tag `sha256-<hex>` (an image index).
    Tag,
}

/// One referrer: a descriptor of the referrers index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Referrer {
    /// The artifact manifest's media type.
    pub media_type: String,
    /// Its digest.
    pub digest: String,
    /// Its size.
    pub size: u64,
    /// Its artifactType (empty when the entry has none).
    pub artifact_type: String,
    /// Its annotations.
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// The referrers of one manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Referrers {
    /// Where they were read.
    pub via: Via,
    /// The entries, in the index's order.
    pub manifests: Vec<Referrer>,
}

/// The referrers listed by an image index document (the referrers API's
/// answer or the fallback tag's content).
///
/// # Errors
/// A document that is not an image index, or entries without digest.
pub fn parse_referrers_index(bytes: &[u8]) -> std::result::Result<Vec<Referrer>, String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let mt = v["mediaType"].as_str().unwrap_or(INDEX_MEDIA_TYPE);
    if mt != INDEX_MEDIA_TYPE || v["schemaVersion"] != 2 {
        return Err(format!(
            "not an OCI image index (mediaType {mt:?}, schemaVersion {})",
            v["schemaVersion"]
        ));
    }
    let list = v["manifests"]
        .as_array()
        .ok_or("an image index without a manifests list")?;
    list.iter()
        .map(|m| {
            // Strict shape: the digest goes into request paths (verify
            // fetches each referrer) and into messages.
            let digest = m["digest"]
                .as_str()
                .filter(|d| ocipack::digest::hex_of(d).is_some());
            let size = m["size"].as_u64();
            match (digest, size) {
                (Some(d), Some(s)) => Ok(Referrer {
                    media_type: m["mediaType"].as_str().unwrap_or_default().to_owned(),
                    digest: d.to_owned(),
                    size: s,
                    artifact_type: m["artifactType"].as_str().unwrap_or_default().to_owned(),
                    annotations: serde_json::from_value(m["annotations"].clone())
                        .unwrap_or_default(),
                }),
                _ => Err(format!("an entry without a sha256 digest and size: {m}")),
            }
        })
        .collect()
}

/// The target of a `Link` header value's `rel="next"` link, if it has one.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|link| {
        let (target, params) = link.trim().split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .filter_map(|p| p.trim().split_once('='))
            .any(|(k, v)| k.trim() == "rel" && v.trim().trim_matches('"') == "next")
            .then(|| target.to_owned())
    })
}

/// The fallback tag of a subject digest: `sha256:<hex>` -> `sha256-<hex>`.
pub fn fallback_tag(digest: &str) -> String {
    digest.replacen(':', "-", 1)
}

/// A read-only connection to one registry.
pub struct Remote {
    pub(crate) client: Client,
}

impl Remote {
    /// A connection to `r`'s registry (plain HTTP only with `opts.insecure`).
    ///
    /// # Errors
    /// [`Error::InsecureRefused`] for an `http://` reference without `insecure`.
    pub fn new(r: &RemoteRef, opts: PushOptions) -> Result<Remote> {
        Ok(Remote {
            client: client_for(&r.registry, r.explicit_http, &opts)?,
        })
    }

    /// The registry host.
    pub fn registry(&self) -> &str {
        &self.client.registry
    }

    fn reader(&self) -> Reader<'_> {
        Reader {
            client: &self.client,
        }
    }

    /// `GET /v2/<repo>/manifests/<reference>`; `Ok(None)` for 404.
    ///
    /// # Errors
    /// Network, auth, other statuses; a body over 4 MiB; a manifest asked by
    /// digest whose bytes hash to something else.
    pub fn manifest(&self, repo: &str, reference: &str) -> Result<Option<Fetched>> {
        self.reader().manifest(repo, reference)
    }

    /// A blob of at most `max` bytes, checked against `d`'s size and digest.
    ///
    /// # Errors
    /// Network, 404 and other statuses, a size or digest mismatch, over `max`.
    pub fn blob(&self, repo: &str, d: &Descriptor, max: u64) -> Result<Vec<u8>> {
        self.reader().blob(repo, d, max)
    }

    /// Streams a blob into `w`, checking its size and digest (on failure what
    /// was written is garbage: write to a temporary place).
    ///
    /// # Errors
    /// Network, statuses, I/O, a size or digest mismatch.
    pub fn blob_to(&self, repo: &str, d: &Descriptor, w: &mut dyn Write) -> Result<()> {
        self.reader().blob_to(repo, d, w)
    }

    /// The referrers of `digest` in `repo`: through the OCI 1.1 API when the
    /// registry has it, else from the fallback tag (empty when absent).
    ///
    /// # Errors
    /// Network, authentication, a fallback tag that is not an index.
    pub fn referrers(&self, repo: &str, digest: &str) -> Result<Referrers> {
        self.reader().referrers(repo, digest)
    }
}

/// The read requests, over a borrowed client (a push session's or a [`Remote`]'s).
pub(crate) struct Reader<'a> {
    pub client: &'a Client,
}

impl Reader<'_> {
    fn get(&self, url: &str, repo: &str, accept: &str) -> Result<ureq::http::Response<ureq::Body>> {
        self.client.send(
            &Req {
                method: Method::GET,
                url: url.to_owned(),
                headers: vec![("Accept", accept.to_owned())],
                body: None,
                scope: format!("repository:{repo}:pull"),
                tries: self.client.retry.max_tries,
            },
            &NoProgress,
        )
    }

    /// `GET /v2/<repo>/manifests/<reference>`; `Ok(None)` for 404.
    ///
    /// # Errors
    /// Network, auth, other statuses; a body over 4 MiB; a manifest asked by
    /// digest whose bytes hash to something else.
    pub fn manifest(&self, repo: &str, reference: &str) -> Result<Option<Fetched>> {
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.client.base);
        let resp = self.get(&url, repo, ACCEPT_MANIFESTS)?;
        match resp.status().as_u16() {
            200 => {}
            404 => return Ok(None),
            _ => return Err(status_error("GET", &url, resp)),
        }
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(';').next().unwrap_or(s).trim().to_owned());
        let bytes = self.read_body(resp, &url, MAX_JSON)?;
        let digest = ocipack::digest::sha256(&bytes);
        if reference.starts_with("sha256:") && reference != digest {
            return Err(Error::Protocol {
                registry: self.client.registry.clone(),
                reason: format!("{url} served a manifest whose bytes hash to {digest}"),
            });
        }
        let media_type = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v["mediaType"].as_str().map(str::to_owned))
            .or(content_type)
            .unwrap_or_else(|| MANIFEST_MEDIA_TYPE.to_owned());
        Ok(Some(Fetched {
            bytes,
            media_type,
            digest,
        }))
    }

    fn read_body(
        &self,
        mut resp: ureq::http::Response<ureq::Body>,
        url: &str,
        limit: u64,
    ) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        resp.body_mut()
            .as_reader()
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::Protocol {
                registry: self.client.registry.clone(),
                reason: format!("reading the answer of {url}: {e}"),
            })?;
        if bytes.len() as u64 > limit {
            return Err(Error::Protocol {
                registry: self.client.registry.clone(),
                reason: format!("{url} answered more than {limit} bytes"),
            });
        }
        Ok(bytes)
    }

    /// A blob of at most `max` bytes, checked against `d`'s size and digest.
    ///
    /// # Errors
    /// Network, 404 and other statuses, a size or digest mismatch, over `max`.
    pub fn blob(&self, repo: &str, d: &Descriptor, max: u64) -> Result<Vec<u8>> {
        if d.size > max {
            return Err(Error::Protocol {
                registry: self.client.registry.clone(),
                reason: format!(
                    "blob {} is {} bytes, more than the {max} read here",
                    d.digest, d.size
                ),
            });
        }
        let mut out = Vec::new();
        self.blob_to(repo, d, &mut out)?;
        Ok(out)
    }

    /// Streams a blob into `w`, hashing as it goes; fails unless its size and
    /// digest are `d`'s (what was written is then garbage: callers write to
    /// a temporary place).
    ///
    /// # Errors
    /// Network, statuses, I/O, a size or digest mismatch.
    pub fn blob_to(&self, repo: &str, d: &Descriptor, w: &mut dyn Write) -> Result<()> {
        let mut url = format!("{}/v2/{repo}/blobs/{}", self.client.base, d.digest);
        // Registries (Docker Hub, GHCR, ECR, GCS-backed ones) answer blob
        // GETs with a redirect to their storage. It is followed here, a few
        // hops at most; `Client::send` sends credentials only to the
        // registry's own origin, so the storage host never sees them.
        let mut hops = 0;
        let mut resp = loop {
            let resp = self.get(&url, repo, "*/*")?;
            let status = resp.status().as_u16();
            let location = resp
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            match (status, location) {
                (200, _) => break resp,
                (301 | 302 | 303 | 307 | 308, Some(next)) if hops < MAX_REDIRECTS => {
                    hops += 1;
                    url = self.client.absolute(&next);
                }
                _ => return Err(status_error("GET", &url, resp)),
            }
        };
        let mut r = resp
            .body_mut()
            .with_config()
            .limit(d.size.saturating_add(1))
            .reader();
        let mut h = Sha256Hasher::new();
        let mut n = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let k = match r.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Error::Protocol {
                        registry: self.client.registry.clone(),
                        reason: format!("reading {url}: {e}"),
                    })
                }
            };
            n += k as u64;
            if n > d.size {
                break;
            }
            h.update(&buf[..k]);
            w.write_all(&buf[..k])
                .map_err(|e| Error::io(Path::new("(download)"), e))?;
        }
        let got = h.finish();
        if n != d.size || got != d.digest {
            return Err(Error::Protocol {
                registry: self.client.registry.clone(),
                reason: format!(
                    "blob {} as served is {n} bytes hashing to {got}, not the {} bytes its descriptor names",
                    d.digest, d.size
                ),
            });
        }
        Ok(())
    }

    /// Whether the registry implements the OCI 1.1 referrers API for
    /// `digest`: `Some` with the entries when `GET /v2/<repo>/referrers/<digest>`
    /// answers 200 with an image index, `None` otherwise (404, another
    /// status or another document: the fallback tag applies).
    ///
    /// # Errors
    /// Network and authentication failures.
    /// A long list comes in pages (`Link: <...>; rel="next"`, as the
    /// distribution spec has it): at most 16 are read, each at most 4 MiB.
    pub fn referrers_api(&self, repo: &str, digest: &str) -> Result<Option<Vec<Referrer>>> {
        let mut url = format!("{}/v2/{repo}/referrers/{digest}", self.client.base);
        let mut all = Vec::new();
        for page in 0..MAX_PAGES {
            let resp = self.get(&url, repo, INDEX_MEDIA_TYPE)?;
            if resp.status().as_u16() != 200 {
                if page == 0 {
                    return Ok(None);
                }
                return Err(status_error("GET", &url, resp));
            }
            let next = resp
                .headers()
                .get_all("link")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(next_link);
            let bytes = self.read_body(resp, &url, MAX_JSON)?;
            match parse_referrers_index(&bytes) {
                Ok(list) => all.extend(list),
                Err(_) if page == 0 => return Ok(None),
                Err(reason) => {
                    return Err(Error::Protocol {
                        registry: self.client.registry.clone(),
                        reason: format!("{url} (a referrers page) is {reason}"),
                    })
                }
            }
            match next {
                Some(n) => url = self.client.absolute(&n),
                None => return Ok(Some(all)),
            }
        }
        Err(Error::Protocol {
            registry: self.client.registry.clone(),
            reason: format!(
                "the referrers of {digest} in {repo} span more than {MAX_PAGES} pages; not read"
            ),
        })
    }

    /// The fallback tag's index for `digest` (`None`: no such tag).
    ///
    /// # Errors
    /// Network; the tag holding something else than an image index.
    pub fn referrers_tag(
        &self,
        repo: &str,
        digest: &str,
    ) -> Result<Option<(Fetched, Vec<Referrer>)>> {
        let tag = fallback_tag(digest);
        let Some(f) = self.manifest(repo, &tag)? else {
            return Ok(None);
        };
        let list = parse_referrers_index(&f.bytes).map_err(|reason| Error::Protocol {
            registry: self.client.registry.clone(),
            reason: format!(
                "the referrers fallback tag {repo}:{tag} holds {}: {reason}; it is not ocipack's \
                 to replace (delete or move that tag if it was pushed there by mistake)",
                f.media_type
            ),
        })?;
        Ok(Some((f, list)))
    }

    /// The referrers of `digest` in `repo`: through the API when the
    /// registry has it, else from the fallback tag (empty when absent).
    ///
    /// # Errors
    /// Network, authentication, a fallback tag that is not an index.
    pub fn referrers(&self, repo: &str, digest: &str) -> Result<Referrers> {
        if let Some(list) = self.referrers_api(repo, digest)? {
            return Ok(Referrers {
                via: Via::Api,
                manifests: list,
            });
        }
        Ok(Referrers {
            via: Via::Tag,
            manifests: self
                .referrers_tag(repo, digest)?
                .map(|(_, l)| l)
                .unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_referrers_answer_is_parsed_with_artifact_types_and_annotations() {
        let doc = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",
          "manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","size":7,"artifactType":"application/spdx+json",
            "annotations":{"k":"v"}},
           {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","size":9}]}"#;
        let l = parse_referrers_index(doc).unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].artifact_type, "application/spdx+json");
        assert_eq!(l[0].annotations["k"], "v");
        assert_eq!((&l[1].digest[..9], l[1].size), ("sha256:bb", 9));
        assert_eq!(l[1].artifact_type, "");
    }

    #[test]
    fn something_else_than_an_index_is_not_a_referrers_list() {
        for doc in [
            &br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}"#[..],
            br#"{"errors":[{"code":"NAME_UNKNOWN"}]}"#,
            br#"{"schemaVersion":2,"manifests":[{"digest":"sha256:aa"}]}"#,
            b"<html>",
        ] {
            assert!(parse_referrers_index(doc).is_err(), "{}", String::from_utf8_lossy(doc));
        }
        // An empty list is a valid answer (a registry with the API, no referrers yet).
        let empty = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
        assert_eq!(parse_referrers_index(empty).unwrap(), vec![]);
    }

    #[test]
    fn the_next_page_is_found_in_the_link_header() {
        assert_eq!(
            next_link(r#"</v2/a/referrers/sha256:1?n=1&last=x>; rel="next""#).as_deref(),
            Some("/v2/a/referrers/sha256:1?n=1&last=x")
        );
        assert_eq!(
            next_link(r#"<https://h/p1>; rel="prev", <https://h/p3>; rel=next"#).as_deref(),
            Some("https://h/p3")
        );
        assert_eq!(next_link(r#"<https://h/p1>; rel="prev""#), None);
    }

    // Review of issue 15: entries were taken with any text after "sha256:";
    // `verify --remote` puts each into a request path.
    #[test]
    fn a_referrer_digest_that_is_not_sha256_hex_is_refused() {
        let doc = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",
          "manifests":[{"mediaType":"m","digest":"sha256:../../../v2/x/manifests/latest","size":1}]}"#;
        assert!(parse_referrers_index(doc).is_err());
    }

    #[test]
    fn the_fallback_tag_replaces_the_colon() {
        assert_eq!(fallback_tag("sha256:abc"), "sha256-abc");
    }
}
