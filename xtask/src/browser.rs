//! `cargo xtask browser`: Swagger UI in a real browser.
//!
//! Installs what is missing (Debian's `chromium`, Node.js and npm through apt-get; playwright-core
//! through `npm ci` from `xtask/browser/package-lock.json` into `<target>/browser`), builds
//! plystrad (with the workspace's tests, as the test step does), starts it on a temporary SQLite database and a free loopback port with a fresh
//! bootstrap key holding every permission, and runs `xtask/browser/swagger_ui.mjs` against it.
//! The screenshots land in `<target>/browser/artifacts`; the server's log in
//! `<target>/browser/plystrad.log`.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};

use crate::{process, workspace};

/// The browser the test drives unless `CHROMIUM` names another.
const CHROMIUM: &str = "/usr/bin/chromium";

/// Runs the browser test; true when it passed.
pub fn run(root: &Path) -> Result<bool> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| CHROMIUM.to_owned());
    if !Path::new(&chromium).exists() {
        apt_install(&["chromium"])?;
    }
    if !found("node") || !found("npm") {
        apt_install(&["nodejs", "npm"])?;
    }
    let target = workspace::metadata(root, false)?
        .target_directory
        .into_std_path_buf();
    let dir = target.join("browser");
    install_playwright(root, &dir)?;
    let script = dir.join("swagger_ui.mjs");
    std::fs::copy(root.join("xtask/browser/swagger_ui.mjs"), &script)
        .context("copying swagger_ui.mjs")?;

    let plystrad = workspace::built_binary(root, "plystrad")?;
    let run_dir = dir.join("run");
    let _ = std::fs::remove_dir_all(&run_dir);
    std::fs::create_dir_all(&run_dir)?;
    let artifacts = dir.join("artifacts");
    let _ = std::fs::remove_dir_all(&artifacts);
    let key = bootstrap_key();
    let server = Server::start(&plystrad, &run_dir, &dir.join("plystrad.log"), &key)?;
    let mut node = Command::new("node");
    node.arg(&script)
        .current_dir(&dir)
        .env("PLYSTRA_URL", format!("http://{}", server.address))
        .env("PLYSTRA_API_KEY", &key)
        .env("ARTIFACT_DIR", &artifacts)
        .env("CHROMIUM", &chromium);
    let passed = process::status(node)?;
    drop(server);
    println!("screenshots: {}", artifacts.display());
    println!("server log: {}", dir.join("plystrad.log").display());
    let _ = std::fs::remove_dir_all(&run_dir);
    Ok(passed)
}

fn found(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Installs Debian packages; needs root and apt-get, which CI and the development machines have.
fn apt_install(packages: &[&str]) -> Result<()> {
    println!("installing {} with apt-get", packages.join(" "));
    let mut update = Command::new("apt-get");
    update.args(["update", "-qq"]);
    if !process::status(update)? {
        bail!("apt-get update failed");
    }
    let mut install = Command::new("apt-get");
    install
        .args(["install", "-y", "-qq", "-o", "DPkg::Lock::Timeout=600"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive");
    if !process::status(install)? {
        bail!("apt-get install {} failed", packages.join(" "));
    }
    Ok(())
}

/// `npm ci` into `dir` unless it already holds the locked playwright-core.
fn install_playwright(root: &Path, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let source = root.join("xtask/browser");
    let lock = std::fs::read(source.join("package-lock.json")).context("reading package-lock")?;
    let installed = std::fs::read(dir.join("package-lock.json")).ok();
    let present = dir
        .join("node_modules/playwright-core/package.json")
        .exists();
    if present && installed.as_deref() == Some(lock.as_slice()) {
        return Ok(());
    }
    for file in ["package.json", "package-lock.json"] {
        std::fs::copy(source.join(file), dir.join(file))
            .with_context(|| format!("copying {file}"))?;
    }
    let mut npm = Command::new("npm");
    npm.args(["ci", "--no-audit", "--no-fund"]).current_dir(dir);
    if !process::status(npm)? {
        bail!("npm ci failed in {}", dir.display());
    }
    Ok(())
}

/// A key no earlier run used.
fn bootstrap_key() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("ply_browser_{nanos:x}{:x}", std::process::id())
}

/// plystrad, killed when dropped.
struct Server {
    child: Child,
    address: SocketAddr,
}

impl Server {
    fn start(binary: &Path, run_dir: &Path, log: &Path, key: &str) -> Result<Self> {
        let database = format!("sqlite://{}/plystra.db", run_dir.display());
        let mut child = Command::new(binary)
            .args(["--host", "127.0.0.1", "--port", "0", "--database-url"])
            .arg(&database)
            .env("PLYSTRA_ENV", "development")
            .env("PLYSTRA_API_KEY", key)
            .env("PLYSTRA_API_KEY_PERMISSIONS", "*")
            .env("LOG_FORMAT", "json")
            .env_remove("PLYSTRA_LOG_FORMAT")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stderr = child.stderr.take().context("plystrad's stderr")?;
        let mut file = std::fs::File::create(log)?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("listening")
                    && let Some(address) = listening_address(&line)
                {
                    let _ = tx.send(address);
                }
                let _ = writeln!(file, "{line}");
            }
        });
        let mut server = Self {
            child,
            address: "127.0.0.1:0".parse()?,
        };
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(address) => server.address = address,
            Err(_) => bail!(
                "plystrad did not start listening; see {}",
                PathBuf::from(log).display()
            ),
        }
        println!("plystrad listening on http://{}", server.address);
        Ok(server)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address in plystrad's `listening` log line.
pub(crate) fn listening_address(line: &str) -> Option<SocketAddr> {
    line.split(|c: char| c.is_whitespace() || c == '"' || c == '=' || c == ',')
        .find_map(|word| word.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_is_read_from_json_and_text_lines() {
        let json = r#"{"timestamp":"t","level":"INFO","message":"listening","address":"127.0.0.1:4312","target":"plystrad::serve"}"#;
        assert_eq!(
            listening_address(json),
            Some("127.0.0.1:4312".parse().unwrap())
        );
        let text = "2026-01-01T00:00:00Z  INFO plystrad::serve: listening address=127.0.0.1:80";
        assert_eq!(
            listening_address(text),
            Some("127.0.0.1:80".parse().unwrap())
        );
        assert_eq!(listening_address("listening soon"), None);
    }
}
