//! The kernel's configuration: what plystrad passes in, already parsed from flags and environment.

use std::collections::BTreeMap;

/// Development or production.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Environment {
    /// Convenient defaults: generated bootstrap key, migrations applied at boot.
    #[default]
    Development,
    /// Strict: nothing is generated or applied implicitly.
    Production,
}

impl Environment {
    /// Parses `development`/`dev` or `production`/`prod`.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "development" | "dev" => Some(Self::Development),
            "production" | "prod" => Some(Self::Production),
            _ => None,
        }
    }

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Development => "development",
            Self::Production => "production",
        }
    }
}

/// Facts about the build, shown by `/api/v1/version`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BuildInfo {
    /// The commit the binary was built from, or `unknown`.
    pub git_commit: String,
    /// When it was built (RFC 3339), or `unknown`.
    pub built_at: String,
    /// The compiler that built it.
    pub rustc: String,
}

/// Everything the kernel needs to boot and serve.
#[derive(Debug, Clone)]
pub struct KernelConfig {
    /// Development or production.
    pub environment: Environment,
    /// The bootstrap API key (`PLYSTRA_API_KEY`); `None` means protected routes answer 401.
    pub bootstrap_api_key: Option<String>,
    /// Origins allowed by CORS; empty means no CORS headers at all.
    pub cors_allowed_origins: Vec<String>,
    /// The request-ID header, `X-Request-ID` by default.
    pub request_id_header: String,
    /// The largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Build facts for `/api/v1/version`.
    pub build: BuildInfo,
    /// Other `PLYSTRA_*` settings, offered to capabilities through `RuntimeInfo`.
    pub settings: BTreeMap<String, String>,
    /// The database to open; `None` runs without one (the kernel's own tests).
    pub database: Option<crate::storage::DatabaseConfig>,
}

impl Default for KernelConfig {
    fn default() -> Self {
        Self {
            environment: Environment::Development,
            bootstrap_api_key: None,
            cors_allowed_origins: Vec::new(),
            request_id_header: "X-Request-ID".to_owned(),
            max_body_bytes: 1024 * 1024,
            build: BuildInfo::default(),
            settings: BTreeMap::new(),
            database: None,
        }
    }
}
