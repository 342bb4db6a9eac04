//! The one input boundary of JSON request bodies: [`JsonBody`] checks a body against its type's
//! registered schema before the handler runs and refuses, with a 400 `VALIDATION_FAILED` whose
//! `details.fields` names every bad field:
//!
//! - a missing required field, a value of the wrong JSON type (no `true` or `7` for a string:
//!   poem-openapi's own `Json<T>` would store them as text), a value outside an enum;
//! - a field the schema does not define (free-form maps such as `metadata` stay free; the few
//!   fields upstream's contract defines and Plystra ignores are listed in [`UPSTREAM_FIELDS`]);
//! - a string holding a control character ([`limits::refused_character`]), longer than its
//!   `maxLength` or shorter than its `minLength`, or blank where its pattern is
//!   [`limits::NOT_BLANK`] (a [`NotBlank`](crate::not_blank::NotBlank) field); a number past
//!   `maximum`/`minimum`;
//! - free-form JSON (metadata) over [`limits::MAX_METADATA_BYTES`], nested deeper than
//!   [`limits::MAX_METADATA_DEPTH`], or with a key over [`limits::MAX_METADATA_KEY_LENGTH`] or
//!   holding a control character.
//!
//! [`OpenJsonBody`] checks a body the same way but ignores properties its objects do not declare:
//! the input boundary of a standard's wire format (AuthZEN), whose receivers must take unknown
//! fields for forward compatibility.
//!
//! Nested objects and arrays are checked the same way, named `checks[2].resource`. Every string
//! field without a declared `maxLength` gets the cap [`limits::max_length_of`] gives its name,
//! both in the document and in the check, and likewise `minLength` ([`limits::min_length_of`]);
//! the document also shows the rule on control characters as a `pattern`
//! ([`limits::pattern_of`]), so it says what the server enforces.

use std::any::TypeId;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock, RwLock};

use poem::{FromRequest, Request, RequestBody};
use poem_openapi::registry::{MetaMediaType, MetaRequest, MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseFromJSON, Type};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};
use serde_json::{Map, Value};

use crate::limits;
use crate::{ApiError, ErrorCode};

/// The content type the body is documented with.
pub const CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// Fields upstream's contract defines on a write body that Plystra accepts and ignores, by our
/// schema's name: upstream's clients send them, and they restrict nothing (`actor` is upstream's
/// caller context, which Plystra takes from the credential; `id` repeats the path's ID;
/// `explain` asks for what `/authz/explain` answers). Any other unknown field is refused.
pub const UPSTREAM_FIELDS: &[(&str, &[&str])] = &[
    ("AuthzRequest", &["explain", "actor"]),
    ("GroupCreateRequest", &["actor"]),
    ("GroupUpdateRequest", &["actor", "id"]),
    ("MemberCreateRequest", &["actor"]),
    ("MemberRoleCreateRequest", &["actor"]),
    ("MemberUpdateRequest", &["actor", "id"]),
    ("PermissionCreateRequest", &["actor"]),
    ("PermissionUpdateRequest", &["actor", "id"]),
    ("ResourceArchiveRequest", &["actor"]),
    ("ResourceCreateRequest", &["actor"]),
    ("ResourceUpdateRequest", &["actor"]),
    ("RoleCreateRequest", &["actor"]),
    ("RolePermissionCreateRequest", &["actor"]),
    ("RoleUpdateRequest", &["actor", "id"]),
    ("SpaceCreateRequest", &["actor"]),
    ("SpaceUpdateRequest", &["actor", "id"]),
    ("UserCreateRequest", &["actor"]),
    ("UserMemberCreateRequest", &["actor"]),
    ("UserMemberUpdateRequest", &["actor", "id"]),
    ("UserUpdateRequest", &["actor", "id"]),
];

/// A JSON body of `T`, parsed and checked field by field before the handler runs.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

