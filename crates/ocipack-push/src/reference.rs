//! Parsing `REGISTRY/REPO[:TAG]` push targets.

use crate::error::{Error, Result};

/// Where to push: a registry host, a repository in it, and an optional tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `host[:port]`, e.g. `127.0.0.1:5000`.
    pub registry: String,
    /// Repository path, e.g. `aurum/scoring-service`.
    pub repository: String,
    /// The tag, when one was given.
    pub tag: Option<String>,
    /// `Some(true)` for an explicit `http://` prefix, `Some(false)` for `https://`.
    pub explicit_http: Option<bool>,
}

impl Target {
    /// Parses `[http://|https://]host[:port]/repo/path[:tag]`.
    ///
    /// The first path component is always the registry: there is no implicit
    /// Docker Hub, because silently pushing to a public registry is a leak.
    ///
    /// # Errors
    /// [`Error::Reference`] naming what is wrong.
    pub fn parse(reference: &str) -> Result<Self> {
        let bad = |reason: &str| Error::Reference {
            reference: reference.to_string(),
            reason: reason.to_string(),
        };
        let (explicit_http, rest) = if let Some(r) = reference.strip_prefix("http://") {
            (Some(true), r)
        } else if let Some(r) = reference.strip_prefix("https://") {
            (Some(false), r)
        } else {
            (None, reference)
        };
        let (registry, path) = rest.split_once('/').ok_or_else(|| {
            bad("expected REGISTRY/REPOSITORY[:TAG], e.g. 127.0.0.1:5000/app:1.0")
        })?;
        if registry.is_empty()
            || !registry
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        {
            return Err(bad("the registry host is empty or has characters other than letters, digits, '-', '.', ':'"));
        }
        if path.contains('@') {
            return Err(bad("push targets take a tag, not a digest"));
        }
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repo, tag)) => (repo, Some(tag)),
            None => (path, None),
        };
        if !valid_repository(repository) {
            return Err(bad(
                "the repository must be lowercase path components of [a-z0-9] separated by '.', '_', '__' or '-', joined by '/'",
            ));
        }
        if let Some(tag) = tag {
            if !valid_tag(tag) {
                return Err(bad(
                    "a tag is 1 to 128 characters of [A-Za-z0-9_.-] not starting with '.' or '-'",
                ));
            }
        }
        Ok(Target {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag: tag.map(str::to_string),
            explicit_http,
        })
    }
}

/// An image to read: `REGISTRY/REPO:TAG`, `REGISTRY/REPO@sha256:HEX` (or
/// `REGISTRY/REPO`, meaning the tag `latest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRef {
    /// `host[:port]`.
    pub registry: String,
    /// Repository path.
    pub repository: String,
    /// A tag or a `sha256:<hex>` digest.
    pub reference: String,
    /// As in [`Target::explicit_http`].
    pub explicit_http: Option<bool>,
}

impl RemoteRef {
    /// Parses a tag or digest reference.
    ///
    /// # Errors
    /// [`Error::Reference`] naming what is wrong.
    pub fn parse(reference: &str) -> Result<Self> {
        let (name, digest) = match reference.split_once('@') {
            Some((n, d)) => (n, Some(d)),
            None => (reference, None),
        };
        let t = Target::parse(name)?;
        let r = match (digest, t.tag) {
            (Some(_), Some(_)) => {
                return Err(Error::Reference {
                    reference: reference.to_string(),
                    reason: "give a tag or a digest, not both".into(),
                })
            }
            (Some(d), None) => {
                let ok = d.strip_prefix("sha256:").is_some_and(|h| {
                    h.len() == 64
                        && h.bytes()
                            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                });
                if !ok {
                    return Err(Error::Reference {
                        reference: reference.to_string(),
                        reason: "a digest is sha256: and 64 lowercase hex digits".into(),
                    });
                }
                d.to_string()
            }
            (None, Some(tag)) => tag,
            (None, None) => "latest".to_string(),
        };
        Ok(RemoteRef {
            registry: t.registry,
            repository: t.repository,
            reference: r,
            explicit_http: t.explicit_http,
        })
    }

    /// `registry/repository`, the docker reference a cosign signature names.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

/// The distribution spec's `<name>` grammar, without regex.
pub fn valid_repository(repo: &str) -> bool {
    !repo.is_empty()
        && repo.len() <= 255
        && repo.split('/').all(|comp| {
            let bytes = comp.as_bytes();
            let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
            !bytes.is_empty()
                && alnum(&bytes[0])
                && alnum(&bytes[bytes.len() - 1])
                && bytes.iter().all(|b| alnum(b) || b"._-".contains(b))
                && !comp.contains("..")
                && !comp.contains("___")
        })
}

/// The distribution spec's `<reference>` grammar for tags.
pub fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_port_repo_and_tag() {
        let t = Target::parse("127.0.0.1:5000/aurum/scoring:1.2").unwrap();
        assert_eq!(t.registry, "127.0.0.1:5000");
        assert_eq!(t.repository, "aurum/scoring");
        assert_eq!(t.tag.as_deref(), Some("1.2"));
        assert_eq!(t.explicit_http, None);
    }

    #[test]
    fn tag_is_optional_and_scheme_is_remembered() {
        let t = Target::parse("http://localhost:5000/app").unwrap();
        assert_eq!(
            (t.registry.as_str(), t.repository.as_str(), t.tag),
            ("localhost:5000", "app", None)
        );
        assert_eq!(t.explicit_http, Some(true));
    }

    #[test]
    fn remote_references_take_a_tag_or_a_digest() {
        let hex = "a".repeat(64);
        let r = RemoteRef::parse(&format!("127.0.0.1:5000/aurum/x@sha256:{hex}")).unwrap();
        assert_eq!((r.repository.as_str(), r.reference.len()), ("aurum/x", 71));
        assert_eq!(RemoteRef::parse("h:1/x").unwrap().reference, "latest");
        assert_eq!(
            RemoteRef::parse("h:1/x:sha256-ab.sig").unwrap().reference,
            "sha256-ab.sig"
        );
        for bad in ["h:1/x@sha256:00", "h:1/x:t@sha256:00", "h:1/x@md5:aa"] {
            assert!(RemoteRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rejects_bad_references() {
        for r in [
            "app",
            "host/App:1",
            "host/app:-x",
            "host/app@sha256:00",
            "host//app",
            "host/a..b",
        ] {
            assert!(Target::parse(r).is_err(), "{r} should be rejected");
        }
    }
}
