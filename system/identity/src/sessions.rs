//! Sessions: opaque access (`ply_at_…`, 15 minutes) and refresh (`ply_rt_…`, 30 days) tokens,
//! stored only as HMAC-SHA256 under `PLYSTRA_SESSION_SECRET` (previous secrets from
//! `PLYSTRA_SESSION_SECRET_PREVIOUS` still verify), and the login lockout.
//!
//! The lockout is in the database (`sys_identity_login_failures`), so every process on it counts
//! the same failures: 8 failed logins for one (email, source IP) within 15 minutes lock that pair
//! until 15 minutes after the 8th most recent of them. The email is stored only as the SHA-256 of
//! its trimmed, lowercased form. When the failures cannot be read or written, the login is
//! refused with the storage error (503 when the database is unavailable), never let through.
//!
//! Beside the lockout, two in-process bounds protect login ([`LoginLimits`]): the client address
//! is rate-limited across emails ([`AddressLimiter`], `PLYSTRA_LOGIN_ATTEMPTS_PER_MINUTE`), and
//! password hashing is bounded ([`crate::passwords::Hashing`]). They are per process: behind N
//! replicas an address gets N times the rate, and the lockout (in the database) still counts
//! across all of them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration as StdDuration, Instant};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use plystra_contracts::facts::Fact;
use plystra_contracts::feed::FactsFeed;
use plystra_contracts::services::{Credential, ResolveError, RuntimeInfo, SessionVerifier};
use plystra_contracts::storage::sea_query::{
    Expr, ExprTrait, Order, Query, SelectStatement, Value,
};
use plystra_contracts::storage::time::format_description::well_known::Rfc3339;
use plystra_contracts::storage::time::{Duration, OffsetDateTime};
use plystra_contracts::storage::{Database, Transaction};
use plystra_contracts::{ApiError, ErrorCode};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::session_index::{Lookup, SessionIndex};
use crate::store::{SESSIONS, USERS, a, from_rows, now};
use plystra_contracts::entity;

/// The access token prefix.
pub const ACCESS_PREFIX: &str = "ply_at_";
/// The refresh token prefix.
pub const REFRESH_PREFIX: &str = "ply_rt_";
/// How long an access token lives.
pub const ACCESS_TTL: Duration = Duration::minutes(15);
/// How long a refresh token lives.
pub const REFRESH_TTL: Duration = Duration::days(30);
/// Failed logins that lock an (email, IP) pair.
pub const MAX_FAILURES: usize = 8;
/// The window failures are counted in, and how long a lock lasts.
pub const LOCK_WINDOW: StdDuration = StdDuration::from_secs(15 * 60);

/// The table failed logins are counted in.
const LOGIN_FAILURES: &str = crate::schema::LOGIN_FAILURES.name;

/// [`LOCK_WINDOW`] as a span of time.
const WINDOW: Duration = Duration::seconds(LOCK_WINDOW.as_secs() as i64);

/// How an email is keyed in the failure table: the SHA-256 (hex) of its trimmed, lowercased form.
fn email_key(email: &str) -> String {
    hex::encode(Sha256::digest(email.trim().to_lowercase().as_bytes()))
}

/// The secrets tokens are HMACed under: the current one first.
#[derive(Clone)]
pub struct Secrets(Vec<Vec<u8>>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets([{} redacted])", self.0.len())
    }
}

