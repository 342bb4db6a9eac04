//! Users: the people who log in. Emails are unique case-insensitively (stored lower-cased), and a
//! password is only ever stored as an Argon2id hash that no response, log or audit record carries.

use std::sync::Arc;

use plystra_contracts::body::JsonBody;
use plystra_contracts::limits::MAX_EMAIL_LENGTH;
use plystra_contracts::not_blank::NotBlank;
use plystra_contracts::services::Caller;
use plystra_contracts::storage::sea_query::{Expr, ExprTrait, Query, Value};
use plystra_contracts::storage::time::OffsetDateTime;
use plystra_contracts::storage::{Database, Transaction};
use plystra_contracts::{ApiError, Envelope, ErrorCode, ListEnvelope};
use poem_openapi::param::{Path, Query as QueryParam};
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{Object, OpenApi};

use crate::store::{
    Created, Ctx, JsonColumn, KeyPage, Lifecycle, Metadata, SESSIONS, STATUS_MOVES, Status, USERS,
    a, change_of, entity_id, from_rows, metadata_in, metadata_out, now, status_change, text,
};
use crate::{ApiTag, passwords};
use plystra_contracts::entity::{self, Audited, Stored};

/// A user. The password hash is never part of it.
#[derive(Debug, Clone, Object)]
#[oai(rename = "User")]
pub struct User {
    /// The user's ID (`user_…`).
    pub id: String,
    /// A unique handle.
    pub username: String,
    /// The login email, lower-cased; unique regardless of case.
    pub email: Option<String>,
    /// A phone number, as given.
    pub phone: Option<String>,
    /// `active` users can log in; `disabled` ones cannot.
    pub status: Status,
    /// Free-form data the caller attached.
    pub metadata: Option<Metadata>,
    /// When the user last logged in.
    pub last_login_at: Option<OffsetDateTime>,
    /// When the password was last set.
    pub password_changed_at: Option<OffsetDateTime>,
    /// When the user was created.
    pub created_at: OffsetDateTime,
    /// When the user last changed.
    pub updated_at: OffsetDateTime,
    /// Always empty: users are disabled, not deleted.
    pub deleted_at: Option<OffsetDateTime>,
}

impl Stored for User {
    const TABLE: &'static str = USERS;
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "username",
        "email",
        "phone",
        "status",
        "metadata",
        "last_login_at",
        "password_changed_at",
        "created_at",
        "updated_at",
        "deleted_at",
    ];
    const ENTITY: &'static str = "user";
    const NOT_FOUND: ErrorCode = ErrorCode::UserNotFound;

    fn id(&self) -> &str {
        &self.id
    }
}

from_rows!(User, |row| {
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        email: row.try_get("email")?,
        phone: row.try_get("phone")?,
        status: Status::parse(&row.try_get::<String, _>("status")?),
        metadata: metadata_out(row.try_get::<JsonColumn, _>("metadata")?),
        last_login_at: row.try_get("last_login_at")?,
        password_changed_at: row.try_get("password_changed_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        deleted_at: row.try_get("deleted_at")?,
    })
});

impl Audited for User {
    const RESOURCE_TYPE: &'static str = "user";

    fn audit_space(&self) -> Option<&str> {
        None
    }

    /// Every field but the timestamps (none of them secret).
    fn snapshot(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "username": self.username,
            "email": self.email,
            "phone": self.phone,
            "status": self.status.as_str(),
            "metadata": self.metadata,
        })
    }
}

