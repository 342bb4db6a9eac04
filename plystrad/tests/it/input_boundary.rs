//! End-to-end tests of the input boundary through the real application and database (issue 15,
//! items 8, 9 and the length caps of item 5): control characters in bodies, path IDs, list filters
//! and the public login are refused with 400 naming the field, never a 500 on PostgreSQL nor
//! stored on SQLite; JSON booleans and numbers are not coerced into strings; unknown body fields
//! are refused by name; every string a write body or a path takes is capped at a documented
//! length. A sweep over the document's write operations checks the rules hold on every one.

use poem::http::{Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::support::app::{Auth, Client, app, exchange};

/// Sends `body` (raw JSON text, so it can hold anything) with the bootstrap key.
async fn send(cli: &Client, method: Method, path: &str, body: Option<&str>) -> (StatusCode, Value) {
    let answer = exchange(cli, Auth::Boot, method, path, body.map(str::to_owned)).await;
    (answer.status, answer.body)
}

async fn post(cli: &Client, path: &str, body: &Value) -> (StatusCode, Value) {
    send(cli, Method::POST, path, Some(&body.to_string())).await
}

async fn patch(cli: &Client, path: &str, body: &Value) -> (StatusCode, Value) {
    send(cli, Method::PATCH, path, Some(&body.to_string())).await
}

async fn get(cli: &Client, path: &str) -> (StatusCode, Value) {
    send(cli, Method::GET, path, None).await
}

/// Asserts a 400 `VALIDATION_FAILED` whose `details.fields` names `field`.
#[track_caller]
fn refused_naming(answer: &(StatusCode, Value), field: &str) {
    let (status, body) = answer;
    assert_eq!(*status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "VALIDATION_FAILED", "{body}");
    assert!(
        body["error"]["details"]["fields"].get(field).is_some(),
        "{field} is not named: {body}"
    );
}

/// Asserts a 400 `VALIDATION_FAILED` whose `details.parameter` names `parameter`.
#[track_caller]
fn refused_parameter(answer: &(StatusCode, Value), parameter: &str) {
    let (status, body) = answer;
    assert_eq!(*status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "VALIDATION_FAILED", "{body}");
    assert_eq!(body["error"]["details"]["parameter"], parameter, "{body}");
}

#[track_caller]
fn created(answer: &(StatusCode, Value)) -> String {
    let (status, body) = answer;
    assert!(status.is_success(), "{status}: {body}");
    body["data"]["id"].as_str().unwrap().to_owned()
}

/// Metadata a NUL hides in: once in a key, once in a value, once nested.
fn nul_metadata() -> [Value; 3] {
    [
        json!({"a\u{0}b": 1}),
        json!({"note": "x\u{0}y"}),
        json!({"deep": {"list": ["ok", "bad\u{0}"]}}),
    ]
}

#[tokio::test]
async fn nul_in_metadata_is_refused_on_create_and_update() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    let space = created(&post(&cli, "/api/v1/spaces", &json!({"name": "Finance"})).await);
    let user = created(&post(&cli, "/api/v1/users", &json!({"email": "ana@example.com"})).await);
    let role = created(
        &post(
            &cli,
            &format!("/api/v1/spaces/{space}/roles"),
            &json!({"key": "reviewer", "name": "Reviewer"}),
        )
        .await,
    );
    created(&post(&cli, "/api/v1/resource-types", &json!({"key": "invoice"})).await);
    let resource = created(
        &post(
            &cli,
            &format!("/api/v1/spaces/{space}/resources"),
            &json!({"resource_type": "invoice"}),
        )
        .await,
    );
    for metadata in nul_metadata() {
        let creates = [
            ("/api/v1/spaces".to_owned(), json!({"name": "Other"})),
            (
                "/api/v1/users".to_owned(),
                json!({"email": "bo@example.com"}),
            ),
            (
                format!("/api/v1/spaces/{space}/roles"),
                json!({"key": "approver", "name": "Approver"}),
            ),
            (
                format!("/api/v1/spaces/{space}/resources"),
                json!({"resource_type": "invoice"}),
            ),
            (
                "/api/v1/permissions".to_owned(),
                json!({"resource": "invoice", "action": "read", "scope": "space"}),
            ),
        ];
        for (path, mut body) in creates {
            body["metadata"] = metadata.clone();
            refused_naming(&post(&cli, &path, &body).await, "metadata");
        }
        let updates = [
            format!("/api/v1/spaces/{space}"),
            format!("/api/v1/users/{user}"),
            format!("/api/v1/spaces/{space}/roles/{role}"),
            format!("/api/v1/spaces/{space}/resources/{resource}"),
        ];
        for path in updates {
            refused_naming(
                &patch(&cli, &path, &json!({"metadata": metadata})).await,
                "metadata",
            );
        }
    }
    // Nothing was written: the one space, user, role and resource created above.
    let (_, spaces) = get(&cli, "/api/v1/spaces").await;
    assert_eq!(spaces["data"].as_array().unwrap().len(), 1, "{spaces}");
    let (_, users) = get(&cli, "/api/v1/users").await;
    assert_eq!(users["data"].as_array().unwrap().len(), 1, "{users}");
}

