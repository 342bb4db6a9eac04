//! The one redaction policy every trace and snapshot passes through before it is persisted.
//!
//! - Secret-like keys (anywhere, any case) are replaced by `"[redacted]"`.
//! - PII fields follow a per-field policy: keep, hash (keyed HMAC-SHA256, so records can still be
//!   joined) or drop. `email`, `phone` and `username` (which defaults to the email) are hashed by
//!   default.
//! - An email address in any other string value (a display name or a reason that holds one, a
//!   username kept in clear) follows the `email` rule too: the address is replaced by its hash,
//!   or by `[redacted]` when emails are dropped. An address is `local@domain.tld` with an
//!   alphabetic top-level label.
//! - Keys inside `metadata` objects are kept only when allowlisted, and so are the keys of
//!   `input_values` objects (the attribute paths a permission condition read, with their values:
//!   free-form data as metadata is, allowlisted by path such as `resource.properties.amount`).
//!
//! Every path that was changed is listed, and the policy's version is recorded with the record.
//! `redact` works on a copy, so the caller's response is never touched; `redact_owned` rewrites a
//! value the caller gives up, in place, with the same result.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// Bumped whenever the rules below change meaning.
pub const REDACTION_VERSION: i64 = 3;

/// What replaces a redacted value.
pub const REDACTED: &str = "[redacted]";

/// Fragments that make a key secret-like, compared against the key lower-cased with `-` and
/// spaces folded to `_`.
const SECRET_FRAGMENTS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "key_hash",
    "cookie",
    "credential",
    "private_key",
    "session_id",
    "refresh",
];

/// Whether an object under this (folded) key holds free-form data whose keys are kept only when
/// allowlisted: `metadata`, and a condition's `input_values`.
fn is_free_form(folded: &str) -> bool {
    folded == "metadata" || folded == "input_values"
}

/// What to do with one PII field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PiiAction {
    /// Store as given.
    Keep,
    /// Store `hmac:<hex>` of the value under the policy's key.
    Hash,
    /// Remove the field.
    Drop,
}

impl PiiAction {
    /// Parses `keep`, `hash` or `drop`.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "keep" => Some(Self::Keep),
            "hash" => Some(Self::Hash),
            "drop" => Some(Self::Drop),
            _ => None,
        }
    }
}

/// The redaction policy.
#[derive(Clone)]
pub struct RedactionPolicy {
    pii: BTreeMap<String, PiiAction>,
    metadata_allowlist: Vec<String>,
    hash_key: Vec<u8>,
}

impl std::fmt::Debug for RedactionPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedactionPolicy")
            .field("pii", &self.pii)
            .field("metadata_allowlist", &self.metadata_allowlist)
            .finish_non_exhaustive()
    }
}

/// The result of redacting one value.
#[derive(Debug, Clone, PartialEq)]
pub struct Redacted {
    /// The value as it may be stored.
    pub value: Value,
    /// JSON-pointer-like paths of every value that was redacted, hashed or dropped.
    pub redactions: Vec<String>,
}

