//! Credentials (env, Docker config file) and `WWW-Authenticate` challenges.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

use crate::error::{Error, Result};

/// Env var holding the registry user name.
pub const ENV_USER: &str = "OCIPACK_REGISTRY_USER";
/// Env var holding the registry password (or a registry token used as password).
pub const ENV_PASSWORD: &str = "OCIPACK_REGISTRY_PASSWORD";

/// A user name and password for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub user: String,
    /// The password.
    pub password: String,
}

// The password must never end up in logs or error chains.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// The value of a `Basic` Authorization header.
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.user, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    /// Looks up credentials for `registry`: the env pair first, then the
    /// Docker config file (`$DOCKER_CONFIG/config.json`, else
    /// `~/.docker/config.json`). `Ok(None)` means anonymous.
    ///
    /// # Errors
    /// [`Error::Credentials`] when only one env var is set or the config
    /// file exists but cannot be parsed.
    pub fn lookup(registry: &str) -> Result<Option<Credentials>> {
        let user = std::env::var(ENV_USER).ok().filter(|s| !s.is_empty());
        let password = std::env::var(ENV_PASSWORD).ok().filter(|s| !s.is_empty());
        match (user, password) {
            (Some(user), Some(password)) => return Ok(Some(Credentials { user, password })),
            (None, None) => {}
            _ => {
                return Err(Error::Credentials {
                    source_name: format!("{ENV_USER}/{ENV_PASSWORD}"),
                    reason: "only one of the two is set; set both or neither".into(),
                })
            }
        }
        match docker_config_path() {
            Some(path) if path.exists() => from_docker_config(&path, registry),
            _ => Ok(None),
        }
    }
}

impl Credentials {
    /// Reads credentials for `registry` from the Docker config file at `config`.
    ///
    /// # Errors
    /// [`Error::Credentials`] naming the file when it is unreadable or malformed.
    pub fn lookup_in(config: &Path, registry: &str) -> Result<Option<Credentials>> {
        from_docker_config(config, registry)
    }
}

fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker").join("config.json"))
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

#[derive(Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// Reads the `auths` entry for `registry` from a Docker config file.
///
/// Keys may carry a scheme and path (`https://host:5000/v1/`); they match
/// on the host part. Credential helpers are not run.
///
/// # Errors
/// [`Error::Credentials`] naming the file for unreadable JSON or a bad `auth` value.
pub fn from_docker_config(path: &Path, registry: &str) -> Result<Option<Credentials>> {
    let bad = |reason: String| Error::Credentials {
        source_name: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read it ({e})")))?;
    let cfg: DockerConfig =
        serde_json::from_str(&text).map_err(|e| bad(format!("invalid JSON ({e})")))?;
    let Some(entry) = cfg
        .auths
        .iter()
        .find(|(key, _)| host_of(key) == registry)
        .map(|(_, e)| e)
    else {
        return Ok(None);
    };
    if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|e| bad(format!("auths.{registry}.auth is not base64 ({e})")))?;
        let raw = String::from_utf8(raw)
            .map_err(|_| bad(format!("auths.{registry}.auth is not UTF-8")))?;
        let (user, password) = raw.split_once(':').ok_or_else(|| {
            bad(format!(
                "auths.{registry}.auth does not decode to user:password"
            ))
        })?;
        return Ok(Some(Credentials {
            user: user.to_string(),
            password: password.to_string(),
        }));
    }
    match (&entry.username, &entry.password) {
        (Some(u), Some(p)) => Ok(Some(Credentials {
            user: u.clone(),
            password: p.clone(),
        })),
        _ => Ok(None),
    }
}

