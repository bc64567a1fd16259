//! The rules a plan must follow that need no file system: target paths,
//! modes and the non-root policy, tags, times. On strings and numbers only:
//! this module does not depend on the plan types (`plan::validate` applies
//! these rules to them), so both `plan` and `tree` can use it.

/// Parses an octal mode string (`"0755"`, `"644"`).
pub(crate) fn parse_mode(m: &str) -> std::result::Result<u32, String> {
    if m.is_empty() || m.len() > 5 || !m.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(format!("mode {m:?} is not an octal string like \"0755\""));
    }
    u32::from_str_radix(m, 8)
        .ok()
        .filter(|v| *v <= 0o7777)
        .ok_or_else(|| format!("mode {m:?} is out of range"))
}

/// The image policy on modes: no setuid/setgid, nothing world-writable outside /tmp.
pub(crate) fn check_mode(
    mode: u32,
    target: &str,
    allow_root: bool,
) -> std::result::Result<(), String> {
    if allow_root {
        return Ok(());
    }
    if mode & 0o6000 != 0 {
        return Err(format!(
            "mode {mode:04o} is setuid/setgid; refused (set allowRoot if you really need it)"
        ));
    }
    if mode & 0o002 != 0 && target != "/tmp" && !target.starts_with("/tmp/") {
        return Err(format!(
            "mode {mode:04o} is world-writable outside /tmp; refused (set allowRoot if you really need it)"
        ));
    }
    Ok(())
}

/// A target must be absolute and normalised.
pub(crate) fn check_target(t: &str) -> std::result::Result<(), String> {
    if !t.starts_with('/') {
        return Err(format!(
            "target {t:?} is relative; targets are absolute paths"
        ));
    }
    if t == "/" {
        return Ok(());
    }
    if t.ends_with('/') || t.contains("//") {
        return Err(format!(
            "target {t:?} is not normalised (no trailing or double /)"
        ));
    }
    if t.split('/').any(|c| c == "." || c == "..") {
        return Err(format!(
            "target {t:?} contains . or ..; give the normalised path"
        ));
    }
    if t.contains('\0') {
        return Err(format!("target {t:?} contains a NUL byte"));
    }
    Ok(())
}

pub(crate) fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

pub(crate) fn valid_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| r.clone().all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    if b.len() < 20
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
        || b[10] != b'T'
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
    {
        return false;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    rest == "Z"
        || (rest.len() == 6
            && (rest.starts_with('+') || rest.starts_with('-'))
            && rest.as_bytes()[3] == b':')
}

/// Formats seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian, UTC).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_points() {
        assert_eq!(rfc3339(1), "1970-01-01T00:00:01Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn targets() {
        assert!(check_target("/a/b").is_ok());
        for bad in ["a/b", "/a/../b", "/a/./b", "/a//b", "/a/"] {
            assert!(check_target(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("0755"), Ok(0o755));
        assert!(parse_mode("0x55").is_err());
        assert!(check_mode(0o4755, "/a", false).is_err());
        assert!(check_mode(0o0777, "/a", false).is_err());
        assert!(check_mode(0o1777, "/tmp", false).is_ok());
        assert!(check_mode(0o4755, "/a", true).is_ok());
    }

    /// Regression for issue 12 (plan.rs and rules.rs imported each other):
    /// the rules are on strings and numbers, `plan::validate` applies them.
    #[test]
    fn rules_do_not_depend_on_the_plan() {
        let plan_path = concat!("crate::", "plan");
        assert!(!include_str!("rules.rs").contains(plan_path));
    }

    #[test]
    fn times() {
        assert!(valid_rfc3339("2024-01-02T03:04:05Z"));
        assert!(valid_rfc3339("2024-01-02T03:04:05.123+02:00"));
        assert!(!valid_rfc3339("2024-01-02 03:04:05Z"));
        assert!(!valid_rfc3339("yesterday"));
    }
}