impl Secrets {
    /// Reads `PLYSTRA_SESSION_SECRET` and `PLYSTRA_SESSION_SECRET_PREVIOUS`. Without a secret,
    /// development uses a random per-process secret (sessions end at restart) and warns;
    /// production has none (`None`): sessions are off rather than weak. (plystrad's production
    /// guards refuse to start without the secret anyway.)
    pub fn from_runtime(runtime: &dyn RuntimeInfo) -> Option<Self> {
        let current = runtime
            .setting("PLYSTRA_SESSION_SECRET")
            .filter(|s| !s.is_empty());
        let current = match current {
            Some(s) => s.into_bytes(),
            None if runtime.production() => return None,
            None => dev_secret().to_vec(),
        };
        let mut all = vec![current];
        if let Some(previous) = runtime.setting("PLYSTRA_SESSION_SECRET_PREVIOUS") {
            all.extend(
                previous
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| s.as_bytes().to_vec()),
            );
        }
        Some(Self(all))
    }

    /// Secrets given directly (tests).
    pub fn new(current: &str, previous: &[&str]) -> Self {
        let mut all = vec![current.as_bytes().to_vec()];
        all.extend(previous.iter().map(|p| p.as_bytes().to_vec()));
        Self(all)
    }

    /// The HMAC of `token` under the current secret.
    pub fn current(&self, token: &str) -> String {
        hmac_hex(&self.0[0], token)
    }

    /// The HMAC of `token` under every accepted secret, current first.
    pub fn all(&self, token: &str) -> Vec<String> {
        self.0.iter().map(|s| hmac_hex(s, token)).collect()
    }
}

fn dev_secret() -> &'static [u8; 32] {
    static SECRET: OnceLock<[u8; 32]> = OnceLock::new();
    SECRET.get_or_init(|| {
        tracing::warn!(
            "PLYSTRA_SESSION_SECRET is not set: using a random secret for this process; sessions end when it stops"
        );
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        secret
    })
}