#[tokio::test]
async fn control_characters_in_string_fields_are_refused() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    refused_naming(
        &post(&cli, "/api/v1/spaces", &json!({"name": "Fin\u{0}ance"})).await,
        "name",
    );
    refused_naming(
        &post(
            &cli,
            "/api/v1/users",
            &json!({"email": "a\u{0}@example.com"}),
        )
        .await,
        "email",
    );
    // The C1 range and DEL count too.
    refused_naming(
        &post(
            &cli,
            "/api/v1/users",
            &json!({"email": "ana@example.com", "username": "a\u{85}b"}),
        )
        .await,
        "username",
    );
    refused_naming(
        &post(
            &cli,
            "/api/v1/resource-types",
            &json!({"key": "invoice", "display_name": "x\u{7f}"}),
        )
        .await,
        "display_name",
    );
    // Free text may hold tabs and line breaks.
    let (status, body) = post(
        &cli,
        "/api/v1/resource-types",
        &json!({"key": "invoice", "description": "line one\nline two\ttabbed\r\n"}),
    )
    .await;
    assert!(status.is_success(), "{status}: {body}");
}

#[tokio::test]
async fn nul_in_path_ids_and_list_filters_is_refused() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    let paths = [
        ("/api/v1/spaces/space_x%00", "space_id"),
        ("/api/v1/users/user_x%00y", "user_id"),
        ("/api/v1/resource-types/inv%00oice", "resource_type"),
        ("/api/v1/permissions/perm_%01", "permission_id"),
    ];
    for (path, parameter) in paths {
        refused_parameter(&get(&cli, path).await, parameter);
    }
    let filters = [
        ("/api/v1/permissions?resource=inv%00oice", "resource"),
        ("/api/v1/permissions?action=re%00ad", "action"),
        ("/api/v1/resources?space_id=space_%00", "space_id"),
        ("/api/v1/spaces?cursor=%00", "cursor"),
    ];
    for (path, parameter) in filters {
        refused_parameter(&get(&cli, path).await, parameter);
    }
    // A write's path ID too, before the body is looked at.
    refused_parameter(
        &patch(&cli, "/api/v1/spaces/space_%00", &json!({"name": "x"})).await,
        "space_id",
    );
}

#[tokio::test]
async fn nul_in_the_login_email_is_refused() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    let answer = exchange(
        &cli,
        Auth::None,
        Method::POST,
        "/api/v1/auth/login",
        Some(
            r#"{"email": "ana\u0000@example.com", "password": "correct horse battery"}"#.to_owned(),
        ),
    )
    .await;
    refused_naming(&(answer.status, answer.body), "email");
}

#[tokio::test]
async fn json_booleans_and_numbers_are_not_strings() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    refused_naming(
        &post(
            &cli,
            "/api/v1/spaces",
            &json!({"name": "Finance", "type": true}),
        )
        .await,
        "type",
    );
    refused_naming(
        &post(&cli, "/api/v1/spaces", &json!({"name": 12})).await,
        "name",
    );
    refused_naming(
        &post(
            &cli,
            "/api/v1/users",
            &json!({"email": "ana@example.com", "username": 7.5}),
        )
        .await,
        "username",
    );
    let (_, spaces) = get(&cli, "/api/v1/spaces").await;
    assert_eq!(spaces["data"], json!([]), "{spaces}");
}

