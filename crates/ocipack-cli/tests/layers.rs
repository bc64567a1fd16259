//! `ocipack layers` on a realistic graph (tests/data/graphs/debian-services.json,
//! made by scripts/debian-closure-graph.py from Debian's package graph):
//! two builds that differ only in the application change only the top layer.

mod common;
use common::*;

fn graph_with_app(app: &str, size: u64) -> serde_json::Value {
    let mut g: Vec<serde_json::Value> = serde_json::from_slice(
        &std::fs::read(repo().join("tests/data/graphs/debian-services.json")).unwrap(),
    )
    .unwrap();
    let referenced: std::collections::BTreeSet<String> = g
        .iter()
        .flat_map(|n| {
            n["references"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap().to_owned())
                .filter(|r| r != n["path"].as_str().unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    let roots: Vec<String> = g
        .iter()
        .map(|n| n["path"].as_str().unwrap().to_owned())
        .filter(|p| !referenced.contains(p))
        .collect();
    g.push(serde_json::json!({"path": app, "narSize": size, "references": roots}));
    serde_json::Value::Array(g)
}

fn assign(graph: &serde_json::Value, max: usize) -> Vec<serde_json::Value> {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("g.json");
    std::fs::write(&p, serde_json::to_vec(graph).unwrap()).unwrap();
    let o = run(
        ocipack()
            .args(["layers", "--json", "--max", &max.to_string()])
            .arg(&p),
        true,
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["layers"].as_array().unwrap().clone()
}

#[test]
fn changing_only_the_application_changes_only_the_top_layer() {
    let a = graph_with_app(
        "/nix/store/0000000000000000000000000000000a-app-1.0",
        12 << 20,
    );
    let b = graph_with_app(
        "/nix/store/0000000000000000000000000000000b-app-1.1",
        13 << 20,
    );
    let total: u64 = a
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["narSize"].as_u64().unwrap())
        .sum();
    for max in [5, 20, 100] {
        let (la, lb) = (assign(&a, max), assign(&b, max));
        assert!(la.len() <= max && lb.len() == la.len());
        let changed: Vec<usize> = (0..la.len()).filter(|&i| la[i] != lb[i]).collect();
        assert_eq!(
            changed,
            vec![la.len() - 1],
            "max {max}: only the top layer may change"
        );
        let changed_bytes = lb.last().unwrap()["narSize"].as_u64().unwrap();
        assert_eq!(changed_bytes, 13 << 20);
        // Every path exactly once.
        let mut paths: Vec<String> = la
            .iter()
            .flat_map(|l| {
                l["paths"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p.as_str().unwrap().to_owned())
            })
            .collect();
        let n = paths.len();
        paths.sort();
        paths.dedup();
        assert_eq!(paths.len(), n);
        assert_eq!(n, a.as_array().unwrap().len());
        eprintln!("max {max}: {} layers, {changed_bytes} of {total} bytes change when only the app changes", la.len());
    }
}

#[test]
fn budget_is_enforced_and_validated() {
    let a = graph_with_app("/nix/store/0000000000000000000000000000000a-app-1.0", 1);
    assert_eq!(assign(&a, 1).len(), 1);
    assert_eq!(assign(&a, 2).len(), 2);
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("g.json");
    std::fs::write(&p, serde_json::to_vec(&a).unwrap()).unwrap();
    let o = ocipack()
        .args(["layers", "--max", "128"])
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("between 1 and 127"));
}
