//! The tamper-evident hash chain. A record is hashed in two steps, on two tasks:
//!
//! 1. **Content** (the producer, in `store::prepare`, on the caller's task):
//!    `content_hash = hex(SHA-256(C))`, where `C` is the canonical JSON (below) of the object
//!    whose members are every stored field of the record except `seq`, `prev_hash`, `entry_hash`
//!    and `content_hash` itself: `id`, `event_type`, `request_id`, `space_id`, `actor_user_id`,
//!    `actor_member_id`, `actor_user_member_id`, `action`, `resource_type`, `resource_id`,
//!    `decision`, `deny_code`, `ip_address`, `user_agent`, `trace`, `redaction_version`,
//!    `created_at` (as `store::format_timestamp` writes it: UTC, microseconds, `Z`) and
//!    `redactions`; absent optional fields are `null`.
//! 2. **Link** (the single writer, under the chain lock):
//!    `entry_hash = hex(SHA-256(prev_hash ‖ ":" ‖ seq ‖ ":" ‖ content_hash))`, with `seq` in
//!    decimal ASCII without padding, `prev_hash` the previous record's `entry_hash` (or
//!    [`GENESIS`]) and `hex` lower-case.
//!
//! Canonical JSON: object members sorted by key (byte order) at every depth, no insignificant
//! whitespace, strings and keys escaped as serde_json writes them. For the content hash, numbers
//! are written as they read back from either backend: an integer (`i64`/`u64`) as its digits; a
//! float as serde_json writes it (the shortest decimal that reads back to the same `f64`, e.g.
//! `0.1`, `1e+300`), except that when that decimal denotes an integer in [-2⁶³, 2⁶⁴) it is
//! written as that integer's digits (`1.0` → `1`, `-0.0` → `0`, `1e+16` →
//! `10000000000000000`, `9.223372036854776e+18` → `9223372036854776000`). The reason:
//! PostgreSQL's JSONB keeps a number as the exact decimal it was given (`numeric`, without a
//! negative zero) and writes it back without an exponent, which serde_json then reads as an
//! integer when it is one in that range. Traces were JSONB on PostgreSQL until migration
//! `0051_sys_audit_trace_as_json`, and the records converted then keep the text JSONB gave
//! back; traces written since, like everything on SQLite, read back as the text that was
//! written. Floats read back as the same `f64` because this crate enables serde_json's
//! `float_roundtrip`.
//!
//! Records written before migration `0040_sys_audit_content_hash` have no `content_hash` and keep
//! the **legacy** rule: `entry_hash = hex(SHA-256(prev_hash ‖ L))`, where `L` is the canonical
//! JSON (numbers as serde_json writes them) of every stored field but `entry_hash`, `seq` and
//! `prev_hash` included. The two rules cannot be confused: after `prev_hash`, a link's input
//! continues with `:`, a legacy input with `{`.

use std::io::Write;

use serde_json::{Number, Value};
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first record.
pub const GENESIS: &str = "genesis";

/// JSON with object keys sorted at every depth and no insignificant whitespace, so the same record
/// always hashes the same, whatever map order serde_json was built with. The legacy rule's form.
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

/// The legacy rule: the hash of a record (every field but `entry_hash`) that follows `prev_hash`.
/// Only records without a `content_hash` are verified with it.
pub fn legacy_entry_hash(prev_hash: &str, record: &Value) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(canonical_json(record).as_bytes());
    hex::encode(hasher.finalize())
}

/// The link: the `entry_hash` of the record at `seq`, with content hash `content_hash`, that
/// follows `prev_hash`.
pub fn link_hash(prev_hash: &str, seq: i64, content_hash: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(b":");
    hasher.update(seq.to_string().as_bytes());
    hasher.update(b":");
    hasher.update(content_hash.as_bytes());
    hex::encode(hasher.finalize())
}