fn host_of(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm="..."`.
    Basic,
    /// `Bearer realm="...",service="...",scope="..."`.
    Bearer {
        /// The token endpoint URL.
        realm: String,
        /// The `service` parameter to pass back, if any.
        service: Option<String>,
        /// The scope the registry asked for, if any (space-separated list).
        scope: Option<String>,
    },
}

/// Parses one `WWW-Authenticate` header value (RFC 7235 auth-params with
/// quoted strings, which may contain commas and escaped quotes).
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let params = parse_params(rest);
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    if scheme.eq_ignore_ascii_case("basic") {
        Some(Challenge::Basic)
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Some(Challenge::Bearer {
            realm: get("realm")?,
            service: get("service"),
            scope: get("scope"),
        })
    } else {
        None
    }
}

fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while matches!(chars.peek(), Some(c) if *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' || c.is_whitespace() {
                break;
            }
            name.push(c);
            chars.next();
        }
        if name.is_empty() {
            return out;
        }
        while matches!(chars.peek(), Some(c) if c.is_whitespace()) {
            chars.next();
        }
        if chars.peek() != Some(&'=') {
            continue;
        }
        chars.next();
        while matches!(chars.peek(), Some(c) if c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
            value = value.trim().to_string();
        }
        out.push((name, value));
    }
}

/// The token server's answer; registries differ in which field they fill.
#[derive(Debug, Deserialize)]
pub struct TokenResponse {
    /// Docker's field name.
    #[serde(default)]
    pub token: Option<String>,
    /// OAuth2's field name.
    #[serde(default)]
    pub access_token: Option<String>,
    /// Lifetime in seconds; the spec's default is 60.
    #[serde(default)]
    pub expires_in: Option<u64>,
}

impl TokenResponse {
    /// The token, whichever field carries it.
    pub fn into_token(self) -> Option<String> {
        self.token
            .filter(|t| !t.is_empty())
            .or(self.access_token.filter(|t| !t.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The shape distribution 2.8 sends with `auth: token:` configured for a
    // cross-repository mount: two scopes, space-separated, in one parameter.
    #[test]
    fn parses_bearer_challenges_with_several_scopes() {
        let h = r#"Bearer realm="https://auth.example.test/token",service="registry.example.test",scope="repository:b:pull,push repository:a:pull""#;
        assert_eq!(
            parse_challenge(h),
            Some(Challenge::Bearer {
                realm: "https://auth.example.test/token".into(),
                service: Some("registry.example.test".into()),
                scope: Some("repository:b:pull,push repository:a:pull".into()),
            })
        );
        // GitHub-style: no service, unquoted spacing after commas.
        let h = r#"Bearer realm="https://ghcr.example/token", scope="repository:u/app:pull""#;
        match parse_challenge(h) {
            Some(Challenge::Bearer {
                realm,
                service,
                scope,
            }) => {
                assert_eq!(realm, "https://ghcr.example/token");
                assert_eq!(service, None);
                assert_eq!(scope.as_deref(), Some("repository:u/app:pull"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(
            parse_challenge("Bearer service=\"x\""),
            None,
            "realm is required"
        );
    }

    #[test]
    fn token_field_falls_back_to_access_token() {
        let t: TokenResponse =
            serde_json::from_str(r#"{"access_token":"abc","expires_in":300}"#).unwrap();
        assert_eq!(t.into_token().as_deref(), Some("abc"));
        let t: TokenResponse =
            serde_json::from_str(r#"{"token":"t1","access_token":"t2"}"#).unwrap();
        assert_eq!(t.into_token().as_deref(), Some("t1"));
    }

    #[test]
    fn docker_config_matches_host_with_scheme_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        // "alice:s3cr:et" — passwords may contain colons.
        std::fs::write(
            &path,
            r#"{"auths":{"https://127.0.0.1:5000/v1/":{"auth":"YWxpY2U6czNjcjpldA=="},"other:1":{"username":"u","password":"p"}}}"#,
        )
        .unwrap();
        let c = from_docker_config(&path, "127.0.0.1:5000")
            .unwrap()
            .unwrap();
        assert_eq!((c.user.as_str(), c.password.as_str()), ("alice", "s3cr:et"));
        let c = from_docker_config(&path, "other:1").unwrap().unwrap();
        assert_eq!(c.user, "u");
        assert!(from_docker_config(&path, "nowhere:1").unwrap().is_none());
        assert!(
            !format!("{c:?}").contains("\"p\""),
            "Debug must not show the password"
        );
    }
}
