//! ECDSA P-256 keys and signatures, as cosign and containers/image use them:
//! the simple-signing payload, DER signatures (base64 in annotations), PEM
//! keys (PKCS#8 private, SPKI public); and DSSE envelopes (in-toto).
//!
//! Private keys are read from a file or an environment variable, used, and
//! never printed: errors name where the key came from, never its bytes.
//! ECDSA signatures here are deterministic (RFC 6979): the same key and
//! payload give the same bytes.

use std::io::Write;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::Signature;
pub use p256::ecdsa::{SigningKey, VerifyingKey};
use p256::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use serde_json::{json, Value};

use crate::error::{input, io, Error, Result};
use crate::inputs::hex;

/// The simple-signing payload's `type`.
pub const COSIGN_TYPE: &str = "cosign container image signature";
/// The media type of a cosign signature layer.
pub const SIMPLESIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The annotation holding the base64 DER signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The DSSE payload type of in-toto statements.
pub const INTOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// A new random key.
pub fn generate() -> SigningKey {
    SigningKey::random(&mut rand_core::OsRng)
}

/// Writes `key` to `private` (PKCS#8 PEM, created new with mode 0600, never
/// replacing a file) and its public key to `public` (SPKI PEM).
///
/// # Errors
/// Either file exists or cannot be written.
pub fn write_keypair(key: &SigningKey, private: &Path, public: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    for p in [private, public] {
        if p.exists() {
            return Err(input(
                p.display().to_string(),
                "already exists; ocipack never overwrites a key: choose another path or remove it",
            ));
        }
    }
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| input("generated key", e.to_string()))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(private)
        .map_err(io(private))?;
    f.write_all(pem.as_bytes()).map_err(io(private))?;
    f.sync_all().map_err(io(private))?;
    std::fs::write(public, public_pem(key.verifying_key())?).map_err(io(public))?;
    Ok(())
}

/// The SPKI PEM of a public key.
///
/// # Errors
/// Encoding failure (not expected).
pub fn public_pem(key: &VerifyingKey) -> Result<String> {
    key.to_public_key_pem(LineEnding::LF)
        .map_err(|e| input("public key", e.to_string()))
}

/// Parses a PKCS#8 PEM private key; `origin` names where it came from.
///
/// # Errors
/// Not a P-256 PKCS#8 PEM private key (the message never quotes the key).
pub fn signing_key(pem: &str, origin: &str) -> Result<SigningKey> {
    SigningKey::from_pkcs8_pem(pem.trim()).map_err(|_| {
        input(
            origin,
            "is not an unencrypted PKCS#8 PEM ECDSA P-256 private key (-----BEGIN PRIVATE KEY-----); make one with `ocipack sign --generate-key`",
        )
    })
}

/// Parses an SPKI PEM public key; `origin` names where it came from.
///
/// # Errors
/// Not a P-256 public key in PEM.
pub fn verifying_key(pem: &str, origin: &str) -> Result<VerifyingKey> {
    VerifyingKey::from_public_key_pem(pem.trim()).map_err(|_| {
        input(
            origin,
            "is not a PEM ECDSA P-256 public key (-----BEGIN PUBLIC KEY-----)",
        )
    })
}

/// The key id: sha256 hex of the public key's DER.
pub fn key_id(key: &VerifyingKey) -> String {
    use sha2::Digest as _;
    let der = key
        .to_public_key_der()
        .map(|d| d.into_vec())
        .unwrap_or_default();
    hex(&sha2::Sha256::digest(der))
}

/// The simple-signing payload for `identity` (the repository the image is
/// pulled as, e.g. `registry.example/redis`) and a manifest digest.
pub fn simple_signing_payload(identity: &str, digest: &str) -> Vec<u8> {
    ocipack::json::canonical(&json!({
        "critical": {
            "identity": {"docker-reference": identity},
            "image": {"docker-manifest-digest": digest},
            "type": COSIGN_TYPE,
        },
        "optional": null,
    }))
}

/// ECDSA P-256 / SHA-256 signature of `msg`, DER.
pub fn sign(key: &SigningKey, msg: &[u8]) -> Vec<u8> {
    let sig: Signature = key.sign(msg);
    sig.to_der().as_bytes().to_vec()
}

