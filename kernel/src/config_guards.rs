//! Production guards: the settings a production deployment must not leave at development values.
//!
//! One pure function, [`check_production`], shared by `plystrad` (which refuses to start in
//! production when it reports anything) and `plystractl doctor` (which prints each violation).
//! It reads settings through a lookup function so tests and callers choose the environment.

use crate::storage::DEFAULT_DATABASE_URL;

/// The database URL variables, in precedence order.
pub const DATABASE_URL_VARS: [&str; 2] = ["PLYSTRA_DATABASE_URL", "DATABASE_URL"];

/// The minimum length of each secret.
pub const MIN_SECRET_LEN: usize = 32;

/// The fewest distinct characters a secret may have: a random value of [`MIN_SECRET_LEN`]
/// characters has far more (32 random hex digits: 14 to 15), one letter repeated has one.
pub const MIN_SECRET_DISTINCT: usize = 8;

/// What is wrong with `value` as a secret (too short, or too few distinct characters to be
/// random), or `None`.
fn weak_secret(value: &str) -> Option<String> {
    let distinct = value
        .chars()
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    if value.chars().count() < MIN_SECRET_LEN {
        Some(format!("is shorter than {MIN_SECRET_LEN} characters"))
    } else if distinct < MIN_SECRET_DISTINCT {
        Some(format!(
            "has {distinct} distinct character(s): it is not a random value"
        ))
    } else {
        None
    }
}

/// One setting that is not fit for production.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardViolation {
    /// The setting (environment variable) at fault.
    pub setting: &'static str,
    /// What is wrong with it.
    pub problem: String,
    /// How to fix it.
    pub fix: String,
}

impl std::fmt::Display for GuardViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} (fix: {})", self.setting, self.problem, self.fix)
    }
}

/// Development credentials that must not reach production, matched inside the database URL.
const DEV_CREDENTIALS: &[&str] = &[
    "postgres:postgres@",
    "plystra:plystra@",
    "user:password@",
    "://postgres@",
];

/// Checks the production settings `env` returns (`None` for an unset variable).
pub fn check_production(env: &dyn Fn(&str) -> Option<String>) -> Vec<GuardViolation> {
    let get = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let mut violations = Vec::new();

    match DATABASE_URL_VARS.iter().find_map(|name| get(name)) {
        None => violations.push(GuardViolation {
            setting: "PLYSTRA_DATABASE_URL",
            problem: format!(
                "not set; the development default {DEFAULT_DATABASE_URL} would be used"
            ),
            fix: "set PLYSTRA_DATABASE_URL to the production database explicitly".to_owned(),
        }),
        Some(url) if url == DEFAULT_DATABASE_URL => violations.push(GuardViolation {
            setting: "PLYSTRA_DATABASE_URL",
            problem: "is the development default".to_owned(),
            fix: "point PLYSTRA_DATABASE_URL at the production database".to_owned(),
        }),
        Some(url) if DEV_CREDENTIALS.iter().any(|c| url.contains(c)) => {
            violations.push(GuardViolation {
                setting: "PLYSTRA_DATABASE_URL",
                problem: "uses default development credentials".to_owned(),
                fix: "use a dedicated database user with its own password".to_owned(),
            })
        }
        Some(_) => {}
    }

    let secrets = ["PLYSTRA_API_KEY_SECRET", "PLYSTRA_SESSION_SECRET"];
    for name in secrets {
        match get(name) {
            None => violations.push(GuardViolation {
                setting: name,
                problem: "is not set".to_owned(),
                fix: format!(
                    "set {name} to a random value of at least {MIN_SECRET_LEN} characters"
                ),
            }),
            Some(v) => {
                if let Some(problem) = weak_secret(&v) {
                    violations.push(GuardViolation {
                        setting: name,
                        problem,
                        fix: format!(
                            "set {name} to a random value of at least {MIN_SECRET_LEN} characters \
                             (for example `openssl rand -hex 32`)"
                        ),
                    });
                }
            }
        }
    }
    // Optional secrets: when set, as strong as the required ones.
    for name in ["PLYSTRA_AUDIT_HASH_KEY", "PLYSTRA_API_KEY"] {
        if let Some(problem) = get(name).as_deref().and_then(weak_secret) {
            violations.push(GuardViolation {
                setting: name,
                problem,
                fix: format!(
                    "set {name} to a random value of at least {MIN_SECRET_LEN} characters \
                     (for example `openssl rand -hex 32`)"
                ),
            });
        }
    }
    if let (Some(a), Some(b)) = (get(secrets[0]), get(secrets[1]))
        && a == b
    {
        violations.push(GuardViolation {
            setting: "PLYSTRA_SESSION_SECRET",
            problem: "equals PLYSTRA_API_KEY_SECRET".to_owned(),
            fix: "use two distinct random secrets".to_owned(),
        });
    }

    if let Some(origins) = get("PLYSTRA_CORS_ALLOWED_ORIGINS")
        && origins.split(',').any(|o| o.trim() == "*")
    {
        violations.push(GuardViolation {
            setting: "PLYSTRA_CORS_ALLOWED_ORIGINS",
            problem: "allows every origin (`*`)".to_owned(),
            fix: "list the allowed origins explicitly, comma-separated".to_owned(),
        });
    }

    match get("PLYSTRA_PUBLIC_URL") {
        None => violations.push(GuardViolation {
            setting: "PLYSTRA_PUBLIC_URL",
            problem: "is not set".to_owned(),
            fix: "set PLYSTRA_PUBLIC_URL to the server's public https:// URL".to_owned(),
        }),
        Some(url) if is_local_url(&url) => violations.push(GuardViolation {
            setting: "PLYSTRA_PUBLIC_URL",
            problem: format!("`{url}` points at this machine"),
            fix: "set PLYSTRA_PUBLIC_URL to the server's public https:// URL".to_owned(),
        }),
        Some(url) if !url.trim().to_ascii_lowercase().starts_with("https://") => {
            violations.push(GuardViolation {
                setting: "PLYSTRA_PUBLIC_URL",
                problem: format!("`{url}` is not https://"),
                fix: "serve the API over TLS and set PLYSTRA_PUBLIC_URL to its https:// URL"
                    .to_owned(),
            });
        }
        Some(_) => {}
    }
    violations
}

