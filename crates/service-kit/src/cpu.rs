//! How many CPUs this process may use: the cgroup CPU quota (v2 `cpu.max`,
//! v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us` as fallback), rounded up,
//! and never more than `available_parallelism` (the CPUs and affinity mask).
//!
//! A container limited to 2 CPUs on a 64-core host gets 2, so the model
//! sessions, ONNX Runtime threads and the decode gate are sized for 2.
//! Every ancestor cgroup's quota counts (the smallest wins). Unreadable or
//! malformed cgroup files are reported (see [`CpuLimit::warning`]) and
//! ignored rather than fatal: the count then falls back to
//! `available_parallelism`.

use std::path::{Path, PathBuf};

/// The CPU count and how it was found.
#[derive(Clone, Debug, PartialEq)]
pub struct CpuLimit {
    /// CPUs to size for: at least 1.
    pub cpus: usize,
    /// The cgroup quota in CPUs (e.g. 1.5), when one is set.
    pub quota: Option<f64>,
    /// `available_parallelism` (or the value passed in tests).
    pub parallelism: usize,
    /// A cgroup file that could not be parsed, and why.
    pub warning: Option<String>,
}

/// Parses cgroup v2 `cpu.max`: `max <period>` (no limit) or `<quota> <period>`
/// in microseconds. Returns the quota in CPUs.
///
/// # Errors
///
/// A message saying what is wrong with `text`.
pub fn parse_cpu_max(text: &str) -> Result<Option<f64>, String> {
    let mut fields = text.split_whitespace();
    let (Some(quota), period, None) = (fields.next(), fields.next(), fields.next()) else {
        return Err(format!(
            "expected \"<quota|max> [period]\", got {:?}",
            text.trim()
        ));
    };
    let period = match period {
        Some(p) => parse_positive(p, "period")?,
        None => 100_000.0,
    };
    if quota == "max" {
        return Ok(None);
    }
    Ok(Some(parse_positive(quota, "quota")? / period))
}

/// Parses cgroup v1 `cpu.cfs_quota_us` and `cpu.cfs_period_us`; a quota of
/// -1 means no limit. Returns the quota in CPUs.
///
/// # Errors
///
/// A message saying which value is wrong.
pub fn parse_cfs(quota: &str, period: &str) -> Result<Option<f64>, String> {
    let q = quota.trim();
    if q == "-1" {
        return Ok(None);
    }
    Ok(Some(
        parse_positive(q, "cfs quota")? / parse_positive(period.trim(), "cfs period")?,
    ))
}

fn parse_positive(text: &str, what: &str) -> Result<f64, String> {
    match text.parse::<u64>() {
        Ok(v) if v > 0 => Ok(v as f64),
        _ => Err(format!("{what} {text:?} is not a positive integer")),
    }
}

/// The smallest quota on the way from the cgroup named in `proc_self_cgroup`
/// (the text of `/proc/self/cgroup`) up to the root, under `fs_root` (normally
/// `/sys/fs/cgroup`): cgroup v2 first, then v1's `cpu` controller.
///
/// # Errors
///
/// The first unreadable or malformed quota file, named, with the reason.
pub fn cgroup_quota(fs_root: &Path, proc_self_cgroup: &str) -> Result<Option<f64>, String> {
    let mut v2 = None;
    let mut v1 = None;
    for line in proc_self_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if controllers.is_empty() {
            v2 = Some(path.to_owned());
        } else if controllers.split(',').any(|c| c == "cpu") {
            v1 = Some((controllers.to_owned(), path.to_owned()));
        }
    }
    if let Some(path) = v2 {
        if let Some(q) = smallest(fs_root, &path, |dir| {
            let file = dir.join("cpu.max");
            read_optional(&file)?
                .map(|t| parse_cpu_max(&t).map_err(|e| format!("{}: {e}", file.display())))
                .transpose()
                .map(Option::flatten)
        })? {
            return Ok(Some(q));
        }
    }
    if let Some((controllers, path)) = v1 {
        // The v1 hierarchy is mounted as cpu,cpuacct (or cpu alone, with a
        // cpu,cpuacct symlink); try the joined name first.
        for mount in [controllers.as_str(), "cpu,cpuacct", "cpu"] {
            let base = fs_root.join(mount);
            if !base.is_dir() {
                continue;
            }
            return smallest(&base, &path, |dir| {
                let (qf, pf) = (dir.join("cpu.cfs_quota_us"), dir.join("cpu.cfs_period_us"));
                match (read_optional(&qf)?, read_optional(&pf)?) {
                    (Some(q), Some(p)) => parse_cfs(&q, &p)
                        .map_err(|e| format!("{} / {}: {e}", qf.display(), pf.display())),
                    _ => Ok(None),
                }
            });
        }
    }
    Ok(None)
}