/// Checks a DER (or fixed-size) signature of `msg`.
///
/// # Errors
/// [`Error::Verify`] when it is malformed or does not match.
pub fn verify(key: &VerifyingKey, msg: &[u8], sig: &[u8]) -> Result<()> {
    let s = Signature::from_der(sig)
        .or_else(|_| Signature::from_slice(sig))
        .map_err(|_| {
            Error::Verify("the signature is not a DER ECDSA signature (truncated?)".into())
        })?;
    key.verify(msg, &s).map_err(|_| {
        Error::Verify("the signature does not match this public key and payload".into())
    })
}

/// DSSE's pre-authentication encoding.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut v = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    v.extend_from_slice(payload);
    v
}

/// A DSSE envelope of `payload`, signed with `key` (base64 payload and
/// signature, as the DSSE specification has them).
pub fn dsse_sign(key: &SigningKey, payload_type: &str, payload: &[u8]) -> Value {
    let sig = sign(key, &pae(payload_type, payload));
    json!({
        "payloadType": payload_type,
        "payload": B64.encode(payload),
        "signatures": [{"keyid": key_id(key.verifying_key()), "sig": B64.encode(sig)}],
    })
}

/// Verifies a DSSE envelope with `key`; returns the payload type and bytes.
///
/// # Errors
/// A malformed envelope, or no signature that verifies.
pub fn dsse_verify(key: &VerifyingKey, envelope: &Value) -> Result<(String, Vec<u8>)> {
    let bad = |m: &str| Error::Verify(format!("DSSE envelope: {m}"));
    let ptype = envelope["payloadType"]
        .as_str()
        .ok_or_else(|| bad("no payloadType"))?;
    let payload = B64
        .decode(
            envelope["payload"]
                .as_str()
                .ok_or_else(|| bad("no payload"))?,
        )
        .map_err(|_| bad("payload is not base64"))?;
    let sigs = envelope["signatures"]
        .as_array()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("no signatures"))?;
    let msg = pae(ptype, &payload);
    let mut last = bad("no signature verified");
    for s in sigs {
        let Some(sig) = s["sig"].as_str().and_then(|b| B64.decode(b).ok()) else {
            last = bad("a signature is not base64");
            continue;
        };
        match verify(key, &msg, &sig) {
            Ok(()) => return Ok((ptype.to_owned(), payload)),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Base64 (standard alphabet, padded).
pub fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// Decodes base64 (standard alphabet).
///
/// # Errors
/// Not base64.
pub fn unb64(s: &str, what: &str) -> Result<Vec<u8>> {
    B64.decode(s.trim())
        .map_err(|_| input(what, "is not base64"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_tamper() {
        let k = generate();
        let msg = simple_signing_payload("r.example/x", "sha256:00");
        let sig = sign(&k, &msg);
        verify(k.verifying_key(), &msg, &sig).unwrap();
        assert_eq!(sign(&k, &msg), sig, "RFC 6979: deterministic");
        let other = generate();
        assert!(verify(other.verifying_key(), &msg, &sig).is_err());
        assert!(verify(k.verifying_key(), &msg, &sig[..sig.len() - 3]).is_err());
        let mut m2 = msg.clone();
        m2[5] ^= 1;
        assert!(verify(k.verifying_key(), &m2, &sig).is_err());
    }

    #[test]
    fn keys_round_trip_with_0600_and_no_overwrite() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let (p, q) = (d.path().join("k.key"), d.path().join("k.pub"));
        let k = generate();
        write_keypair(&k, &p, &q).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let k2 = signing_key(&std::fs::read_to_string(&p).unwrap(), "k.key").unwrap();
        assert_eq!(k2.verifying_key(), k.verifying_key());
        verifying_key(&std::fs::read_to_string(&q).unwrap(), "k.pub").unwrap();
        assert!(write_keypair(&k, &p, &d.path().join("other.pub")).is_err());
        let e = signing_key(
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
            "env OCIPACK_KEY",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("env OCIPACK_KEY:"), "{e}");
        assert!(!e.contains("AAAA"));
    }

    #[test]
    fn dsse_round_trip() {
        let k = generate();
        let env = dsse_sign(&k, INTOTO_PAYLOAD_TYPE, b"{\"a\":1}");
        let (t, p) = dsse_verify(k.verifying_key(), &env).unwrap();
        assert_eq!(
            (t.as_str(), p.as_slice()),
            (INTOTO_PAYLOAD_TYPE, &b"{\"a\":1}"[..])
        );
        let mut bad = env.clone();
        bad["payload"] = json!(b64(b"{\"a\":2}"));
        assert!(dsse_verify(k.verifying_key(), &bad).is_err());
    }
}
