//! docs/plan.schema.json field by field against the plan types of
//! `ocipack::plan`, the contract's one home (issue 12): every object of the
//! schema lists exactly the fields its Rust type reads, refuses others, and
//! every enum lists exactly the Rust variants. A field or variant added in
//! Rust without the schema fails here; so does one left in the schema after
//! Rust dropped it. The field names come from the types' own `Deserialize`
//! (the `fields` serde hands to `deserialize_struct`), not from a copy.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::Path;

use ocipack::plan::{
    Compression, Entry, FilesLayer, Healthcheck, Layer, ModelLayer, Plan, PrebuiltLayer, RunConfig,
    User,
};
use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde_json::Value;

fn schema() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/plan.schema.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A deserializer that only records the field list serde asks a struct for.
struct FieldNames<'a>(&'a RefCell<Option<&'static [&'static str]>>);

impl<'de> Deserializer<'de> for FieldNames<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0.borrow_mut() = Some(fields);
        Err(de::Error::custom("field names recorded"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

/// The JSON field names of `T`, as its `Deserialize` knows them.
fn fields_of<'de, T: Deserialize<'de>>() -> BTreeSet<String> {
    let cell = RefCell::new(None);
    let _ = T::deserialize(FieldNames(&cell));
    let fields = cell.into_inner().expect("T deserializes from a struct");
    fields.iter().map(|f| (*f).to_owned()).collect()
}

/// The object schema at `pointer`: its property names, checked to refuse
/// anything else.
fn properties(schema: &Value, pointer: &str) -> BTreeSet<String> {
    let object = schema
        .pointer(pointer)
        .unwrap_or_else(|| panic!("docs/plan.schema.json has no {pointer}"));
    assert_eq!(
        object["additionalProperties"],
        Value::Bool(false),
        "{pointer} must refuse unknown fields, as the Rust types do"
    );
    object["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("{pointer} has no properties"))
        .keys()
        .cloned()
        .collect()
}

fn assert_same(rust: &str, pointer: &str, mut fields: BTreeSet<String>, extra: &[&str]) {
    fields.extend(extra.iter().map(|s| (*s).to_owned()));
    let schema = properties(&schema(), pointer);
    let only_rust: Vec<_> = fields.difference(&schema).collect();
    let only_schema: Vec<_> = schema.difference(&fields).collect();
    assert!(
        only_rust.is_empty() && only_schema.is_empty(),
        "{rust} vs docs/plan.schema.json {pointer}: only in Rust {only_rust:?}, only in the schema {only_schema:?}"
    );
}

#[test]
fn every_object_of_the_schema_has_exactly_the_rust_fields() {
    assert_same("Plan", "", fields_of::<Plan>(), &[]);
    assert_same("User", "/properties/user", fields_of::<User>(), &[]);
    assert_same("RunConfig", "/$defs/config", fields_of::<RunConfig>(), &[]);
    assert_same(
        "Healthcheck",
        "/$defs/healthcheck",
        fields_of::<Healthcheck>(),
        &[],
    );
    assert_same("Entry", "/$defs/entry", fields_of::<Entry>(), &[]);
    // Layers are tagged by `kind` (`#[serde(tag = "kind")]`).
    assert_same(
        "FilesLayer",
        "/$defs/filesLayer",
        fields_of::<FilesLayer>(),
        &["kind"],
    );
    assert_same(
        "ModelLayer",
        "/$defs/modelLayer",
        fields_of::<ModelLayer>(),
        &["kind"],
    );
    assert_same(
        "PrebuiltLayer",
        "/$defs/prebuiltLayer",
        fields_of::<PrebuiltLayer>(),
        &["kind"],
    );
}

/// The schema definition a layer variant is described by; `None` for a
/// variant plans may not hold. Exhaustive, so a new variant fails to compile
/// here until it is placed.
fn layer_schema(layer: &Layer) -> Option<&'static str> {
    match layer {
        Layer::Files(_) => Some("filesLayer"),
        Layer::Model(_) => Some("modelLayer"),
        Layer::Prebuilt(_) => Some("prebuiltLayer"),
        // Only in `ocipack layer` specs; Plan::validate refuses it in a plan.
        Layer::Base(_) => None,
    }
}

#[test]
fn layer_kinds_match_the_schema() {
    let schema = schema();
    let samples = [
        r#"{"kind":"files","entries":[]}"#,
        r#"{"kind":"model","name":"m","source":"/m","target":"/m"}"#,
        r#"{"kind":"prebuilt","path":"/p"}"#,
        r#"{"kind":"base"}"#,
    ];
    let mut described = BTreeSet::new();
    for text in samples {
        let layer: Layer = serde_json::from_str(text).unwrap();
        let kind = serde_json::to_value(&layer).unwrap()["kind"].clone();
        let Some(def) = layer_schema(&layer) else {
            continue;
        };
        assert_eq!(
            schema.pointer(&format!("/$defs/{def}/properties/kind/const")),
            Some(&kind),
            "{def}"
        );
        described.insert(format!("#/$defs/{def}"));
    }
    let listed: BTreeSet<String> = schema["properties"]["layers"]["items"]["oneOf"]
        .as_array()
        .expect("layers.items is a oneOf of the layer kinds")
        .iter()
        .map(|v| v["$ref"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, described);
}

#[test]
fn compressions_match_the_schema() {
    // Exhaustive: a new variant must be added here and to the schema.
    let all = |c: Compression| match c {
        Compression::Gzip | Compression::Zstd | Compression::None => c,
    };
    let rust: BTreeSet<String> = [Compression::Gzip, Compression::Zstd, Compression::None]
        .into_iter()
        .map(|c| serde_json::to_value(all(c)).unwrap().to_string())
        .collect();
    let schema: BTreeSet<String> = schema()["$defs"]["filesLayer"]["properties"]["compression"]
        ["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(Value::to_string)
        .collect();
    assert_eq!(rust, schema);
}

/// What the types write (the host builder writes plans from them) is a plan
/// the schema accepts: every example plan, parsed and written back.
#[test]
fn serialized_plans_validate() {
    let validator = jsonschema::validator_for(&schema()).unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/plans");
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let text = std::fs::read_to_string(&p).unwrap();
        let plan = Plan::from_json(&text, &p.display().to_string(), Some(&dir)).unwrap();
        let written = serde_json::to_value(&plan).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&written)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", p.display());
    }
}
