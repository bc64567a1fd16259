//! `ocipack referrers REF`: the OCI 1.1 referrers of an image in a registry
//! (SBOMs, signatures, provenance attached with `ocipack push`), read
//! through the referrers API where the registry has it, else from the
//! distribution spec's fallback tag `sha256-<hex>`.

use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use ocipack_push::{Credentials, PushOptions, Remote, RemoteRef, RetryPolicy};
use serde_json::json;

/// Arguments of `ocipack referrers`.
#[derive(Args)]
#[command(after_help = "Examples:
  ocipack referrers 127.0.0.1:5000/aurum-circle/redis:latest --insecure
  ocipack --json referrers registry.example/aurum/scoring@sha256:...

Exit codes: 0 listed (also when there are none); 1 failure (no such image,
network, a fallback tag that is not an index); 4 credentials refused.")]
pub struct ReferrersArgs {
    /// The image: REGISTRY/REPOSITORY:TAG or REGISTRY/REPOSITORY@sha256:HEX.
    reference: String,
    /// Allow plain HTTP to the registry.
    #[arg(long, env = "OCIPACK_INSECURE", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_name = "HOSTS")]
    insecure: Option<String>,
}

/// A read connection to `reference`'s registry, with push's credentials
/// lookup and `--insecure` meaning.
pub fn connect(reference: &str, insecure: Option<&str>) -> Result<(RemoteRef, Remote)> {
    let r = RemoteRef::parse(reference)?;
    let credentials =
        Credentials::lookup(&r.registry).context("cannot load registry credentials")?;
    let (insecure, insecure_hosts) = crate::cmd_push::insecure_hosts(insecure);
    let opts = PushOptions {
        insecure,
        insecure_hosts,
        credentials,
        retry: RetryPolicy {
            max_tries: 3,
            ..RetryPolicy::default()
        },
        timeout: Some(Duration::from_secs(600)),
        ..PushOptions::default()
    };
    let remote = Remote::new(&r, opts)?;
    Ok((r, remote))
}

/// Maps a registry error: credentials refused -> exit 4, else context.
pub fn registry_error(e: ocipack_push::Error, what: &str) -> anyhow::Error {
    if e.is_auth() {
        eprintln!("ocipack: error: {e}");
        return crate::exit::Exit(4).into();
    }
    anyhow::Error::new(e).context(what.to_owned())
}

/// The image manifest `r` names (404 is an error naming the reference).
pub fn resolve(r: &RemoteRef, remote: &Remote) -> Result<ocipack_push::Fetched> {
    let sep = if r.reference.starts_with("sha256:") {
        '@'
    } else {
        ':'
    };
    let name = format!("{}{sep}{}", r.name(), r.reference);
    remote
        .manifest(&r.repository, &r.reference)
        .map_err(|e| registry_error(e, &format!("cannot read {name}")))?
        .ok_or_else(|| ocipack_push::Error::NotFound { reference: name }.into())
}

pub fn run(a: ReferrersArgs, json: bool) -> Result<()> {
    let (r, remote) = connect(&a.reference, a.insecure.as_deref())?;
    let image = resolve(&r, &remote)?;
    let refs = remote
        .referrers(&r.repository, &image.digest)
        .map_err(|e| {
            registry_error(e, &format!("cannot list the referrers of {}", image.digest))
        })?;
    if json {
        return crate::exit::print_json(&json!({
            "subject": image.digest, "reference": format!("{}@{}", r.name(), image.digest),
            "via": refs.via, "referrers": refs.manifests,
        }));
    }
    let via = match refs.via {
        ocipack_push::Via::Api => "referrers API".to_owned(),
        ocipack_push::Via::Tag => {
            format!("fallback tag {}", ocipack_push::fallback_tag(&image.digest))
        }
    };
    eprintln!(
        "{} referrer(s) of {}@{} ({via})",
        refs.manifests.len(),
        r.name(),
        image.digest
    );
    for m in &refs.manifests {
        let ann: Vec<String> = m
            .annotations
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!(
            "{}\t{}\t{}\t{}",
            if m.artifact_type.is_empty() {
                "-".to_owned()
            } else {
                printable(&m.artifact_type)
            },
            m.digest,
            m.size,
            printable(&ann.join(","))
        );
    }
    Ok(())
}

/// `s` with control characters escaped (`\u{1b}`, `\n`, `\t`): what a
/// registry or whoever wrote a fallback tag put in an artifactType or an
/// annotation reaches the terminal as text, never as escape sequences or
/// extra lines.
pub fn printable(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    // Review of issue 15: annotations and artifact types from the registry
    // were printed raw (ANSI escapes, forged extra lines).
    #[test]
    fn registry_text_is_printed_without_control_characters() {
        let s = super::printable("a\u{1b}[2Jb\nFAIL x\tc");
        assert!(!s.chars().any(char::is_control), "{s:?}");
        assert_eq!(s, "a\\u{1b}[2Jb\\nFAIL x\\tc");
    }
}
