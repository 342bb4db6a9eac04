//! Validated caller input shared by every capability: entity IDs and keywords.

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