/// Creates a user.
#[derive(Debug, Clone, Object)]
#[oai(rename = "UserCreateRequest")]
pub struct UserCreateRequest {
    /// A caller-chosen ID (`user_` then a-z, 0-9, _); generated when absent.
    #[oai(validator(pattern = r"^user_[a-z0-9_]{1,120}$"))]
    pub id: Option<String>,
    /// The login email; unique regardless of case. Stored lower-cased in Unicode NFC; invisible
    /// (zero-width, bidirectional) and control characters are refused. Lookalike letters are
    /// not folded: a Cyrillic `а` makes another address than a Latin `a`. The pattern is the
    /// server's rule ([`EMAIL_PATTERN`]): one `@`, a dotted domain, no white space.
    #[oai(validator(
        pattern = r"^[^@\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8]+@[^@.\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^@\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8]*\.[^@\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8]*[^@.\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8]$"
    ))]
    pub email: String,
    /// A unique handle, at most 128 characters and not blank; the email when absent.
    #[oai(validator(max_length = 128))]
    pub username: Option<NotBlank>,
    /// A phone number (not blank).
    #[oai(validator(max_length = 64))]
    pub phone: Option<NotBlank>,
    /// The initial password, 12-1024 characters. Without one the user cannot log in yet.
    #[oai(validator(min_length = 12, max_length = 1024))]
    pub password: Option<String>,
    /// `active` (the default) or `disabled`.
    pub status: Option<Status>,
    /// Free-form data.
    pub metadata: Option<Metadata>,
}

/// Changes a user. Absent fields keep their value.
#[derive(Debug, Clone, Object, Default)]
#[oai(rename = "UserUpdateRequest")]
pub struct UserUpdateRequest {
    /// A new login email, as on create ([`EMAIL_PATTERN`]).
    #[oai(validator(
        pattern = r"^[^@\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8]+@[^@.\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^@\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8]*\.[^@\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8]*[^@.\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8]$"
    ))]
    pub email: Option<String>,
    /// A new handle, at most 128 characters and not blank.
    #[oai(validator(max_length = 128))]
    pub username: Option<NotBlank>,
    /// A new phone number (not blank); `null` clears it.
    #[oai(validator(max_length = 64))]
    pub phone: MaybeUndefined<NotBlank>,
    /// A new password, 12-1024 characters; setting it ends every session of the user.
    #[oai(validator(min_length = 12, max_length = 1024))]
    pub password: Option<String>,
    /// A new status; the move must be allowed (409 otherwise).
    pub status: Option<Status>,
    /// Replaces the metadata.
    pub metadata: Option<Metadata>,
}

/// Whether `c` is invisible: a default-ignorable code point of the Basic Multilingual Plane
/// (zero-width spaces and joiners, the soft hyphen, bidirectional controls, variation selectors,
/// …) or a control character. See [`EMAIL_PATTERN`] for why the astral ones (tags) pass.
fn invisible(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{061C}'
                | '\u{115F}'..='\u{1160}'
                | '\u{17B4}'..='\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{FFF0}'..='\u{FFF8}'
        )
}

/// An email as it is stored and looked up: trimmed, lower-cased and in Unicode NFC, so the
/// composed and decomposed spellings of `é` are one address. Invisible and control characters
/// are refused (400 naming `email`). Lookalikes are not folded: a Cyrillic `а` is another letter
/// than a Latin `a`, so `аlice@example.com` is another address than `alice@example.com`.
pub(crate) fn normalized_email(value: &str) -> Result<String, ApiError> {
    use unicode_normalization::UnicodeNormalization;
    if value.chars().any(invisible) {
        return Err(ApiError::invalid_field(
            "email",
            "must not contain invisible or control characters",
        ));
    }
    Ok(value.trim().to_lowercase().nfc().collect())
}

/// The email rule as the document declares it: one `@`; a non-empty local part; a domain that
/// holds a `.` but neither starts nor ends with one; no white space and no invisible or control
/// character ([`invisible`]). What [`email`] takes after trimming. Written with `\xHH` and
/// `\uHHHH` escapes, which ECMA-262, Python's `re` and the Rust `regex` crate read alike; so it
/// names only the invisible characters of the Basic Multilingual Plane. The few outside it
/// (U+1BCA0–U+1BCA3, U+1D173–U+1D17A, U+E0000–U+E0FFF) need escapes those engines do not share,
/// so [`invisible`] does not refuse them either: the document and the server agree.
pub const EMAIL_PATTERN: &str = r"^[^@\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8]+@[^@.\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^@\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8]*\.[^@\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8]*[^@.\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8]$";