impl RedactionPolicy {
    /// The defaults: email, phone and username hashed; ip_address and user_agent kept
    /// (investigations need them); no metadata key allowed beyond `reason`, `source` and
    /// `ticket`.
    pub fn with_key(hash_key: impl Into<Vec<u8>>) -> Self {
        let pii = [
            ("email", PiiAction::Hash),
            ("phone", PiiAction::Hash),
            ("username", PiiAction::Hash),
            ("ip_address", PiiAction::Keep),
            ("user_agent", PiiAction::Keep),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        Self {
            pii,
            metadata_allowlist: ["reason", "source", "ticket"].map(str::to_owned).to_vec(),
            hash_key: hash_key.into(),
        }
    }

    /// Sets the action for one PII field.
    pub fn pii(mut self, field: &str, action: PiiAction) -> Self {
        self.pii.insert(field.to_ascii_lowercase(), action);
        self
    }

    /// Replaces the metadata allowlist.
    pub fn metadata_allowlist(mut self, keys: impl IntoIterator<Item = String>) -> Self {
        self.metadata_allowlist = keys.into_iter().map(|k| k.to_ascii_lowercase()).collect();
        self
    }

    /// The keyed hash of a PII value.
    pub fn hash(&self, value: &str) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.hash_key).expect("HMAC takes any key length");
        mac.update(value.as_bytes());
        format!("hmac:{}", hex::encode(mac.finalize().into_bytes()))
    }

    /// Applies the PII rule of `field` to a top-level column value.
    pub fn column(&self, field: &str, value: Option<String>) -> Option<String> {
        let value = value?;
        match self.pii.get(field).copied().unwrap_or(PiiAction::Keep) {
            PiiAction::Keep => Some(value),
            PiiAction::Hash => Some(self.hash(&value)),
            PiiAction::Drop => None,
        }
    }

    /// Redacts a copy of `value`; the caller's value is not touched.
    pub fn redact(&self, value: &Value) -> Redacted {
        self.redact_owned(value.clone())
    }

    /// Redacts `value` in place (nothing is copied) and returns it with the changed paths; the
    /// same result as [`Self::redact`] of the same value.
    pub fn redact_owned(&self, mut value: Value) -> Redacted {
        let mut redactions = Vec::new();
        let mut path = String::new();
        let mut folded = String::new();
        if !self.walk(&mut value, &mut path, &mut folded, false, &mut redactions) {
            value = Value::Null;
        }
        Redacted { value, redactions }
    }

    /// Redacts `value` in place; `path` is its JSON-pointer-like path (restored before
    /// returning) and `folded` a scratch buffer. Returns `false` when the value is dropped.
    fn walk(
        &self,
        value: &mut Value,
        path: &mut String,
        folded: &mut String,
        in_metadata: bool,
        out: &mut Vec<String>,
    ) -> bool {
        match value {
            Value::Object(map) => {
                map.retain(|key, child| {
                    let parent = path.len();
                    path.push('/');
                    for c in key.chars() {
                        match c {
                            '~' => path.push_str("~0"),
                            '/' => path.push_str("~1"),
                            c => path.push(c),
                        }
                    }
                    let keep = self.member(key, child, path, folded, in_metadata, out);
                    path.truncate(parent);
                    keep
                });
                true
            }
            Value::Array(items) => {
                let mut index = 0usize;
                items.retain_mut(|item| {
                    let parent = path.len();
                    path.push('/');
                    path.push_str(&index.to_string());
                    index += 1;
                    let keep = self.walk(item, path, folded, false, out);
                    path.truncate(parent);
                    keep
                });
                true
            }
            Value::String(text) => match self.emails_in(text) {
                Some(rewritten) => {
                    out.push(path.clone());
                    match rewritten {
                        Some(rewritten) => {
                            *text = rewritten;
                            true
                        }
                        None => false,
                    }
                }
                None => true,
            },
            _ => true,
        }
    }

    /// Redacts the member `key` of an object, at `path`, in place; `false` drops it.
    fn member(
        &self,
        key: &str,
        child: &mut Value,
        path: &mut String,
        folded: &mut String,
        in_metadata: bool,
        out: &mut Vec<String>,
    ) -> bool {
        folded.clear();
        folded.extend(key.chars().map(|c| match c {
            '-' | ' ' => '_',
            c => c.to_ascii_lowercase(),
        }));
        if is_secret(folded) || (in_metadata && !self.metadata_allowlist.contains(folded)) {
            out.push(path.clone());
            *child = Value::String(REDACTED.to_owned());
            return true;
        }
        if let Some(action) = self.pii.get(folded.as_str()) {
            match (action, &*child) {
                (PiiAction::Keep, _) | (_, Value::Null) => {}
                (PiiAction::Drop, _) => {
                    out.push(path.clone());
                    return false;
                }
                (PiiAction::Hash, Value::String(s)) => {
                    out.push(path.clone());
                    *child = Value::String(self.hash(s));
                    return true;
                }
                (PiiAction::Hash, other) => {
                    out.push(path.clone());
                    *child = Value::String(self.hash(&other.to_string()));
                    return true;
                }
            }
        }
        let child_in_metadata = is_free_form(folded) && child.is_object();
        self.walk(child, path, folded, child_in_metadata, out)
    }

    /// `text` with every email address in it put through the `email` rule; `None` when it holds
    /// none (or emails are kept), `Some(None)` when the whole value is an address that is
    /// dropped.
    fn emails_in(&self, text: &str) -> Option<Option<String>> {
        let action = self.pii.get("email").copied().unwrap_or(PiiAction::Keep);
        if action == PiiAction::Keep || !text.contains('@') {
            return None;
        }
        if looks_like_email(text) {
            return Some(match action {
                PiiAction::Drop => None,
                _ => Some(self.hash(text)),
            });
        }
        let mut result = String::with_capacity(text.len());
        let mut changed = false;
        let mut rest = text;
        while !rest.is_empty() {
            let end = rest.find(email_boundary).unwrap_or(rest.len());
            let (word, after) = rest.split_at(end);
            if looks_like_email(word) {
                changed = true;
                match action {
                    PiiAction::Drop => result.push_str(REDACTED),
                    _ => result.push_str(&self.hash(word)),
                }
            } else {
                result.push_str(word);
            }
            let mut chars = after.chars();
            if let Some(boundary) = chars.next() {
                result.push(boundary);
            }
            rest = chars.as_str();
        }
        changed.then_some(Some(result))
    }
}

