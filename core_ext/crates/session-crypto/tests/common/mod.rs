//! Loading the shared JSON vectors (`tests/vectors/<name>.json`) for the integration tests.
#![allow(dead_code)] // each test file uses a subset

use serde_json::Value;

/// Every case of `tests/vectors/<name>.json`.
pub fn cases(name: &str) -> Vec<Value> {
    let path = format!(
        "{}/../../../tests/vectors/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let v: Value = serde_json::from_str(&text).expect("valid JSON");
    v["cases"].as_array().expect("cases array").clone()
}

/// The cases of one `kind` (there must be at least one).
pub fn kind(name: &str, k: &str) -> Vec<Value> {
    let v: Vec<Value> = cases(name).into_iter().filter(|c| c["kind"] == k).collect();
    assert!(!v.is_empty(), "no {k} cases in {name}.json");
    v
}

/// A string field of a case.
pub fn s<'a>(c: &'a Value, k: &str) -> &'a str {
    c[k].as_str()
        .unwrap_or_else(|| panic!("{}: missing {k}", c["name"]))
}