/// Normalizes ([`normalized_email`]) and checks an email: one `@`, a dotted domain, no spaces, at
/// most 254 characters as sent (the document's `maxLength`; trimmed).
pub(crate) fn email(raw: &str) -> Result<String, ApiError> {
    let value = normalized_email(raw)?;
    let valid = raw.trim().chars().count() <= MAX_EMAIL_LENGTH
        && !value.chars().any(|c| c.is_whitespace() || c.is_control())
        && value.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if valid {
        Ok(value)
    } else {
        Err(ApiError::invalid_field(
            "email",
            "must be an email address like name@example.com",
        ))
    }
}

fn phone(value: &str) -> Result<String, ApiError> {
    text("phone", value, 64)
}

/// The user with `email` (already normalized) and its password hash.
pub(crate) async fn by_email_with_hash(
    db: &Database,
    email: &str,
) -> Result<Option<(User, Option<String>)>, ApiError> {
    let mut q = User::select();
    q.column((a(USERS), a("password_hash")))
        .and_where(Expr::col((a(USERS), a("email"))).eq(email));
    let Some(user) = db.fetch_optional::<User, _>(&q).await? else {
        return Ok(None);
    };
    let mut h = Query::select();
    h.column(a("password_hash"))
        .from(a(USERS))
        .and_where(Expr::col(a("id")).eq(user.id.as_str()));
    let (hash,): (Option<String>,) = db.fetch_one(&h).await?;
    Ok(Some((user, hash)))
}

async fn email_taken(tx: &mut Transaction, email: &str, except: &str) -> Result<bool, ApiError> {
    let mut q = Query::select();
    q.column(a("id"))
        .from(a(USERS))
        .and_where(Expr::col(a("email")).eq(email))
        .and_where(Expr::col(a("id")).ne(except));
    Ok(tx.fetch_optional::<(String,), _>(&q).await?.is_some())
}

async fn username_taken(
    tx: &mut Transaction,
    username: &str,
    except: &str,
) -> Result<bool, ApiError> {
    let mut q = Query::select();
    q.column(a("id"))
        .from(a(USERS))
        .and_where(Expr::col(a("username")).eq(username))
        .and_where(Expr::col(a("id")).ne(except));
    Ok(tx.fetch_optional::<(String,), _>(&q).await?.is_some())
}

fn conflict(field: &str) -> ApiError {
    ApiError::new(
        ErrorCode::Conflict,
        format!("another user already has this {field}"),
    )
    .with_detail("field", field)
}

/// Ends every active session of `user_id` inside `tx`; the facts of the sessions it ended whose
/// access tokens may still be live somewhere: expiring after now less one access lifetime, so a
/// process whose clock is behind ours by up to that much still hears of them. (Older ones are
/// expired everywhere, and a user with many stale sessions does not make one huge change.)
pub(crate) async fn revoke_sessions(
    tx: &mut Transaction,
    user_id: &str,
) -> Result<Vec<plystra_contracts::facts::Fact>, ApiError> {
    let at = now();
    let mut q = Query::update();
    q.table(a(SESSIONS))
        .values([
            (a("status"), Expr::val("revoked")),
            (a("revoked_at"), Expr::val(at)),
        ])
        .and_where(Expr::col(a("user_id")).eq(user_id))
        .and_where(Expr::col(a("status")).eq("active"));
    q.returning(Query::returning().columns(crate::sessions::STATE_COLUMNS.map(a)));
    let ended: Vec<crate::sessions::SessionState> = tx.fetch_all(&q).await?;
    Ok(ended
        .into_iter()
        .filter(|s| s.expires_at() > at - crate::sessions::ACCESS_TTL)
        .map(Into::into)
        .collect())
}

/// A validated new user, ready to insert.
pub(crate) struct NewUser {
    pub(crate) id: String,
    pub(crate) username: String,
    pub(crate) email: String,
    pub(crate) phone: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) status: Status,
    pub(crate) metadata: Option<Metadata>,
}

impl NewUser {
    /// Validates a create request.
    pub(crate) fn validate(body: UserCreateRequest) -> Result<Self, ApiError> {
        let id = entity_id("user_", body.id.as_deref())?;
        let email = email(&body.email)?;
        let username = match &body.username {
            Some(u) => text("username", u, 128)?,
            None => email.clone(),
        };
        let phone = body.phone.as_deref().map(phone).transpose()?;
        if let Some(p) = &body.password {
            passwords::check(p)?;
        }
        Ok(Self {
            id,
            username,
            email,
            phone,
            password: body.password,
            status: body.status.unwrap_or(Status::Active),
            metadata: body.metadata,
        })
    }

