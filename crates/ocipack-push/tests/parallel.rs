//! Parallel push (issue 14): several blobs in flight at once, a registry
//! that fails one upload of several, and a push killed mid-way then run
//! again. A real docker-registry on loopback behind a small logging proxy
//! (tests/common/proxy.rs) that counts uploads and injects failures.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::proxy::Proxy;
use common::*;
use ocipack_push::{push, BlobOutcome, Error, NoProgress, PushOptions, Target};

/// Set in the child process of the kill test: `LAYOUT|TARGET`.
const CHILD_ENV: &str = "OCIPACK_PUSH_TEST_CHILD";

fn opts(jobs: usize) -> PushOptions {
    PushOptions {
        jobs,
        ..insecure_opts()
    }
}

/// config + `n` small layers of 100 kB + one 3 MiB layer (3 PATCH chunks).
fn image(dir: &Path, n: usize, seed: u64) -> TestImage {
    let mut layers: Vec<Vec<u8>> = (0..n)
        .map(|i| random_bytes(100_000, seed * 1000 + 2 * i as u64 + 1))
        .collect();
    layers.push(random_bytes(3 * 1024 * 1024, seed * 1000 + 999));
    let refs: Vec<&[u8]> = layers.iter().map(Vec::as_slice).collect();
    write_layout(dir, "1", &refs)
}

fn all_blobs(img: &TestImage) -> BTreeSet<String> {
    let mut s: BTreeSet<String> = img.layer_digests.iter().cloned().collect();
    s.insert(img.config_digest.clone());
    s
}

fn encoded(digest: &str) -> String {
    digest.replace(':', "%3A")
}

/// The image is in the registry and whole: the tag resolves to our
/// manifest digest (skopeo), and every blob it names downloads with the
/// bytes its digest says.
fn assert_complete(host: &str, repo_tag: &str, img: &TestImage) {
    assert_eq!(skopeo_digest(host, repo_tag, None), img.manifest_digest);
    let repo = repo_tag.split(':').next().unwrap();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    for d in all_blobs(img) {
        let url = format!("http://{host}/v2/{repo}/blobs/{d}");
        let mut resp = agent.get(&url).call().unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{url}");
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_vec()
            .unwrap();
        assert_eq!(sha256(&bytes), d, "{url} serves other bytes");
    }
}

fn counts(digests: &[String]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for d in digests {
        *m.entry(d.clone()).or_insert(0) += 1;
    }
    m
}

#[test]
fn uploads_run_in_parallel_up_to_jobs() {
    let reg = Registry::start(None);
    let proxy = Proxy::start(reg.port);
    // Each commit waits, so uploads overlap if and only if they run at once.
    proxy.delay_commits(Duration::from_millis(150));
    let tmp = tempfile::tempdir().unwrap();
    let img = image(&tmp.path().join("img"), 7, 1);
    let mut serial_order = None;
    for (jobs, repo) in [(1usize, "serial"), (4, "parallel")] {
        let t = Target::parse(&format!("{}/{repo}:1", proxy.host())).unwrap();
        let r = within(Duration::from_secs(60), {
            let dir = img.dir.clone();
            move || push(&dir, &t, opts(jobs), &NoProgress).unwrap()
        });
        assert_eq!(r.jobs, jobs);
        assert_eq!(r.images[0].uploaded.blobs, 9);
        // Blobs are reported in the same order whatever finished first.
        let order: Vec<String> = r.images[0].blobs.iter().map(|b| b.digest.clone()).collect();
        match &serial_order {
            None => serial_order = Some(order),
            Some(o) => assert_eq!(&order, o),
        }
        let peak = proxy.peak_in_flight_and_reset();
        if jobs == 1 {
            assert_eq!(peak, 1, "one job must mean one request at a time");
        } else {
            assert!(
                (2..=jobs).contains(&peak),
                "expected 2..={jobs} requests at once, saw {peak}"
            );
        }
        assert_complete(&reg.host(), &format!("{repo}:1"), &img);
    }
}

#[test]
fn one_failed_upload_of_several_is_retried_and_the_image_is_complete() {
    let reg = Registry::start(None);
    let proxy = Proxy::start(reg.port);
    let tmp = tempfile::tempdir().unwrap();
    let img = image(&tmp.path().join("img"), 5, 2);
    // A monolithic PUT fails once (retried as is), and the big blob's first
    // PATCH fails once (its upload is started again from the beginning).
    proxy.fail("PUT", &encoded(&img.layer_digests[1]), 1);
    proxy.fail("PATCH", "/blobs/uploads/", 1);
    let t = Target::parse(&format!("{}/flaky:1", proxy.host())).unwrap();
    let r = within(Duration::from_secs(60), {
        let dir = img.dir.clone();
        move || push(&dir, &t, opts(4), &NoProgress).unwrap()
    });
    let log = proxy.log();
    assert_eq!(log.iter().filter(|s| s.injected).count(), 2, "{log:#?}");
    assert_eq!(r.images[0].uploaded.blobs, 7);
    // Every blob committed exactly once.
    let c = counts(&proxy.commits());
    assert_eq!(c.keys().cloned().collect::<BTreeSet<_>>(), all_blobs(&img));
    assert!(c.values().all(|n| *n == 1), "{c:?}");
    assert_complete(&reg.host(), "flaky:1", &img);
}

