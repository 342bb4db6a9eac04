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
//!
//! An object with properties and alternatives (`anyOf`, the either/or rules some request bodies
//! declare) gets its alternatives inside a one-member `allOf`: equivalent, and client generators
//! then keep the object one model instead of a union of anonymous ones.
//!
//! poem-openapi refuses a negative value for an unsigned integer (`format: uint64`) but declares
//! no `minimum`; [`normalize`] declares `minimum: 0`.
//!
//! Every operation shares `ApiError`'s list of documented errors. [`operation_errors`] fits it to
//! what each operation can really answer: 415 where it takes a body (a wrong `Content-Type`),
//! 429 on login (`LOGIN_LOCKED`, `RATE_LIMITED`), and no 401/403 on the public operations that
//! check no credential.
//!
//! A write body refuses properties it does not declare (`JsonBody`); its objects carry a
//! placeholder for that in `additionalProperties`, because poem-openapi's registry cannot hold
//! `false`. [`close_objects_json`] and [`close_objects_yaml`] write the finished document with
//! `additionalProperties: false` in the placeholder's place.
//!
//! The kernel's request guard (`request_guard`) holds every path segment and query value, on
//! every route, to [`limits::MAX_PATH_SEGMENT_LENGTH`] / [`limits::MAX_QUERY_VALUE_LENGTH`]
//! characters without a control character. [`parameter_rules`] declares it on every string path
//! and query parameter: a `maxLength` (or the parameter's own, if shorter) and the pattern
//! [`limits::NO_CONTROL_CHARACTERS`] (unless the parameter has a pattern or a format of its own).

use plystra_contracts::body::CLOSED_OBJECT_MARKER;
use plystra_contracts::limits;
use poem_openapi::registry::{
    MetaHeader, MetaMediaType, MetaOperation, MetaParamIn, MetaResponse, MetaSchema, MetaSchemaRef,
    Registry,
};

/// Public operations that still judge a credential or a token (and so answer 401).
const PUBLIC_WITH_CREDENTIALS: &[&str] = &[
    "/api/v1/auth/login",
    "/api/v1/auth/refresh",
    "/api/v1/auth/logout",
    "/api/v1/auth/register",
];

/// Rewrites every registered schema as the module documentation describes.
pub(crate) fn normalize(registry: &mut Registry) {
    for schema in registry.schemas.values_mut() {
        normalize_schema(schema);
    }
}