#[tokio::test]
async fn unknown_fields_are_refused_by_name() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    let answer = post(
        &cli,
        "/api/v1/permissions",
        &json!({
            "resource": "invoice", "action": "approve", "scope": "space",
            "condition": {"amount_lte": 1000}
        }),
    )
    .await;
    refused_naming(&answer, "condition");
    let (_, permissions) = get(&cli, "/api/v1/permissions").await;
    assert_eq!(permissions["data"], json!([]), "{permissions}");
    // Free-form maps stay free.
    let (status, body) = post(
        &cli,
        "/api/v1/spaces",
        &json!({"name": "Finance", "metadata": {"condition": {"any": ["thing"]}}}),
    )
    .await;
    assert!(status.is_success(), "{status}: {body}");
}

#[tokio::test]
async fn over_long_strings_and_metadata_are_refused() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    let long = "a".repeat(10_000);
    refused_naming(
        &post(
            &cli,
            "/api/v1/resource-types",
            &json!({"key": "invoice", "description": long}),
        )
        .await,
        "description",
    );
    refused_naming(
        &post(
            &cli,
            "/api/v1/permissions",
            &json!({"resource": "invoice", "action": long, "scope": "space"}),
        )
        .await,
        "action",
    );
    refused_naming(
        &post(
            &cli,
            "/api/v1/users",
            &json!({"email": format!("{long}@example.com")}),
        )
        .await,
        "email",
    );
    // Metadata: too many bytes, too deep, a key too long.
    let big = json!({"blob": "x".repeat(100_000)});
    let mut deep = json!("leaf");
    for _ in 0..40 {
        deep = json!({ "d": deep });
    }
    let long_key = json!({ "k".repeat(1000): 1 });
    for metadata in [big, deep, long_key] {
        refused_naming(
            &post(
                &cli,
                "/api/v1/spaces",
                &json!({"name": "Finance", "metadata": metadata}),
            )
            .await,
            "metadata",
        );
    }
    // A path ID and a filter over their caps are refused rather than echoed in a 404.
    refused_parameter(
        &get(&cli, &format!("/api/v1/spaces/space_{long}")).await,
        "space_id",
    );
    refused_parameter(
        &get(&cli, &format!("/api/v1/permissions?resource={long}")).await,
        "resource",
    );
    let (_, spaces) = get(&cli, "/api/v1/spaces").await;
    assert_eq!(spaces["data"], json!([]), "{spaces}");
}

/// The served document, and the schema a `$ref` (or a one-entry `allOf`) points at.
fn resolve<'d>(document: &'d Value, schema: &'d Value) -> &'d Value {
    if let Some(name) = schema["$ref"].as_str() {
        let name = name.trim_start_matches("#/components/schemas/");
        return resolve(document, &document["components"]["schemas"][name]);
    }
    if let Some(first) = schema["allOf"].as_array().and_then(|a| a.first()) {
        return resolve(document, first);
    }
    schema
}

/// Every write operation with a JSON body: (method, path with its parameters filled, body schema).
fn write_operations(document: &Value) -> Vec<(Method, String, String, Value)> {
    let mut out = Vec::new();
    for (path, operations) in document["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let Some(schema) =
                operation["requestBody"]["content"]["application/json; charset=utf-8"]["schema"]
                    .as_object()
                    .or_else(|| {
                        operation["requestBody"]["content"]["application/json"]["schema"]
                            .as_object()
                    })
            else {
                continue;
            };
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let mut filled = path.clone();
            while let Some(start) = filled.find('{') {
                let end = filled[start..].find('}').unwrap() + start;
                filled.replace_range(start..=end, "x_1");
            }
            let id = operation["operationId"].as_str().unwrap().to_owned();
            out.push((method, filled, id, Value::Object(schema.clone())));
        }
    }
    out
}

/// The operations that speak a standard's wire format (AuthZEN): their errors are a message
/// string (`text/plain`), and their bodies take and ignore undeclared properties, as the standard
/// requires. Every other write body is closed.
fn open_operations(document: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for operations in document["paths"].as_object().unwrap().values() {
        for operation in operations.as_object().unwrap().values() {
            if operation["responses"]["400"]["content"]["text/plain; charset=utf-8"].is_object() {
                out.push(operation["operationId"].as_str().unwrap().to_owned());
            }
        }
    }
    out.sort();
    out
}

