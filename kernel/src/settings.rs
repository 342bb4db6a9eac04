//! The settings a process reads from its environment: the kernel's own, and those the linked
//! capabilities declare in their manifests. `plystrad --help` lists them from here, and the
//! runtime refuses (in debug builds, loudly) a read of a setting nobody declared.

use plystra_contracts::{Registration, Setting};

/// The settings the kernel and `plystrad` read themselves.
pub const KERNEL: &[Setting] = &[
    Setting {
        name: "PLYSTRA_SERVER_HOST",
        help: "the address to listen on (also `SERVER_HOST`, `--host`)",
        default: "127.0.0.1",
    },
    Setting {
        name: "PLYSTRA_SERVER_PORT",
        help: "the port to listen on (also `SERVER_PORT`, `--port`)",
        default: "8080",
    },
    Setting {
        name: "PLYSTRA_DATABASE_URL",
        help: "`sqlite://…` or `postgres://…` (also `DATABASE_URL`, `--database-url`); required in production",
        default: "sqlite://./data/plystra.db",
    },
    Setting {
        name: "PLYSTRA_DATABASE_MAX_CONNECTIONS",
        help: "the database pool's size (at least 1)",
        default: "10",
    },
    Setting {
        name: "PLYSTRA_DATABASE_ACQUIRE_TIMEOUT_SECS",
        help: "how long a request waits for a pooled connection (at least 1)",
        default: "5",
    },
    Setting {
        name: "PLYSTRA_ENV",
        help: "`development` or `production` (also `--env`); production refuses unsafe settings at start",
        default: "development",
    },
    Setting {
        name: "PLYSTRA_LOG_FORMAT",
        help: "`text` or `json` (also `LOG_FORMAT`, `--log-format`)",
        default: "text",
    },
    Setting {
        name: "PLYSTRA_REQUEST_ID_HEADER",
        help: "the request-ID header (also `--request-id-header`)",
        default: "X-Request-ID",
    },
    Setting {
        name: "PLYSTRA_API_KEY",
        help: "the bootstrap API key (at least 32 characters in production)",
        default: "generated and printed in development",
    },
    Setting {
        name: "PLYSTRA_PUBLIC_URL",
        help: "the server's public https:// URL; required in production",
        default: "none",
    },
    Setting {
        name: "PLYSTRA_CORS_ALLOWED_ORIGINS",
        help: "comma list of browser origins allowed to call the API",
        default: "none: no CORS headers",
    },
    Setting {
        name: "PLYSTRA_METRICS_ENABLED",
        help: "`true` serves `/metrics`",
        default: "off: `/metrics` is 404",
    },
    Setting {
        name: "PLYSTRA_METRICS_TOKEN",
        help: "a scrape token sent as `X-Plystra-Metrics-Token`",
        default: "none: only credentials with `metrics:read`",
    },
    Setting {
        name: "PLYSTRA_FEED_POLL_INTERVAL_MS",
        help: "how often the change feed is read (PostgreSQL also wakes on NOTIFY)",
        default: "100",
    },
    Setting {
        name: "PLYSTRA_FEED_STALENESS_MS",
        help: "past this without a successful read of the feed, checks answer 503",
        default: "5000",
    },
    Setting {
        name: "PLYSTRA_CONSISTENCY_WAIT_MS",
        help: "how long a request waits for the revision it asks for",
        default: "1000",
    },
    Setting {
        name: "PLYSTRA_FEED_RETENTION_SECS",
        help: "how long the change feed keeps a change",
        default: "86400",
    },
    Setting {
        name: "PLYSTRA_FEED_FOLLOWER_EXPIRY_SECS",
        help: "after how long a silent process no longer holds the feed's retention back",
        default: "86400",
    },
];

/// Every declared setting: the kernel's, then each registration's in the order given, each name
/// once (the first declaration wins), with who declared it (`kernel` or a capability ID).
pub fn declared<'r>(
    registrations: impl IntoIterator<Item = &'r Registration>,
) -> Vec<(&'static str, Setting)> {
    let mut out: Vec<(&'static str, Setting)> = KERNEL.iter().map(|s| ("kernel", *s)).collect();
    for registration in registrations {
        let manifest = registration.manifest;
        for setting in manifest.provides().settings {
            if !out.iter().any(|(_, s)| s.name == setting.name) {
                out.push((manifest.id(), *setting));
            }
        }
    }
    out
}

/// The declared settings as `--help` lists them: one block per declarer, one line per setting.
pub fn help_text<'r>(registrations: impl IntoIterator<Item = &'r Registration>) -> String {
    let mut text =
        String::from("Settings (environment variables; a flag above wins over its variable):\n");
    let mut current = "";
    for (owner, setting) in declared(registrations) {
        if owner != current {
            text.push_str(&format!("\n  {owner}:\n"));
            current = owner;
        }
        let name = if setting.name.ends_with('_') {
            format!("{}…", setting.name)
        } else {
            setting.name.to_owned()
        };
        text.push_str(&format!(
            "    {name}\n        {} [default: {}]\n",
            setting.help, setting.default
        ));
    }
    text
}

/// Whether any of `declared` covers `name`.
pub fn is_declared(declared: &[(&'static str, Setting)], name: &str) -> bool {
    declared.iter().any(|(_, s)| s.covers(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_settings_are_named_once_and_a_family_covers_its_members_only() {
        let declared = declared([]);
        for (i, (_, s)) in declared.iter().enumerate() {
            assert!(s.name.starts_with("PLYSTRA_"), "{}", s.name);
            assert!(
                declared[..i].iter().all(|(_, o)| o.name != s.name),
                "{} twice",
                s.name
            );
        }
        assert!(is_declared(&declared, "PLYSTRA_FEED_STALENESS_MS"));
        assert!(!is_declared(&declared, "PLYSTRA_FEED_STALENESS"));
        let family = Setting {
            name: "PLYSTRA_AUDIT_PII_",
            help: "",
            default: "",
        };
        assert!(family.covers("PLYSTRA_AUDIT_PII_EMAIL"));
        assert!(!family.covers("PLYSTRA_AUDIT_PII_"));
        assert!(!family.covers("PLYSTRA_AUDIT_PIIX"));
        let text = help_text([]);
        assert!(text.contains("PLYSTRA_DATABASE_URL\n"), "{text}");
    }
}
