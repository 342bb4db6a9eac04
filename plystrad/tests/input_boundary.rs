//! End-to-end tests of the input boundary through the real application and database (issue 15,
//! items 8, 9 and the length caps of item 5): control characters in bodies, path IDs, list filters
//! and the public login are refused with 400 naming the field, never a 500 on PostgreSQL nor
//! stored on SQLite; JSON booleans and numbers are not coerced into strings; unknown body fields
//! are refused by name; every string a write body or a path takes is capped at a documented
//! length. A sweep over the document's write operations checks the rules hold on every one.

use plystra_kernel::storage::DatabaseConfig;
use plystra_kernel::storage::testing::TestDatabase;
use plystra_kernel::{CapabilitySource, Environment, KernelConfig, boot};
use poem::http::{Method, StatusCode};
use poem::test::TestClient;
use serde_json::{Map, Value, json};

const KEY: &str = "input-boundary-test-key-0123456789abcdef";

type Client = TestClient<poem::endpoint::BoxEndpoint<'static>>;

async fn setup() -> Option<(TestDatabase, Client)> {
    let database = TestDatabase::new().await?;
    let config = KernelConfig {
        bootstrap_api_key: Some(KEY.to_owned()),
        build: plystrad::cli::build_info(),
        environment: Environment::Development,
        database: Some(DatabaseConfig::new(database.url.clone())),
        settings: [("PLYSTRA_API_KEY_PERMISSIONS".to_owned(), "*".to_owned())].into(),
        ..KernelConfig::default()
    };
    let cli = TestClient::new(boot(config, CapabilitySource::linked()).await.unwrap().app);
    Some((database, cli))
}

async fn json_of(resp: poem::test::TestResponse) -> (StatusCode, Value) {
    let status = resp.0.status();
    let text = resp.0.into_body().into_string().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"))
    };
    (status, body)
}

/// Sends `body` (raw JSON text, so it can hold anything) with the bootstrap key.
async fn send(cli: &Client, method: Method, path: &str, body: Option<&str>) -> (StatusCode, Value) {
    let mut req = cli.request(method, path).header("X-Plystra-API-Key", KEY);
    if let Some(body) = body {
        req = req.content_type("application/json").body(body.to_owned());
    }
    json_of(req.send().await).await
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
    let Some((_db, cli)) = setup().await else {
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
    let Some((_db, cli)) = setup().await else {
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
    let Some((_db, cli)) = setup().await else {
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
    let Some((_db, cli)) = setup().await else {
        return;
    };
    let answer = json_of(
        cli.post("/api/v1/auth/login")
            .content_type("application/json")
            .body(r#"{"email": "ana\u0000@example.com", "password": "correct horse battery"}"#)
            .send()
            .await,
    )
    .await;
    refused_naming(&answer, "email");
}

#[tokio::test]
async fn json_booleans_and_numbers_are_not_strings() {
    let Some((_db, cli)) = setup().await else {
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
    let Some((_db, cli)) = setup().await else {
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
    let Some((_db, cli)) = setup().await else {
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
    let Some((_db, cli)) = setup().await else {
        return;
    };
    let (status, document) = get(&cli, "/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let operations = write_operations(&document);
    assert!(operations.len() > 25, "{}", operations.len());
    for (method, path, id, schema) in operations {
        let session_only = SESSION_ONLY.contains(&id.as_str());
        let check = |answer: (StatusCode, Value), field: &str, what: &str| {
            if session_only && matches!(answer.0.as_u16(), 401 | 403) {
                return;
            }
            assert!(
                answer.0 == StatusCode::BAD_REQUEST
                    && answer.1["error"]["details"]["fields"].get(field).is_some(),
                "{id} {method} {path} with {what}: {} {}",
                answer.0,
                answer.1
            );
        };
        let unknown = json!({"plystra_unknown_field": 1});
        let answer = send(&cli, method.clone(), &path, Some(&unknown.to_string())).await;
        check(answer, "plystra_unknown_field", "an unknown field");
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
    let Some((_db, cli)) = setup().await else {
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