/// The AuthZEN operations that take a body.
const AUTHZEN_WRITES: [&str; 5] = [
    "authzenActionSearch",
    "authzenEvaluation",
    "authzenEvaluations",
    "authzenResourceSearch",
    "authzenSubjectSearch",
];

/// The string properties of an object schema, by name.
fn string_properties(document: &Value, schema: &Value) -> Vec<String> {
    let schema = resolve(document, schema);
    let mut names = Vec::new();
    if let Some(properties) = schema["properties"].as_object() {
        for (name, property) in properties {
            if resolve(document, property)["type"] == "string"
                && resolve(document, property)["enum"].is_null()
            {
                names.push(name.clone());
            }
        }
    }
    names
}

/// Operations a bootstrap key may not call (session-only self-service): they answer 401/403 to
/// it before the body is read, which is right.
const SESSION_ONLY: [&str; 3] = ["switchMember", "logout", "refreshSession"];

#[tokio::test]
async fn every_write_operation_refuses_unknown_fields_wrong_types_and_control_characters() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    let (status, document) = get(&cli, "/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let operations = write_operations(&document);
    assert!(operations.len() > 25, "{}", operations.len());
    let open = open_operations(&document);
    for (method, path, id, schema) in operations {
        let session_only = SESSION_ONLY.contains(&id.as_str());
        let is_open = open.contains(&id);
        let check = |answer: (StatusCode, Value), field: &str, what: &str| {
            if session_only && matches!(answer.0.as_u16(), 401 | 403) {
                return;
            }
            // An enveloped 400 names the field in `details.fields`; a message string names it in
            // the text.
            let named = match answer.1.as_str() {
                Some(text) if is_open => text.contains(&format!("{field} ")),
                _ => answer.1["error"]["details"]["fields"].get(field).is_some(),
            };
            assert!(
                answer.0 == StatusCode::BAD_REQUEST && named,
                "{id} {method} {path} with {what}: {} {}",
                answer.0,
                answer.1
            );
        };
        let unknown = json!({"plystra_unknown_field": 1});
        let answer = send(&cli, method.clone(), &path, Some(&unknown.to_string())).await;
        if is_open {
            // Ignored: what is refused is the missing required fields, not the unknown one.
            let text = answer.1.as_str().unwrap_or_default();
            assert!(
                answer.0 == StatusCode::BAD_REQUEST
                    && text.contains("is required")
                    && !text.contains("plystra_unknown_field"),
                "{id} {method} {path} with an unknown field: {} {}",
                answer.0,
                answer.1
            );
        } else {
            check(answer, "plystra_unknown_field", "an unknown field");
        }
        for field in string_properties(&document, &schema) {
            for (value, what) in [
                (json!(true), "a boolean"),
                (json!(42), "a number"),
                (json!("a\u{0}b"), "a NUL"),
                (json!("a".repeat(5_000)), "an over-long string"),
            ] {
                let body = Value::Object(Map::from_iter([(field.clone(), value)]));
                let answer = send(&cli, method.clone(), &path, Some(&body.to_string())).await;
                check(answer, &field, &format!("{what} in {field}"));
            }
        }
    }
}

/// Every string a write body takes declares its cap in the document (`maxLength`), recursively
/// through nested objects and arrays; free-form maps are capped by the extractor as a whole.
#[tokio::test]
async fn every_string_in_a_write_body_declares_a_max_length() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    let (_, document) = get(&cli, "/openapi.json").await;
    let mut missing = Vec::new();
    fn walk(document: &Value, schema: &Value, at: String, missing: &mut Vec<String>, depth: u8) {
        let schema = resolve(document, schema);
        if depth > 6 {
            return;
        }
        match schema["type"].as_str() {
            Some("string") if schema["enum"].is_null() && schema["format"] != "date-time" => {
                if schema["maxLength"].is_null() {
                    missing.push(at);
                }
            }
            Some("array") => walk(
                document,
                &schema["items"],
                format!("{at}[]"),
                missing,
                depth + 1,
            ),
            _ => {
                if let Some(properties) = schema["properties"].as_object() {
                    for (name, property) in properties {
                        // A documented field of a named type is `allOf: [type]` plus its own
                        // keywords; the caps sit on the field's own schema.
                        let own = if property["maxLength"].is_null() {
                            property
                        } else {
                            continue;
                        };
                        walk(document, own, format!("{at}.{name}"), missing, depth + 1);
                    }
                }
            }
        }
    }
    for (_, _, id, schema) in write_operations(&document) {
        walk(&document, &schema, id, &mut missing, 0);
    }
    assert!(
        missing.is_empty(),
        "strings without maxLength: {missing:#?}"
    );
}