#[test]
fn a_blob_failing_every_try_leaves_no_manifest_and_the_rerun_sends_only_the_rest() {
    let reg = Registry::start(None);
    let proxy = Proxy::start(reg.port);
    let tmp = tempfile::tempdir().unwrap();
    let img = image(&tmp.path().join("img"), 5, 3);
    let bad = img.layer_digests[2].clone();
    // More failures than the push has tries (3): it gives up on this blob.
    proxy.fail("PUT", &encoded(&bad), 3);
    let t = Target::parse(&format!("{}/broken:1", proxy.host())).unwrap();
    let err = within(Duration::from_secs(60), {
        let (dir, t) = (img.dir.clone(), t.clone());
        move || push(&dir, &t, opts(4), &NoProgress).unwrap_err()
    });
    assert!(
        matches!(err, Error::Status { status: 500, .. }),
        "unexpected error: {err}"
    );
    // No manifest may name a blob that is not there.
    assert_eq!(
        status_of(
            &format!("http://{}/v2/broken/manifests/1", reg.host()),
            "HEAD"
        ),
        404
    );
    let first: BTreeSet<String> = proxy.commits().into_iter().collect();
    assert!(!first.contains(&bad));
    let there: BTreeSet<String> = all_blobs(&img)
        .into_iter()
        .filter(|d| blob_exists(&reg.host(), "broken", d))
        .collect();
    assert_eq!(there, first);

    let before = proxy.log().len();
    let r = within(Duration::from_secs(60), {
        let dir = img.dir.clone();
        move || push(&dir, &t, opts(4), &NoProgress).unwrap()
    });
    let rerun: Vec<String> = proxy.log()[before..]
        .iter()
        .filter(|s| s.status == 201)
        .filter_map(|s| s.committed_digest())
        .collect();
    let rerun_set: BTreeSet<String> = rerun.iter().cloned().collect();
    assert_eq!(rerun.len(), rerun_set.len(), "a blob went twice: {rerun:?}");
    assert!(rerun_set.contains(&bad));
    assert!(
        rerun_set.is_disjoint(&first),
        "completed blobs were uploaded again: {:?}",
        rerun_set.intersection(&first).collect::<Vec<_>>()
    );
    assert_eq!(
        rerun_set.union(&first).cloned().collect::<BTreeSet<_>>(),
        all_blobs(&img)
    );
    assert_eq!(r.images[0].skipped.blobs as usize, first.len());
    assert_complete(&reg.host(), "broken:1", &img);
}

/// The pushing side of the kill test, run in a child process (this test
/// binary started again with [`CHILD_ENV`] set); a no-op otherwise.
#[test]
fn child_push_for_the_kill_test() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (dir, target) = spec.split_once('|').unwrap();
    let t = Target::parse(target).unwrap();
    push(Path::new(dir), &t, opts(4), &NoProgress).unwrap();
}

#[test]
fn a_push_killed_mid_way_then_rerun_is_complete_and_sends_no_completed_blob_again() {
    let reg = Registry::start(None);
    let proxy = Proxy::start(reg.port);
    // Slow commits: the push is still running when it is killed.
    proxy.delay_commits(Duration::from_millis(200));
    let tmp = tempfile::tempdir().unwrap();
    let img = image(&tmp.path().join("img"), 16, 4);
    let total = all_blobs(&img).len();
    let target = format!("{}/killed:1", proxy.host());
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_push_for_the_kill_test",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, format!("{}|{target}", img.dir.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once a few commits have gone through (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(60);
    while proxy.commits().len() < 4 {
        assert!(
            Instant::now() < deadline,
            "the child made no progress in 60 s"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the child ended before it was killed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    proxy.delay_commits(Duration::ZERO);
    std::thread::sleep(Duration::from_millis(300)); // in-flight requests drain
    let completed: BTreeSet<String> = all_blobs(&img)
        .into_iter()
        .filter(|d| blob_exists(&reg.host(), "killed", d))
        .collect();
    assert!(
        completed.len() >= 4 && completed.len() < total,
        "killed too early or too late: {} of {total} blobs there",
        completed.len()
    );
    assert_eq!(
        status_of(
            &format!("http://{}/v2/killed/manifests/1", reg.host()),
            "HEAD"
        ),
        404,
        "the manifest went in before all its blobs"
    );

    let before = proxy.log().len();
    let t = Target::parse(&target).unwrap();
    let r = within(Duration::from_secs(60), {
        let dir = img.dir.clone();
        move || push(&dir, &t, opts(4), &NoProgress).unwrap()
    });
    let rerun: Vec<String> = proxy.log()[before..]
        .iter()
        .filter(|s| s.status == 201)
        .filter_map(|s| s.committed_digest())
        .collect();
    let rerun_set: BTreeSet<String> = rerun.iter().cloned().collect();
    assert_eq!(rerun.len(), rerun_set.len(), "a blob went twice: {rerun:?}");
    assert!(
        rerun_set.is_disjoint(&completed),
        "completed blobs were uploaded again: {:?}",
        rerun_set.intersection(&completed).collect::<Vec<_>>()
    );
    let im = &r.images[0];
    assert_eq!(im.skipped.blobs as usize, completed.len());
    assert_eq!(im.uploaded.blobs as usize, total - completed.len());
    assert!(im
        .blobs
        .iter()
        .filter(|b| b.outcome == BlobOutcome::Skipped)
        .all(|b| completed.contains(&b.digest)));
    assert_complete(&reg.host(), "killed:1", &img);
}
