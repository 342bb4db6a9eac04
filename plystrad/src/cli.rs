//! The command line: flags with environment fallbacks, and the offline sub-commands.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use plystra_contracts::CapabilityState;
use plystra_kernel::http::kernel_api::CapabilityInfo;
use plystra_kernel::{BuildInfo, CapabilitySource, Environment, KernelConfig};

/// The Plystra governance runtime's HTTP server.
#[derive(Debug, Parser)]
#[command(
    name = "plystrad",
    version,
    about,
    long_about = None,
    after_help = "Every setting, with its default: plystrad --help"
)]
pub struct Cli {
    /// Address to listen on [env: PLYSTRA_SERVER_HOST, SERVER_HOST] [default: 127.0.0.1]
    #[arg(long, global = true)]
    pub host: Option<String>,
    /// Port to listen on [env: PLYSTRA_SERVER_PORT, SERVER_PORT] [default: 8080]
    #[arg(long, global = true)]
    pub port: Option<u16>,
    /// Database URL [env: PLYSTRA_DATABASE_URL, DATABASE_URL] [default: sqlite://./data/plystra.db]
    #[arg(long, global = true)]
    pub database_url: Option<String>,
    /// development or production [env: PLYSTRA_ENV] [default: development]
    #[arg(long = "env", global = true)]
    pub environment: Option<String>,
    /// Log format [env: PLYSTRA_LOG_FORMAT, LOG_FORMAT] [default: text]
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Request-ID header name [env: PLYSTRA_REQUEST_ID_HEADER] [default: X-Request-ID]
    #[arg(long, global = true)]
    pub request_id_header: Option<String>,
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Sub-commands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Serve the API (the default).
    Serve,
    /// Print the OpenAPI document of the linked capabilities, without starting anything.
    Openapi {
        /// Output format.
        #[arg(long, value_enum, default_value_t = DocumentFormat::Json)]
        format: DocumentFormat,
    },
    /// List the linked capabilities in boot order, without starting anything.
    Capabilities {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// OpenAPI output format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DocumentFormat {
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// Log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}

/// Everything `serve` needs, resolved from flags, environment and defaults.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Where to listen.
    pub address: SocketAddr,
    /// The database URL.
    pub database_url: String,
    /// Log format.
    pub log_format: LogFormat,
    /// Whether the bootstrap key was generated for this run (development only).
    pub generated_bootstrap_key: bool,
    /// The kernel's configuration.
    pub kernel: KernelConfig,
}

fn env_first(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok())
        .filter(|v| !v.trim().is_empty())
}

impl Cli {
    /// The command line as `--help` shows it: the flags, then every setting the kernel and the
    /// linked capabilities declare.
    pub fn command_with_settings() -> clap::Command {
        <Self as clap::CommandFactory>::command().after_long_help(
            plystra_kernel::settings::help_text(
                CapabilitySource::linked().registrations().iter().copied(),
            ),
        )
    }

    /// Parses the process's arguments ([`Cli::command_with_settings`]); exits on `--help`,
    /// `--version` and errors, as clap does.
    pub fn parse_with_settings() -> Self {
        let matches = Self::command_with_settings().get_matches();
        match <Self as clap::FromArgMatches>::from_arg_matches(&matches) {
            Ok(cli) => cli,
            Err(e) => e.exit(),
        }
    }

    /// Resolves flags, then environment, then defaults. Errors name the setting.
    pub fn settings(&self) -> Result<ServerSettings, String> {
        let host = self
            .host
            .clone()
            .or_else(|| env_first(&["PLYSTRA_SERVER_HOST", "SERVER_HOST"]))
            .unwrap_or_else(|| "127.0.0.1".to_owned());
        let port = match self.port {
            Some(port) => port,
            None => match env_first(&["PLYSTRA_SERVER_PORT", "SERVER_PORT"]) {
                Some(p) => p
                    .parse()
                    .map_err(|_| format!("PLYSTRA_SERVER_PORT={p:?} is not a port number"))?,
                None => 8080,
            },
        };
        let ip: std::net::IpAddr = host
            .parse()
            .or_else(|_| {
                if host == "localhost" {
                    Ok("127.0.0.1".parse().expect("literal"))
                } else {
                    Err(())
                }
            })
            .map_err(|()| format!("PLYSTRA_SERVER_HOST={host:?} is not an IP address"))?;
        let environment = match self
            .environment
            .clone()
            .or_else(|| env_first(&["PLYSTRA_ENV"]))
        {
            Some(e) => Environment::parse(&e)
                .ok_or_else(|| format!("PLYSTRA_ENV={e:?} must be development or production"))?,
            None => Environment::Development,
        };
        let log_format = match self.log_format {
            Some(f) => f,
            None => match env_first(&["PLYSTRA_LOG_FORMAT", "LOG_FORMAT"]).as_deref() {
                None | Some("text") => LogFormat::Text,
                Some("json") => LogFormat::Json,
                Some(other) => return Err(format!("LOG_FORMAT={other:?} must be json or text")),
            },
        };
        let lookup = |name: &str| std::env::var(name).ok();
        let mut database = plystra_kernel::storage::DatabaseConfig::from_lookup(&lookup)?;
        if let Some(url) = &self.database_url {
            database.url = url.clone();
        }
        let database_url = database.url.clone();
        if environment == Environment::Production {
            // The flag counts as an explicit URL, exactly like the environment variable.
            let explicit = self.database_url.clone();
            let guarded = move |name: &str| match name {
                "PLYSTRA_DATABASE_URL" if explicit.is_some() => explicit.clone(),
                other => std::env::var(other).ok(),
            };
            let violations = plystra_kernel::config_guards::check_production(&guarded);
            if !violations.is_empty() {
                let lines: Vec<String> = violations.iter().map(|v| format!("  {v}")).collect();
                return Err(format!(
                    "refusing to start in production:\n{}",
                    lines.join("\n")
                ));
            }
        }
        let mut bootstrap_api_key = env_first(&["PLYSTRA_API_KEY"]);
        let generated_bootstrap_key =
            bootstrap_api_key.is_none() && environment == Environment::Development;
        if generated_bootstrap_key {
            bootstrap_api_key = Some(crate::serve::generate_bootstrap_key());
        }
        let cors_allowed_origins = env_first(&["PLYSTRA_CORS_ALLOWED_ORIGINS"])
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let settings = std::env::vars()
            .filter(|(k, _)| k.starts_with("PLYSTRA_"))
            .collect();
        Ok(ServerSettings {
            address: SocketAddr::new(ip, port),
            database_url,
            log_format,
            generated_bootstrap_key,
            kernel: KernelConfig {
                environment,
                bootstrap_api_key,
                cors_allowed_origins,
                request_id_header: self
                    .request_id_header
                    .clone()
                    .or_else(|| env_first(&["PLYSTRA_REQUEST_ID_HEADER"]))
                    .unwrap_or_else(|| "X-Request-ID".to_owned()),
                build: build_info(),
                settings,
                database: Some(database),
                ..KernelConfig::default()
            },
        })
    }
}

