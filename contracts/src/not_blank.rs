//! [`NotBlank`]: the request string that must not be blank, declared and checked in one place.
//!
//! A display name, a username, a resource's `external_id`, the IDs an `authz/check` names: a
//! handler trims them and refuses what is left empty. The schema says so with the pattern
//! [`limits::NOT_BLANK`], and [`body::check`](crate::body::check) holds a body to it before the
//! handler runs; a field of this type carries that pattern in the document without writing it out,
//! and the value proves it was checked. A field that also has a length writes only that:
//! `#[oai(validator(max_length = 200))] pub name: NotBlank`.

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use serde_json::Value;

use crate::{ApiError, limits};

/// A string holding at least one character that is neither white space nor a control character,
/// and no control character ([`limits::NOT_BLANK`]). It is kept as given, untrimmed: the handler
/// decides what trimming means for its field.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NotBlank(String);

/// Why a string is not a [`NotBlank`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlankText {
    /// Empty, or white space only.
    #[error("must hold a character that is not white space")]
    Blank,
    /// It holds a control character ([`limits::refused_character`]).
    #[error("must not hold the control character U+{0:04X}")]
    ControlCharacter(u32),
}

impl NotBlank {
    /// `value`, when it is not blank and holds no control character.
    pub fn new(value: impl Into<String>) -> Result<Self, BlankText> {
        let value = value.into();
        if let Some(c) = limits::refused_character(&value, false) {
            return Err(BlankText::ControlCharacter(u32::from(c)));
        }
        if value.trim().is_empty() {
            return Err(BlankText::Blank);
        }
        Ok(Self(value))
    }

    /// `value` as the field `field` of a request: refused with a 400 `VALIDATION_FAILED` naming
    /// the field, as the body check would.
    pub fn field(field: &str, value: impl Into<String>) -> Result<Self, ApiError> {
        Self::new(value).map_err(|blank| ApiError::invalid_field(field, blank.to_string()))
    }

    /// A literal known to be not blank, for examples and fixtures.
    ///
    /// # Panics
    ///
    /// When `value` is blank or holds a control character: a mistake in the program's own
    /// text, as with `http::HeaderValue::from_static`.
    pub fn from_static(value: &'static str) -> Self {
        match Self::new(value) {
            Ok(text) => text,
            Err(blank) => panic!("{value:?} {blank}"),
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl Deref for NotBlank {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for NotBlank {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<NotBlank> for String {
    fn from(value: NotBlank) -> Self {
        value.0
    }
}

impl fmt::Display for NotBlank {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Type for NotBlank {
    const IS_REQUIRED: bool = true;

    type RawValueType = Self;

    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        "string".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            pattern: Some(limits::NOT_BLANK.to_owned()),
            ..MetaSchema::new("string")
        }))
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }

    fn is_empty(&self) -> bool {
        false
    }
}

impl ParseFromJSON for NotBlank {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value.unwrap_or_default() {
            Value::String(text) => NotBlank::new(text).map_err(ParseError::custom),
            other => Err(ParseError::expected_type(other)),
        }
    }
}

impl ToJSON for NotBlank {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_what_the_declared_pattern_takes() {
        let pattern = regex::Regex::new(limits::NOT_BLANK).unwrap();
        for text in [
            "",
            " ",
            "\u{a0}\u{3000}",
            "a",
            " a ",
            "naïve",
            "a\tb",
            "\u{7f}x",
            "x\u{85}",
            "\u{200b}",
        ] {
            assert_eq!(
                NotBlank::new(text).is_ok(),
                pattern.is_match(text),
                "{text:?}"
            );
        }
    }

    #[test]
    fn says_why_and_refuses_other_json_types() {
        assert_eq!(NotBlank::new("  "), Err(BlankText::Blank));
        assert_eq!(NotBlank::new("a\u{0}"), Err(BlankText::ControlCharacter(0)));
        assert!(NotBlank::parse_from_json(Some(Value::from(7))).is_err());
        assert!(NotBlank::parse_from_json(None).is_err());
        let refused = NotBlank::field("display_name", "\t").unwrap_err();
        assert_eq!(refused.code, crate::ErrorCode::ValidationFailed);
        assert_eq!(
            refused.message,
            "display_name: must not hold the control character U+0009"
        );
        assert_eq!(NotBlank::from_static("x").as_str(), "x");
        assert!(std::panic::catch_unwind(|| NotBlank::from_static(" ")).is_err());
        let parsed = NotBlank::parse_from_json(Some(Value::from(" x "))).unwrap();
        assert_eq!(parsed.as_str(), " x ");
        assert_eq!(parsed.to_json(), Some(Value::from(" x ")));
    }

    #[test]
    fn declares_the_pattern_as_a_plain_string_would() {
        let MetaSchemaRef::Inline(schema) = NotBlank::schema_ref() else {
            panic!("a string is declared inline");
        };
        assert_eq!(schema.ty, "string");
        assert_eq!(schema.pattern.as_deref(), Some(limits::NOT_BLANK));
        assert_eq!(schema.format, None);
    }
}