/// The smallest quota `read` finds in `base/path` and each of its ancestors
/// up to `base`.
fn smallest(
    base: &Path,
    path: &str,
    read: impl Fn(&Path) -> Result<Option<f64>, String>,
) -> Result<Option<f64>, String> {
    let mut dir: PathBuf = base.to_owned();
    let mut dirs = vec![dir.clone()];
    for part in path
        .split('/')
        .filter(|p| !p.is_empty() && *p != "." && *p != "..")
    {
        dir.push(part);
        dirs.push(dir.clone());
    }
    let mut best: Option<f64> = None;
    for d in dirs {
        if let Some(q) = read(&d)? {
            best = Some(best.map_or(q, |b| b.min(q)));
        }
    }
    Ok(best)
}

fn read_optional(file: &Path) -> Result<Option<String>, String> {
    match std::fs::read_to_string(file) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", file.display())),
    }
}

/// Combines a quota lookup with `parallelism` into a [`CpuLimit`].
pub fn limit_from(quota: Result<Option<f64>, String>, parallelism: usize) -> CpuLimit {
    let parallelism = parallelism.max(1);
    let (quota, warning) = match quota {
        Ok(q) => (q, None),
        Err(e) => (None, Some(e)),
    };
    let cpus = quota.map_or(parallelism, |q| {
        // 1.5 CPUs of quota can keep 2 threads busy part of the time; round up.
        (q.ceil() as usize).clamp(1, parallelism)
    });
    CpuLimit {
        cpus,
        quota,
        parallelism,
        warning,
    }
}

/// This process's CPU limit, from `/proc/self/cgroup` and `/sys/fs/cgroup`.
pub fn detect() -> CpuLimit {
    let parallelism = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let quota = match std::fs::read_to_string("/proc/self/cgroup") {
        Ok(text) => cgroup_quota(Path::new("/sys/fs/cgroup"), &text),
        // Not Linux, or no /proc: nothing to read.
        Err(_) => Ok(None),
    };
    limit_from(quota, parallelism)
}

/// The CPUs this process may use ([`detect`]), computed once; logs a warning
/// once when a cgroup file was malformed.
pub fn cpus() -> usize {
    static LIMIT: std::sync::OnceLock<CpuLimit> = std::sync::OnceLock::new();
    LIMIT
        .get_or_init(|| {
            let limit = detect();
            if let Some(w) = &limit.warning {
                tracing::warn!(
                    "ignoring the cgroup CPU quota ({w}); sizing for {} CPUs",
                    limit.cpus
                );
            }
            limit
        })
        .cpus
}

/// How many sessions of a model to keep and how many intra-op threads each
/// runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Threads {
    /// Sessions in the pool: requests beyond it wait for a free one.
    pub sessions: usize,
    /// ONNX Runtime intra-op threads per session (1 = the calling thread only).
    pub intra: usize,
}

/// Most sessions the default gives: each holds the model's weights and its
/// own activation arena (tens of MB for SCRFD), so memory grows with it.
pub const MAX_DEFAULT_SESSIONS: usize = 4;

impl Threads {
    /// The defaults for `cpus` usable CPUs, with explicit values
    /// (`ORT_SESSIONS`, `ORT_INTRA_THREADS`) taking precedence: one session
    /// per CPU (at most [`MAX_DEFAULT_SESSIONS`]), so concurrent requests run
    /// side by side, and each session with all `cpus` intra-op threads, so a
    /// lone request still uses every core. Spinning is off whenever the
    /// threads outnumber the CPUs ([`Threads::spinning`]), so idle threads
    /// of one session do not steal CPU from another's run.
    pub fn for_cpus(cpus: usize, sessions: Option<usize>, intra: Option<usize>) -> Self {
        let cpus = cpus.max(1);
        Self {
            sessions: sessions.unwrap_or(cpus.min(MAX_DEFAULT_SESSIONS)).max(1),
            intra: intra.unwrap_or(cpus).max(1),
        }
    }