    /// Inserts the user inside `tx` (after hashing its password under `hashing`) and returns it.
    pub(crate) async fn insert(
        self,
        tx: &mut Transaction,
        hashing: &passwords::Hashing,
    ) -> Result<User, ApiError> {
        if email_taken(tx, &self.email, &self.id).await? {
            return Err(conflict("email"));
        }
        if username_taken(tx, &self.username, &self.id).await? {
            return Err(conflict("username"));
        }
        if entity::get::<User>(&mut *tx, &self.id).await?.is_some() {
            return Err(
                ApiError::new(ErrorCode::Conflict, "a user with this ID exists")
                    .with_detail("field", "id"),
            );
        }
        let at = now();
        let hash = match self.password {
            Some(p) => Some(hashing.hash(p).await?),
            None => None,
        };
        let changed = hash.as_ref().map(|_| at);
        entity::insert(
            tx,
            USERS,
            vec![
                ("id", self.id.clone().into()),
                ("username", self.username.into()),
                ("email", Some(self.email).into()),
                ("phone", self.phone.into()),
                ("password_hash", hash.into()),
                ("status", self.status.as_str().into()),
                ("metadata", metadata_in(&self.metadata).into()),
                ("password_changed_at", changed.into()),
                ("created_at", at.into()),
                ("updated_at", at.into()),
            ],
        )
        .await?;
        entity::require::<User>(&mut *tx, &self.id).await
    }
}

/// Audits and commits the creation of `user`.
pub(crate) fn created_record(
    caller: Caller<'_>,
    user: &User,
) -> plystra_contracts::services::AuditRecord {
    change_of(caller, "users.create", user)
}

/// The user routes.
pub struct UsersApi {
    pub(crate) ctx: Arc<Ctx>,
}

impl UsersApi {
    async fn change(
        &self,
        req: &poem::Request,
        user_id: &str,
        action: &str,
        update: UserUpdateRequest,
        strict: Option<Status>,
    ) -> Result<Json<Envelope<User>>, ApiError> {
        let mut tx = self.ctx.begin().await?;
        let current = entity::require::<User>(&mut tx, user_id).await?;
        let mut sets: Vec<(&str, Value)> = Vec::new();
        let mut end_sessions = false;
        if let Some(to) =
            status_change("user", current.status, update.status, strict, STATUS_MOVES)?
        {
            sets.push(("status", to.as_str().into()));
            end_sessions |= to == Status::Disabled;
        }
        if let Some(e) = &update.email {
            let e = email(e)?;
            if Some(&e) != current.email.as_ref() {
                if email_taken(&mut tx, &e, user_id).await? {
                    return Err(conflict("email"));
                }
                sets.push(("email", Some(e).into()));
            }
        }
        if let Some(u) = &update.username {
            let u = text("username", u, 128)?;
            if u != current.username {
                if username_taken(&mut tx, &u, user_id).await? {
                    return Err(conflict("username"));
                }
                sets.push(("username", u.into()));
            }
        }
        match &update.phone {
            MaybeUndefined::Value(p) => sets.push(("phone", Some(phone(p)?).into())),
            MaybeUndefined::Null => sets.push(("phone", Option::<String>::None.into())),
            MaybeUndefined::Undefined => {}
        }
        if update.metadata.is_some() {
            sets.push(("metadata", metadata_in(&update.metadata).into()));
        }
        let at = now();
        if let Some(p) = update.password {
            passwords::check(&p)?;
            let hash = self.ctx.sessions.hashing().hash(p).await?;
            sets.push(("password_hash", Some(hash).into()));
            sets.push(("password_changed_at", Some(at).into()));
            end_sessions = true;
        }
        sets.push(("updated_at", at.into()));
        entity::update(&mut tx, USERS, user_id, sets).await?;
        let ended = if end_sessions {
            revoke_sessions(&mut tx, user_id).await?
        } else {
            Vec::new()
        };
        let user = entity::require::<User>(&mut tx, user_id).await?;
        let mut record = change_of(Caller::of(req), action, &user);
        crate::store::acting_binding(&mut tx, &mut record).await?;
        let mut facts = vec![plystra_contracts::facts::Fact::from(&user)];
        facts.extend(ended);
        self.ctx.commit_facts(tx, vec![record], facts).await?;
        Ok(Json(Envelope::new(user)))
    }
}

