//! Validated caller input shared by every capability: entity IDs, keywords, text fields and
//! references to other entities.

use crate::error::ApiError;

/// Validates a caller-supplied ID, or generates one.
pub fn entity_id(prefix: &str, supplied: Option<&str>) -> Result<String, ApiError> {
    match supplied {
        None => Ok(crate::ids::generate(prefix)),
        Some(id) if crate::ids::is_valid(prefix, id) => Ok(id.to_owned()),
        Some(_) => Err(ApiError::invalid_field(
            "id",
            format!("must be {prefix} followed by 1-120 characters of a-z, 0-9 and _"),
        )),
    }
}

/// A keyword: `^[a-z][a-z0-9_]*$`, at most 64 characters.
pub fn keyword(field: &str, value: &str) -> Result<String, ApiError> {
    let ok = value.len() <= 64
        && value.starts_with(|c: char| c.is_ascii_lowercase())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(value.to_owned())
    } else {
        Err(ApiError::invalid_field(
            field,
            "must match ^[a-z][a-z0-9_]*$ and be at most 64 characters",
        ))
    }
}

/// A trimmed text field of 1..=max characters without control characters.
pub fn text(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ApiError::invalid_field(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(ApiError::invalid_field(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(
            field,
            "must not contain control characters",
        ));
    }
    Ok(value.to_owned())
}

/// A required reference to another entity: not empty, at most 128 characters, no control
/// characters.
pub fn reference(field: &str, value: &str) -> Result<String, ApiError> {
    if value.is_empty() || value.len() > 128 || value.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(
            field,
            "must be an ID of 1-128 characters",
        ));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_generated_or_checked() {
        assert!(entity_id("user_", None).unwrap().starts_with("user_"));
        assert_eq!(
            entity_id("user_", Some("user_alice")).unwrap(),
            "user_alice"
        );
        let err = entity_id("user_", Some("space_x")).unwrap_err();
        assert!(err.details["fields"]["id"].is_string());
    }

    #[test]
    fn keywords_text_and_references_are_validated() {
        assert!(keyword("key", "finance_approver").is_ok());
        for bad in ["", "Finance", "2x", "a-b", "a.b", &"a".repeat(65)] {
            assert!(keyword("key", bad).is_err(), "{bad}");
        }
        assert_eq!(text("name", "  Approver ", 20).unwrap(), "Approver");
        assert!(text("name", "  ", 20).is_err());
        assert!(text("name", "abcdefghijk", 10).is_err());
        assert!(text("name", "a\u{7}", 20).is_err());
        assert!(reference("role_id", "").is_err());
        assert!(reference("role_id", &"r".repeat(129)).is_err());
        assert!(reference("role_id", "role_x").is_ok());
    }
}
