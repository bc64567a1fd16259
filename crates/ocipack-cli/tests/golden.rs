//! Golden digests: fixed fixture plans must always give the same manifest digest.
//! Regenerate only on purpose: `UPDATE_GOLDEN=1 cargo test -p ocipack-cli --test golden`.

mod common;
use common::*;

const GOLDEN: &str = "tests/data/golden-digests.json";

#[test]
fn fixture_plans_match_their_golden_digests() {
    let tmp = tempfile::tempdir().unwrap();
    let mut actual = serde_json::Map::new();
    for name in ["golden.json", "gzip-only.json", "minimal.json"] {
        let out = tmp.path().join(name);
        build(&plan(name), &out, &[]);
        actual.insert(name.to_owned(), manifest_digest(&out).into());
    }
    let path = repo().join(GOLDEN);
    let actual = serde_json::Value::Object(actual);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&actual).unwrap() + "\n").unwrap();
        return;
    }
    let expected: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&path).expect("golden file; create it with UPDATE_GOLDEN=1"),
    )
    .unwrap();
    assert_eq!(actual, expected, "digests changed; if that is intended, rerun with UPDATE_GOLDEN=1 and say why in the commit");
}
