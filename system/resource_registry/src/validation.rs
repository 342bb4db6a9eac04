//! Input rules shared by every registry mutation: keys, identifiers, caller-supplied IDs, free
//! text and metadata. Each failure is a `VALIDATION_FAILED` naming the field.

use std::collections::BTreeMap;

use plystra_contracts::ApiError;
use plystra_contracts::ids;

/// The pattern resource type and action keys follow.
pub const KEY_PATTERN: &str = "^[a-z][a-z0-9_]*$";
/// The longest key accepted.
pub const MAX_KEY_LEN: usize = 64;
/// The longest display name, description or source accepted.
pub const MAX_TEXT_LEN: usize = 1024;
/// The longest mapping field or table name accepted.
pub const MAX_FIELD_NAME_LEN: usize = 63;

/// Checks a resource type or action key: `^[a-z][a-z0-9_]*$`, at most 64 characters.
pub fn key(field: &str, value: &str) -> Result<(), ApiError> {
    let mut bytes = value.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_lowercase());
    let rest_ok = bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !first_ok || !rest_ok {
        return Err(ApiError::invalid_field(
            field,
            format!("must match {KEY_PATTERN}, got {value:?}"),
        ));
    }
    if value.len() > MAX_KEY_LEN {
        return Err(ApiError::invalid_field(
            field,
            format!("must be at most {MAX_KEY_LEN} characters"),
        ));
    }
    Ok(())
}

/// Checks a mapping's field or table name: a lower-case SQL identifier of at most 63 characters.
pub fn field_name(field: &str, value: &str) -> Result<(), ApiError> {
    let mut bytes = value.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
    let rest_ok = bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !first_ok || !rest_ok || value.len() > MAX_FIELD_NAME_LEN {
        return Err(ApiError::invalid_field(
            field,
            format!(
                "must be a lower-case identifier (^[a-z_][a-z0-9_]*$) of at most {MAX_FIELD_NAME_LEN} characters"
            ),
        ));
    }
    Ok(())
}

/// Checks a caller-supplied ID: `prefix` followed by 1–120 of `[a-z0-9_]`.
pub fn supplied_id(field: &str, prefix: &str, value: &str) -> Result<(), ApiError> {
    if ids::is_valid(prefix, value) {
        Ok(())
    } else {
        Err(ApiError::invalid_field(
            field,
            format!("must be {prefix:?} followed by 1-120 characters of [a-z0-9_]"),
        ))
    }
}

/// Checks free text: not blank, at most 1024 characters. Returns it trimmed.
pub fn text(field: &str, value: &str) -> Result<String, ApiError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(ApiError::invalid_field(field, "must not be blank"));
    }
    if trimmed.chars().count() > MAX_TEXT_LEN {
        return Err(ApiError::invalid_field(
            field,
            format!("must be at most {MAX_TEXT_LEN} characters"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// Checks what a type or action registration names it by: its `key`, the ID the caller may
/// supply for it (`prefix` followed by `[a-z0-9_]`) and its display name. Returns the display
/// name trimmed.
pub fn registration(
    prefix: &str,
    key: &str,
    id: Option<&str>,
    display_name: Option<&str>,
) -> Result<Option<String>, ApiError> {
    self::key("key", key)?;
    if let Some(id) = id {
        supplied_id("id", prefix, id)?;
    }
    display_name.map(|d| text("display_name", d)).transpose()
}

/// Checks an optional reference ID (a group, a member, a space): not blank, at most 128
/// characters, no control characters.
pub fn reference(field: &str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() || value.len() > 128 || value.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(
            field,
            "must be 1-128 characters without control characters",
        ));
    }
    Ok(())
}

/// Metadata as stored: a JSON object, or nothing.
pub fn metadata(value: Option<BTreeMap<String, serde_json::Value>>) -> Option<serde_json::Value> {
    value.map(|m| serde_json::Value::Object(m.into_iter().collect()))
}

/// Stored metadata as an API map. A stored non-object (never written by this crate) reads as none.
pub fn metadata_map(
    value: Option<serde_json::Value>,
) -> Option<BTreeMap<String, serde_json::Value>> {
    match value {
        Some(serde_json::Value::Object(m)) => Some(m.into_iter().collect()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plystra_contracts::ErrorCode;

    fn field_of(err: &ApiError) -> String {
        assert_eq!(err.code, ErrorCode::ValidationFailed);
        err.details["fields"]
            .as_object()
            .unwrap()
            .keys()
            .next()
            .unwrap()
            .clone()
    }

    #[test]
    fn a_registration_checks_its_key_id_and_display_name_in_that_order() {
        assert_eq!(
            registration("rtype_", "invoice", Some("rtype_inv"), Some("  Invoice ")).unwrap(),
            Some("Invoice".to_owned())
        );
        assert_eq!(registration("rtype_", "invoice", None, None).unwrap(), None);
        let named =
            |key, id, display| field_of(&registration("rtype_", key, id, display).unwrap_err());
        assert_eq!(named("Bad", Some("nope"), Some(" ")), "key");
        assert_eq!(named("invoice", Some("ract_x"), Some(" ")), "id");
        assert_eq!(named("invoice", Some("rtype_x"), Some(" ")), "display_name");
    }

    #[test]
    fn keys_follow_the_pattern() {
        for good in ["invoice", "a", "purchase_order_2", "x_"] {
            assert!(key("key", good).is_ok(), "{good}");
        }
        for bad in [
            "", "Invoice", "1invoice", "_invoice", "in-voice", "in voice", "é",
        ] {
            let err = key("key", bad).unwrap_err();
            assert_eq!(field_of(&err), "key", "{bad}");
        }
        assert!(key("key", &"a".repeat(64)).is_ok());
        assert!(key("key", &"a".repeat(65)).is_err());
    }

    #[test]
    fn field_names_are_identifiers() {
        assert!(field_name("id_field", "id").is_ok());
        assert!(field_name("id_field", "_owner2").is_ok());
        for bad in ["", "Id", "2id", "id-x", "id;drop", &"a".repeat(64)] {
            assert!(field_name("id_field", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn supplied_ids_keep_their_prefix() {
        assert!(supplied_id("id", "res_", "res_invoice").is_ok());
        assert!(supplied_id("id", "", "invoice_001").is_ok());
        let err = supplied_id("id", "", "Invoice-001").unwrap_err();
        assert_eq!(field_of(&err), "id");
        assert!(supplied_id("id", "rtype_", "res_x").is_err());
    }

    #[test]
    fn text_is_trimmed_and_bounded() {
        assert_eq!(text("display_name", "  Invoice ").unwrap(), "Invoice");
        assert!(text("display_name", "   ").is_err());
        assert!(text("display_name", &"x".repeat(1025)).is_err());
    }

    #[test]
    fn references_are_bounded() {
        assert!(reference("group_id", "grp_finance").is_ok());
        assert!(reference("group_id", "").is_err());
        assert!(reference("group_id", "a\nb").is_err());
    }

    #[test]
    fn metadata_round_trips_as_an_object() {
        let map: BTreeMap<String, serde_json::Value> =
            [("k".to_owned(), serde_json::json!(1))].into();
        let stored = metadata(Some(map.clone()));
        assert_eq!(stored, Some(serde_json::json!({"k": 1})));
        assert_eq!(metadata_map(stored), Some(map));
        assert_eq!(metadata_map(Some(serde_json::json!([1]))), None);
    }
}