/// What a production deployment should know although it may run: today, that the audit log's
/// PII hash key is derived from `PLYSTRA_API_KEY_SECRET`, so rotating that secret changes every
/// later hash of the same value. `plystractl doctor` prints each as a warning.
pub fn production_advice(env: &dyn Fn(&str) -> Option<String>) -> Vec<GuardViolation> {
    let get = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let mut advice = Vec::new();
    if get("PLYSTRA_AUDIT_HASH_KEY").is_none() {
        advice.push(GuardViolation {
            setting: "PLYSTRA_AUDIT_HASH_KEY",
            problem: "is not set: audit PII hashes use a key derived from PLYSTRA_API_KEY_SECRET, \
                      so rotating that secret changes the hashes of the same values"
                .to_owned(),
            fix: "set PLYSTRA_AUDIT_HASH_KEY to its own random value (for example `openssl rand \
                  -hex 32`) and keep it"
                .to_owned(),
        });
    }
    advice
}

fn is_local_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(bracketed) = host_port.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    let host = host.to_ascii_lowercase();
    host.is_empty()
        || host == "localhost"
        || host.ends_with(".localhost")
        || host == "::1"
        || host == "0.0.0.0"
        || host.starts_with("127.")
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn check(vars: &[(&str, &str)]) -> Vec<GuardViolation> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        check_production(&|name| map.get(name).cloned())
    }

    const GOOD: &[(&str, &str)] = &[
        (
            "PLYSTRA_DATABASE_URL",
            "postgres://plystra_app:s3cret-long@db.internal:5432/plystra",
        ),
        (
            "PLYSTRA_API_KEY_SECRET",
            "0123456789abcdef0123456789abcdef-api",
        ),
        (
            "PLYSTRA_SESSION_SECRET",
            "0123456789abcdef0123456789abcdef-ses",
        ),
        ("PLYSTRA_CORS_ALLOWED_ORIGINS", "https://admin.example.com"),
        ("PLYSTRA_PUBLIC_URL", "https://plystra.example.com"),
    ];

    fn with(overrides: &[(&'static str, &'static str)]) -> Vec<GuardViolation> {
        let mut vars: Vec<(&str, &str)> = GOOD
            .iter()
            .filter(|(k, _)| !overrides.iter().any(|(o, _)| o == k))
            .copied()
            .collect();
        vars.extend(overrides.iter().filter(|(_, v)| !v.is_empty()));
        check(&vars)
    }

    #[test]
    fn a_production_configuration_passes() {
        assert_eq!(check(GOOD), []);
    }

    #[test]
    fn every_guard_names_its_setting_and_a_fix() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("PLYSTRA_DATABASE_URL", "")], "PLYSTRA_DATABASE_URL"),
            (
                &[("PLYSTRA_DATABASE_URL", "sqlite://./data/plystra.db")],
                "PLYSTRA_DATABASE_URL",
            ),
            (
                &[(
                    "PLYSTRA_DATABASE_URL",
                    "postgres://postgres:postgres@db/plystra",
                )],
                "PLYSTRA_DATABASE_URL",
            ),
            (
                &[("PLYSTRA_API_KEY_SECRET", "short")],
                "PLYSTRA_API_KEY_SECRET",
            ),
            (&[("PLYSTRA_SESSION_SECRET", "")], "PLYSTRA_SESSION_SECRET"),
            (
                &[(
                    "PLYSTRA_SESSION_SECRET",
                    "0123456789abcdef0123456789abcdef-api",
                )],
                "PLYSTRA_SESSION_SECRET",
            ),
            (
                &[("PLYSTRA_CORS_ALLOWED_ORIGINS", "https://a.example, *")],
                "PLYSTRA_CORS_ALLOWED_ORIGINS",
            ),
            (
                &[("PLYSTRA_PUBLIC_URL", "http://localhost:8080")],
                "PLYSTRA_PUBLIC_URL",
            ),
            (
                &[("PLYSTRA_PUBLIC_URL", "http://127.0.0.1")],
                "PLYSTRA_PUBLIC_URL",
            ),
            (&[("PLYSTRA_PUBLIC_URL", "")], "PLYSTRA_PUBLIC_URL"),
            (
                &[("PLYSTRA_PUBLIC_URL", "http://plystra.example.com")],
                "PLYSTRA_PUBLIC_URL",
            ),
            // Long enough, but one letter repeated.
            (
                &[(
                    "PLYSTRA_API_KEY_SECRET",
                    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                )],
                "PLYSTRA_API_KEY_SECRET",
            ),
            (
                &[(
                    "PLYSTRA_SESSION_SECRET",
                    "abababababababababababababababababab",
                )],
                "PLYSTRA_SESSION_SECRET",
            ),
            (
                &[("PLYSTRA_AUDIT_HASH_KEY", "short")],
                "PLYSTRA_AUDIT_HASH_KEY",
            ),
            (
                &[("PLYSTRA_API_KEY", "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz")],
                "PLYSTRA_API_KEY",
            ),
        ];
        for (overrides, setting) in cases {
            let violations = with(overrides);
            assert_eq!(violations.len(), 1, "{overrides:?}: {violations:?}");
            assert_eq!(violations[0].setting, *setting);
            let text = violations[0].to_string();
            assert!(
                text.starts_with(setting) && text.contains("(fix: "),
                "{text}"
            );
        }
    }

    #[test]
    fn a_derived_audit_hash_key_is_advice_and_an_explicit_one_silences_it() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let advice = production_advice(&env(GOOD));
        assert_eq!(advice.len(), 1);
        assert_eq!(advice[0].setting, "PLYSTRA_AUDIT_HASH_KEY");
        assert!(advice[0].problem.contains("derived"), "{}", advice[0]);
        assert_eq!(
            production_advice(&env(&[(
                "PLYSTRA_AUDIT_HASH_KEY",
                "0123456789abcdef0123456789abcdef-aud"
            )])),
            []
        );
    }

    #[test]
    fn database_url_falls_back_to_database_url() {
        let mut vars: Vec<(&str, &str)> = GOOD
            .iter()
            .filter(|(k, _)| *k != "PLYSTRA_DATABASE_URL")
            .copied()
            .collect();
        vars.push(("DATABASE_URL", "postgres://app:pw-long@db/plystra"));
        assert_eq!(check(&vars), []);
    }
}