fn normalize_schema(schema: &mut MetaSchema) {
    // An object whose alternatives (`anyOf`) sit beside its properties is read by client
    // generators as a union of anonymous types (openapi-python-client makes `AuthzActorType0`,
    // `AuthzActorType1` and no `AuthzActor`); the same alternatives inside a one-member `allOf`
    // say the same and keep the object one model.
    if !schema.properties.is_empty() && !schema.any_of.is_empty() {
        let alternatives = std::mem::take(&mut schema.any_of);
        schema
            .all_of
            .push(MetaSchemaRef::Inline(Box::new(MetaSchema {
                any_of: alternatives,
                ..MetaSchema::ANY
            })));
    }
    // poem-openapi refuses a negative value for an unsigned integer without saying so.
    if schema.ty == "integer"
        && schema.format.is_some_and(|f| f.starts_with("uint"))
        && schema.minimum.is_none()
    {
        schema.minimum = Some(0.0);
    }
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

/// Declares the request guard's rules on `operation`'s string path and query parameters (see the
/// module docs).
pub(crate) fn parameter_rules(operation: &mut MetaOperation) {
    for parameter in &mut operation.params {
        let cap = match parameter.in_type {
            MetaParamIn::Path => limits::MAX_PATH_SEGMENT_LENGTH,
            MetaParamIn::Query => limits::MAX_QUERY_VALUE_LENGTH,
            _ => continue,
        };
        let MetaSchemaRef::Inline(schema) = &mut parameter.schema else {
            continue;
        };
        if schema.ty != "string" || !schema.enum_items.is_empty() {
            continue;
        }
        schema.max_length = Some(schema.max_length.map_or(cap, |own| own.min(cap)));
        if schema.pattern.is_none() && schema.format.is_none() {
            schema.pattern = Some(limits::NO_CONTROL_CHARACTERS.to_owned());
        }
    }
}

/// Fits `operation`'s documented error responses to what it can answer (see the module docs).
pub(crate) fn operation_errors(path: &str, operation: &mut MetaOperation, public: bool) {
    let responses = &mut operation.responses.responses;
    if public {
        let judges_credentials = PUBLIC_WITH_CREDENTIALS.contains(&path);
        responses.retain(|r| match r.status {
            Some(401) => judges_credentials,
            Some(403) => false,
            _ => true,
        });
    }
    let Some(template) = responses.iter().find(|r| r.status == Some(400)) else {
        // Not an operation answering with ApiError.
        return;
    };
    let copy = |status: u16, description: &'static str| MetaResponse {
        description,
        status: Some(status),
        status_range: None,
        content: template
            .content
            .iter()
            .map(|m| MetaMediaType {
                content_type: m.content_type,
                schema: m.schema.clone(),
            })
            .collect(),
        headers: template
            .headers
            .iter()
            .map(|h| MetaHeader {
                name: h.name.clone(),
                description: h.description.clone(),
                required: h.required,
                deprecated: h.deprecated,
                schema: h.schema.clone(),
            })
            .collect(),
    };
    let mut extra = Vec::new();
    if operation.request.is_some() {
        extra.push(copy(
            415,
            "The body is not `application/json` (`UNSUPPORTED_MEDIA_TYPE`).",
        ));
    }
    if path == "/api/v1/auth/login" {
        extra.push(copy(
            429,
            "Too many failed logins for this email and address (`LOGIN_LOCKED`), or too many attempts from this address (`RATE_LIMITED`); `Retry-After` says when to try again.",
        ));
    }
    for response in extra {
        if !responses.iter().any(|r| r.status == response.status) {
            responses.push(response);
        }
    }
    responses.sort_by_key(|r| r.status);
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

/// The JSON document with every closed-object placeholder written as `additionalProperties:
/// false`. The document is read into YAML's value (a superset of JSON that keeps the order of
/// keys) and written back with the same pretty printer poem-openapi uses.
pub(crate) fn close_objects_json(text: String) -> String {
    match serde_yaml::from_str::<serde_yaml::Value>(&text) {
        Ok(mut value) => {
            close_objects(&mut value);
            serde_json::to_string_pretty(&value).unwrap_or(text)
        }
        Err(_) => text,
    }
}

/// The YAML document with every closed-object placeholder written as `additionalProperties:
/// false`.
pub(crate) fn close_objects_yaml(text: String) -> String {
    match serde_yaml::from_str::<serde_yaml::Value>(&text) {
        Ok(mut value) => {
            close_objects(&mut value);
            serde_yaml::to_string(&value).unwrap_or(text)
        }
        Err(_) => text,
    }
}

fn close_objects(value: &mut serde_yaml::Value) {
    match value {
        serde_yaml::Value::Mapping(map) => {
            for (key, item) in map.iter_mut() {
                let is_placeholder = key.as_str() == Some("additionalProperties")
                    && item.get("type").and_then(serde_yaml::Value::as_str)
                        == Some(CLOSED_OBJECT_MARKER);
                if is_placeholder {
                    *item = serde_yaml::Value::Bool(false);
                } else {
                    close_objects(item);
                }
            }
        }
        serde_yaml::Value::Sequence(items) => items.iter_mut().for_each(close_objects),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use poem::http::Method;
    use poem_openapi::ApiResponse;
    use poem_openapi::registry::MetaRequest;
    use poem_openapi::types::Type;

    use super::*;

    fn operation(method: Method, body: bool) -> MetaOperation {
        MetaOperation {
            method,
            tags: Vec::new(),
            summary: None,
            description: None,
            external_docs: None,
            params: Vec::new(),
            request: body.then(|| MetaRequest {
                description: None,
                content: vec![MetaMediaType {
                    content_type: "application/json; charset=utf-8",
                    schema: String::schema_ref(),
                }],
                required: true,
            }),
            responses: plystra_contracts::ApiError::meta(),
            deprecated: false,
            security: Vec::new(),
            operation_id: None,
            code_samples: Vec::new(),
        }
    }

    fn statuses(operation: &MetaOperation) -> Vec<u16> {
        operation
            .responses
            .responses
            .iter()
            .filter_map(|r| r.status)
            .collect()
    }

    #[test]
    fn each_operation_documents_the_errors_it_can_answer() {
        let mut create = operation(Method::POST, true);
        operation_errors("/api/v1/users", &mut create, false);
        let created = statuses(&create);
        assert!(created.contains(&401) && created.contains(&403) && created.contains(&415));
        assert!(!created.contains(&429));
        assert!(
            create
                .responses
                .responses
                .iter()
                .all(|r| !r.content.is_empty())
        );

        let mut ready = operation(Method::GET, false);
        operation_errors("/api/v1/ready", &mut ready, true);
        let ready = statuses(&ready);
        assert!(!ready.contains(&401) && !ready.contains(&403) && !ready.contains(&415));
        assert!(ready.contains(&503));

        let mut login = operation(Method::POST, true);
        operation_errors("/api/v1/auth/login", &mut login, true);
        let login = statuses(&login);
        assert!(login.contains(&401) && login.contains(&429) && !login.contains(&403));
        let mut sorted = login.clone();
        sorted.sort_unstable();
        assert_eq!(login, sorted);
    }

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