/// Registers `T` and declares on every string field of it (and of the objects it nests) the rules
/// the checks below hold it to, by the field's name, where the field declares none of its own: its
/// `maxLength` ([`limits::max_length_of`]), the pattern refusing control characters
/// ([`limits::pattern_of`]) and, where empty strings are refused, `minLength`
/// ([`limits::min_length_of`]); and on every object with declared properties that it takes no
/// other ([`CLOSED_OBJECT_MARKER`]).
pub fn register<T: Type>(registry: &mut Registry) {
    register_with::<T>(registry, true);
}

/// [`register`], with objects closed to undeclared properties only when `closed`.
fn register_with<T: Type>(registry: &mut Registry, closed: bool) {
    T::register(registry);
    let mut pending = Vec::new();
    if let MetaSchemaRef::Reference(name) = T::schema_ref() {
        pending.push(name);
    }
    let mut seen = HashSet::new();
    while let Some(name) = pending.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        if let Some(schema) = registry.schemas.get_mut(&name) {
            for (field, property) in &mut schema.properties {
                cap_strings(field, property, &mut pending);
            }
            // An object the checks hold to its declared properties says so.
            if closed
                && schema.ty == "object"
                && !schema.properties.is_empty()
                && schema.additional_properties.is_none()
            {
                schema.additional_properties = Some(Box::new(closed_marker()));
            }
        }
    }
}

fn cap_strings(field: &str, schema: &mut MetaSchemaRef, pending: &mut Vec<String>) {
    match schema {
        MetaSchemaRef::Reference(name) => pending.push(name.clone()),
        MetaSchemaRef::Inline(schema) => {
            for part in &schema.all_of {
                if let MetaSchemaRef::Reference(name) = part {
                    pending.push(name.clone());
                }
            }
            if schema.ty == "string" && schema.enum_items.is_empty() {
                if schema.max_length.is_none() {
                    schema.max_length = Some(limits::max_length_of(field));
                }
                // A format (a date-time) says what the characters are; a field's own pattern is
                // stricter than the rule on control characters.
                if schema.pattern.is_none() && schema.format.is_none() {
                    schema.pattern = Some(limits::pattern_of(field).to_owned());
                }
                if schema.min_length.is_none() {
                    schema.min_length = limits::min_length_of(field);
                }
            }
            if let Some(items) = &mut schema.items {
                cap_strings(field, items, pending);
            }
        }
    }
}

/// A schema as checked: the named type it stands for (a documented field of a named type is an
/// inline schema holding `allOf: [the type]`) and the keywords of both.
struct Resolved<'r> {
    name: Option<&'r str>,
    schema: &'r MetaSchema,
    own: Option<&'r MetaSchema>,
}

impl Resolved<'_> {
    fn max_length(&self) -> Option<usize> {
        self.own
            .and_then(|s| s.max_length)
            .or(self.schema.max_length)
    }
    fn min_length(&self) -> Option<usize> {
        self.own
            .and_then(|s| s.min_length)
            .or(self.schema.min_length)
    }
    fn pattern(&self) -> Option<&str> {
        self.own
            .and_then(|s| s.pattern.as_deref())
            .or(self.schema.pattern.as_deref())
    }
    fn maximum(&self) -> Option<f64> {
        self.own.and_then(|s| s.maximum).or(self.schema.maximum)
    }
    fn minimum(&self) -> Option<f64> {
        self.own.and_then(|s| s.minimum).or(self.schema.minimum)
    }
}