fn hmac_hex(secret: &[u8], token: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(token.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A new random token with `prefix`.
pub fn token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// A freshly issued pair of tokens.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The session's ID.
    pub session_id: String,
    /// The access token, shown once.
    pub access_token: String,
    /// When it expires.
    pub expires_at: OffsetDateTime,
    /// The refresh token, shown once.
    pub refresh_token: String,
    /// When it expires.
    pub refresh_expires_at: OffsetDateTime,
}

/// A stored session, as verification needs it.
#[derive(Debug, Clone)]
pub struct SessionRow {
    /// Its ID.
    pub id: String,
    /// The user.
    pub user_id: String,
    /// The binding the session currently acts through.
    pub user_member_id: Option<String>,
    /// `active` or `revoked`.
    pub status: String,
    /// Access expiry.
    pub expires_at: OffsetDateTime,
    /// Refresh expiry.
    pub refresh_expires_at: Option<OffsetDateTime>,
    /// The user's status.
    pub user_status: String,
}

from_rows!(SessionRow, |row| {
    Ok(SessionRow {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        user_member_id: row.try_get("user_member_id")?,
        status: row.try_get("status")?,
        expires_at: row.try_get("expires_at")?,
        refresh_expires_at: row.try_get("refresh_expires_at")?,
        user_status: row.try_get("user_status")?,
    })
});

/// Every session with its user's status, as `SessionRow`s; the caller adds the condition.
fn session_rows() -> SelectStatement {
    let mut q = Query::select();
    q.columns(
        [
            "id",
            "user_id",
            "user_member_id",
            "status",
            "expires_at",
            "refresh_expires_at",
        ]
        .map(|c| (a(SESSIONS), a(c))),
    )
    .expr_as(Expr::col((a(USERS), a("status"))), a("user_status"))
    .from(a(SESSIONS))
    .inner_join(
        a(USERS),
        Expr::col((a(USERS), a("id"))).equals((a(SESSIONS), a("user_id"))),
    );
    q
}

/// A session's state as the change feed carries it: what a write reads back (`RETURNING`) from
/// the row it changed.
#[derive(Debug, Clone)]
pub(crate) struct SessionState {
    id: String,
    user_id: String,
    user_member_id: Option<String>,
    token_hmac: String,
    status: String,
    expires_at: OffsetDateTime,
}

/// The columns of a [`SessionState`].
pub(crate) const STATE_COLUMNS: [&str; 6] = [
    "id",
    "user_id",
    "user_member_id",
    "token_hmac",
    "status",
    "expires_at",
];

from_rows!(SessionState, |row| {
    Ok(SessionState {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        user_member_id: row.try_get("user_member_id")?,
        token_hmac: row.try_get("token_hmac")?,
        status: row.try_get("status")?,
        expires_at: row.try_get("expires_at")?,
    })
});

impl SessionState {
    /// When its access token expires.
    pub(crate) fn expires_at(&self) -> OffsetDateTime {
        self.expires_at
    }
}

impl From<SessionState> for Fact {
    fn from(s: SessionState) -> Self {
        Fact::Session {
            id: s.id,
            user_id: s.user_id,
            user_member_id: s.user_member_id,
            token_hmac: s.token_hmac,
            status: s.status,
            // A year past 9999 does not format; an empty expiry reads as expired (the session
            // table leaves it out and the database decides).
            expires_at: s.expires_at.format(&Rfc3339).unwrap_or_default(),
        }
    }
}

/// `update` with the changed rows' [`SessionState`]s returned, run inside `tx`.
async fn changed_states(
    tx: &mut Transaction,
    mut update: plystra_contracts::storage::sea_query::UpdateStatement,
) -> Result<Vec<SessionState>, ApiError> {
    update.returning(Query::returning().columns(STATE_COLUMNS.map(a)));
    Ok(tx.fetch_all::<SessionState, _>(&update).await?)
}

/// Issues, verifies, rotates and revokes sessions, and holds the bounds login runs under.
pub struct Sessions {
    db: Database,
    secrets: Option<Secrets>,
    hashing: Arc<crate::passwords::Hashing>,
    addresses: AddressLimiter,
}

impl Sessions {
    /// Sessions over `db` under `secrets`; with none, sessions are off: no token verifies and
    /// issuing one answers 503. Login runs under the default [`LoginLimits`].
    pub fn new(db: Database, secrets: Option<Secrets>) -> Self {
        Self {
            db,
            secrets,
            hashing: Arc::new(crate::passwords::Hashing::new(
                crate::passwords::Hashing::default_limit(),
                crate::passwords::Hashing::DEFAULT_WAIT,
            )),
            addresses: AddressLimiter::new(DEFAULT_ATTEMPTS_PER_MINUTE),
        }
    }

    /// The same sessions with `limits` on login and password hashing.
    pub fn with_limits(mut self, limits: LoginLimits) -> Self {
        self.hashing = Arc::new(crate::passwords::Hashing::new(
            limits.hash_concurrency,
            limits.hash_wait,
        ));
        self.addresses = AddressLimiter::new(limits.attempts_per_minute);
        self
    }

    /// The bound every password hash and verification of this server runs under.
    pub fn hashing(&self) -> &crate::passwords::Hashing {
        &self.hashing
    }

    /// Takes one login attempt for the client `address`: 429 `RATE_LIMITED` (with
    /// `retry_after_seconds`) when it has none left.
    pub fn attempt_from(&self, address: Option<IpAddr>) -> Result<(), ApiError> {
        self.addresses
            .take(address, Instant::now())
            .map_err(|wait| {
                ApiError::new(
                    ErrorCode::RateLimited,
                    "too many login attempts from this address; try again later",
                )
                .with_detail(
                    plystra_contracts::error::RETRY_AFTER_DETAIL,
                    wait.as_secs_f64().ceil().max(1.0) as u64,
                )
            })
    }

    async fn find(&self, column: &str, token: &str) -> Result<Option<SessionRow>, ApiError> {
        let Some(secrets) = &self.secrets else {
            return Ok(None);
        };
        for hmac in secrets.all(token) {
            let mut q = session_rows();
            q.and_where(Expr::col((a(SESSIONS), a(column))).eq(hmac));
            if let Some(row) = self.db.fetch_optional::<SessionRow, _>(&q).await? {
                return Ok(Some(row));
            }
        }
        Ok(None)
    }

    /// The live session an access token belongs to.
    pub async fn by_access(&self, token: &str) -> Result<Option<SessionRow>, ApiError> {
        if !token.starts_with(ACCESS_PREFIX) {
            return Ok(None);
        }
        let at = now();
        Ok(self
            .find("token_hmac", token)
            .await?
            .filter(|s| s.status == "active" && s.user_status == "active" && s.expires_at > at))
    }

    /// The live session a refresh token belongs to.
    pub async fn by_refresh(&self, token: &str) -> Result<Option<SessionRow>, ApiError> {
        if !token.starts_with(REFRESH_PREFIX) {
            return Ok(None);
        }
        let at = now();
        Ok(self.find("refresh_token_hmac", token).await?.filter(|s| {
            s.status == "active"
                && s.user_status == "active"
                && s.refresh_expires_at.is_some_and(|e| e > at)
        }))
    }

    /// Creates a session for `user_id` inside `tx`, acting through `user_member_id`; returns the
    /// tokens and the session's fact, for the caller to commit with `tx`.
    pub async fn create(
        &self,
        tx: &mut Transaction,
        user_id: &str,
        user_member_id: Option<&str>,
        ip: Option<&str>,
        user_agent: Option<&str>,
    ) -> Result<(Issued, Fact), ApiError> {
        let secrets = self.secrets()?;
        let at = now();
        let issued = self.issue(plystra_contracts::ids::generate("sess_"), at);
        let token_hmac = secrets.current(&issued.access_token);
        entity::insert(
            tx,
            SESSIONS,
            vec![
                ("id", issued.session_id.clone().into()),
                ("user_id", user_id.into()),
                ("token_hmac", token_hmac.clone().into()),
                ("status", "active".into()),
                ("user_member_id", user_member_id.map(str::to_owned).into()),
                ("ip_address", ip.map(str::to_owned).into()),
                (
                    "user_agent",
                    user_agent
                        .map(|u| u.chars().take(500).collect::<String>())
                        .into(),
                ),
                ("created_at", at.into()),
                ("expires_at", issued.expires_at.into()),
                ("last_seen_at", Some(at).into()),
                (
                    "refresh_token_hmac",
                    Some(secrets.current(&issued.refresh_token)).into(),
                ),
                ("refresh_expires_at", Some(issued.refresh_expires_at).into()),
            ],
        )
        .await?;
        let mut login = Query::update();
        login
            .table(a(USERS))
            .value(a("last_login_at"), Expr::val(Some(at)))
            .and_where(Expr::col(a("id")).eq(user_id));
        tx.execute(&login).await?;
        let fact = SessionState {
            id: issued.session_id.clone(),
            user_id: user_id.to_owned(),
            user_member_id: user_member_id.map(str::to_owned),
            token_hmac,
            status: "active".to_owned(),
            expires_at: issued.expires_at,
        }
        .into();
        Ok((issued, fact))
    }

    /// The secrets, or 503 `NOT_READY` when sessions are off.
    pub(crate) fn secrets(&self) -> Result<&Secrets, ApiError> {
        self.secrets.as_ref().ok_or_else(|| {
            ApiError::new(
                ErrorCode::NotReady,
                "sessions are off: PLYSTRA_SESSION_SECRET is not set",
            )
        })
    }

    fn issue(&self, session_id: String, at: OffsetDateTime) -> Issued {
        Issued {
            session_id,
            access_token: token(ACCESS_PREFIX),
            expires_at: at + ACCESS_TTL,
            refresh_token: token(REFRESH_PREFIX),
            refresh_expires_at: at + REFRESH_TTL,
        }
    }

    /// Rotates both tokens of `session` (found by [`Sessions::by_refresh`] for `refresh_token`)
    /// inside `tx`: the old ones stop working once `tx` commits. Only the request that still
    /// finds the old refresh HMAC rotates: a replayed token loses (401). Returns the tokens and
    /// the session's fact.
    pub async fn refresh_in(
        &self,
        tx: &mut Transaction,
        session: &SessionRow,
        refresh_token: &str,
    ) -> Result<(Issued, Fact), ApiError> {
        let secrets = self.secrets()?;
        let at = now();
        let issued = self.issue(session.id.clone(), at);
        let mut q = Query::update();
        q.table(a(SESSIONS))
            .values([
                (
                    a("token_hmac"),
                    Expr::val(secrets.current(&issued.access_token)),
                ),
                (a("expires_at"), Expr::val(issued.expires_at)),
                (
                    a("refresh_token_hmac"),
                    Expr::val(Some(secrets.current(&issued.refresh_token))),
                ),
                (
                    a("refresh_expires_at"),
                    Expr::val(Some(issued.refresh_expires_at)),
                ),
                (a("last_seen_at"), Expr::val(Some(at))),
            ])
            .and_where(Expr::col(a("id")).eq(session.id.as_str()))
            .and_where(Expr::col(a("status")).eq("active"))
            .and_where(Expr::col(a("refresh_token_hmac")).is_in(secrets.all(refresh_token)));
        // The ID is the key: one row or none.
        let state = changed_states(tx, q)
            .await?
            .pop()
            .ok_or_else(invalid_token)?;
        Ok((issued, state.into()))
    }

    /// Revokes the session with `id` inside `tx`; its fact when it was live (`None`: nothing
    /// changed).
    pub async fn revoke_in(
        &self,
        tx: &mut Transaction,
        id: &str,
    ) -> Result<Option<Fact>, ApiError> {
        let mut q = Query::update();
        q.table(a(SESSIONS))
            .values([
                (a("status"), Expr::val("revoked")),
                (a("revoked_at"), Expr::val(Some(now()))),
            ])
            .and_where(Expr::col(a("id")).eq(id))
            .and_where(Expr::col(a("status")).eq("active"));
        Ok(changed_states(tx, q).await?.pop().map(Fact::from))
    }

    /// Points the session with `id` at another binding inside `tx`; its fact (`None` when no
    /// such session).
    pub async fn switch_in(
        &self,
        tx: &mut Transaction,
        id: &str,
        user_member_id: &str,
    ) -> Result<Option<Fact>, ApiError> {
        let mut q = Query::update();
        q.table(a(SESSIONS))
            .value(
                a("user_member_id"),
                Expr::val(Some(user_member_id.to_owned())),
            )
            .and_where(Expr::col(a("id")).eq(id));
        Ok(changed_states(tx, q).await?.pop().map(Fact::from))
    }

    /// The session with `id`, if live.
    pub async fn by_id(&self, id: &str) -> Result<Option<SessionRow>, ApiError> {
        let mut q = session_rows();
        q.and_where(Expr::col((a(SESSIONS), a("id"))).eq(id));
        Ok(self
            .db
            .fetch_optional::<SessionRow, _>(&q)
            .await?
            .filter(|s| s.status == "active" && s.user_status == "active"))
    }

    /// How much longer the (email, IP) pair stays locked, if it is: with at least
    /// [`MAX_FAILURES`] failures within [`LOCK_WINDOW`], until the [`MAX_FAILURES`]-th most recent
    /// of them is [`LOCK_WINDOW`] old. A database error is an error, never "not locked".
    pub async fn locked(&self, email: &str, ip: &str) -> Result<Option<StdDuration>, ApiError> {
        let at = now();
        let mut q = Query::select();
        q.column(a("failed_at"))
            .from(a(LOGIN_FAILURES))
            .and_where(Expr::col(a("email_key")).eq(email_key(email)))
            .and_where(Expr::col(a("ip_address")).eq(ip))
            .and_where(Expr::col(a("failed_at")).gt(at - WINDOW))
            .order_by(a("failed_at"), Order::Desc)
            .limit(MAX_FAILURES as u64);
        let recent = self.db.fetch_all::<(OffsetDateTime,), _>(&q).await?;
        if recent.len() < MAX_FAILURES {
            return Ok(None);
        }
        let Some((oldest,)) = recent.iter().min() else {
            return Ok(None);
        };
        let left = StdDuration::try_from(*oldest + WINDOW - at).unwrap_or_default();
        Ok(Some(left))
    }

    /// Counts a failed login of the (email, IP) pair, and forgets every failure older than
    /// [`LOCK_WINDOW`] (of any pair).
    pub async fn failed(&self, email: &str, ip: &str) -> Result<(), ApiError> {
        let at = now();
        let mut insert = Query::insert();
        insert
            .into_table(a(LOGIN_FAILURES))
            .columns(["id", "email_key", "ip_address", "failed_at"].map(a))
            .values_panic(
                [
                    plystra_contracts::ids::generate("lf_").into(),
                    email_key(email).into(),
                    ip.into(),
                    at.into(),
                ]
                .map(|v: Value| Expr::val(v)),
            );
        self.db.execute(&insert).await?;
        let mut prune = Query::delete();
        prune
            .from_table(a(LOGIN_FAILURES))
            .and_where(Expr::col(a("failed_at")).lte(at - WINDOW));
        self.db.execute(&prune).await?;
        Ok(())
    }

    /// Forgets the failures of the (email, IP) pair after a successful login.
    pub async fn succeeded(&self, email: &str, ip: &str) -> Result<(), ApiError> {
        let mut q = Query::delete();
        q.from_table(a(LOGIN_FAILURES))
            .and_where(Expr::col(a("email_key")).eq(email_key(email)))
            .and_where(Expr::col(a("ip_address")).eq(ip));
        self.db.execute(&q).await?;
        Ok(())
    }
}

/// Login attempts one client address may make per minute, by default.
pub const DEFAULT_ATTEMPTS_PER_MINUTE: u32 = 60;

/// The bounds login and password hashing run under, from settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginLimits {
    /// `PLYSTRA_LOGIN_ATTEMPTS_PER_MINUTE`: login attempts per client address and minute (a
    /// burst of that many, then one every `60 / n` seconds); 0 turns the limit off.
    pub attempts_per_minute: u32,
    /// `PLYSTRA_PASSWORD_HASH_CONCURRENCY`: password hashes at once (default: the cores).
    pub hash_concurrency: usize,
    /// `PLYSTRA_PASSWORD_HASH_WAIT_MS`: how long a request waits for a hashing turn before 503
    /// `SERVER_BUSY` (default 1000).
    pub hash_wait: StdDuration,
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self {
            attempts_per_minute: DEFAULT_ATTEMPTS_PER_MINUTE,
            hash_concurrency: crate::passwords::Hashing::default_limit(),
            hash_wait: crate::passwords::Hashing::DEFAULT_WAIT,
        }
    }
}