/// Every object a write body takes, at any depth, says in the document that it takes no property
/// it does not declare (`additionalProperties: false`), because the server refuses them; the
/// free-form maps (`metadata`) say they take any (an `additionalProperties` schema). No
/// placeholder of the extractor's is left in the served document.
#[tokio::test]
async fn every_object_in_a_write_body_is_closed_to_undeclared_properties() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    let (_, document) = get(&cli, "/openapi.json").await;
    assert!(
        !document.to_string().contains("x-plystra-closed-object"),
        "a placeholder reached the document"
    );
    let mut open = Vec::new();
    fn walk(document: &Value, schema: &Value, at: String, open: &mut Vec<String>, depth: u8) {
        let schema = resolve(document, schema);
        if depth > 6 {
            return;
        }
        if schema["type"] == "array" {
            return walk(
                document,
                &schema["items"],
                format!("{at}[]"),
                open,
                depth + 1,
            );
        }
        let Some(properties) = schema["properties"].as_object() else {
            return;
        };
        if schema["additionalProperties"] != Value::Bool(false) {
            open.push(at.clone());
        }
        for (name, property) in properties {
            walk(document, property, format!("{at}.{name}"), open, depth + 1);
        }
    }
    let operations = write_operations(&document);
    assert!(operations.len() > 25, "{}", operations.len());
    // The standard's operations are open on purpose, and they are exactly AuthZEN's.
    let standard = open_operations(&document);
    let mut standard_writes: Vec<&str> = operations
        .iter()
        .map(|(_, _, id, _)| id.as_str())
        .filter(|id| standard.iter().any(|s| s == id))
        .collect();
    standard_writes.sort_unstable();
    assert_eq!(standard_writes, AUTHZEN_WRITES);
    for (_, _, id, schema) in operations {
        if !standard.contains(&id) {
            walk(&document, &schema, id, &mut open, 0);
        }
    }
    assert!(
        open.is_empty(),
        "objects open to undeclared properties: {open:#?}"
    );
    let yaml = cli.get("/openapi.yaml").send().await;
    let yaml = yaml.0.into_body().into_string().await.unwrap();
    assert!(
        yaml.contains("additionalProperties: false"),
        "the YAML document is not closed"
    );
    assert!(!yaml.contains("x-plystra-closed-object"));
    let docs = cli.get("/docs").send().await;
    let docs = docs.0.into_body().into_string().await.unwrap();
    assert!(
        docs.contains("\"additionalProperties\": false")
            && !docs.contains("x-plystra-closed-object"),
        "Swagger UI embeds another document"
    );
}

/// The pattern the document declares on a string with no stricter rule of its own: no control
/// character (the request guard's and the body extractor's one rule on characters).
const NO_CONTROL_CHARACTERS: &str = r"^[^\x00-\x1F\x7F-\x9F]*$";
/// The same for free text (descriptions, reasons), where tab, line feed and carriage return pass.
const FREE_TEXT: &str = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$";

