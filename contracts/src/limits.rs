//! The input boundary's limits, in one place: the longest string each kind of field takes, the
//! bounds of free-form metadata, and which characters no input may hold.
//!
//! Every JSON write body passes through [`crate::body::JsonBody`], which declares these caps in
//! the document (`maxLength`) and enforces them with a 400 `VALIDATION_FAILED` naming the field;
//! path segments and query values are held to [`MAX_PATH_SEGMENT_LENGTH`] and
//! [`MAX_QUERY_VALUE_LENGTH`] by the kernel's request guard. A field may declare a tighter cap
//! itself (`#[oai(validator(max_length = N))]`), and capabilities keep their own, stricter rules
//! (patterns, keyword shapes); these are the ceilings.

/// IDs: `id` and every `*_id` field (`space_…`, `user_…`; generated IDs are far shorter).
pub const MAX_ID_LENGTH: usize = 128;
/// Keywords and keys: `key`, `*_key`, `slug`, `type`, `*_type`, `*_status`, `*_field`,
/// `table_name`, `phone`.
pub const MAX_KEY_LENGTH: usize = 64;
/// Actions and the resources a permission names: `action`, `resource`.
pub const MAX_ACTION_LENGTH: usize = 128;
/// Names for people: `name`, `username`, `display_name`, `*_name`.
pub const MAX_NAME_LENGTH: usize = 200;
/// Email addresses (RFC 5321's path limit).
pub const MAX_EMAIL_LENGTH: usize = 254;
/// Secrets: `password`, `*_token`, `api_key`.
pub const MAX_SECRET_LENGTH: usize = 1024;
/// Free text and anything not named above: `description`, `*reason`, `source`, paths.
pub const MAX_TEXT_LENGTH: usize = 2000;

/// Free-form metadata (and any other free-form JSON in a body): its size serialized, in bytes.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;
/// Free-form metadata: how deeply objects and arrays nest inside it.
pub const MAX_METADATA_DEPTH: usize = 8;
/// Free-form metadata: the longest key, at any depth.
pub const MAX_METADATA_KEY_LENGTH: usize = 128;

/// A path segment, percent-decoded.
pub const MAX_PATH_SEGMENT_LENGTH: usize = 256;
/// A query parameter's value, percent-decoded (filters, cursors).
pub const MAX_QUERY_VALUE_LENGTH: usize = 1024;

/// The cap of a string field without a declared `maxLength`, by the field's name.
pub fn max_length_of(field: &str) -> usize {
    let ends = |suffix: &str| field.ends_with(suffix);
    match field {
        "id" => MAX_ID_LENGTH,
        "email" => MAX_EMAIL_LENGTH,
        "password" | "api_key" => MAX_SECRET_LENGTH,
        "action" | "resource" => MAX_ACTION_LENGTH,
        "name" | "username" | "display_name" => MAX_NAME_LENGTH,
        "key" | "slug" | "type" | "phone" | "table_name" => MAX_KEY_LENGTH,
        "description" | "source" => MAX_TEXT_LENGTH,
        _ if ends("_id") || ends("_ids") => MAX_ID_LENGTH,
        _ if ends("_token") => MAX_SECRET_LENGTH,
        _ if ends("reason") || ends("_path") || field == "path" => MAX_TEXT_LENGTH,
        _ if ends("_key")
            || ends("_keys")
            || ends("_type")
            || ends("_status")
            || ends("_field") =>
        {
            MAX_KEY_LENGTH
        }
        _ if ends("_name") => MAX_NAME_LENGTH,
        _ => MAX_TEXT_LENGTH,
    }
}

/// Whether a field holds free text, where tab, line feed and carriage return are allowed.
pub fn is_free_text(field: &str) -> bool {
    field == "description" || field.ends_with("reason")
}

/// The one rule on characters: no input holds a control character — U+0000–U+001F, U+007F and
/// U+0080–U+009F — except tab, line feed and carriage return in free text (descriptions,
/// reasons, metadata values). NUL in particular never reaches a database (PostgreSQL refuses it
/// in text and JSON; SQLite would store it).
pub fn refused_character(value: &str, free_text: bool) -> Option<char> {
    value
        .chars()
        .find(|&c| c.is_control() && !(free_text && matches!(c, '\t' | '\n' | '\r')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_refused_and_line_breaks_only_in_free_text() {
        for c in [
            '\0', '\u{1}', '\u{1f}', '\u{7f}', '\u{80}', '\u{85}', '\u{9f}',
        ] {
            assert_eq!(refused_character(&format!("a{c}b"), true), Some(c));
        }
        assert_eq!(refused_character("a\tb\r\nc", true), None);
        assert_eq!(refused_character("a\nb", false), Some('\n'));
        assert_eq!(refused_character("naïve — ok \u{a0}", false), None);
    }

    #[test]
    fn caps_follow_the_field_name() {
        assert_eq!(max_length_of("space_id"), MAX_ID_LENGTH);
        assert_eq!(max_length_of("email"), MAX_EMAIL_LENGTH);
        assert_eq!(max_length_of("refresh_token"), MAX_SECRET_LENGTH);
        assert_eq!(max_length_of("resource_type"), MAX_KEY_LENGTH);
        assert_eq!(max_length_of("revoked_reason"), MAX_TEXT_LENGTH);
        assert_eq!(max_length_of("member_display_name"), MAX_NAME_LENGTH);
        assert_eq!(max_length_of("anything_else"), MAX_TEXT_LENGTH);
    }
}
