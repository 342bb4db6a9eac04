//! Shaping the generated document so that client generators take it as it is.
//!
//! poem-openapi documents a field whose type is a named schema and that carries its own doc
//! comment as `{description, allOf: [{$ref}, {description}]}`. The second `allOf` member is a
//! schema without a type; openapi-python-client rejects such a member ("Cannot take allOf a
//! non-object") and drops every model that uses it. [`normalize`] keeps the field's own
//! description next to a one-member `allOf`, which is equivalent OpenAPI 3.0 that every
//! generator reads as the referenced type.
//!
//! poem-openapi also writes an absent optional field as `null`, while the document only leaves it
//! out of `required`; a generated client then fails on the `null` it was told could not come.
//! [`normalize`] marks every property outside `required` `nullable`, which is what the server
//! sends and accepts.

use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};

/// Rewrites every registered schema as the module documentation describes.
pub(crate) fn normalize(registry: &mut Registry) {
    for schema in registry.schemas.values_mut() {
        normalize_schema(schema);
    }
}

fn normalize_schema(schema: &mut MetaSchema) {
    for (name, property) in &mut schema.properties {
        normalize_ref(property);
        if !schema.required.contains(name) {
            make_nullable(property);
        }
    }
    for child in schema
        .items
        .iter_mut()
        .chain(schema.additional_properties.iter_mut())
    {
        normalize_ref(child);
    }
    for child in schema
        .any_of
        .iter_mut()
        .chain(schema.one_of.iter_mut())
        .chain(schema.all_of.iter_mut())
    {
        normalize_ref(child);
    }
}

fn normalize_ref(schema_ref: &mut MetaSchemaRef) {
    let MetaSchemaRef::Inline(schema) = schema_ref else {
        return;
    };
    // poem-openapi's `MetaSchemaRef::merge` builds `[Reference, Inline(annotations)]` and copies
    // the annotations onto the outer schema, so the second member adds nothing.
    if let [
        MetaSchemaRef::Reference(_),
        MetaSchemaRef::Inline(annotations),
    ] = schema.all_of.as_slice()
        && annotations.ty == MetaSchema::ANY.ty
        && annotations.properties.is_empty()
        && annotations.all_of.is_empty()
    {
        schema.all_of.truncate(1);
    }
    normalize_schema(schema);
}

/// Marks the property `nullable`; a bare reference becomes a one-member `allOf` first, because
/// OpenAPI 3.0 ignores the siblings of `$ref`.
fn make_nullable(property: &mut MetaSchemaRef) {
    match property {
        MetaSchemaRef::Inline(schema) => schema.nullable = true,
        MetaSchemaRef::Reference(name) => {
            *property = MetaSchemaRef::Inline(Box::new(MetaSchema {
                all_of: vec![MetaSchemaRef::Reference(std::mem::take(name))],
                nullable: true,
                ..MetaSchema::ANY
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_keep_their_description_and_optional_properties_are_nullable() {
        let annotated = MetaSchemaRef::Reference("Decision".to_owned()).merge(MetaSchema {
            description: Some("`allow` or `deny`."),
            ..MetaSchema::ANY
        });
        let mut registry = Registry::new();
        registry.schemas.insert(
            "CheckResult".to_owned(),
            MetaSchema {
                properties: vec![
                    ("decision", annotated),
                    ("deny_code", MetaSchemaRef::Reference("DenyCode".to_owned())),
                ],
                required: vec!["decision"],
                ..MetaSchema::new("object")
            },
        );
        normalize(&mut registry);
        let json = serde_json::to_value(&registry.schemas["CheckResult"]).unwrap();
        assert_eq!(
            json["properties"]["decision"],
            serde_json::json!({
                "description": "`allow` or `deny`.",
                "allOf": [{"$ref": "#/components/schemas/Decision"}]
            })
        );
        assert_eq!(
            json["properties"]["deny_code"],
            serde_json::json!({
                "allOf": [{"$ref": "#/components/schemas/DenyCode"}],
                "nullable": true
            })
        );
    }
}