/// One member of a record's content, as the content hash reads it.
#[derive(Debug, Clone, Copy)]
pub enum ContentField<'a> {
    /// A text column; `None` is `null`.
    Text(Option<&'a str>),
    /// An integer column.
    Integer(i64),
    /// A JSON column.
    Json(&'a Value),
    /// A list of strings (`redactions`).
    TextList(&'a [String]),
}

/// `content_hash`: hex SHA-256 of the canonical JSON of the object made of `fields` (their order
/// does not matter; names must be distinct).
pub fn content_hash(fields: &mut [(&str, ContentField<'_>)]) -> String {
    // Written out first, then hashed in one call: feeding SHA-256 the many small pieces one by
    // one cost several times more.
    hex::encode(Sha256::digest(canonical_content_json(fields)))
}

/// The canonical JSON the content hash covers, as bytes.
pub fn canonical_content_json(fields: &mut [(&str, ContentField<'_>)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    write_content_object(fields, &mut out);
    out
}

// The writers below write into a `Vec<u8>`, which cannot fail, so their `io::Result`s are
// dropped.

/// Writes `items` between `open` and `close`, separated by commas, each with `write`.
fn write_separated<T>(
    items: impl IntoIterator<Item = T>,
    (open, close): (&[u8], &[u8]),
    out: &mut Vec<u8>,
    mut write: impl FnMut(T, &mut Vec<u8>),
) {
    out.extend_from_slice(open);
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write(item, out);
    }
    out.extend_from_slice(close);
}

fn write_content_object(fields: &mut [(&str, ContentField<'_>)], out: &mut Vec<u8>) {
    fields.sort_unstable_by(|a, b| a.0.cmp(b.0));
    write_separated(fields.iter(), (b"{", b"}"), out, |(name, field), out| {
        write_str(name, out);
        out.push(b':');
        match field {
            ContentField::Text(None) => out.extend_from_slice(b"null"),
            ContentField::Text(Some(text)) => write_str(text, out),
            ContentField::Integer(n) => {
                let _ = write!(out, "{n}");
            }
            ContentField::Json(value) => write_content_value(value, out),
            ContentField::TextList(items) => {
                write_separated(items.iter(), (b"[", b"]"), out, |item, out| {
                    write_str(item, out);
                });
            }
        }
    });
}

fn write_str(text: &str, out: &mut Vec<u8>) {
    let _ = serde_json::to_writer(out, text);
}

fn write_content_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            // Already in order unless serde_json keeps insertion order; then this sorts.
            if !members.is_sorted_by(|a, b| a.0 <= b.0) {
                members.sort_unstable_by(|a, b| a.0.cmp(b.0));
            }
            write_separated(members, (b"{", b"}"), out, |(key, child), out| {
                write_str(key, out);
                out.push(b':');
                write_content_value(child, out);
            });
        }
        Value::Array(items) => write_separated(items, (b"[", b"]"), out, write_content_value),
        Value::String(text) => write_str(text, out),
        Value::Number(number) => write_content_number(number, out),
        Value::Bool(true) => {
            let _ = out.write_all(b"true");
        }
        Value::Bool(false) => {
            let _ = out.write_all(b"false");
        }
        Value::Null => {
            let _ = out.write_all(b"null");
        }
    }
}

fn write_content_number(number: &Number, out: &mut Vec<u8>) {
    if !number.is_f64() {
        let _ = serde_json::to_writer(out, number);
        return;
    }
    let text = number.to_string();
    let integer = integer_denoted(&text);
    out.extend_from_slice(integer.as_deref().unwrap_or(&text).as_bytes());
}

/// The integer the decimal `text` (serde_json's form of a float: `-1.5e+16`, `0.1`, `1e-7`)
/// denotes, as serde_json writes integers, if it is one that serde_json reads as an `i64` or a
/// `u64`, that is within [-2⁶³, 2⁶⁴): `1.0` → `1`, `-0.0` → `0`, `1e+16` →
/// `10000000000000000`, `9.223372036854776e+18` → `9223372036854776000`. `None` otherwise.
///
/// Why the decimal and not the float's exact value: PostgreSQL keeps the decimal serde_json
/// wrote (`numeric`), so that is the number that reads back.
fn integer_denoted(text: &str) -> Option<String> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, exponent.parse::<i32>().ok()?),
        None => (unsigned, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if !whole
        .bytes()
        .chain(fraction.bytes())
        .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    // value = digits × 10^shift
    let digits = format!("{whole}{fraction}");
    let shift = exponent.checked_sub(i32::try_from(fraction.len()).ok()?)?;
    let integer = if shift >= 0 {
        let significant = digits.trim_start_matches('0');
        if significant.is_empty() {
            String::new()
        } else if significant.len() + usize::try_from(shift).ok()? > 20 {
            return None;
        } else {
            format!("{significant}{}", "0".repeat(usize::try_from(shift).ok()?))
        }
    } else {
        let cut = digits.len().checked_sub(usize::try_from(-shift).ok()?);
        match cut {
            // Every digit is after the point: an integer only if they are all zeros.
            None => {
                if digits.bytes().all(|b| b == b'0') {
                    String::new()
                } else {
                    return None;
                }
            }
            Some(cut) => {
                if !digits[cut..].bytes().all(|b| b == b'0') {
                    return None;
                }
                digits[..cut].trim_start_matches('0').to_owned()
            }
        }
    };
    if integer.is_empty() {
        return Some("0".to_owned());
    }
    // Within [-2^63, 2^64): compare magnitudes as digit strings of equal length.
    let limit = if negative {
        "9223372036854775808"
    } else {
        "18446744073709551615"
    };
    if integer.len() > limit.len() || (integer.len() == limit.len() && integer.as_str() > limit) {
        return None;
    }
    Some(if negative {
        format!("-{integer}")
    } else {
        integer
    })
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
    fn the_legacy_hash_depends_on_the_previous_hash_and_every_field() {
        let record = json!({"seq": 1, "action": "approve"});
        let h1 = legacy_entry_hash(GENESIS, &record);
        assert_eq!(
            h1,
            legacy_entry_hash(GENESIS, &json!({"action": "approve", "seq": 1}))
        );
        assert_ne!(h1, legacy_entry_hash("other", &record));
        assert_ne!(
            h1,
            legacy_entry_hash(GENESIS, &json!({"seq": 1, "action": "reject"}))
        );
        assert_eq!(h1.len(), 64);
    }

    #[test]
    fn the_link_is_the_documented_digest_and_depends_on_each_input() {
        let content = "ab".repeat(32);
        let link = link_hash(GENESIS, 7, &content);
        let expected = hex::encode(Sha256::digest(format!("genesis:7:{content}").as_bytes()));
        assert_eq!(link, expected);
        assert_ne!(link, link_hash("other", 7, &content));
        assert_ne!(link, link_hash(GENESIS, 8, &content));
        assert_ne!(link, link_hash(GENESIS, 7, &"cd".repeat(32)));
    }

    #[test]
    fn the_content_hash_is_the_digest_of_the_canonical_object_of_its_fields() {
        let trace = json!({"z": [1, 2.5, {"b": null, "a": "é\u{1}\""}], "a": true});
        let redactions = vec!["/a".to_owned(), "/z/2".to_owned()];
        let mut fields = [
            ("trace", ContentField::Json(&trace)),
            ("id", ContentField::Text(Some("audit_1"))),
            ("deny_code", ContentField::Text(None)),
            ("redaction_version", ContentField::Integer(2)),
            ("redactions", ContentField::TextList(&redactions)),
        ];
        let as_value = json!({
            "trace": trace, "id": "audit_1", "deny_code": null, "redaction_version": 2,
            "redactions": redactions,
        });
        // Without floats to normalise, the canonical form is the legacy one.
        let text = canonical_content_json(&mut fields.clone());
        assert_eq!(String::from_utf8(text).unwrap(), canonical_json(&as_value));
        let hash = content_hash(&mut fields);
        assert_eq!(
            hash,
            hex::encode(Sha256::digest(canonical_json(&as_value).as_bytes()))
        );
        let mut changed = fields;
        changed[2] = ("deny_code", ContentField::Text(Some("")));
        assert_ne!(content_hash(&mut changed), hash);
    }

    #[test]
    fn integral_numbers_hash_alike_whatever_their_json_type() {
        // PostgreSQL's JSONB gives back `1e16` as 10000000000000000 and `-0.0` as 0.0.
        let hash = |v: Value| content_hash(&mut [("trace", ContentField::Json(&v))]);
        assert_eq!(hash(json!(1e16)), hash(json!(10_000_000_000_000_000_u64)));
        assert_eq!(hash(json!(-0.0)), hash(json!(0)));
        assert_eq!(hash(json!(0.0)), hash(json!(0)));
        assert_eq!(hash(json!(-2.0)), hash(json!(-2)));
        // 2^63 is written `9.223372036854776e+18`, which PostgreSQL keeps as that decimal.
        assert_eq!(
            hash(json!(2f64.powi(63))),
            hash(json!(9_223_372_036_854_776_000_u64))
        );
        assert_ne!(hash(json!(0.1)), hash(json!(0)));
        assert_ne!(hash(json!(1e300)), hash(json!(1e299)));
        let text = |v: Value| {
            String::from_utf8(canonical_content_json(&mut [("t", ContentField::Json(&v))])).unwrap()
        };
        assert_eq!(
            text(json!([1.0, -0.0, 1e19, 1e20, 0.5, -(2f64.powi(63)), 1e-7])),
            r#"{"t":[1,0,10000000000000000000,1e+20,0.5,-9.223372036854776e+18,1e-7]}"#
        );
    }

    #[test]
    fn the_integer_a_decimal_denotes_within_the_integer_range() {
        for (text, integer) in [
            ("0.0", Some("0")),
            ("-0.0", Some("0")),
            ("1.0", Some("1")),
            ("-2.0", Some("-2")),
            ("1e+16", Some("10000000000000000")),
            ("1.5e+1", Some("15")),
            ("1.25e+1", None),
            ("9.223372036854776e+18", Some("9223372036854776000")),
            ("-9.223372036854775e+18", Some("-9223372036854775000")),
            ("-9.223372036854776e+18", None),
            ("1.8446744073709551e+19", Some("18446744073709551000")),
            ("1.8446744073709552e+19", None),
            ("1e+20", None),
            ("1e+300", None),
            ("0.1", None),
            ("1e-7", None),
            ("5e-324", None),
            ("100.000", Some("100")),
            ("0.000e+3", Some("0")),
        ] {
            assert_eq!(integer_denoted(text).as_deref(), integer, "{text}");
        }
    }
}
