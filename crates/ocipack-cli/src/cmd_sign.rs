//! `ocipack sign`: a cosign-compatible signature (ECDSA P-256 over the
//! simple-signing payload) of an image in a layout, written to the layout's
//! attestation layout as the `sha256-<hex>.sig` tag and as an OCI 1.1
//! referrer; and key generation (docs/supply-chain.md).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use ocipack::layout::Layout;
use ocipack_attest::artifact::{self, AttestLayout};
use ocipack_attest::sign;
use ocipack_attest::sign::SigningKey;
use serde_json::json;

/// Arguments of `ocipack sign`.
#[derive(Args)]
#[command(after_help = "Examples:
  ocipack sign --generate-key keys/release       # keys/release.key (0600), keys/release.pub
  ocipack sign out/images/redis --identity 127.0.0.1:5000/aurum-circle/redis --key keys/release.key
  OCIPACK_SIGNING_KEY=\"$(cat k.key)\" ocipack sign out/images/redis --identity R --key-env OCIPACK_SIGNING_KEY

The signature goes into LAYOUT.attest/oci/ (tag sha256-<hex>.sig, cosign's shape,
and sha256-<hex>.sig.referrer, an OCI 1.1 artifact whose subject is the image).
The identity is the repository the image will be pulled as: containers'
sigstoreSigned policy compares it with the pulled reference.")]
pub struct SignArgs {
    /// The image's OCI layout.
    #[arg(required_unless_present = "generate_key")]
    layout: Option<PathBuf>,
    /// Write a new key pair PREFIX.key (PKCS#8 PEM, mode 0600) and PREFIX.pub, and sign nothing.
    #[arg(long, value_name = "PREFIX", conflicts_with_all = ["layout", "key", "key_env"])]
    generate_key: Option<PathBuf>,
    /// The private key file (PEM).
    #[arg(long, conflicts_with = "key_env")]
    key: Option<PathBuf>,
    /// The environment variable holding the private key (PEM).
    #[arg(long, value_name = "VAR")]
    key_env: Option<String>,
    /// The docker reference signed (REGISTRY/REPO the image is pulled as).
    #[arg(long, required_unless_present = "generate_key")]
    identity: Option<String>,
    /// The image's tag in the layout [default: the only image].
    #[arg(long)]
    tag: Option<String>,
}

/// Reads the private key from `--key FILE` or `--key-env VAR`.
pub fn load_key(file: Option<&Path>, env: Option<&str>) -> Result<SigningKey> {
    match (file, env) {
        (Some(f), _) => {
            let pem = std::fs::read_to_string(f)
                .with_context(|| format!("cannot read the key file {}", f.display()))?;
            Ok(sign::signing_key(
                &pem,
                &format!("key file {}", f.display()),
            )?)
        }
        (None, Some(var)) => {
            let pem = std::env::var(var).with_context(|| {
                format!("the environment variable {var}, named to hold the signing key, is not set or not UTF-8")
            })?;
            Ok(sign::signing_key(
                &pem,
                &format!("environment variable {var}"),
            )?)
        }
        (None, None) => bail!("no signing key: pass --key FILE or --key-env VAR"),
    }
}

pub fn run(a: SignArgs, json: bool) -> Result<()> {
    if let Some(prefix) = &a.generate_key {
        let (private, public) = (
            crate::cmd_sbom::sibling(prefix, ".key"),
            crate::cmd_sbom::sibling(prefix, ".pub"),
        );
        if let Some(dir) = prefix.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let key = sign::generate();
        sign::write_keypair(&key, &private, &public)?;
        if json {
            crate::exit::print_json(&json!({"private": private, "public": public,
                                      "keyId": sign::key_id(key.verifying_key())}))?;
        } else {
            eprintln!(
                "wrote {} (mode 0600, keep it secret) and {}",
                private.display(),
                public.display()
            );
        }
        return Ok(());
    }
    let layout_dir = a.layout.as_deref().context("a layout is required")?;
    let identity = a.identity.as_deref().context("--identity is required")?;
    let key = load_key(a.key.as_deref(), a.key_env.as_deref())?;
    let layout = Layout::open(layout_dir)?;
    let image = layout.find(a.tag.as_deref())?;
    let bytes = layout.read_blob(&image.digest, Some(image.size))?;
    let media_type = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v["mediaType"].as_str().map(str::to_owned))
        .unwrap_or_else(|| ocipack::layout::MANIFEST_MEDIA_TYPE.to_owned());
    let subject = ocipack::layout::Descriptor {
        media_type,
        digest: image.digest.clone(),
        size: image.size,
        annotations: Default::default(),
    };
    let payload = sign::simple_signing_payload(identity, &image.digest);
    let sig = sign::sign(&key, &payload);
    let dir = artifact::attest_dir(layout_dir);
    let mut l = AttestLayout::open(&dir)?;
    let (tagged, referrer) = l.cosign_signature(&subject, &payload, &sig)?;
    l.finish()?;
    let tag = format!("{}.sig", image.digest.replace(':', "-"));
    if json {
        crate::exit::print_json(&json!({"image": image.digest, "identity": identity,
            "keyId": sign::key_id(key.verifying_key()), "attest": dir,
            "signatureTag": tag, "signatureManifest": tagged.digest, "referrer": referrer.digest}))?;
    } else {
        eprintln!(
            "signed {} as {identity} -> {} (tag {tag}, referrer {})",
            image.digest,
            dir.display(),
            referrer.digest
        );
    }
    Ok(())
}