/// Every string path or query parameter declares what the request guard enforces on it: a
/// `maxLength` no larger than the guard's cap and a pattern refusing control characters (or a
/// stricter pattern of its own, or a format).
#[tokio::test]
async fn every_path_and_query_string_parameter_declares_max_length_and_pattern() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    let (_, document) = get(&cli, "/openapi.json").await;
    let mut wrong = Vec::new();
    let mut seen = 0;
    for (path, operations) in document["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let schema = resolve(&document, &parameter["schema"]);
                let location = parameter["in"].as_str().unwrap();
                if schema["type"] != "string" || !schema["enum"].is_null() {
                    continue;
                }
                seen += 1;
                let cap = match location {
                    "path" => plystra_contracts::limits::MAX_PATH_SEGMENT_LENGTH,
                    "query" => plystra_contracts::limits::MAX_QUERY_VALUE_LENGTH,
                    _ => continue,
                };
                let name = format!("{method} {path} {location} {}", parameter["name"]);
                match schema["maxLength"].as_u64() {
                    Some(max) if max as usize <= cap => {}
                    other => wrong.push(format!("{name}: maxLength {other:?}")),
                }
                if schema["pattern"].is_null() && schema["format"].is_null() {
                    wrong.push(format!("{name}: no pattern"));
                }
            }
        }
    }
    assert!(seen > 50, "{seen}");
    assert!(wrong.is_empty(), "{wrong:#?}");
    // A parameter without a stricter rule carries exactly the guard's rule.
    let space_id = &document["paths"]["/api/v1/spaces/{space_id}"]["get"]["parameters"][0];
    assert_eq!(space_id["name"], "space_id", "{space_id}");
    assert_eq!(space_id["schema"]["pattern"], NO_CONTROL_CHARACTERS);
}