fn resolve<'r>(registry: &'r Registry, schema: &'r MetaSchemaRef) -> Option<Resolved<'r>> {
    match schema {
        MetaSchemaRef::Reference(name) => Some(Resolved {
            name: Some(name),
            schema: registry.schemas.get(name)?,
            own: None,
        }),
        MetaSchemaRef::Inline(own) => {
            if own.ty.is_empty()
                && let Some(MetaSchemaRef::Reference(name)) = own
                    .all_of
                    .iter()
                    .find(|s| matches!(s, MetaSchemaRef::Reference(_)))
            {
                return Some(Resolved {
                    name: Some(name),
                    schema: registry.schemas.get(name)?,
                    own: Some(own),
                });
            }
            Some(Resolved {
                name: None,
                schema: own,
                own: None,
            })
        }
    }
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

/// The `type` of the placeholder [`register`] puts in `additionalProperties` of every object a
/// body is checked against: the object takes no property it does not declare. OpenAPI says that
/// with `additionalProperties: false`, which poem-openapi's registry cannot hold; the kernel
/// writes the document with `false` in the placeholder's place.
pub const CLOSED_OBJECT_MARKER: &str = "x-plystra-closed-object";

/// The placeholder for `additionalProperties: false`.
fn closed_marker() -> MetaSchemaRef {
    MetaSchemaRef::Inline(Box::new(MetaSchema::new(CLOSED_OBJECT_MARKER)))
}

/// Whether `schema` is a map: it takes properties it does not name (`additionalProperties` other
/// than the closed-object placeholder).
fn is_open_map(schema: &MetaSchema) -> bool {
    match schema.additional_properties.as_deref() {
        None => false,
        Some(MetaSchemaRef::Inline(marker)) => marker.ty != CLOSED_OBJECT_MARKER,
        Some(MetaSchemaRef::Reference(_)) => true,
    }
}

/// Whether `schema` is free-form JSON: a map (`additionalProperties`) or any value.
fn is_free_form(schema: &MetaSchema) -> bool {
    is_open_map(schema)
        || (schema.ty.is_empty()
            && schema.properties.is_empty()
            && schema.all_of.is_empty()
            && schema.any_of.is_empty()
            && schema.one_of.is_empty())
}

struct Checker<'r> {
    registry: &'r Registry,
    problems: Map<String, Value>,
    /// Whether a property an object does not declare is a problem ([`JsonBody`]) or ignored
    /// ([`OpenJsonBody`]).
    closed: bool,
}