#[OpenApi(tag = "ApiTag::Users")]
impl UsersApi {
    /// Lists users by ID, a page at a time.
    #[oai(path = "/api/v1/users", method = "get", operation_id = "listUsers")]
    async fn list(
        &self,
        /// Users per page, 1-200 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: QueryParam<Option<i64>>,
        /// The `pagination.cursor` of the previous page.
        cursor: QueryParam<Option<String>>,
    ) -> Result<Json<ListEnvelope<User>>, ApiError> {
        let page = KeyPage::parse(limit.0, cursor.0.as_deref())?;
        let q = User::select();
        Ok(Json(entity::list(&self.ctx.db, q, &page).await?))
    }

    /// Creates a user; the password, if given, is stored only as an Argon2id hash.
    #[oai(path = "/api/v1/users", method = "post", operation_id = "createUser")]
    async fn create(
        &self,
        req: &poem::Request,
        body: JsonBody<UserCreateRequest>,
    ) -> Result<Created<User>, ApiError> {
        let new = NewUser::validate(body.0)?;
        let mut tx = self.ctx.begin().await?;
        let user = new.insert(&mut tx, self.ctx.sessions.hashing()).await?;
        let record = created_record(Caller::of(req), &user);
        self.ctx
            .commit_audited(tx, record, plystra_contracts::facts::Fact::from(&user))
            .await?;
        Ok(Created::new(user))
    }

    /// Reads one user.
    #[oai(
        path = "/api/v1/users/:user_id",
        method = "get",
        operation_id = "getUser"
    )]
    async fn get(
        &self,
        /// The user's ID.
        user_id: Path<String>,
    ) -> Result<Json<Envelope<User>>, ApiError> {
        let user = entity::require::<User>(&self.ctx.db, &user_id.0).await?;
        Ok(Json(Envelope::new(user)))
    }

    /// Changes a user's email, handle, phone, password, status or metadata. A new password ends
    /// the user's sessions.
    #[oai(
        path = "/api/v1/users/:user_id",
        method = "patch",
        operation_id = "updateUser"
    )]
    async fn update(
        &self,
        req: &poem::Request,
        /// The user's ID.
        user_id: Path<String>,
        body: JsonBody<UserUpdateRequest>,
    ) -> Result<Json<Envelope<User>>, ApiError> {
        self.change(req, &user_id.0, "users.update", body.0, None)
            .await
    }

    /// Disables an active user: it can no longer log in and its sessions end. 409 when already
    /// disabled.
    #[oai(
        path = "/api/v1/users/:user_id/disable",
        method = "post",
        operation_id = "disableUser"
    )]
    async fn disable(
        &self,
        req: &poem::Request,
        /// The user's ID.
        user_id: Path<String>,
    ) -> Result<Json<Envelope<User>>, ApiError> {
        self.change(
            req,
            &user_id.0,
            "users.disable",
            UserUpdateRequest::default(),
            Some(Status::Disabled),
        )
        .await
    }

    /// Restores a disabled user. 409 when already active.
    #[oai(
        path = "/api/v1/users/:user_id/restore",
        method = "post",
        operation_id = "restoreUser"
    )]
    async fn restore(
        &self,
        req: &poem::Request,
        /// The user's ID.
        user_id: Path<String>,
    ) -> Result<Json<Envelope<User>>, ApiError> {
        self.change(
            req,
            &user_id.0,
            "users.restore",
            UserUpdateRequest::default(),
            Some(Status::Active),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_lower_cased_and_checked() {
        assert_eq!(email(" Alice@Example.COM ").unwrap(), "alice@example.com");
        for bad in [
            "",
            "alice",
            "alice@",
            "@example.com",
            "a@b",
            "a b@c.d",
            "a@b@c.d",
        ] {
            let err = email(bad).unwrap_err();
            assert!(err.details["fields"]["email"].is_string(), "{bad}");
        }
    }
}
