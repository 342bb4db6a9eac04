//! Emails and the personal data around them (issue 15, item 10), through the real router and a
//! real database: emails are stored in NFC and match at login in either form; zero-width, other
//! invisible and control characters are refused with 400 naming `email`; a lookalike (Cyrillic
//! `а`) is another address; and an audit record never holds an email in clear, not even when
//! the username (or a registered member's display name) defaults to it.

use plystra_kernel::storage::testing::TestDatabase;
use poem::http::StatusCode;
use serde_json::{Value, json};

use crate::support::app::{self, Auth, Client, PASSWORD, send};

/// The app with a fixed audit hash key and `settings`.
async fn app(settings: &[(&str, &str)]) -> Option<(TestDatabase, Client)> {
    let mut all = vec![("PLYSTRA_AUDIT_HASH_KEY", "identity-input-audit-hash-key")];
    all.extend_from_slice(settings);
    app::app(&all).await
}

/// A login with [`PASSWORD`] as the router answers it.
async fn login(cli: &Client, email: &str) -> (StatusCode, Value) {
    app::try_login(cli, email, PASSWORD).await
}

fn assert_names_email(status: StatusCode, body: &Value, what: &str) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
    assert_eq!(body["error"]["code"], "VALIDATION_FAILED", "{what}: {body}");
    assert!(
        body["error"]["details"]["fields"]["email"].is_string(),
        "{what}: the error does not name email: {body}"
    );
}

#[tokio::test]
async fn emails_are_stored_in_nfc_and_log_in_in_either_form() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    let decomposed = "jose\u{301}@example.com";
    let composed = "jos\u{e9}@example.com";
    let (status, body) = send(
        &cli,
        Auth::Boot,
        "POST",
        "/api/v1/users",
        Some(json!({"email": decomposed, "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["data"]["email"], composed, "not stored in NFC: {body}");
    // The other form is the same address.
    let (status, body) = send(
        &cli,
        Auth::Boot,
        "POST",
        "/api/v1/users",
        Some(json!({"email": composed, "username": "other"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    for form in [composed, decomposed, "JOSE\u{301}@EXAMPLE.COM"] {
        let (status, body) = login(&cli, form).await;
        assert_eq!(status, StatusCode::OK, "{form:?}: {body}");
    }
}

#[tokio::test]
async fn zero_width_invisible_and_control_characters_in_emails_are_refused() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    let (status, body) = send(
        &cli,
        Auth::Boot,
        "POST",
        "/api/v1/users",
        Some(json!({"email": "ana@example.com", "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["data"]["id"].as_str().unwrap().to_owned();
    for bad in [
        "ana\u{200b}@example.com", // zero-width space
        "an\u{200d}a@example.com", // zero-width joiner
        "\u{feff}ana@example.com", // byte-order mark
        "ana@exam\u{ad}ple.com",   // soft hyphen
        "ana@example.com\u{202e}", // right-to-left override
        "ana@exa\u{7}mple.com",    // bell
        "ana\u{85}@example.com",   // next line (C1 control)
    ] {
        let (status, body) = send(
            &cli,
            Auth::Boot,
            "POST",
            "/api/v1/users",
            Some(json!({"email": bad, "username": format!("u{}", bad.len())})),
        )
        .await;
        assert_names_email(status, &body, &format!("create {bad:?}"));
        let (status, body) = send(
            &cli,
            Auth::Boot,
            "PATCH",
            &format!("/api/v1/users/{id}"),
            Some(json!({"email": bad})),
        )
        .await;
        assert_names_email(status, &body, &format!("update {bad:?}"));
        let (status, body) = login(&cli, bad).await;
        assert_names_email(status, &body, &format!("login {bad:?}"));
    }
}

#[tokio::test]
async fn a_lookalike_email_is_another_address() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    let latin = "alice@example.com";
    let cyrillic = "\u{430}lice@example.com"; // Cyrillic а
    for email in [latin, cyrillic] {
        let (status, body) = send(
            &cli,
            Auth::Boot,
            "POST",
            "/api/v1/users",
            Some(json!({"email": email, "password": PASSWORD})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{email}: {body}");
        assert_eq!(body["data"]["email"], email);
    }
    let (status, latin_session) = login(&cli, latin).await;
    assert_eq!(status, StatusCode::OK);
    let (status, cyrillic_session) = login(&cli, cyrillic).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(
        latin_session["data"]["user"]["id"],
        cyrillic_session["data"]["user"]["id"]
    );
}

/// Every audit record (not decisions), whole, as the API serves them.
async fn audit_records(cli: &Client) -> Vec<Value> {
    let (status, body) = send(cli, Auth::Boot, "GET", "/api/v1/audit/logs?limit=200", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"].as_array().unwrap().clone()
}

#[tokio::test]
async fn no_audit_record_holds_an_email_in_clear_when_the_username_defaults_to_it() {
    let Some((_db, cli)) = app(&[
        ("PLYSTRA_AUTH_REGISTRATION_ENABLED", "true"),
        (
            "PLYSTRA_AUTH_REGISTRATION_TOKEN",
            "identity-input-registration-token-0123",
        ),
        ("PLYSTRA_AUTH_REGISTRATION_SPACE_ID", "space_acme"),
    ])
    .await
    else {
        return;
    };
    let (status, body) = send(
        &cli,
        Auth::Boot,
        "POST",
        "/api/v1/spaces",
        Some(json!({"id": "space_acme", "name": "Acme", "slug": "acme"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Created by an admin without a username: the username is the email.
    let (status, body) = send(
        &cli,
        Auth::Boot,
        "POST",
        "/api/v1/users",
        Some(json!({"email": "Priya.Secret@Example.com", "phone": "+1 555 0100"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["data"]["username"], "priya.secret@example.com");
    let user_id = body["data"]["id"].as_str().unwrap().to_owned();
    // A username set to an email later.
    let (status, body) = send(
        &cli,
        Auth::Boot,
        "PATCH",
        &format!("/api/v1/users/{user_id}"),
        Some(json!({"username": "priya.other@example.org"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Registered without a username or display name: both default to the email.
    let (status, body) = send(
        &cli,
        Auth::None,
        "POST",
        "/api/v1/auth/register",
        Some(json!({
            "email": "reggie.hidden@example.net",
            "password": PASSWORD,
            "registration_token": "identity-input-registration-token-0123",
        })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let records = audit_records(&cli).await;
    let actions: Vec<&str> = records
        .iter()
        .map(|r| r["action"].as_str().unwrap_or(""))
        .collect();
    for action in ["users.create", "users.update", "members.create"] {
        assert!(actions.contains(&action), "no {action} record: {actions:?}");
    }
    for record in &records {
        let text = record.to_string().to_lowercase();
        for clear in [
            "priya.secret",
            "priya.other",
            "reggie.hidden",
            "@example.",
            "555 0100",
        ] {
            assert!(
                !text.contains(clear),
                "{} holds {clear:?} in clear: {record}",
                record["action"]
            );
        }
    }
    // The username is hashed like the email, so records still join on it.
    let created = records
        .iter()
        .find(|r| r["action"] == "users.create" && r["resource_id"] == user_id.as_str())
        .unwrap();
    let after = &created["trace"]["after"];
    assert!(
        after["email"].as_str().unwrap().starts_with("hmac:"),
        "{after}"
    );
    assert_eq!(after["username"], after["email"], "{after}");
}