impl Checker<'_> {
    fn problem(&mut self, at: &str, problem: impl Into<String>) {
        self.problems
            .entry(at.to_owned())
            .or_insert_with(|| Value::from(problem.into()));
    }

    fn object(
        &mut self,
        at: &str,
        name: Option<&str>,
        schema: &MetaSchema,
        object: &Map<String, Value>,
    ) {
        let join = |field: &str| {
            if at.is_empty() {
                field.to_owned()
            } else {
                format!("{at}.{field}")
            }
        };
        for field in &schema.required {
            if object.get(*field).is_none_or(Value::is_null) {
                self.problem(&join(field), "is required");
            }
        }
        if self.closed && !is_open_map(schema) {
            let upstream = UPSTREAM_FIELDS
                .iter()
                .find(|(schema_name, _)| Some(*schema_name) == name)
                .map_or(&[][..], |(_, fields)| *fields);
            for field in object.keys() {
                let known = schema.properties.iter().any(|(p, _)| p == field)
                    || upstream.contains(&field.as_str());
                if !known {
                    self.problem(&join(field), "is not a field of this request");
                }
            }
        }
        for (field, property) in &schema.properties {
            if let Some(value) = object.get(*field).filter(|v| !v.is_null()) {
                self.value(&join(field), field, property, value);
            }
        }
    }

    fn value(&mut self, at: &str, field: &str, schema: &MetaSchemaRef, value: &Value) {
        let Some(resolved) = resolve(self.registry, schema) else {
            return;
        };
        let schema = resolved.schema;
        if !schema.enum_items.is_empty() {
            if !schema.enum_items.contains(value) {
                let allowed: Vec<String> = schema
                    .enum_items
                    .iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                    .collect();
                self.problem(at, format!("must be one of {}", allowed.join(", ")));
            }
            return;
        }
        if !type_matches(schema.ty, value) {
            self.problem(at, format!("must be of type {}", schema.ty));
            return;
        }
        match value {
            Value::String(s) => {
                let not_blank = matches!(
                    resolved.pattern(),
                    Some(limits::NOT_BLANK | limits::NOT_BLANK_FREE_TEXT)
                );
                if not_blank && s.trim().is_empty() {
                    self.problem(at, "must not be blank");
                } else if let Some(c) = limits::refused_character(s, limits::is_free_text(field)) {
                    self.problem(
                        at,
                        format!("must not hold the control character U+{:04X}", u32::from(c)),
                    );
                } else if let Some(max) = resolved.max_length()
                    && s.chars().count() > max
                {
                    self.problem(at, format!("must be at most {max} characters"));
                } else if let Some(min) = resolved.min_length()
                    && s.chars().count() < min
                {
                    self.problem(at, format!("must be at least {min} characters"));
                }
            }
            Value::Number(n) => {
                let n = n.as_f64().unwrap_or_default();
                if let Some(max) = resolved.maximum()
                    && n > max
                {
                    self.problem(at, format!("must be at most {max}"));
                } else if let Some(min) = resolved.minimum()
                    && n < min
                {
                    self.problem(at, format!("must be at least {min}"));
                }
            }
            Value::Array(items) => {
                if let Some(max) = schema.max_items
                    && items.len() > max
                {
                    self.problem(at, format!("must hold at most {max} items"));
                    return;
                }
                if let Some(item_schema) = &schema.items {
                    for (i, item) in items.iter().enumerate() {
                        if item.is_null() {
                            continue;
                        }
                        self.value(&format!("{at}[{i}]"), field, item_schema, item);
                    }
                } else {
                    self.free_form(at, value);
                }
            }
            Value::Object(object) => {
                if is_free_form(schema) {
                    self.free_form(at, value);
                } else {
                    self.object(at, resolved.name, schema, object);
                }
            }
            Value::Bool(_) | Value::Null => {}
        }
    }

    /// Free-form JSON: bounded in size, depth and key length; no control character in a key, and
    /// none but tab and line breaks in a string.
    fn free_form(&mut self, at: &str, value: &Value) {
        let bytes = serde_json::to_vec(value).map_or(usize::MAX, |v| v.len());
        if bytes > limits::MAX_METADATA_BYTES {
            self.problem(
                at,
                format!(
                    "must be at most {} bytes as JSON",
                    limits::MAX_METADATA_BYTES
                ),
            );
            return;
        }
        if let Err(problem) = free_form_problem(value, 1) {
            self.problem(at, problem);
        }
    }
}

fn free_form_problem(value: &Value, depth: usize) -> Result<(), String> {
    match value {
        Value::String(s) => match limits::refused_character(s, true) {
            Some(c) => Err(format!(
                "must not hold the control character U+{:04X} in a value",
                u32::from(c)
            )),
            None => Ok(()),
        },
        Value::Array(_) | Value::Object(_) if depth > limits::MAX_METADATA_DEPTH => Err(format!(
            "must nest at most {} levels deep",
            limits::MAX_METADATA_DEPTH
        )),
        Value::Array(items) => items
            .iter()
            .try_for_each(|v| free_form_problem(v, depth + 1)),
        Value::Object(map) => map.iter().try_for_each(|(key, v)| {
            if key.chars().count() > limits::MAX_METADATA_KEY_LENGTH {
                return Err(format!(
                    "keys must be at most {} characters",
                    limits::MAX_METADATA_KEY_LENGTH
                ));
            }
            if let Some(c) = limits::refused_character(key, false) {
                return Err(format!(
                    "must not hold the control character U+{:04X} in a key",
                    u32::from(c)
                ));
            }
            free_form_problem(v, depth + 1)
        }),
        _ => Ok(()),
    }
}