/// The facts recorded by the build script.
pub fn build_info() -> BuildInfo {
    BuildInfo {
        git_commit: env!("PLYSTRA_GIT_COMMIT").to_owned(),
        built_at: env!("PLYSTRA_BUILT_AT").to_owned(),
        rustc: env!("PLYSTRA_RUSTC").to_owned(),
    }
}

/// Installs the tracing subscriber. `default_level` applies unless `RUST_LOG` says otherwise.
pub fn init_logging(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal: piped text logs stay plain.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match format {
        // One flat object per line: the event's fields sit beside timestamp, level and target.
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// `plystrad openapi`.
pub fn print_openapi(format: DocumentFormat) -> ExitCode {
    let source = CapabilitySource::linked();
    let document = match format {
        DocumentFormat::Json => plystra_kernel::http::openapi_json(&source),
        DocumentFormat::Yaml => plystra_kernel::http::openapi_yaml(&source),
    };
    match document {
        Ok(mut text) => {
            if !text.ends_with('\n') {
                text.push('\n');
            }
            write_stdout(&text)
        }
        Err(e) => {
            eprintln!("plystrad: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `plystrad capabilities`.
pub fn print_capabilities(json: bool) -> ExitCode {
    let order = match plystra_kernel::resolve(&CapabilitySource::linked()) {
        Ok(order) => order,
        Err(e) => {
            eprintln!("plystrad: {e}");
            return ExitCode::FAILURE;
        }
    };
    let infos: Vec<CapabilityInfo> = order
        .iter()
        .map(|r| CapabilityInfo::describe(r, CapabilityState::Validated, None))
        .collect();
    let mut out = String::new();
    if json {
        let value: Vec<serde_json::Value> = infos
            .iter()
            .map(|i| poem_openapi::types::ToJSON::to_json(i).unwrap_or(serde_json::Value::Null))
            .collect();
        out.push_str(&serde_json::to_string_pretty(&value).unwrap_or_default());
        out.push('\n');
    } else {
        out.push_str(&format!(
            "{:<24} {:<8} {:<17} {:<13} DEPENDS ON\n",
            "ID", "VERSION", "KIND", "NAMESPACE"
        ));
        for info in &infos {
            out.push_str(&format!(
                "{:<24} {:<8} {:<17} {:<13} {}\n",
                info.id,
                info.version,
                if info.privileged {
                    "system_capability"
                } else {
                    "business_plugin"
                },
                info.migration_namespace.as_deref().unwrap_or("-"),
                if info.dependencies.is_empty() {
                    "-".to_owned()
                } else {
                    info.dependencies.join(", ")
                },
            ));
        }
    }
    write_stdout(&out)
}

/// Writes to stdout; a closed pipe (`| head`) is not an error worth a panic.
fn write_stdout(text: &str) -> ExitCode {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("plystrad: cannot write to stdout: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `PLYSTRA_…` names the README's configuration table lists.
    fn readme_settings() -> Vec<String> {
        let readme = include_str!("../../README.md");
        let start = readme
            .find("### Configuration\n")
            .expect("the README has a Configuration section");
        let section = &readme[start + 1..];
        let section = &section[..section.find("\n### ").unwrap_or(section.len())];
        let mut names = Vec::new();
        let mut rest = section;
        while let Some(at) = rest.find("PLYSTRA_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            names.push(name);
        }
        names
    }

    #[test]
    fn every_declared_setting_is_in_the_long_help_and_the_readme_table_and_nothing_else_is() {
        let linked = CapabilitySource::linked();
        let declared = plystra_kernel::settings::declared(linked.registrations().iter().copied());
        assert!(
            declared.iter().any(|(owner, _)| *owner != "kernel"),
            "the linked capabilities declare settings"
        );
        let help = Cli::command_with_settings().render_long_help().to_string();
        let readme = readme_settings();
        for (owner, setting) in &declared {
            assert!(
                help.contains(setting.name),
                "{} ({owner}) is missing from plystrad --help",
                setting.name
            );
            assert!(
                readme.iter().any(|n| n.starts_with(setting.name)),
                "{} ({owner}) is missing from the README's configuration table",
                setting.name
            );
        }
        for name in &readme {
            assert!(
                plystra_kernel::settings::is_declared(&declared, name),
                "the README's configuration table lists {name}, which nothing declares"
            );
        }
    }
}