/// What the document declares on path parameters is what the server does: a value the declared
/// pattern refuses (a control character) or longer than the declared `maxLength` is refused with a
/// 400 naming the parameter, on every parameterised path.
#[tokio::test]
async fn a_path_parameter_the_document_refuses_is_refused() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    let (_, document) = get(&cli, "/openapi.json").await;
    let mut checked = 0;
    for (path, operations) in document["paths"].as_object().unwrap() {
        let Some(start) = path.find('{') else {
            continue;
        };
        let end = path[start..].find('}').unwrap() + start;
        let name = &path[start + 1..end];
        for (method, operation) in operations.as_object().unwrap() {
            let parameter = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p["name"] == name && p["in"] == "path")
                .unwrap_or_else(|| panic!("{method} {path}: {name} is not documented"));
            let max = parameter["schema"]["maxLength"].as_u64().unwrap_or(10_000) as usize;
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            for (value, what) in [
                ("x%01y".to_owned(), "a control character"),
                ("x%C2%85".to_owned(), "a C1 control character"),
                ("a".repeat(max + 1), "one character too many"),
            ] {
                let mut filled = path.clone();
                filled.replace_range(start..=end, &value);
                while let Some(s) = filled.find('{') {
                    let e = filled[s..].find('}').unwrap() + s;
                    filled.replace_range(s..=e, "x_1");
                }
                let body =
                    matches!(method, Method::POST | Method::PUT | Method::PATCH).then_some("{}");
                let answer = send(&cli, method.clone(), &filled, body).await;
                assert!(
                    answer.0 == StatusCode::BAD_REQUEST
                        && answer.1["error"]["details"]["parameter"] == *name,
                    "{method} {path} with {what} in {name}: {} {}",
                    answer.0,
                    answer.1
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "{checked}");
}

/// Every string a write body takes declares a pattern: the rule on control characters (the free
/// text one for descriptions, reasons and conditions), or a stricter pattern of its own; formatted strings
/// (date-times) say it through their format.
#[tokio::test]
async fn every_string_in_a_write_body_declares_a_pattern() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    let (_, document) = get(&cli, "/openapi.json").await;
    let mut wrong = Vec::new();
    fn walk(document: &Value, schema: &Value, at: String, wrong: &mut Vec<String>, depth: u8) {
        if depth > 6 {
            return;
        }
        let own = schema;
        let schema = resolve(document, schema);
        match schema["type"].as_str() {
            Some("string") if schema["enum"].is_null() && schema["format"].is_null() => {
                let pattern = own["pattern"].as_str().or(schema["pattern"].as_str());
                let field = at.rsplit('.').next().unwrap_or_default();
                let field = field.trim_end_matches("[]");
                let free_text = plystra_contracts::limits::is_free_text(field);
                match pattern {
                    None => wrong.push(format!("{at}: no pattern")),
                    Some(NO_CONTROL_CHARACTERS) if free_text => {
                        wrong.push(format!("{at}: free text refuses line breaks"))
                    }
                    Some(FREE_TEXT) if !free_text => {
                        wrong.push(format!("{at}: takes line breaks, the server refuses them"))
                    }
                    Some(_) => {}
                }
            }
            Some("array") => walk(
                document,
                &schema["items"],
                format!("{at}[]"),
                wrong,
                depth + 1,
            ),
            _ => {
                for (name, property) in schema["properties"].as_object().into_iter().flatten() {
                    walk(document, property, format!("{at}.{name}"), wrong, depth + 1);
                }
            }
        }
    }
    for (_, _, id, schema) in write_operations(&document) {
        walk(&document, &schema, id, &mut wrong, 0);
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// Fields the handlers hold to a shape (keywords, identifiers, slugs, caller-chosen IDs) declare
/// it, so poem checks it first and the document says it; fields the server refuses empty declare
/// `minLength: 1`; the revoke reasons declare the 500 characters the handlers allow.
#[tokio::test]
async fn shaped_fields_declare_their_pattern_and_length() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    let (_, document) = get(&cli, "/openapi.json").await;
    const KEYWORD: &str = "^[a-z][a-z0-9_]*$";
    const IDENTIFIER: &str = "^[a-z_][a-z0-9_]*$";
    let expected: &[(&str, &str, Option<&str>, Option<u64>)] = &[
        ("RoleCreateRequest", "key", Some(KEYWORD), Some(64)),
        ("RoleUpdateRequest", "key", Some(KEYWORD), Some(64)),
        (
            "PermissionCreateRequest",
            "resource",
            Some(KEYWORD),
            Some(64),
        ),
        ("PermissionCreateRequest", "action", Some(KEYWORD), Some(64)),
        (
            "PermissionUpdateRequest",
            "resource",
            Some(KEYWORD),
            Some(64),
        ),
        ("PermissionUpdateRequest", "action", Some(KEYWORD), Some(64)),
        ("SpaceCreateRequest", "type", Some(KEYWORD), Some(64)),
        ("SpaceUpdateRequest", "type", Some(KEYWORD), Some(64)),
        (
            "SpaceCreateRequest",
            "slug",
            Some("^[a-z0-9][a-z0-9-]*$"),
            Some(64),
        ),
        (
            "MemberCreateRequest",
            "member_type",
            Some(KEYWORD),
            Some(64),
        ),
        (
            "MemberUpdateRequest",
            "member_type",
            Some(KEYWORD),
            Some(64),
        ),
        (
            "UserMemberCreateRequest",
            "relation_type",
            Some(KEYWORD),
            Some(64),
        ),
        ("GroupCreateRequest", "name", Some(KEYWORD), Some(64)),
        (
            "ResourceTypeMutationRequest",
            "key",
            Some(KEYWORD),
            Some(64),
        ),
        (
            "ResourceActionMutationRequest",
            "key",
            Some(KEYWORD),
            Some(64),
        ),
        (
            "ResourceMappingMutationRequest",
            "id_field",
            Some(IDENTIFIER),
            Some(63),
        ),
        (
            "ResourceMappingMutationRequest",
            "table_name",
            Some(IDENTIFIER),
            Some(63),
        ),
        (
            "SpaceCreateRequest",
            "id",
            Some("^space_[a-z0-9_]{1,120}$"),
            None,
        ),
        ("RevokeRequest", "revoked_reason", None, Some(500)),
        ("RevokeRequest", "reason", None, Some(500)),
        ("UserMemberRevokeRequest", "revoked_reason", None, Some(500)),
        ("UserMemberUpdateRequest", "revoked_reason", None, Some(500)),
        ("ResourceArchiveRequest", "reason", None, Some(1024)),
    ];
    let mut wrong = Vec::new();
    for (schema, field, pattern, max) in expected {
        let property = &document["components"]["schemas"][schema]["properties"][field];
        if let Some(pattern) = pattern
            && property["pattern"] != *pattern
        {
            wrong.push(format!("{schema}.{field}: pattern {}", property["pattern"]));
        }
        if let Some(max) = max
            && property["maxLength"] != *max
        {
            wrong.push(format!(
                "{schema}.{field}: maxLength {}",
                property["maxLength"]
            ));
        }
    }
    for (schema, field) in [
        ("SpaceCreateRequest", "name"),
        ("RoleCreateRequest", "name"),
        ("MemberCreateRequest", "display_name"),
        ("UserCreateRequest", "email"),
        ("MemberRoleCreateRequest", "member_id"),
        ("UserMemberCreateRequest", "user_id"),
    ] {
        let property = &document["components"]["schemas"][schema]["properties"][field];
        if property["minLength"] != 1 {
            wrong.push(format!(
                "{schema}.{field}: minLength {}",
                property["minLength"]
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// Wherever the document declares `minLength: 1`, an empty string is refused naming the field.
#[tokio::test]
async fn every_declared_min_length_is_enforced() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    let (_, document) = get(&cli, "/openapi.json").await;
    let mut checked = 0;
    for (method, path, id, schema) in write_operations(&document) {
        if SESSION_ONLY.contains(&id.as_str()) {
            continue;
        }
        let schema = resolve(&document, &schema);
        for (field, property) in schema["properties"].as_object().into_iter().flatten() {
            if property["minLength"].as_u64().unwrap_or(0) == 0 {
                continue;
            }
            let body = Value::Object(Map::from_iter([(field.clone(), json!(""))]));
            let answer = send(&cli, method.clone(), &path, Some(&body.to_string())).await;
            assert!(
                answer.0 == StatusCode::BAD_REQUEST
                    && answer.1["error"]["details"]["fields"].get(field).is_some(),
                "{id} {method} {path} with an empty {field}: {} {}",
                answer.0,
                answer.1
            );
            checked += 1;
        }
    }
    assert!(checked > 20, "{checked}");
}

/// Every date-time query filter (`created_at_from`, `…_to`, any `…_at`) declares `format:
/// date-time`, and a value that is not one is refused naming the parameter.
#[tokio::test]
async fn date_time_query_filters_declare_their_format() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    let (_, document) = get(&cli, "/openapi.json").await;
    let mut seen = 0;
    let mut wrong = Vec::new();
    for (path, operations) in document["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let name = parameter["name"].as_str().unwrap();
                let timed = name.starts_with("created_at")
                    || name.ends_with("_at")
                    || name.ends_with("_after")
                    || name.ends_with("_before");
                if parameter["in"] != "query" || !timed {
                    continue;
                }
                seen += 1;
                if parameter["schema"]["format"] != "date-time" {
                    wrong.push(format!("{method} {path} {name}: {}", parameter["schema"]));
                }
            }
        }
    }
    assert!(seen >= 4, "{seen}");
    assert!(wrong.is_empty(), "{wrong:#?}");
    for path in [
        "/api/v1/audit/logs?created_at_from=yesterday",
        "/api/v1/audit/logs?created_at_to=2026-13-01T00:00:00Z",
    ] {
        let answer = get(&cli, path).await;
        let name = if path.contains("from") {
            "created_at_from"
        } else {
            "created_at_to"
        };
        refused_naming(&answer, name);
    }
    let (status, body) = get(
        &cli,
        "/api/v1/audit/logs?created_at_from=2026-01-31T12:00:00%2B02:00",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// An unsigned integer says in the document that it is at least 0 (poem refuses a negative one),
/// and a negative one is a 400.
#[tokio::test]
async fn unsigned_integers_declare_their_minimum() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    let (_, document) = get(&cli, "/openapi.json").await;
    let mut undeclared = Vec::new();
    fn walk(value: &Value, at: String, undeclared: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                // What the server sends (response headers) is not input.
                if at.contains("/responses/") {
                    return;
                }
                if map.get("type") == Some(&json!("integer"))
                    && map
                        .get("format")
                        .and_then(Value::as_str)
                        .is_some_and(|f| f.starts_with("uint"))
                    && map.get("minimum") != Some(&json!(0.0))
                    && map.get("minimum") != Some(&json!(0))
                {
                    undeclared.push(at.clone());
                }
                for (key, item) in map {
                    walk(item, format!("{at}/{key}"), undeclared);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, format!("{at}/{i}"), undeclared);
                }
            }
            _ => {}
        }
    }
    walk(&document, String::new(), &mut undeclared);
    assert!(
        undeclared.is_empty(),
        "unsigned without minimum: {undeclared:#?}"
    );
    let answer = post(
        &cli,
        "/api/v1/authz/check",
        &json!({"actor": {"user_id": "user_a", "member_id": "member_a", "space_id": "space_a",
            "user_member_id": "um_a"}, "resource_type": "invoice", "resource_id": "inv_1",
            "action": "approve", "consistency": {"at_least_revision": -1}}),
    )
    .await;
    assert_eq!(answer.0, StatusCode::BAD_REQUEST, "{}", answer.1);
}