impl LoginLimits {
    /// Reads the settings; a value that is not a number (or a concurrency of 0) is an error
    /// naming the setting.
    pub fn from_settings(setting: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let mut limits = Self::default();
        let number = |name: &str| -> Result<Option<u64>, String> {
            match setting(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
            {
                None => Ok(None),
                Some(v) => v
                    .parse::<u64>()
                    .map(Some)
                    .map_err(|_| format!("{name}={v:?}: expected a whole number")),
            }
        };
        if let Some(n) = number("PLYSTRA_LOGIN_ATTEMPTS_PER_MINUTE")? {
            limits.attempts_per_minute = u32::try_from(n).unwrap_or(u32::MAX);
        }
        if let Some(n) = number("PLYSTRA_PASSWORD_HASH_CONCURRENCY")? {
            if n == 0 {
                return Err("PLYSTRA_PASSWORD_HASH_CONCURRENCY=0: at least 1".to_owned());
            }
            limits.hash_concurrency = usize::try_from(n).unwrap_or(usize::MAX).min(1024);
        }
        if let Some(n) = number("PLYSTRA_PASSWORD_HASH_WAIT_MS")? {
            limits.hash_wait = StdDuration::from_millis(n);
        }
        Ok(limits)
    }

    /// Reads the settings from the runtime; an invalid value is logged and its default used.
    pub fn from_runtime(runtime: &dyn RuntimeInfo) -> Self {
        Self::from_settings(|name| runtime.setting(name)).unwrap_or_else(|e| {
            tracing::error!("{e}; using the default login limits");
            Self::default()
        })
    }
}

/// How many client addresses the limiter tracks before new ones share one bucket.
const MAX_TRACKED_ADDRESSES: usize = 100_000;

/// A token bucket per client address, in this process: `per_minute` attempts at once, refilled
/// at `per_minute` a minute. IPv6 addresses count by their /64 (one host usually holds a whole
/// /64). The address is the connection's: `X-Forwarded-For` and similar headers are not read.
#[derive(Debug)]
pub struct AddressLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl AddressLimiter {
    /// `per_minute` attempts a minute per address; 0 is no limit.
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            buckets: Mutex::default(),
        }
    }

    /// Takes one attempt for `address` at `now`; how long until one is left, when none is.
    pub fn take(&self, address: Option<IpAddr>, now: Instant) -> Result<(), StdDuration> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let capacity = f64::from(self.per_minute);
        let per_second = capacity / 60.0;
        let refill = |(tokens, at): (f64, Instant)| {
            (tokens + now.saturating_duration_since(at).as_secs_f64() * per_second).min(capacity)
        };
        // Connections without an IP address (tests, sockets) share one bucket.
        let key = address.map_or(IpAddr::from([0, 0, 0, 0]), |ip| match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let mut s = v6.segments();
                    s[4..].fill(0);
                    IpAddr::from(s)
                }
            },
            v4 => v4,
        });
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let key = if buckets.contains_key(&key) || buckets.len() < MAX_TRACKED_ADDRESSES {
            key
        } else {
            // Full buckets carry no state: forget them before giving up on a bucket of its own.
            buckets.retain(|_, bucket| refill(*bucket) < capacity);
            if buckets.len() < MAX_TRACKED_ADDRESSES {
                key
            } else {
                IpAddr::from([255, 255, 255, 255])
            }
        };
        let tokens = buckets.get(&key).copied().map_or(capacity, refill);
        if tokens >= 1.0 {
            buckets.insert(key, (tokens - 1.0, now));
            Ok(())
        } else {
            buckets.insert(key, (tokens, now));
            Err(StdDuration::from_secs_f64((1.0 - tokens) / per_second))
        }
    }
}

