//! Every example plan validates against docs/plan.schema.json and parses;
//! the schema and the parser agree on a few bad plans too.

use std::path::Path;

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn validator() -> jsonschema::Validator {
    let schema: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo().join("docs/plan.schema.json")).unwrap())
            .unwrap();
    jsonschema::validator_for(&schema).expect("the schema is valid JSON Schema")
}

#[test]
fn examples_validate_and_parse() {
    let v = validator();
    let dir = repo().join("tests/data/plans");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let text = std::fs::read_to_string(&p).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let errors: Vec<String> = v.iter_errors(&json).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", p.display());
        ocipack::plan::Plan::from_json(&text, &p.display().to_string(), Some(&dir)).unwrap();
        n += 1;
    }
    assert!(n >= 3);
    // The example in docs/plan-format.md too.
    let doc = std::fs::read_to_string(repo().join("docs/plan-format.md")).unwrap();
    let example = doc
        .split("## Example")
        .nth(1)
        .unwrap()
        .split("```json")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(example).unwrap();
    assert!(v.is_valid(&json));
    ocipack::plan::Plan::from_json(example, "docs example", Some(Path::new("/"))).unwrap();
}

#[test]
fn schema_and_parser_both_refuse_bad_plans() {
    let v = validator();
    for bad in [
        r#"{"version": 1, "name": "x", "layers": [], "extra": 1}"#,
        r#"{"version": 2, "name": "x", "layers": []}"#,
        r#"{"version": 1, "name": "x", "layers": [{"kind": "files", "entries": [{"source": "a", "target": "rel"}]}]}"#,
        r#"{"version": 1, "name": "x", "layers": [{"kind": "model", "name": "m", "source": "a"}]}"#,
        r#"{"version": 1, "name": "x", "config": {"user": "app"}, "layers": []}"#,
        r#"{"version": 1, "name": "x", "user": {"name": "a:b"}, "layers": []}"#,
        r#"{"version": 1, "name": "x", "user": {"home": "/home/a:b"}, "layers": []}"#,
        r#"{"version": 1, "name": "x", "layers": [{"kind": "base"}]}"#,
        r#"{"version": 1, "name": "x", "generateBase": "no", "layers": []}"#,
    ] {
        let json: serde_json::Value = serde_json::from_str(bad).unwrap();
        assert!(!v.is_valid(&json), "schema accepted {bad}");
        assert!(
            ocipack::plan::Plan::from_json(bad, "t", Some(Path::new("/"))).is_err(),
            "parser accepted {bad}"
        );
    }
}