/// `T`'s schemas as [`register`] declares them, built once per type and shared: a body is
/// checked on every write (`authz/check` included), and the schemas never change while the
/// process runs.
fn registry_of<T: Type + 'static>() -> Arc<Registry> {
    static REGISTRIES: OnceLock<RwLock<HashMap<TypeId, Arc<Registry>>>> = OnceLock::new();
    let registries = REGISTRIES.get_or_init(RwLock::default);
    let id = TypeId::of::<T>();
    if let Some(found) = registries.read().ok().and_then(|r| r.get(&id).cloned()) {
        return found;
    }
    let mut registry = Registry::new();
    register::<T>(&mut registry);
    let registry = Arc::new(registry);
    if let Ok(mut registries) = registries.write() {
        registries.entry(id).or_insert_with(|| registry.clone());
    }
    registry
}

/// The problems of `body` against the schema of `T`, by field name.
pub fn field_problems<T: Type + 'static>(body: &Value) -> Result<Map<String, Value>, ApiError> {
    problems_of::<T>(body, true)
}

fn problems_of<T: Type + 'static>(
    body: &Value,
    closed: bool,
) -> Result<Map<String, Value>, ApiError> {
    let registry = registry_of::<T>();
    let registry = registry.as_ref();
    let root = T::schema_ref();
    let Some(resolved) = resolve(registry, &root) else {
        return Ok(Map::new());
    };
    let mut checker = Checker {
        registry,
        problems: Map::new(),
        closed,
    };
    if resolved.schema.ty == "object" && !is_free_form(resolved.schema) {
        let Some(object) = body.as_object() else {
            return Err(ApiError::new(
                ErrorCode::ValidationFailed,
                "the request body must be a JSON object",
            ));
        };
        checker.object("", resolved.name, resolved.schema, object);
    } else {
        checker.value("body", "body", &root, body);
    }
    Ok(checker.problems)
}

/// Parses and checks `body` as `T`.
pub fn check<T: Type + ParseFromJSON + 'static>(body: Value) -> Result<T, ApiError> {
    check_with::<T>(body, true)
}

fn check_with<T: Type + ParseFromJSON + 'static>(body: Value, closed: bool) -> Result<T, ApiError> {
    let problems = problems_of::<T>(&body, closed)?;
    if !problems.is_empty() {
        return Err(invalid_fields(problems));
    }
    T::parse_from_json(Some(body)).map_err(|e| {
        let reason = e.into_message();
        // poem-openapi's own validators name the field: "field `name` verification failed. …".
        if let Some(field) = reason
            .split_once("field `")
            .and_then(|(_, rest)| rest.split_once('`'))
            .map(|(field, _)| field.to_owned())
        {
            let mut problems = Map::new();
            problems.insert(field, Value::from(reason));
            return invalid_fields(problems);
        }
        ApiError::new(
            ErrorCode::ValidationFailed,
            format!("invalid request body: {reason}"),
        )
        .with_detail("reason", reason)
    })
}

fn invalid_fields(problems: Map<String, Value>) -> ApiError {
    let names: Vec<&str> = problems.keys().map(String::as_str).collect();
    let message = format!("invalid fields: {}", names.join(", "));
    ApiError::new(ErrorCode::ValidationFailed, message)
        .with_detail("fields", Value::Object(problems))
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

/// The extractor of a checked body type: `$closed` says whether its objects refuse properties
/// they do not declare.
macro_rules! checked_body_extractor {
    ($body:ident, $closed:expr) => {
        impl<'a, T: Type + ParseFromJSON + 'static> ApiExtractor<'a> for $body<T> {
            const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];

            type ParamType = ();
            type ParamRawType = ();

            fn register(registry: &mut Registry) {
                register_with::<T>(registry, $closed);
            }

            fn request_meta() -> Option<MetaRequest> {
                Some(request_meta_of::<T>())
            }

            async fn from_request(
                request: &'a Request,
                body: &mut RequestBody,
                _param_opts: ExtractParamOptions<Self::ParamType>,
            ) -> poem::Result<Self> {
                let value = read_json(request, body).await?;
                Ok(Self(check_with::<T>(value, $closed)?))
            }
        }
    };
}

