//! The tamper-evident hash chain: `entry_hash = SHA-256(prev_hash ‖ canonical JSON of the record)`.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first record.
pub const GENESIS: &str = "genesis";

/// JSON with object keys sorted at every depth and no insignificant whitespace, so the same record
/// always hashes the same, whatever map order serde_json was built with.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The hash of a record that follows `prev_hash`.
pub fn entry_hash(prev_hash: &str, record: &Value) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(canonical_json(record).as_bytes());
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let a = json!({"b": 1, "a": {"d": [ {"z": 1, "y": 2} ], "c": null}});
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"c":null,"d":[{"y":2,"z":1}]},"b":1}"#
        );
    }

    #[test]
    fn the_hash_depends_on_the_previous_hash_and_every_field() {
        let record = json!({"seq": 1, "action": "approve"});
        let h1 = entry_hash(GENESIS, &record);
        assert_eq!(
            h1,
            entry_hash(GENESIS, &json!({"action": "approve", "seq": 1}))
        );
        assert_ne!(h1, entry_hash("other", &record));
        assert_ne!(
            h1,
            entry_hash(GENESIS, &json!({"seq": 1, "action": "reject"}))
        );
        assert_eq!(h1.len(), 64);
    }
}
