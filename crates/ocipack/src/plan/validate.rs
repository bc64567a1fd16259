//! The plan's rules applied to its types: the user and each layer (the
//! rules themselves are in `crate::rules`, which knows no plan type).

use crate::plan::{Layer, User};
use crate::rules::{check_mode, check_target, parse_mode};

/// The image user's rules: a login name and home that fit /etc/passwd, and
/// no root unless allowed.
pub(crate) fn check_user(user: &User, allow_root: bool) -> std::result::Result<(), String> {
    let name_ok = user.name.len() <= 32
        && user.name.bytes().enumerate().all(|(i, b)| {
            b.is_ascii_lowercase() || b == b'_' || (i > 0 && (b.is_ascii_digit() || b == b'-'))
        })
        && !user.name.is_empty();
    if !name_ok {
        return Err(format!(
            "user.name {:?} is not a login name ([a-z_][a-z0-9_-]{{0,31}})",
            user.name
        ));
    }
    check_target(&user.home).map_err(|m| format!("user.home: {m}"))?;
    if user.home.contains(':') || user.home == "/" {
        return Err(format!(
            "user.home {:?} cannot be a home directory (no ':' and not /)",
            user.home
        ));
    }
    if !allow_root && (user.uid == 0 || user.gid == 0) {
        return Err(format!(
            "user {} has uid/gid {}:{}; root is refused, pick a non-zero id or set allowRoot",
            user.name, user.uid, user.gid
        ));
    }
    Ok(())
}

/// Layer rules that need no file system access.
pub(crate) fn validate_layer(layer: &Layer, allow_root: bool) -> std::result::Result<(), String> {
    match layer {
        Layer::Files(f) => {
            for (j, e) in f.entries.iter().enumerate() {
                let at = |m: String| format!("entry {} ({}): {m}", j + 1, e.target);
                check_target(&e.target).map_err(at)?;
                let kinds = usize::from(e.source.is_some())
                    + usize::from(e.directory)
                    + usize::from(e.symlink.is_some());
                if kinds != 1 {
                    return Err(at(
                        "give exactly one of source, directory: true, or symlink".into(),
                    ));
                }
                if let Some(m) = &e.mode {
                    let mode = parse_mode(m).map_err(at)?;
                    check_mode(mode, &e.target, allow_root).map_err(at)?;
                }
                if e.symlink.as_deref() == Some("") {
                    return Err(at("symlink target is empty".into()));
                }
            }
            Ok(())
        }
        Layer::Model(m) => {
            check_target(&m.target).map_err(|e| format!("model {}: {e}", m.name))?;
            if m.target == "/" {
                return Err(format!("model {}: target must name a file", m.name));
            }
            Ok(())
        }
        Layer::Prebuilt(_) => Ok(()),
        Layer::Base(b) => check_user(&b.user, allow_root || b.allow_root),
    }
}
