//! A JSON request body that reports malformed fields by name.
//!
//! poem-openapi's `Json<T>` rejects a missing required field or an unknown enum value with a
//! message naming the Rust type, and before the handler runs. [`JsonBody`] documents exactly the
//! same schema, but checks the body against `T`'s registered schema first (required fields,
//! JSON types, enum values) and hands the handler a `VALIDATION_FAILED` whose
//! `details.fields` names every bad field.

use poem::{FromRequest, Request, RequestBody};
use poem_openapi::registry::{MetaMediaType, MetaRequest, MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseFromJSON, Type};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};
use serde_json::{Map, Value};

use plystra_contracts::{ApiError, ErrorCode};

/// The content type the body is documented with.
pub const CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// A JSON body of `T`, parsed and checked field by field.
#[derive(Debug)]
pub struct JsonBody<T>(Result<T, ApiError>);

impl<T> JsonBody<T> {
    /// The parsed body, or the 400 that names the bad fields.
    pub fn parse(self) -> Result<T, ApiError> {
        self.0
    }
}

/// The schema `schema` stands for. A documented field of a named type is written as an inline
/// schema without a type, holding `allOf: [the type, the description]`; that is followed to the
/// type.
fn resolve<'r>(registry: &'r Registry, schema: &'r MetaSchemaRef) -> Option<&'r MetaSchema> {
    let found = match schema {
        MetaSchemaRef::Inline(s) => s,
        MetaSchemaRef::Reference(name) => registry.schemas.get(name)?,
    };
    if found.ty.is_empty()
        && let Some(named) = found
            .all_of
            .iter()
            .find(|s| matches!(s, MetaSchemaRef::Reference(_)))
    {
        return resolve(registry, named);
    }
    Some(found)
}

fn type_matches(ty: &str, value: &Value) -> bool {
    match ty {
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        _ => true,
    }
}

/// The problems of `body` against the object schema of `T`, by field name.
pub fn field_problems<T: Type>(body: &Value) -> Result<Map<String, Value>, ApiError> {
    let mut registry = Registry::new();
    T::register(&mut registry);
    let root = T::schema_ref();
    let Some(schema) = resolve(&registry, &root) else {
        return Ok(Map::new());
    };
    let Some(object) = body.as_object() else {
        return Err(ApiError::new(
            ErrorCode::ValidationFailed,
            "the request body must be a JSON object",
        ));
    };
    let mut problems = Map::new();
    for name in &schema.required {
        if object.get(*name).is_none_or(Value::is_null) {
            problems.insert((*name).to_owned(), Value::from("is required"));
        }
    }
    for (name, property) in &schema.properties {
        let Some(value) = object.get(*name).filter(|v| !v.is_null()) else {
            continue;
        };
        let Some(property) = resolve(&registry, property) else {
            continue;
        };
        if !property.enum_items.is_empty() {
            if !property.enum_items.contains(value) {
                let allowed: Vec<String> = property
                    .enum_items
                    .iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                    .collect();
                problems.insert(
                    (*name).to_owned(),
                    Value::from(format!("must be one of {}", allowed.join(", "))),
                );
            }
        } else if !type_matches(property.ty, value) {
            problems.insert(
                (*name).to_owned(),
                Value::from(format!("must be of type {}", property.ty)),
            );
        }
    }
    Ok(problems)
}

/// Parses and checks `body` as `T`.
pub fn check<T: Type + ParseFromJSON>(body: Value) -> Result<T, ApiError> {
    let problems = field_problems::<T>(&body)?;
    if !problems.is_empty() {
        let names: Vec<&str> = problems.keys().map(String::as_str).collect();
        let message = format!("invalid fields: {}", names.join(", "));
        return Err(ApiError::new(ErrorCode::ValidationFailed, message)
            .with_detail("fields", Value::Object(problems)));
    }
    T::parse_from_json(Some(body)).map_err(|e| {
        let reason = e.into_message();
        ApiError::new(
            ErrorCode::ValidationFailed,
            format!("invalid request body: {reason}"),
        )
        .with_detail("reason", reason)
    })
}

fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl<'a, T: Type + ParseFromJSON> ApiExtractor<'a> for JsonBody<T> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: None,
            content: vec![MetaMediaType {
                content_type: CONTENT_TYPE,
                schema: T::schema_ref(),
            }],
            required: true,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        match request.content_type() {
            Some(ct) if is_json(ct) => {}
            Some(ct) => {
                return Err(ApiError::new(
                    ErrorCode::UnsupportedMediaType,
                    format!("the body must be application/json, not {ct}"),
                )
                .into());
            }
            None => {
                return Err(ApiError::new(
                    ErrorCode::UnsupportedMediaType,
                    "the body must be application/json; send a Content-Type header",
                )
                .into());
            }
        }
        let data = <Vec<u8> as FromRequest>::from_request(request, body).await?;
        let parsed = if data.is_empty() {
            Err(ApiError::new(
                ErrorCode::ValidationFailed,
                "the request body is empty; send a JSON object",
            ))
        } else {
            match serde_json::from_slice::<Value>(&data) {
                Ok(value) => check::<T>(value),
                Err(e) => Err(ApiError::new(
                    ErrorCode::ValidationFailed,
                    format!("the request body is not valid JSON: {e}"),
                )),
            }
        };
        Ok(Self(parsed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::ResourceActionMutationRequest;
    use crate::mappings::ResourceMappingMutationRequest;
    use serde_json::json;

    fn fields(err: &ApiError) -> Vec<String> {
        assert_eq!(err.code, ErrorCode::ValidationFailed);
        err.details["fields"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    }

    #[test]
    fn missing_required_and_bad_enum_fields_are_named() {
        let err =
            check::<ResourceActionMutationRequest>(json!({"risk_level": "extreme"})).unwrap_err();
        assert_eq!(fields(&err), ["key", "risk_level"]);
        assert!(
            err.details["fields"]["risk_level"]
                .as_str()
                .unwrap()
                .contains("low, normal, high, critical")
        );
        let err =
            check::<ResourceMappingMutationRequest>(json!({"storage_kind": "s3"})).unwrap_err();
        assert_eq!(fields(&err), ["storage_kind"]);
    }

    #[test]
    fn wrong_json_types_are_named() {
        let err = check::<ResourceActionMutationRequest>(
            json!({"key": 7, "audit_default": "yes", "metadata": [1]}),
        )
        .unwrap_err();
        assert_eq!(fields(&err), ["audit_default", "key", "metadata"]);
    }

    #[test]
    fn nulls_of_optional_fields_and_good_bodies_pass() {
        let ok = check::<ResourceActionMutationRequest>(
            json!({"key": "approve", "risk_level": "high", "display_name": null}),
        )
        .unwrap();
        assert_eq!(ok.key, "approve");
        let err = check::<ResourceActionMutationRequest>(json!([1])).unwrap_err();
        assert_eq!(err.code, ErrorCode::ValidationFailed);
    }
}
