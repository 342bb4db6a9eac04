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

/// Whether a field holds free text, where tab, line feed and carriage return are allowed (a
/// permission's `condition` is source code, which may span lines).
pub fn is_free_text(field: &str) -> bool {
    field == "description" || field == "condition" || field.ends_with("reason")
}

/// The pattern a string without a stricter one of its own declares: no control character, as
/// [`refused_character`] has it. Written with `\xHH` escapes, which ECMA-262, Python's `re` and
/// the Rust `regex` crate read alike.
pub const NO_CONTROL_CHARACTERS: &str = r"^[^\x00-\x1F\x7F-\x9F]*$";

/// [`NO_CONTROL_CHARACTERS`] for free text ([`is_free_text`]): tab, line feed and carriage
/// return pass.
pub const FREE_TEXT: &str = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$";

/// Text that is not blank, for the fields a handler trims and refuses when nothing is left (a
/// display name, a resource's `external_id`, a `source`): at least one character that is neither
/// white space nor a control character, and no control character ([`NO_CONTROL_CHARACTERS`]).
/// `\s` is Unicode white space in ECMA-262, Python's `re` and the Rust `regex` crate alike, as
/// [`str::trim`] has it. A field declares it by its type,
/// [`NotBlank`](crate::not_blank::NotBlank).
pub const NOT_BLANK: &str =
    r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$";

/// [`NOT_BLANK`] for free text ([`is_free_text`], a `description`): tab, line feed and carriage
/// return pass, as in [`FREE_TEXT`].
pub const NOT_BLANK_FREE_TEXT: &str = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$";

/// The pattern of a string field without one of its own, by the field's name.
pub fn pattern_of(field: &str) -> &'static str {
    if is_free_text(field) {
        FREE_TEXT
    } else {
        NO_CONTROL_CHARACTERS
    }
}

/// The shortest string a body field takes, by the field's name, where every handler refuses an
/// empty one for every field of that name (`must not be empty`, `is required`, `1-128
/// characters`, `names no user`): names for people, emails, keys, the actions and resources a
/// permission or a check names, and the member, user and resource type a write references.
///
/// Names whose empty value means something somewhere are left out: a check's `space_id`,
/// `group_id` and statuses read `""` as absent, an inline grant's `role_id` and
/// `permission_id` take it, and a check's `resource.id` and `resource.type` may be shadowed by
/// the top-level fields. Fields with a pattern of their own (keywords, caller-chosen IDs) say it
/// through that pattern.
pub fn min_length_of(field: &str) -> Option<usize> {
    match field {
        "name" | "display_name" | "email" | "key" | "action" | "resource" | "member_id"
        | "user_id" | "resource_type" => Some(1),
        _ => None,
    }
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
    fn the_declared_patterns_refuse_exactly_the_refused_characters() {
        let strict = regex::Regex::new(NO_CONTROL_CHARACTERS).unwrap();
        let free = regex::Regex::new(FREE_TEXT).unwrap();
        for c in (0..=0x3000)
            .chain([0xfeff, 0x10ffff])
            .filter_map(char::from_u32)
        {
            let value = format!("a{c}b");
            assert_eq!(
                strict.is_match(&value),
                refused_character(&value, false).is_none(),
                "U+{:04X}",
                u32::from(c)
            );
            assert_eq!(
                free.is_match(&value),
                refused_character(&value, true).is_none(),
                "U+{:04X} in free text",
                u32::from(c)
            );
        }
        assert_eq!(pattern_of("revoked_reason"), FREE_TEXT);
        assert_eq!(pattern_of("name"), NO_CONTROL_CHARACTERS);
        assert_eq!(min_length_of("display_name"), Some(1));
        assert_eq!(min_length_of("group_id"), None);
    }

    #[test]
    fn the_not_blank_patterns_take_what_a_trimming_handler_keeps() {
        let strict = regex::Regex::new(NOT_BLANK).unwrap();
        let free = regex::Regex::new(NOT_BLANK_FREE_TEXT).unwrap();
        for value in [
            "",
            " ",
            "\u{a0}",
            "\u{3000}\u{2028}",
            "a",
            " a ",
            "naïve",
            "\u{200b}",
            "a\u{85}",
            "a\nb",
            "\t\n",
            "\ta\n",
            "a\u{1}",
        ] {
            let kept = !value.trim().is_empty();
            assert_eq!(
                strict.is_match(value),
                kept && refused_character(value, false).is_none(),
                "{value:?}"
            );
            assert_eq!(
                free.is_match(value),
                kept && refused_character(value, true).is_none(),
                "{value:?} as free text"
            );
        }
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
