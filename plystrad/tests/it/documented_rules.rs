//! The per-operation rules the document states (issue 15, item 15, part B), through the real
//! router on a real database: what the served document declares (required fields, the either/or
//! alternatives as `anyOf`, batch sizes) and that the server does what it declares — a request
//! the document allows is decided, a reference to nothing is a 404 with its entity's code, a body
//! that contradicts its path or the record is a 409, a blank optional reason means none.

use poem::http::StatusCode;
use serde_json::{Value, json};

use crate::support::app::{Client, app, call, create};

/// The served document's schema `name`.
async fn schema(cli: &Client, name: &str) -> Value {
    let (status, document) = call(cli, "GET", "/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    document["components"]["schemas"][name].clone()
}

fn required(schema: &Value) -> Vec<&str> {
    let mut names: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    names.sort_unstable();
    names
}

/// The `required` lists of an `anyOf`'s alternatives (an object's alternatives sit in a
/// one-member `allOf` beside its properties, so that client generators keep it one model).
fn alternatives(any_of: &Value) -> Vec<Vec<&str>> {
    any_of
        .as_array()
        .unwrap_or_else(|| panic!("no anyOf: {any_of}"))
        .iter()
        .map(required)
        .collect()
}

fn check(actor: Value, target: Value) -> Value {
    let mut body = json!({"actor": actor, "action": "approve"});
    for (k, v) in target.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

fn actor() -> Value {
    json!({"user_id": "user_nobody", "member_id": "member_nobody", "user_member_id": "um_nobody", "space_id": "space_nobody"})
}

#[tokio::test]
async fn the_check_schemas_say_which_fields_are_required_and_the_server_agrees() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    let request = schema(&cli, "AuthzRequest").await;
    assert_eq!(required(&request), ["action", "actor"], "{request}");
    let all_of = request["allOf"].as_array().expect("AuthzRequest has allOf");
    assert_eq!(
        alternatives(&all_of[0]["anyOf"]),
        [vec!["resource_type"], vec!["resource"]]
    );
    assert_eq!(
        alternatives(&all_of[1]["anyOf"]),
        [
            vec!["resource_id"],
            vec!["resource"],
            vec!["grants", "resource"]
        ]
    );
    let actor_schema = schema(&cli, "AuthzActor").await;
    assert_eq!(
        required(&actor_schema),
        ["member_id", "space_id", "user_id"]
    );
    assert_eq!(
        alternatives(&actor_schema["allOf"][0]["anyOf"]),
        [vec!["user_member_id"], vec!["binding_id"]]
    );
    let grant = schema(&cli, "InlineGrant").await;
    assert_eq!(required(&grant), ["action", "resource", "scope"]);
    assert_eq!(
        alternatives(&grant["allOf"][0]["anyOf"]),
        [vec!["role_key"], vec!["role_id"]]
    );
    // `maxItems` is the most any deployment may set (`PLYSTRA_AUTHZ_MAX_BATCH`, 100 by default:
    // past it, a 400 naming `checks`).
    let batch = schema(&cli, "BatchCheckRequest").await;
    assert_eq!(
        (
            &batch["properties"]["checks"]["minItems"],
            &batch["properties"]["checks"]["maxItems"]
        ),
        (&json!(1), &json!(10000))
    );
    for field in ["action", "resource_type", "resource_id"] {
        assert!(
            request["properties"][field]["pattern"].is_string(),
            "{field} says it must not be blank"
        );
    }

    // Each documented alternative is decided: unknown IDs are a 404, never a 400.
    let mut by_binding = actor();
    by_binding["binding_id"] = by_binding["user_member_id"].take();
    by_binding.as_object_mut().unwrap().remove("user_member_id");
    for body in [
        check(
            actor(),
            json!({"resource_type": "invoice", "resource_id": "invoice_1"}),
        ),
        check(
            by_binding,
            json!({"resource": {"type": "invoice", "id": "invoice_1"}}),
        ),
    ] {
        let (status, json) = call(&cli, "POST", "/api/v1/authz/check", Some(body)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{json}");
    }
    // What the document refuses, the server refuses, naming the fields.
    for (body, field) in [
        (json!({"actor": actor()}), "action"),
        (
            check(
                json!({"user_id": "user_nobody", "member_id": "m", "space_id": "s"}),
                json!({"resource_type": "invoice", "resource_id": "invoice_1"}),
            ),
            "actor.user_member_id",
        ),
        (
            check(actor(), json!({"resource_id": "invoice_1"})),
            "resource_type",
        ),
        (
            check(
                actor(),
                json!({"resource_type": "invoice", "resource_id": "invoice_1", "resource": {"id": " "}}),
            ),
            "resource.id",
        ),
    ] {
        let (status, json) = call(&cli, "POST", "/api/v1/authz/check", Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
        // poem-openapi's own pattern check names a nested field by its last part.
        let last = field.rsplit('.').next().unwrap();
        let fields = &json["error"]["details"]["fields"];
        assert!(
            fields[field].is_string() || fields[last].is_string(),
            "{field}: {json}"
        );
    }
    // A batch with a check that is not well-formed is refused whole, naming it.
    let good = check(
        actor(),
        json!({"resource_type": "invoice", "resource_id": "invoice_1"}),
    );
    let (status, json) = call(
        &cli,
        "POST",
        "/api/v1/authz/check/batch",
        Some(json!({"checks": [good, {"actor": actor()}]})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert!(
        json["error"]["details"]["fields"]["checks[1].action"].is_string(),
        "{json}"
    );
}

#[tokio::test]
async fn a_logout_that_names_no_session_is_unauthenticated() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    // Neither a refresh token nor a Bearer token: nothing names a session to end.
    let resp = cli
        .post("/api/v1/auth/logout")
        .body_json(&json!({}))
        .send()
        .await;
    resp.assert_status(StatusCode::UNAUTHORIZED);
    let json: Value =
        serde_json::from_str(&resp.0.into_body().into_string().await.unwrap()).unwrap();
    assert_eq!(json["error"]["code"], "AUTHENTICATION_REQUIRED", "{json}");
    // A refresh token that names nothing is still a 200 that ended nothing.
    let (status, json) = call(
        &cli,
        "POST",
        "/api/v1/auth/logout",
        Some(json!({"refresh_token": "prt_nothing"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["data"]["logged_out"], false);
}

async fn registry_fixture(cli: &Client) {
    create(
        cli,
        "/api/v1/spaces",
        json!({"id": "space_acme", "name": "Acme"}),
    )
    .await;
    create(
        cli,
        "/api/v1/spaces",
        json!({"id": "space_other", "name": "Other"}),
    )
    .await;
    create(
        cli,
        "/api/v1/resource-types",
        json!({"key": "invoice", "display_name": "Invoice"}),
    )
    .await;
    create(
        cli,
        "/api/v1/spaces/space_acme/resources",
        json!({"id": "invoice_001", "resource_type": "invoice"}),
    )
    .await;
}

#[tokio::test]
async fn a_body_that_contradicts_its_path_or_record_is_a_conflict() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    registry_fixture(&cli).await;
    let (status, json) = call(
        &cli,
        "POST",
        "/api/v1/spaces/space_acme/resources",
        Some(json!({"resource_type": "invoice", "space_id": "space_other"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{json}");
    assert_eq!(json["error"]["code"], "CONFLICT");
    assert_eq!(json["error"]["details"]["field"], "space_id", "{json}");
    for body in [
        json!({"space_id": "space_other"}),
        json!({"id": "invoice_002"}),
    ] {
        let (status, json) = call(
            &cli,
            "PATCH",
            "/api/v1/spaces/space_acme/resources/invoice_001",
            Some(body),
        )
        .await;
        assert_eq!(status, StatusCode::CONFLICT, "{json}");
    }
    // Equal values are accepted, as the document says.
    let (status, json) = call(
        &cli,
        "PATCH",
        "/api/v1/spaces/space_acme/resources/invoice_001",
        Some(json!({"space_id": "space_acme", "id": "invoice_001"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
}

#[tokio::test]
async fn a_blank_archive_reason_means_no_reason() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    registry_fixture(&cli).await;
    let (status, json) = call(
        &cli,
        "POST",
        "/api/v1/spaces/space_acme/resources/invoice_001/archive",
        Some(json!({"reason": "  "})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["data"]["status"], "archived");
}

#[tokio::test]
async fn a_body_reference_to_nothing_is_a_404_with_the_entity_code() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    registry_fixture(&cli).await;
    create(
        &cli,
        "/api/v1/users",
        json!({"id": "user_alice", "email": "alice@example.com"}),
    )
    .await;
    create(
        &cli,
        "/api/v1/spaces/space_acme/members",
        json!({"id": "member_alice", "display_name": "Alice"}),
    )
    .await;
    for (body, code) in [
        (
            json!({"user_id": "user_nobody", "member_id": "member_alice"}),
            "USER_NOT_FOUND",
        ),
        (
            json!({"user_id": "user_alice", "member_id": "member_nobody"}),
            "MEMBER_NOT_FOUND",
        ),
    ] {
        let (status, json) = call(
            &cli,
            "POST",
            "/api/v1/spaces/space_acme/user-members",
            Some(body),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{json}");
        assert_eq!(json["error"]["code"], code, "{json}");
    }
    create(
        &cli,
        "/api/v1/resource-types/invoice/actions",
        json!({"key": "approve", "display_name": "Approve"}),
    )
    .await;
    let (status, json) = call(
        &cli,
        "POST",
        "/api/v1/permissions",
        Some(json!({"resource": "invoice", "action": "approve", "scope": "space", "audit_space_id": "space_nobody"})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{json}");
    assert_eq!(json["error"]["code"], "SPACE_NOT_FOUND", "{json}");
    assert_eq!(
        json["error"]["details"]["field"], "audit_space_id",
        "{json}"
    );
}

// Issue 15, item 15, part C: the last per-operation rules the document did not state.

/// The served document's property `field` of schema `name`.
async fn property(cli: &Client, name: &str, field: &str) -> Value {
    let property = schema(cli, name).await["properties"][field].clone();
    assert!(property.is_object(), "{name}.{field} is not documented");
    property
}

/// The fields `error.details.fields` names.
fn refused_fields(json: &Value) -> Vec<String> {
    json["error"]["details"]["fields"]
        .as_object()
        .map(|f| f.keys().cloned().collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn text_the_handlers_trim_is_declared_not_blank_and_taken_as_declared() {
    use plystra_contracts::limits::{NOT_BLANK, NOT_BLANK_FREE_TEXT};
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    for (name, field, pattern) in [
        ("ResourceCreateRequest", "external_id", NOT_BLANK),
        ("ResourceCreateRequest", "display_name", NOT_BLANK),
        ("ResourceUpdateRequest", "external_id", NOT_BLANK),
        ("ResourceTypeMutationRequest", "source", NOT_BLANK),
        (
            "ResourceTypeMutationRequest",
            "description",
            NOT_BLANK_FREE_TEXT,
        ),
        ("ResourceTypeMutationRequest", "display_name", NOT_BLANK),
        ("ResourceMappingMutationRequest", "source", NOT_BLANK),
        ("ResourceMappingMutationRequest", "display_name", NOT_BLANK),
        ("MemberCreateRequest", "display_name", NOT_BLANK),
        ("MemberUpdateRequest", "display_name", NOT_BLANK),
        ("GroupCreateRequest", "display_name", NOT_BLANK),
        ("GroupUpdateRequest", "display_name", NOT_BLANK),
        ("UserCreateRequest", "username", NOT_BLANK),
        ("UserCreateRequest", "phone", NOT_BLANK),
        ("UserUpdateRequest", "username", NOT_BLANK),
        ("ApiKeyCreateRequest", "name", NOT_BLANK),
    ] {
        let property = property(&cli, name, field).await;
        assert_eq!(property["pattern"], pattern, "{name}.{field}: {property}");
    }
    // The registry's text is at most 1024 characters; the document says so.
    for (name, field) in [
        ("ResourceTypeMutationRequest", "source"),
        ("ResourceTypeMutationRequest", "description"),
        ("ResourceMappingMutationRequest", "source"),
    ] {
        let property = property(&cli, name, field).await;
        assert_eq!(property["maxLength"], 1024, "{name}.{field}: {property}");
    }

    registry_fixture(&cli).await;
    // Blank is refused by the declared pattern, naming the field; text around blanks is trimmed.
    for (path, body, field) in [
        (
            "/api/v1/spaces/space_acme/resources",
            json!({"resource_type": "invoice", "external_id": " \u{3000}"}),
            "external_id",
        ),
        (
            "/api/v1/resource-types",
            json!({"key": "order", "source": "  "}),
            "source",
        ),
        (
            "/api/v1/resource-types",
            json!({"key": "order", "description": "\n\t "}),
            "description",
        ),
        (
            "/api/v1/spaces/space_acme/members",
            json!({"display_name": " "}),
            "display_name",
        ),
    ] {
        let (status, json) = call(&cli, "POST", path, Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {json}");
        assert_eq!(refused_fields(&json), [field], "{json}");
    }
    let json = create(
        &cli,
        "/api/v1/resource-types",
        json!({"key": "order", "source": " plugin ", "description": "Line one\nline two"}),
    )
    .await;
    assert_eq!(json["data"]["source"], "plugin", "{json}");
    // `maxLength` counts characters, and so does the server: 255 two-byte characters pass.
    let long = "é".repeat(255);
    let json = create(
        &cli,
        "/api/v1/spaces/space_acme/resources",
        json!({"resource_type": "invoice", "external_id": long}),
    )
    .await;
    assert_eq!(json["data"]["external_id"], long.as_str());
}

async fn binding_fixture(cli: &Client) {
    create(
        cli,
        "/api/v1/spaces",
        json!({"id": "space_acme", "name": "Acme"}),
    )
    .await;
    create(
        cli,
        "/api/v1/spaces",
        json!({"id": "space_other", "name": "Other"}),
    )
    .await;
    create(
        cli,
        "/api/v1/users",
        json!({"id": "user_alice", "email": "alice@example.com"}),
    )
    .await;
    create(
        cli,
        "/api/v1/spaces/space_acme/members",
        json!({"id": "member_alice", "display_name": "Alice"}),
    )
    .await;
    create(
        cli,
        "/api/v1/spaces/space_other/members",
        json!({"id": "member_elsewhere", "display_name": "Elsewhere"}),
    )
    .await;
}

#[tokio::test]
async fn a_blank_revoked_reason_means_none_and_a_reason_takes_line_breaks() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    binding_fixture(&cli).await;
    let json = create(
        &cli,
        "/api/v1/spaces/space_acme/user-members",
        json!({"id": "um_alice", "user_id": "user_alice", "member_id": "member_alice", "status": "revoked", "revoked_reason": "  "}),
    )
    .await;
    assert_eq!(json["data"]["status"], "revoked");
    assert!(json["data"]["revoked_reason"].is_null(), "{json}");
    let (status, json) = call(
        &cli,
        "PATCH",
        "/api/v1/spaces/space_acme/user-members/um_alice",
        Some(json!({"revoked_reason": "Left the team.\nSee ticket 12."})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(
        json["data"]["revoked_reason"],
        "Left the team.\nSee ticket 12."
    );
    // A blank reason on a change keeps the stored one.
    let (status, json) = call(
        &cli,
        "PATCH",
        "/api/v1/spaces/space_acme/user-members/um_alice",
        Some(json!({"revoked_reason": " "})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(
        json["data"]["revoked_reason"],
        "Left the team.\nSee ticket 12."
    );
}

#[tokio::test]
async fn a_binding_reference_outside_the_space_is_a_404_and_a_changed_user_a_conflict() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    binding_fixture(&cli).await;
    for (body, field) in [
        (
            json!({"user_id": "user_alice", "member_id": "member_elsewhere"}),
            "member_id",
        ),
        (
            json!({"user_id": "user_alice", "member_id": "member_alice", "linked_by_member_id": "member_elsewhere"}),
            "linked_by_member_id",
        ),
    ] {
        let (status, json) = call(
            &cli,
            "POST",
            "/api/v1/spaces/space_acme/user-members",
            Some(body),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{json}");
        assert_eq!(json["error"]["code"], "MEMBER_NOT_FOUND", "{json}");
        assert_eq!(json["error"]["details"]["field"], field, "{json}");
    }
    create(
        &cli,
        "/api/v1/spaces/space_acme/user-members",
        json!({"id": "um_alice", "user_id": "user_alice", "member_id": "member_alice"}),
    )
    .await;
    let (status, json) = call(
        &cli,
        "PATCH",
        "/api/v1/spaces/space_acme/user-members/um_alice",
        Some(json!({"user_id": "user_bob"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{json}");
    assert_eq!(json["error"]["details"]["field"], "user_id", "{json}");
}

#[tokio::test]
async fn the_email_rule_and_the_password_length_are_declared_and_taken_as_declared() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    for name in ["UserCreateRequest", "UserUpdateRequest"] {
        let email = property(&cli, name, "email").await;
        assert!(email["pattern"].is_string(), "{name}.email: {email}");
        let password = property(&cli, name, "password").await;
        assert_eq!(password["minLength"], 12, "{name}.password: {password}");
        assert_eq!(password["maxLength"], 1024, "{name}.password: {password}");
    }
    // What the pattern allows, the server takes: non-ASCII letters, a dot-only local part, 254
    // characters of which many are two bytes.
    let long = format!("{}@example.com", "é".repeat(254 - "@example.com".len()));
    for (i, email) in ["é@ü.x", ".@a.b", "A+b@Sub.Example.COM", long.as_str()]
        .into_iter()
        .enumerate()
    {
        let (status, json) = call(
            &cli,
            "POST",
            "/api/v1/users",
            Some(json!({"id": format!("user_{i}"), "email": email})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{email}: {json}");
    }
    // What it refuses, the server refuses naming the field: through the declared pattern and
    // the declared length, before the handler.
    for (body, field) in [
        (json!({"email": "a@b"}), "email"),
        (json!({"email": "a@b.c\u{200b}"}), "email"),
        (json!({"email": "a@.b.c"}), "email"),
        (
            json!({"email": "bob@example.com", "password": "short-pass!"}),
            "password",
        ),
    ] {
        let (status, json) = call(&cli, "POST", "/api/v1/users", Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {json}");
        assert_eq!(refused_fields(&json), [field], "{json}");
        let message = json["error"]["message"].as_str().unwrap_or_default();
        assert!(
            !message.contains("like name@example.com") && !message.contains("at least 12"),
            "refused by the handler, not by the document: {json}"
        );
    }
}

#[tokio::test]
async fn api_key_permission_keys_are_declared_one_to_a_hundred_keys() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    let keys = property(&cli, "ApiKeyCreateRequest", "permission_keys").await;
    assert_eq!(
        (&keys["minItems"], &keys["maxItems"]),
        (&json!(1), &json!(100))
    );
    assert_eq!(
        keys["items"]["pattern"], r"^(\*|[a-z0-9_-]+:(\*|[a-z0-9_-]+))$",
        "{keys}"
    );
    for permission_keys in [json!([]), json!(["users"])] {
        let (status, json) = call(
            &cli,
            "POST",
            "/api/v1/api-keys",
            Some(json!({"name": "ci", "level": "instance", "permission_keys": permission_keys})),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
        assert!(
            refused_fields(&json)
                .iter()
                .all(|f| f.starts_with("permission_keys")),
            "{json}"
        );
    }
    let (status, json) = call(
        &cli,
        "POST",
        "/api/v1/api-keys",
        Some(json!({"name": "ci", "level": "instance", "permission_keys": ["users:read", "*"]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{json}");
}

#[tokio::test]
async fn a_group_needs_a_name_or_a_path_and_a_parent_that_names_nothing_is_a_404() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    let request = schema(&cli, "GroupCreateRequest").await;
    assert_eq!(
        alternatives(&request["allOf"][0]["anyOf"]),
        [vec!["name"], vec!["path"]]
    );
    create(
        &cli,
        "/api/v1/spaces",
        json!({"id": "space_acme", "name": "Acme"}),
    )
    .await;
    for body in [
        json!({"name": "apac", "parent_id": "group_nothing"}),
        json!({"name": "apac", "parent_id": "group_nothing", "parent_group_id": "group_other"}),
        json!({"path": "nothing.apac"}),
    ] {
        let (status, json) =
            call(&cli, "POST", "/api/v1/spaces/space_acme/groups", Some(body)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{json}");
        assert_eq!(json["error"]["code"], "GROUP_NOT_FOUND", "{json}");
    }
    let (status, json) = call(
        &cli,
        "POST",
        "/api/v1/spaces/space_acme/groups",
        Some(json!({"display_name": "Nameless"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert_eq!(refused_fields(&json), ["name"], "{json}");
    create(
        &cli,
        "/api/v1/spaces/space_acme/groups",
        json!({"id": "group_finance", "path": "finance"}),
    )
    .await;
    create(
        &cli,
        "/api/v1/spaces/space_acme/groups",
        json!({"id": "group_legal", "path": "legal"}),
    )
    .await;
    // Two parents that name two groups contradict each other.
    let (status, json) = call(
        &cli,
        "POST",
        "/api/v1/spaces/space_acme/groups",
        Some(
            json!({"name": "apac", "parent_id": "group_finance", "parent_group_id": "group_legal"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{json}");
    assert_eq!(
        json["error"]["details"]["field"], "parent_group_id",
        "{json}"
    );
    // The name, path and parent never change: a different one contradicts the group.
    let (status, json) = call(
        &cli,
        "PATCH",
        "/api/v1/spaces/space_acme/groups/group_finance",
        Some(json!({"name": "sales"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{json}");
    assert_eq!(json["error"]["details"]["field"], "name", "{json}");
}

#[tokio::test]
async fn a_new_member_role_documents_its_only_status() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    let status = property(&cli, "MemberRoleCreateRequest", "status").await;
    let reference = status["$ref"]
        .as_str()
        .or_else(|| status["allOf"][0]["$ref"].as_str())
        .unwrap_or_else(|| panic!("status names no schema: {status}"));
    let name = reference.rsplit('/').next().unwrap();
    assert_eq!(schema(&cli, name).await["enum"], json!(["active"]));
    create(
        &cli,
        "/api/v1/spaces",
        json!({"id": "space_acme", "name": "Acme"}),
    )
    .await;
    let (status, json) = call(
        &cli,
        "POST",
        "/api/v1/spaces/space_acme/member-roles",
        Some(json!({"member_id": "member_nobody", "role_id": "role_nobody", "status": "revoked"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert_eq!(refused_fields(&json), ["status"], "{json}");
}

#[tokio::test]
async fn registering_a_resource_outside_a_space_route_requires_its_space() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    let (_, document) = call(&cli, "GET", "/openapi.json", None).await;
    let content = &document["paths"]["/api/v1/resources"]["post"]["requestBody"]["content"];
    let body = &content["application/json; charset=utf-8"]["schema"]["$ref"];
    assert_eq!(
        body, "#/components/schemas/ResourceCreateAnywhereRequest",
        "{body}"
    );
    let request = schema(&cli, "ResourceCreateAnywhereRequest").await;
    assert_eq!(
        required(&request),
        ["resource_type", "space_id"],
        "{request}"
    );
    assert_eq!(
        request["properties"]["space_id"]["minLength"], 1,
        "{request}"
    );
    // The space route still takes a body without it.
    assert_eq!(
        required(&schema(&cli, "ResourceCreateRequest").await),
        ["resource_type"]
    );
    registry_fixture(&cli).await;
    for space_id in [Value::Null, json!("")] {
        let (status, json) = call(
            &cli,
            "POST",
            "/api/v1/resources",
            Some(json!({"resource_type": "invoice", "space_id": space_id})),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
        assert_eq!(refused_fields(&json), ["space_id"], "{json}");
    }
    create(
        &cli,
        "/api/v1/resources",
        json!({"id": "invoice_002", "resource_type": "invoice", "space_id": "space_acme"}),
    )
    .await;
    // A path's space no space could have (longer than any ID) names nothing.
    let (status, json) = call(
        &cli,
        "POST",
        &format!("/api/v1/spaces/{}/resources", "0".repeat(256)),
        Some(json!({"resource_type": "invoice"})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{json}");
    assert_eq!(json["error"]["code"], "SPACE_NOT_FOUND", "{json}");
}

/// A key's or an admin grant's level says in the document what it needs of `space_id` and
/// `group_id` (one `anyOf` member per kind of level), and the server holds a body to it: a group
/// key without `group_id` is a 400 naming it, a space key naming no space a 404.
#[tokio::test]
async fn a_level_says_which_scope_ids_it_needs_and_the_server_agrees() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    for name in ["ApiKeyCreateRequest", "AdminGrantCreateRequest"] {
        let schema = schema(&cli, name).await;
        assert_eq!(
            alternatives(&schema["allOf"][0]["anyOf"]),
            vec![
                vec!["level"],
                vec!["level", "space_id"],
                vec!["group_id", "level"]
            ],
            "{name}: {schema}"
        );
        let instance = &schema["allOf"][0]["anyOf"][0]["properties"];
        assert_eq!(instance["space_id"]["enum"], json!([null]), "{name}");
        assert_eq!(instance["group_id"]["enum"], json!([null]), "{name}");
    }
    let key = json!({"name": "k", "permission_keys": ["users:read"]});
    let with = |extra: Value| {
        let mut body = key.clone();
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let (status, body) = call(
        &cli,
        "POST",
        "/api/v1/api-keys",
        Some(with(json!({"level": "group"}))),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["details"]["fields"]["group_id"].is_string(),
        "{body}"
    );
    let (status, body) = call(
        &cli,
        "POST",
        "/api/v1/api-keys",
        Some(with(json!({"level": "space", "space_id": "space_nowhere"}))),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = call(
        &cli,
        "POST",
        "/api/v1/api-keys",
        Some(with(
            json!({"level": "instance", "space_id": "space_nowhere"}),
        )),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

/// A group body that gives both `name` and `path` is taken when they name the same group and is a
/// 409 naming `path` when they do not (a relation between two fields, which the document cannot
/// state; two fields naming different groups conflict, as two different parents do).
#[tokio::test]
async fn a_group_whose_name_and_path_disagree_is_a_conflict() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    create(
        &cli,
        "/api/v1/spaces",
        json!({"id": "space_paths", "name": "Paths"}),
    )
    .await;
    let groups = "/api/v1/spaces/space_paths/groups";
    create(&cli, groups, json!({"name": "finance", "path": "finance"})).await;
    let (status, body) = call(
        &cli,
        "POST",
        groups,
        Some(json!({"name": "apac", "path": "finance.emea"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["details"]["field"], "path", "{body}");
    create(
        &cli,
        groups,
        json!({"name": "apac", "path": "finance.apac"}),
    )
    .await;
}

/// The session-only operations say so in the document (`SessionAuth` alone), and the server
/// answers a key there with 401; every other protected operation takes a key or a session.
#[tokio::test]
async fn session_only_operations_declare_session_auth_and_refuse_keys() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    let (_, document) = call(&cli, "GET", "/openapi.json", None).await;
    let session_only = [
        ("/api/v1/actor/context", "get"),
        ("/api/v1/actor/switch-member", "post"),
        ("/api/v1/admin/grants", "post"),
        ("/api/v1/admin/grants/{admin_grant_id}/revoke", "post"),
    ];
    for (path, method) in session_only {
        assert_eq!(
            document["paths"][path][method]["security"],
            json!([{"SessionAuth": []}]),
            "{method} {path}"
        );
    }
    assert_eq!(
        document["paths"]["/api/v1/admin/grants"]["get"]["security"],
        json!([{"ApiKeyAuth": []}, {"BearerAuth": []}])
    );
    assert_eq!(
        document["components"]["securitySchemes"]["SessionAuth"]["scheme"],
        "bearer"
    );
    for (path, method, body) in [
        ("/api/v1/actor/context", "GET", None),
        (
            "/api/v1/actor/switch-member",
            "POST",
            Some(json!({"user_member_id": "um_x"})),
        ),
        (
            "/api/v1/admin/grants",
            "POST",
            Some(json!({"user_id": "user_x", "level": "instance_admin"})),
        ),
        (
            "/api/v1/admin/grants/ag_x/revoke",
            "POST",
            Some(json!({"revoked_reason": "done"})),
        ),
    ] {
        let (status, body) = call(&cli, method, path, body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {body}");
    }
}