/// Characters that cannot be part of an address as the redaction finds them.
fn email_boundary(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '<' | '>' | '(' | ')' | '[' | ']' | ',' | ';' | ':' | '"' | '\''
        )
}

/// Whether `word` is an email address: one `@`, a non-empty local part and a dotted domain whose
/// last label is at least two letters (so `pkg@1.2.3` is not one).
fn looks_like_email(word: &str) -> bool {
    let Some((local, domain)) = word.split_once('@') else {
        return false;
    };
    let tld = domain.rsplit('.').next().unwrap_or("");
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && tld.chars().count() >= 2
        && tld.chars().all(char::is_alphabetic)
        && !word.chars().any(email_boundary)
}

/// Whether a folded key contains one of [`SECRET_FRAGMENTS`]: the same answer as
/// `SECRET_FRAGMENTS.iter().any(|f| key.contains(f))`, in one pass that compares a fragment only
/// where its first byte occurs (thirteen substring searches per key were most of a trace's
/// redaction time).
fn is_secret(folded_key: &str) -> bool {
    let bytes = folded_key.as_bytes();
    (0..bytes.len()).any(|at| {
        let rest = &bytes[at..];
        SECRET_FRAGMENTS
            .iter()
            .any(|f| f.as_bytes()[0] == rest[0] && rest.starts_with(f.as_bytes()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy() -> RedactionPolicy {
        RedactionPolicy::with_key(b"test-key".to_vec())
    }

    #[test]
    fn every_secret_key_shape_is_redacted_at_any_depth() {
        let input = json!({
            "password": "p1",
            "Password_Hash": "p2",
            "user": {"API-Key": "k1", "apiKey": "k2", "profile": {"session token": "t1"}},
            "headers": [{"Authorization": "Bearer x"}, {"cookie": "c"}, {"name": "ok"}],
            "client_secret": "s",
            "key_hash": "h",
            "refresh_token": "r",
            "keep": "visible"
        });
        let out = policy().redact(&input);
        let text = out.value.to_string();
        for secret in [
            "p1", "p2", "k1", "k2", "t1", "Bearer x", "\"c\"", "\"s\"", "\"h\"", "\"r\"",
        ] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert_eq!(out.value["keep"], "visible");
        assert_eq!(out.value["headers"][2]["name"], "ok");
        assert_eq!(out.value["user"]["profile"]["session token"], REDACTED);
        for path in [
            "/password",
            "/user/API-Key",
            "/user/profile/session token",
            "/headers/0/Authorization",
            "/headers/1/cookie",
        ] {
            assert!(
                out.redactions.iter().any(|p| p == path),
                "{path} not listed in {:?}",
                out.redactions
            );
        }
    }

    #[test]
    fn pii_hashing_is_stable_under_one_key_and_differs_across_keys() {
        let a = policy().redact(&json!({"email": "alice@example.com"}));
        let b = policy().redact(&json!({"nested": {"email": "alice@example.com"}}));
        assert_eq!(a.value["email"], b.value["nested"]["email"]);
        assert!(a.value["email"].as_str().unwrap().starts_with("hmac:"));
        assert!(!a.value.to_string().contains("alice"));
        let other = RedactionPolicy::with_key(b"other".to_vec())
            .redact(&json!({"email": "alice@example.com"}));
        assert_ne!(a.value["email"], other.value["email"]);
    }

    #[test]
    fn pii_policies_keep_hash_or_drop() {
        let p = policy()
            .pii("phone", PiiAction::Drop)
            .pii("user_agent", PiiAction::Hash);
        let out = p.redact(&json!({"phone": "+1", "user_agent": "curl", "ip_address": "10.0.0.1"}));
        assert!(out.value.get("phone").is_none());
        assert!(
            out.value["user_agent"]
                .as_str()
                .unwrap()
                .starts_with("hmac:")
        );
        assert_eq!(out.value["ip_address"], "10.0.0.1");
        assert_eq!(
            p.column("user_agent", Some("curl".into())).unwrap(),
            p.hash("curl")
        );
        assert_eq!(p.column("phone", Some("+1".into())), None);
    }

    #[test]
    fn usernames_are_pii_and_emails_anywhere_follow_the_email_rule() {
        let input = json!({
            "username": "alice@example.com",
            "email": "alice@example.com",
            "display_name": "alice@example.com",
            "reason": "asked by Bob <bob@example.org>, see ticket",
            "names": ["carol@example.net", "plain"],
            "version": "pkg@1.2.3",
            "handle": "@alice"
        });
        let p = policy();
        let out = p.redact(&input);
        let text = out.value.to_string();
        for clear in ["alice@", "bob@", "carol@"] {
            assert!(!text.contains(clear), "{clear} in clear: {text}");
        }
        assert_eq!(out.value["username"], p.hash("alice@example.com"));
        assert_eq!(out.value["username"], out.value["email"], "joinable");
        assert_eq!(out.value["display_name"], out.value["email"]);
        assert_eq!(
            out.value["reason"],
            format!("asked by Bob <{}>, see ticket", p.hash("bob@example.org"))
        );
        assert_eq!(out.value["names"][1], "plain");
        assert_eq!(out.value["version"], "pkg@1.2.3");
        assert_eq!(out.value["handle"], "@alice");
        for path in ["/username", "/display_name", "/reason", "/names/0"] {
            assert!(
                out.redactions.iter().any(|r| r == path),
                "{path}: {:?}",
                out.redactions
            );
        }
        // A plain handle is still hashed as a username, and can be kept by policy.
        let handle = json!({"username": "alice"});
        assert_eq!(p.redact(&handle).value["username"], p.hash("alice"));
        let kept = policy().pii("username", PiiAction::Keep);
        assert_eq!(kept.redact(&handle).value["username"], "alice");
        // Kept usernames that are emails still follow the email rule.
        assert_eq!(
            kept.redact(&json!({"username": "alice@example.com"})).value["username"],
            p.hash("alice@example.com")
        );
        // Emails dropped: the address goes wherever it is.
        let dropped = policy()
            .pii("email", PiiAction::Drop)
            .pii("username", PiiAction::Keep);
        let out = dropped.redact(&input);
        assert!(out.value.get("display_name").is_none(), "{}", out.value);
        assert!(out.value.get("username").is_none(), "{}", out.value);
        assert_eq!(out.value["reason"], "asked by Bob <[redacted]>, see ticket");
        assert!(
            !out.value.to_string().contains("@example."),
            "{}",
            out.value
        );
    }

    #[test]
    fn metadata_keeps_only_allowlisted_keys() {
        let out = policy()
            .redact(&json!({"metadata": {"reason": "audit", "ssn": "123", "notes": {"x": 1}}}));
        assert_eq!(out.value["metadata"]["reason"], "audit");
        assert_eq!(out.value["metadata"]["ssn"], REDACTED);
        assert_eq!(out.value["metadata"]["notes"], REDACTED);
        assert!(out.redactions.contains(&"/metadata/ssn".to_owned()));
    }

    #[test]
    fn a_conditions_input_values_are_kept_only_when_their_path_is_allowlisted() {
        let trace = json!({"condition": {"input_values": {
            "resource.properties.amount": 12000,
            "resource.status": "archived",
            "context.api_token": "t0k",
        }, "inputs": [{"path": "resource.status", "source": "storage"}]}});
        let out = policy().redact(&trace);
        let values = &out.value["condition"]["input_values"];
        for path in [
            "resource.properties.amount",
            "resource.status",
            "context.api_token",
        ] {
            assert_eq!(values[path], REDACTED, "{path}");
        }
        assert_eq!(
            out.value["condition"]["inputs"],
            trace["condition"]["inputs"]
        );
        let out = policy()
            .metadata_allowlist([
                "resource.properties.amount".to_owned(),
                "context.api_token".to_owned(),
            ])
            .redact(&trace);
        let values = &out.value["condition"]["input_values"];
        assert_eq!(values["resource.properties.amount"], 12000);
        assert_eq!(values["resource.status"], REDACTED);
        // A secret-like name is redacted even when allowlisted.
        assert_eq!(values["context.api_token"], REDACTED);
    }

    /// The copying walk this module had before it redacted in place, kept as the reference the
    /// in-place walk must agree with.
    fn reference_walk(
        p: &RedactionPolicy,
        value: &Value,
        path: &str,
        in_metadata: bool,
        out: &mut Vec<String>,
    ) -> Option<Value> {
        match value {
            Value::Object(map) => {
                let mut result = serde_json::Map::new();
                for (key, child) in map {
                    let child_path =
                        format!("{path}/{}", key.replace('~', "~0").replace('/', "~1"));
                    let folded = key.to_ascii_lowercase().replace(['-', ' '], "_");
                    if is_secret(&folded) {
                        out.push(child_path);
                        result.insert(key.clone(), Value::String(REDACTED.to_owned()));
                        continue;
                    }
                    if in_metadata && !p.metadata_allowlist.contains(&folded) {
                        out.push(child_path);
                        result.insert(key.clone(), Value::String(REDACTED.to_owned()));
                        continue;
                    }
                    if let Some(action) = p.pii.get(&folded) {
                        match (action, child) {
                            (PiiAction::Keep, _) | (_, Value::Null) => {}
                            (PiiAction::Drop, _) => {
                                out.push(child_path);
                                continue;
                            }
                            (PiiAction::Hash, Value::String(s)) => {
                                out.push(child_path);
                                result.insert(key.clone(), Value::String(p.hash(s)));
                                continue;
                            }
                            (PiiAction::Hash, other) => {
                                out.push(child_path);
                                result
                                    .insert(key.clone(), Value::String(p.hash(&other.to_string())));
                                continue;
                            }
                        }
                    }
                    let child_in_metadata = is_free_form(&folded) && child.is_object();
                    if let Some(v) = reference_walk(p, child, &child_path, child_in_metadata, out) {
                        result.insert(key.clone(), v);
                    }
                }
                Some(Value::Object(result))
            }
            Value::Array(items) => Some(Value::Array(
                items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, item)| {
                        reference_walk(p, item, &format!("{path}/{i}"), false, out)
                    })
                    .collect(),
            )),
            Value::String(text) => match p.emails_in(text) {
                Some(rewritten) => {
                    out.push(path.to_owned());
                    rewritten.map(Value::String)
                }
                None => Some(value.clone()),
            },
            other => Some(other.clone()),
        }
    }

    #[test]
    fn redacting_in_place_gives_what_the_copying_walk_gave() {
        let inputs = [
            json!({
                "user": {"Email": "a@example.com", "phone": 5, "username": null, "password": {"x": 1}},
                "a/b~c": [{"api-key": "k"}, "b@example.org", ["c@example.net wrote", 1.5, null]],
                "metadata": {"reason": "r@example.com", "SSN": "1", "Source": {"token": "t"}},
                "nested": {"metadata": ["not", "an", "object"], "ip_address": "10.0.0.1"},
                "candidates": [{"role": "r", "scope_check": {"reason": "ok"}}, {"email": ["x@y.zz"]}],
                "": {"": "d@e.ff"},
                "Session ID": "s",
            }),
            json!(["top@level.org", {"cookie": 1}, [[{"refresh": true}]]]),
            json!("only@an-address.com"),
            json!(42),
        ];
        let policies = [
            policy(),
            policy()
                .pii("email", PiiAction::Drop)
                .pii("phone", PiiAction::Keep)
                .pii("ip_address", PiiAction::Hash),
            policy()
                .pii("email", PiiAction::Keep)
                .pii("username", PiiAction::Drop)
                .metadata_allowlist(["ssn".to_owned()]),
        ];
        for (i, p) in policies.iter().enumerate() {
            for input in &inputs {
                let mut paths = Vec::new();
                let value = reference_walk(p, input, "", false, &mut paths).unwrap_or(Value::Null);
                let expected = Redacted {
                    value,
                    redactions: paths,
                };
                assert_eq!(
                    p.redact_owned(input.clone()),
                    expected,
                    "policy {i}: {input}"
                );
                assert_eq!(p.redact(input), expected, "policy {i}: {input}");
            }
        }
    }

    #[test]
    fn the_one_pass_secret_test_agrees_with_a_substring_search() {
        let mut keys: Vec<String> = [
            "",
            "p",
            "pass",
            "password",
            "xpasswordx",
            "passwd_",
            "my_secret",
            "secre",
            "tokens",
            "tok",
            "api_key",
            "apikey",
            "api_ke",
            "authorization",
            "author",
            "key_hash",
            "key_has",
            "cookie",
            "cooki",
            "credentials",
            "private_key",
            "private",
            "session_id",
            "session",
            "refresh",
            "refres",
            "role_id",
            "scope_check",
            "user_agent",
            "ip",
            "émail_token",
            "ssapdrowssap",
        ]
        .map(str::to_owned)
        .to_vec();
        for fragment in SECRET_FRAGMENTS {
            for (prefix, suffix) in [("", ""), ("a", ""), ("", "z"), ("é_", "_é"), ("pp", "ss")] {
                keys.push(format!("{prefix}{fragment}{suffix}"));
                keys.push(format!("{prefix}{}{suffix}", &fragment[1..]));
                keys.push(format!(
                    "{prefix}{}{suffix}",
                    &fragment[..fragment.len() - 1]
                ));
            }
        }
        for key in keys {
            let expected = SECRET_FRAGMENTS.iter().any(|f| key.contains(f));
            assert_eq!(is_secret(&key), expected, "{key:?}");
        }
    }

    #[test]
    fn redaction_works_on_a_copy() {
        let input = json!({"password": "p"});
        let _ = policy().redact(&input);
        assert_eq!(input["password"], "p");
    }
}