/// 401 `INVALID_CREDENTIALS` for a refresh token that names no live session.
pub(crate) fn invalid_token() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidCredentials,
        "the refresh token is not valid (unknown, expired, revoked or already used)",
    )
}

/// The `identity.sessions` service: access tokens to session credentials, from the in-memory
/// [`SessionIndex`] the change feed keeps current.
///
/// With a feed, a token first needs this process's facts to be current (else 503, never a stale
/// allow); a token the table knows is decided there, with no SQL; one it does not know (a
/// session committed by another process and not applied here yet, or garbage) is read from the
/// database, and the answer is not cached. Without a feed every token is read from the database.
pub struct Verifier {
    pub(crate) sessions: Arc<Sessions>,
    pub(crate) index: Arc<SessionIndex>,
    pub(crate) feed: Option<Arc<dyn FactsFeed>>,
}

impl Verifier {
    async fn read_from_database(
        &self,
        access_token: &str,
    ) -> Result<Option<Credential>, ResolveError> {
        let session = self
            .sessions
            .by_access(access_token)
            .await
            .map_err(|e| ResolveError::Unavailable(e.message))?;
        Ok(session.map(|s| Credential::Session {
            user_id: s.user_id,
            session_id: s.id,
        }))
    }
}

#[async_trait]
impl SessionVerifier for Verifier {
    async fn verify(&self, access_token: &str) -> Result<Option<Credential>, ResolveError> {
        let Some(feed) = &self.feed else {
            return self.read_from_database(access_token).await;
        };
        // Not a session token, or sessions are off: nothing could verify, whatever the facts.
        let Some(secrets) = self.sessions.secrets.as_ref() else {
            return Ok(None);
        };
        if !access_token.starts_with(ACCESS_PREFIX) {
            return Ok(None);
        }
        feed.current()
            .map_err(|e| ResolveError::Unavailable(e.to_string()))?;
        match self.index.lookup(&secrets.all(access_token), now()) {
            Lookup::Live(s) => Ok(Some(Credential::Session {
                user_id: s.user_id,
                session_id: s.session_id,
            })),
            Lookup::Refused => Ok(None),
            Lookup::Unknown => self.read_from_database(access_token).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_prefixes_and_differ() {
        let t = token(ACCESS_PREFIX);
        assert!(t.starts_with("ply_at_") && t.len() == 7 + 43, "{t}");
        assert_ne!(t, token(ACCESS_PREFIX));
    }

    #[test]
    fn previous_secrets_still_verify() {
        let old = Secrets::new("old-secret", &[]);
        let rotated = Secrets::new("new-secret", &["old-secret"]);
        let stored = old.current("ply_at_x");
        assert!(rotated.all("ply_at_x").contains(&stored));
        assert_ne!(rotated.current("ply_at_x"), stored);
        assert_eq!(stored.len(), 64);
    }

    #[test]
    fn an_address_gets_its_burst_then_one_attempt_per_interval() {
        let limiter = AddressLimiter::new(6);
        let start = Instant::now();
        let a = Some("192.0.2.1".parse().unwrap());
        let b = Some("192.0.2.2".parse().unwrap());
        for _ in 0..6 {
            assert!(limiter.take(a, start).is_ok());
        }
        let wait = limiter.take(a, start).unwrap_err();
        assert!(
            wait > StdDuration::from_secs(9) && wait <= StdDuration::from_secs(10),
            "{wait:?}"
        );
        assert!(
            limiter.take(b, start).is_ok(),
            "another address has its own bucket"
        );
        // Ten seconds later one attempt is back, and only one.
        let later = start + StdDuration::from_secs(10);
        assert!(limiter.take(a, later).is_ok());
        assert!(limiter.take(a, later).is_err());
        // Off.
        let off = AddressLimiter::new(0);
        for _ in 0..1000 {
            assert!(off.take(a, start).is_ok());
        }
    }

    #[test]
    fn ipv6_addresses_count_by_their_slash_64() {
        let limiter = AddressLimiter::new(1);
        let now = Instant::now();
        assert!(
            limiter
                .take(Some("2001:db8:1:2::1".parse().unwrap()), now)
                .is_ok()
        );
        assert!(
            limiter
                .take(Some("2001:db8:1:2:ffff::9".parse().unwrap()), now)
                .is_err()
        );
        assert!(
            limiter
                .take(Some("2001:db8:1:3::1".parse().unwrap()), now)
                .is_ok()
        );
        assert!(
            limiter
                .take(Some("::ffff:192.0.2.7".parse().unwrap()), now)
                .is_ok()
        );
        assert!(
            limiter
                .take(Some("192.0.2.7".parse().unwrap()), now)
                .is_err(),
            "mapped v4 is v4"
        );
    }

    #[test]
    fn login_limits_read_their_settings_and_refuse_nonsense() {
        let settings = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert_eq!(
            LoginLimits::from_settings(settings(&[])).unwrap(),
            LoginLimits::default()
        );
        let limits = LoginLimits::from_settings(settings(&[
            ("PLYSTRA_LOGIN_ATTEMPTS_PER_MINUTE", "0"),
            ("PLYSTRA_PASSWORD_HASH_CONCURRENCY", "3"),
            ("PLYSTRA_PASSWORD_HASH_WAIT_MS", "250"),
        ]))
        .unwrap();
        assert_eq!(limits.attempts_per_minute, 0);
        assert_eq!(limits.hash_concurrency, 3);
        assert_eq!(limits.hash_wait, StdDuration::from_millis(250));
        let err =
            LoginLimits::from_settings(settings(&[("PLYSTRA_PASSWORD_HASH_WAIT_MS", "soon")]))
                .unwrap_err();
        assert!(err.contains("PLYSTRA_PASSWORD_HASH_WAIT_MS"), "{err}");
        assert!(
            LoginLimits::from_settings(settings(&[("PLYSTRA_PASSWORD_HASH_CONCURRENCY", "0")]))
                .is_err()
        );
    }

    #[test]
    fn failures_key_the_normalized_email_never_the_email() {
        let key = email_key("  Alice@Example.COM ");
        assert_eq!(key, email_key("alice@example.com"));
        assert_eq!(key.len(), 64);
        assert!(key.bytes().all(|b| b.is_ascii_hexdigit()), "{key}");
        assert!(!key.contains("alice"));
        assert_ne!(key, email_key("bob@example.com"));
    }
}