checked_body_extractor!(JsonBody, true);

/// A JSON body of a standard's wire format (AuthZEN), checked as [`JsonBody`] checks one except
/// that a property an object does not declare is ignored, as such a standard requires of a
/// receiver for forward compatibility. The document leaves its objects open.
#[derive(Debug)]
pub struct OpenJsonBody<T>(pub T);

checked_body_extractor!(OpenJsonBody, false);

fn request_meta_of<T: Type>() -> MetaRequest {
    MetaRequest {
        description: None,
        content: vec![MetaMediaType {
            content_type: CONTENT_TYPE,
            schema: T::schema_ref(),
        }],
        required: true,
    }
}

/// The body as JSON: 415 unless it is declared `application/json` (or `+json`), 400 when it is
/// empty or not JSON.
async fn read_json(request: &Request, body: &mut RequestBody) -> Result<Value, poem::Error> {
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
    if data.is_empty() {
        return Err(ApiError::new(
            ErrorCode::ValidationFailed,
            "the request body is empty; send a JSON object",
        )
        .into());
    }
    serde_json::from_slice::<Value>(&data).map_err(|e| {
        ApiError::new(
            ErrorCode::ValidationFailed,
            format!("the request body is not valid JSON: {e}"),
        )
        .into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use poem_openapi::Object;
    use serde_json::json;

    /// A nested object.
    #[derive(Debug, Object)]
    struct Item {
        /// A key.
        key: String,
        /// A count.
        #[oai(validator(maximum(value = "10")))]
        count: Option<i64>,
    }

    /// A request with every kind of field.
    #[derive(Debug, Object)]
    struct Sample {
        /// An ID.
        id: Option<String>,
        /// A name.
        name: String,
        /// Free text.
        description: Option<String>,
        /// Nested objects.
        items: Option<Vec<Item>>,
        /// Free-form data.
        metadata: Option<std::collections::BTreeMap<String, Value>>,
        /// A flag.
        enabled: Option<bool>,
    }

    fn fields(err: &ApiError) -> Vec<String> {
        assert_eq!(err.code, ErrorCode::ValidationFailed, "{err:?}");
        err.details["fields"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    }

    #[test]
    fn a_good_body_passes_and_nulls_of_optional_fields_are_absent() {
        let ok = check::<Sample>(json!({
            "name": "x", "id": null, "description": "two\nlines\tand a tab",
            "items": [{"key": "a", "count": 3}], "metadata": {"any": {"thing": [1, "two\n"]}}
        }))
        .unwrap();
        assert_eq!(ok.name, "x");
        assert!(check::<Sample>(json!([1])).is_err());
    }

    #[test]
    fn wrong_types_unknown_fields_and_missing_fields_are_named() {
        let err =
            check::<Sample>(json!({"id": true, "enabled": "yes", "condition": 1})).unwrap_err();
        assert_eq!(fields(&err), ["condition", "enabled", "id", "name"]);
        let err = check::<Sample>(json!({"name": 7})).unwrap_err();
        assert_eq!(fields(&err), ["name"]);
    }

    #[test]
    fn an_open_body_ignores_unknown_fields_and_checks_everything_else() {
        let open = |body| check_with::<Sample>(body, false);
        let parsed =
            open(json!({"name": "x", "future": 1, "items": [{"key": "a", "more": {}}]})).unwrap();
        assert_eq!(parsed.name, "x");
        let err =
            open(json!({"future": 1, "id": true, "items": [{"key": 1, "extra": 2}]})).unwrap_err();
        assert_eq!(fields(&err), ["id", "items[0].key", "name"]);
        let err = open(json!({"name": "a\u{0}b", "unknown": "a\u{0}b"})).unwrap_err();
        assert_eq!(fields(&err), ["name"]);
    }

    #[test]
    fn nested_objects_and_arrays_are_checked_by_path() {
        let err = check::<Sample>(json!({
            "name": "x", "items": [{"key": "a"}, {"key": 1, "extra": 2}, {"key": "b", "count": 11}]
        }))
        .unwrap_err();
        assert_eq!(
            fields(&err),
            ["items[1].extra", "items[1].key", "items[2].count"]
        );
    }

    #[test]
    fn control_characters_are_refused_in_strings_and_metadata() {
        for body in [
            json!({"name": "a\u{0}b"}),
            json!({"name": "a\nb"}),
            json!({"name": "x", "id": "a\u{85}"}),
            json!({"name": "x", "description": "bell\u{7}"}),
            json!({"name": "x", "metadata": {"k\u{0}": 1}}),
            json!({"name": "x", "metadata": {"k": ["ok", "x\u{0}"]}}),
        ] {
            let err = check::<Sample>(body.clone()).unwrap_err();
            assert_eq!(fields(&err).len(), 1, "{body}");
        }
    }

    /// Text fields that must not be blank, and one that may be.
    #[derive(Debug, Object)]
    struct Labels {
        /// Not blank.
        label: crate::not_blank::NotBlank,
        /// Not blank, and short.
        #[oai(validator(max_length = 3))]
        short: Option<crate::not_blank::NotBlank>,
        /// May be blank.
        note: Option<String>,
    }

    #[test]
    fn every_blank_not_blank_field_is_named_and_other_strings_may_be_blank() {
        let err =
            check::<Labels>(json!({"label": " \u{3000}", "short": "", "note": " "})).unwrap_err();
        assert_eq!(fields(&err), ["label", "short"]);
        assert_eq!(err.details["fields"]["label"], "must not be blank");
        let err = check::<Labels>(json!({"label": "a", "short": "abcd"})).unwrap_err();
        assert_eq!(
            err.details["fields"]["short"],
            "must be at most 3 characters"
        );
        let labels = check::<Labels>(json!({"label": " a ", "note": " "})).unwrap();
        assert_eq!(labels.label.as_str(), " a ");
    }

    #[test]
    fn lengths_and_metadata_bounds_are_enforced_and_declared() {
        let long = "a".repeat(limits::MAX_NAME_LENGTH + 1);
        assert_eq!(
            fields(&check::<Sample>(json!({"name": long})).unwrap_err()),
            ["name"]
        );
        let id = "a".repeat(limits::MAX_ID_LENGTH + 1);
        assert_eq!(
            fields(&check::<Sample>(json!({"name": "x", "id": id})).unwrap_err()),
            ["id"]
        );
        let mut deep = json!(1);
        for _ in 0..limits::MAX_METADATA_DEPTH {
            deep = json!([deep]);
        }
        assert!(check::<Sample>(json!({"name": "x", "metadata": {"d": deep.clone()}})).is_err());
        let big = "x".repeat(limits::MAX_METADATA_BYTES);
        assert!(check::<Sample>(json!({"name": "x", "metadata": {"b": big}})).is_err());
        let key = "k".repeat(limits::MAX_METADATA_KEY_LENGTH + 1);
        assert!(check::<Sample>(json!({"name": "x", "metadata": {key: 1}})).is_err());

        let mut registry = Registry::new();
        register::<Sample>(&mut registry);
        let declared = |schema: &str, field: &str| {
            let schema = &registry.schemas[schema];
            let (_, property) = schema.properties.iter().find(|(p, _)| *p == field).unwrap();
            match property {
                MetaSchemaRef::Inline(s) => s.max_length,
                MetaSchemaRef::Reference(_) => None,
            }
        };
        assert_eq!(declared("Sample", "name"), Some(limits::MAX_NAME_LENGTH));
        assert_eq!(declared("Sample", "id"), Some(limits::MAX_ID_LENGTH));
        assert_eq!(declared("Item", "key"), Some(limits::MAX_KEY_LENGTH));
    }
}