    /// Whether intra-op threads may spin waiting for work: only when all the
    /// sessions' threads together fit on `cpus`.
    pub fn spinning(&self, cpus: usize) -> bool {
        self.sessions * self.intra <= cpus.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn cpu_max_values() {
        assert_eq!(parse_cpu_max("max 100000\n"), Ok(None));
        assert_eq!(parse_cpu_max("max\n"), Ok(None));
        assert_eq!(parse_cpu_max("150000 100000\n"), Ok(Some(1.5)));
        assert_eq!(parse_cpu_max("200000\n"), Ok(Some(2.0)));
        for bad in [
            "",
            "abc 100000",
            "100000 0",
            "-5 100000",
            "1 2 3",
            "max zero",
        ] {
            assert!(parse_cpu_max(bad).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(parse_cfs("-1\n", "100000\n"), Ok(None));
        assert_eq!(parse_cfs("50000\n", "100000\n"), Ok(Some(0.5)));
        assert!(parse_cfs("lots", "100000").is_err());
        assert!(parse_cfs("100000", "0").is_err());
    }

    #[test]
    fn v2_quota_of_own_cgroup_and_smallest_ancestor() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "cpu.max", "max 100000\n");
        write(root, "kubepods/cpu.max", "300000 100000\n");
        write(root, "kubepods/pod1/cpu.max", "max 100000\n");
        write(root, "kubepods/pod1/c1/cpu.max", "150000 100000\n");
        let own = "0::/kubepods/pod1/c1\n";
        assert_eq!(cgroup_quota(root, own), Ok(Some(1.5)));
        // a parent's smaller limit wins
        write(root, "kubepods/cpu.max", "100000 100000\n");
        assert_eq!(cgroup_quota(root, own), Ok(Some(1.0)));
        // "max" all the way up: no quota
        assert_eq!(cgroup_quota(root, "0::/\n"), Ok(None));
        let limit = limit_from(cgroup_quota(root, own), 8);
        assert_eq!((limit.cpus, limit.warning), (1, None));
    }

    #[test]
    fn v2_bad_content_names_the_file_and_falls_back() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "app/cpu.max", "two cpus please\n");
        let err = cgroup_quota(dir.path(), "0::/app\n").unwrap_err();
        assert!(err.contains("app/cpu.max"), "{err}");
        let limit = limit_from(Err(err), 4);
        assert_eq!(limit.cpus, 4);
        assert!(limit.warning.is_some());
    }

    #[test]
    fn v1_cfs_quota_is_the_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "cpu,cpuacct/cpu.cfs_quota_us", "-1\n");
        write(root, "cpu,cpuacct/cpu.cfs_period_us", "100000\n");
        write(root, "cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "250000\n");
        write(root, "cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
        let text = "12:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n";
        assert_eq!(cgroup_quota(root, text), Ok(Some(2.5)));
        // 2.5 CPUs round up to 3, but never above the CPUs there are
        assert_eq!(limit_from(cgroup_quota(root, text), 8).cpus, 3);
        assert_eq!(limit_from(cgroup_quota(root, text), 2).cpus, 2);
        // unlimited in v1
        assert_eq!(cgroup_quota(root, "3:cpu,cpuacct:/\n"), Ok(None));
        write(root, "cpu,cpuacct/docker/abc/cpu.cfs_period_us", "0\n");
        assert!(cgroup_quota(root, text).is_err());
    }

    #[test]
    fn nothing_mounted_means_no_quota() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(cgroup_quota(dir.path(), "0::/somewhere\n"), Ok(None));
        assert_eq!(cgroup_quota(dir.path(), ""), Ok(None));
        assert_eq!(limit_from(Ok(None), 0).cpus, 1);
        assert_eq!(limit_from(Ok(Some(0.1)), 4).cpus, 1);
    }

    #[test]
    fn sessions_and_threads_follow_the_cpus_unless_set() {
        let t = Threads::for_cpus(2, None, None);
        assert_eq!((t.sessions, t.intra), (2, 2));
        assert!(!t.spinning(2));
        let t = Threads::for_cpus(1, None, None);
        assert_eq!((t.sessions, t.intra), (1, 1));
        assert!(t.spinning(1));
        assert_eq!(
            Threads::for_cpus(64, None, None).sessions,
            MAX_DEFAULT_SESSIONS
        );
        let t = Threads::for_cpus(8, Some(1), Some(0));
        assert_eq!((t.sessions, t.intra), (1, 1));
        assert!(t.spinning(8));
    }

    #[test]
    fn this_process_gets_at_least_one() {
        assert!(cpus() >= 1);
    }
}
