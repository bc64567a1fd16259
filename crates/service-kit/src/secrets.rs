//! Secrets: read from files, never printed.
//!
//! Settings holding a secret come as `NAME` (plain environment variable) or
//! `NAME_FILE` (path of a mounted secret; surrounding whitespace trimmed).
//! Every secret read is [`register`]ed, and [`redact`] blanks registered
//! secrets and URL passwords out of any text before it is logged or printed
//! (startup errors, error details). `--help` hides the values of the
//! variables that can carry one (`hide_env_values`).

use std::path::Path;
use std::sync::RwLock;

use crate::error::{Error, Result};

static KNOWN: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// What a redacted secret is replaced with.
pub const MASK: &str = "***";

/// Remembers `secret` so [`redact`] removes it from any text.
pub fn register(secret: &str) {
    // Very short strings would blank ordinary words out of messages.
    if secret.len() >= 4 {
        let mut known = KNOWN.write().unwrap_or_else(|e| e.into_inner());
        if !known.iter().any(|k| k == secret) {
            known.push(secret.to_owned());
        }
    }
}

/// `url` with any password (userinfo) replaced by `***`; also works on
/// malformed URLs: everything between `scheme://` (or the start) and the
/// last `@` before the path goes.
pub fn redact_url(url: &str) -> String {
    let (start, delimiters): (usize, &[char]) = match url.find("://") {
        Some(i) => (i + 3, &['/', '?', '#']),
        // Malformed: no scheme separator to find the authority by, so
        // anything before the last `@` may be a password.
        None => (0, &[]),
    };
    let rest = &url[start..];
    let authority_end = rest.find(delimiters).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}{MASK}@{}", &url[..start], &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// `text` with every registered secret and every URL's userinfo replaced.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if word.contains('@') {
            out.push_str(&redact_url(word));
        } else {
            out.push_str(word);
        }
    }
    let known = KNOWN.read().unwrap_or_else(|e| e.into_inner());
    for secret in known.iter() {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), MASK);
        }
    }
    out
}

/// Reads a secret file: its content with surrounding whitespace trimmed,
/// registered for redaction.
///
/// # Errors
///
/// [`Error::Config`] naming `variable` and the path when the file cannot be
/// read or is empty.
pub fn read_file(variable: &str, path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::Config(format!(
            "{variable}={}: cannot read the secret file: {e}; mount the secret there or unset {variable}",
            path.display()
        ))
    })?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(Error::Config(format!(
            "{variable}={}: the secret file is empty; put the secret in it or unset {variable}",
            path.display()
        )));
    }
    register(secret);
    Ok(secret.to_owned())
}

/// A secret given either as `plain` (variable `plain_name`) or as a file
/// (variable `file_name`); the file is read. Empty values count as unset.
///
/// # Errors
///
/// [`Error::Config`] naming both variables when both are set, or as
/// [`read_file`].
pub fn either(
    plain_name: &str,
    plain: Option<&str>,
    file_name: &str,
    file: Option<&Path>,
) -> Result<Option<String>> {
    let plain = plain.filter(|p| !p.is_empty());
    let file = file.filter(|f| !f.as_os_str().is_empty());
    match (plain, file) {
        (Some(_), Some(_)) => Err(Error::Config(format!(
            "both {plain_name} and {file_name} are set; set only one (prefer {file_name}, a mounted secret)"
        ))),
        (Some(p), None) => {
            register(p);
            Ok(Some(p.to_owned()))
        }
        (None, Some(f)) => read_file(file_name, f).map(Some),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_are_redacted_even_when_malformed() {
        assert_eq!(
            redact_url("redis://:hunter2@redis:6379/0"),
            "redis://***@redis:6379/0"
        );
        assert_eq!(redact_url("redis//u:hunter2@x"), "***@x");
        assert_eq!(redact_url("redis://redis:6379"), "redis://redis:6379");
        let text = redact("REDIS_URL \"redis://u:p4ss@h\" is bad: (redis://u:p4ss@h)");
        assert!(!text.contains("p4ss"), "{text}");
    }

    #[test]
    fn registered_secrets_are_blanked_and_conflicts_named() {
        register("s3cr3t-value");
        assert_eq!(redact("token s3cr3t-value here"), "token *** here");
        let err = either("A", Some("x"), "A_FILE", Some(Path::new("/f"))).unwrap_err();
        assert!(err.to_string().contains("A and A_FILE"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s");
        std::fs::write(&f, "  file-secret\n").unwrap();
        assert_eq!(
            either("A", None, "A_FILE", Some(&f)).unwrap().as_deref(),
            Some("file-secret")
        );
        std::fs::write(&f, " \n").unwrap();
        assert!(either("A", None, "A_FILE", Some(&f)).is_err());
    }
}
