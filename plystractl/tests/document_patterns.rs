//! Every `pattern` in the committed document compiles with `regress`, the ECMA-262 engine the
//! progenitor-generated client checks values with (a pattern it cannot read would panic at run
//! time, the first time plystractl builds a value of that type).

#![allow(
    clippy::unwrap_used,
    reason = "a test's helpers unwrap as its test functions do: a panic is a failed test"
)]

use std::path::Path;

use serde_json::Value;

fn patterns(value: &Value, at: String, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                if key == "pattern"
                    && let Some(pattern) = item.as_str()
                {
                    out.push((at.clone(), pattern.to_owned()));
                }
                patterns(item, format!("{at}/{key}"), out);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                patterns(item, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_pattern_of_the_document_compiles_as_ecma_262() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi/plystra.v0.0.1.json");
    let document: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut found = Vec::new();
    patterns(&document, String::new(), &mut found);
    assert!(found.len() > 50, "only {} patterns", found.len());
    let broken: Vec<String> = found
        .iter()
        .filter_map(|(at, pattern)| {
            regress::Regex::new(pattern)
                .err()
                .map(|e| format!("{at}: {pattern}: {e}"))
        })
        .collect();
    assert!(broken.is_empty(), "{broken:#?}");
}
