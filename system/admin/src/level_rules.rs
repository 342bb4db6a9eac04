//! What a level asks of `space_id` and `group_id`, said in the document.
//!
//! A key or an admin grant is instance-wide (no `space_id`, no `group_id`), for one space
//! (`space_id`, no `group_id`) or for one group subtree (`group_id`; a `space_id` beside it must
//! be the group's). The handler holds a body to that ([`crate::core::Admin::requested_scope`]);
//! poem-openapi's derive cannot say it, so [`Leveled`] wraps the request type and adds to its
//! registered schema one `anyOf` member per kind of level.

use std::borrow::Cow;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use serde_json::Value;

/// Which levels of a request type ask what of `space_id` and `group_id`.
pub trait LevelRules: Type + ParseFromJSON + ToJSON {
    /// The request type's schema name.
    const SCHEMA: &'static str;
    /// The levels that are instance-wide.
    const INSTANCE: &'static [&'static str];
    /// The levels of one space.
    const SPACE: &'static [&'static str];
    /// The levels of one group subtree.
    const GROUP: &'static [&'static str];
}

/// A request body whose schema says what each level needs (see the module docs).
#[derive(Debug, Clone)]
pub struct Leveled<T>(pub T);

impl<T: LevelRules> Type for Leveled<T> {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        T::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
        if let Some(schema) = registry.schemas.get_mut(T::SCHEMA)
            && schema.any_of.is_empty()
        {
            schema.any_of = vec![
                level(T::INSTANCE, &[], &["space_id", "group_id"]),
                level(T::SPACE, &["space_id"], &["group_id"]),
                level(T::GROUP, &["group_id"], &[]),
            ];
        }
    }

    fn as_raw_value(&self) -> Option<&Self> {
        Some(self)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self> + 'a> {
        Box::new(std::iter::once(self))
    }
}

impl<T: LevelRules> ParseFromJSON for Leveled<T> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        T::parse_from_json(value)
            .map(Self)
            .map_err(ParseError::propagate)
    }
}

impl<T: LevelRules> ToJSON for Leveled<T> {
    fn to_json(&self) -> Option<Value> {
        self.0.to_json()
    }
}

/// One kind of level: `level` is one of `levels`, the `needed` IDs are present non-blank
/// strings, the `absent` ones are absent or null.
fn level(levels: &[&str], needed: &[&'static str], absent: &[&'static str]) -> MetaSchemaRef {
    let mut properties = vec![(
        "level",
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            enum_items: levels.iter().map(|l| Value::from(*l)).collect(),
            ..MetaSchema::new("string")
        })),
    )];
    for field in needed {
        properties.push((
            field,
            MetaSchemaRef::Inline(Box::new(MetaSchema {
                min_length: Some(1),
                ..MetaSchema::new("string")
            })),
        ));
    }
    for field in absent {
        properties.push((
            field,
            MetaSchemaRef::Inline(Box::new(MetaSchema {
                nullable: true,
                enum_items: vec![Value::Null],
                ..MetaSchema::ANY
            })),
        ));
    }
    let mut required = vec!["level"];
    required.extend(needed.iter().copied());
    MetaSchemaRef::Inline(Box::new(MetaSchema {
        required,
        properties,
        ..MetaSchema::ANY
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_level_says_what_it_needs_and_what_it_refuses() {
        let MetaSchemaRef::Inline(space) = level(&["space"], &["space_id"], &["group_id"]) else {
            panic!("inline");
        };
        assert_eq!(space.required, vec!["level", "space_id"]);
        let names: Vec<&str> = space.properties.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, vec!["level", "space_id", "group_id"]);
        let MetaSchemaRef::Inline(group_id) = &space.properties[2].1 else {
            panic!("inline");
        };
        assert!(group_id.nullable && group_id.enum_items == vec![Value::Null]);
    }
}
