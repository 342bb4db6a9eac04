//! `cargo xtask clients`: the committed OpenAPI document against real client generators and a
//! real server.
//!
//! In a throwaway virtualenv under the target directory it installs the pinned
//! [`PYTHON_PACKAGES`], validates `openapi/plystra.v<version>.json` as OpenAPI 3.0
//! (openapi-spec-validator), generates a Python client with openapi-python-client (any warning
//! fails: the generator dropped something, so the document needs fixing), builds and starts
//! `plystrad` on a temporary SQLite database and a loopback port the OS picks, and runs
//! `xtask/clients/python_scenario.py` (the Finance Reviewer scenario through the generated client)
//! against it. The server is stopped afterwards; on failure its log is printed.
//!
//! Without `python3` the step is skipped with a warning, except under `CI=true`, where it fails.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};

use crate::{browser, process, workspace};

/// What the virtualenv holds, pinned.
const PYTHON_PACKAGES: &[&str] = &[
    "openapi-python-client==0.29.1",
    "openapi-spec-validator==0.9.0",
];

/// The committed document the clients are generated from.
const DOCUMENT: &str = "openapi/plystra.v0.0.1.json";

/// The scenario the generated Python client runs.
const SCENARIO: &str = "xtask/clients/python_scenario.py";

/// How much of plystrad's log a failure prints.
const LOG_TAIL_LINES: usize = 200;

/// How long plystrad may take to answer `/api/v1/ready` with 200.
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// Runs the whole step; true when the document validated, the client generated cleanly and the
/// scenario passed.
pub fn run(root: &Path) -> Result<bool> {
    let Some(python) = find_python() else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            bail!("python3 is not installed, and CI=true needs the generated-client test");
        }
        println!("clients: SKIPPED: python3 is not installed (this fails under CI=true)");
        return Ok(true);
    };
    let target = workspace::metadata(root, false)?
        .target_directory
        .into_std_path_buf();
    let base = target.join("xtask-clients");
    let venv = prepare_venv(&python, &base.join("venv"), PYTHON_PACKAGES)?;
    let document = root.join(DOCUMENT);

    println!("clients: validating {DOCUMENT} as OpenAPI 3.0");
    let mut validate = Command::new(venv.join("bin/python"));
    validate.arg("-c").arg(
        "import json, sys\n\
         from openapi_spec_validator import validate\n\
         validate(json.load(open(sys.argv[1])))\n\
         print('clients: the document is valid OpenAPI 3.0')",
    );
    validate.arg(&document);
    if !process::status(validate)? {
        println!("clients: {DOCUMENT} is not valid OpenAPI 3.0");
        return Ok(false);
    }

    let generated = base.join("python");
    if generated.exists() {
        fs::remove_dir_all(&generated)
            .with_context(|| format!("removing {}", generated.display()))?;
    }
    fs::create_dir_all(&generated)?;
    // No post hooks: they run ruff, which is not installed, and would only reformat. The audit
    // export's JSON lines (`application/x-ndjson`, a type the generator does not know) are read
    // as the bytes they are, as it reads `application/octet-stream`.
    let config = generated.join("config.yaml");
    fs::write(
        &config,
        "post_hooks: []\ncontent_type_overrides:\n  application/x-ndjson: application/octet-stream\n",
    )?;
    let mut generate = Command::new(venv.join("bin/openapi-python-client"));
    generate
        .args(["generate", "--meta", "none", "--overwrite", "--config"])
        .arg(&config)
        .arg("--path")
        .arg(&document)
        .arg("--output-path")
        .arg(generated.join("plystra_client"))
        .current_dir(&generated);
    println!("$ {}", process::describe(&generate));
    let output = generate
        .output()
        .context("starting openapi-python-client")?;
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // A clean run prints only `Generating <path>`; anything else is a warning about something
    // in the document that the generator dropped or could not type.
    let choked = log
        .lines()
        .any(|line| !line.trim().is_empty() && !line.starts_with("Generating "));
    if !output.status.success() || choked {
        println!("{log}");
        println!(
            "clients: openapi-python-client could not take {DOCUMENT} as it is; fix the document \
             (in the Rust sources that generate it, then `cargo xtask openapi`), not the test"
        );
        return Ok(false);
    }
    println!("clients: generated the Python client");

    let binary = workspace::built_binary(root, "plystrad")?;
    let run_dir = base.join(format!("run-{}", std::process::id()));
    fs::create_dir_all(&run_dir)?;
    let database_url = format!("sqlite://{}", run_dir.join("plystra.db").display());
    let result = with_server(&binary, &run_dir, &database_url, |url, key| {
        let mut scenario = Command::new(venv.join("bin/python"));
        scenario
            .arg(root.join(SCENARIO))
            .args(["--base-url", url])
            .env("PLYSTRA_API_KEY", key)
            .env("PYTHONPATH", &generated)
            .env("PYTHONDONTWRITEBYTECODE", "1");
        process::status(scenario)
    });
    let _ = fs::remove_dir_all(&run_dir);
    result
}

/// `python3` when it is installed.
pub(crate) fn find_python() -> Option<PathBuf> {
    let ok = Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then(|| PathBuf::from("python3"))
}

/// Creates the virtualenv and installs `packages` (pinned) unless it already holds them.
pub(crate) fn prepare_venv(python: &Path, venv: &Path, packages: &[&str]) -> Result<PathBuf> {
    let marker = venv.join("plystra-requirements.txt");
    let wanted = packages.join("\n");
    if fs::read_to_string(&marker).is_ok_and(|have| have == wanted) {
        return Ok(venv.to_path_buf());
    }
    if venv.exists() {
        fs::remove_dir_all(venv).with_context(|| format!("removing {}", venv.display()))?;
    }
    let mut create = Command::new(python);
    create.args(["-m", "venv"]).arg(venv);
    if !process::status(create)? {
        bail!("`python3 -m venv` failed (on Debian: apt-get install python3-venv)");
    }
    let mut install = Command::new(venv.join("bin/pip"));
    install
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .args(packages);
    if !process::status(install)? {
        bail!("pip could not install {}", packages.join(" "));
    }
    fs::write(&marker, wanted)?;
    Ok(venv.to_path_buf())
}

/// Kills the server when dropped, so no path leaves it running.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts plystrad on `database_url` (a fresh database) and a loopback port the OS picks, with its log in
/// `dir`, waits until it is ready, runs `f` with its base URL and key, and stops it. Prints the
/// server log on failure.
pub(crate) fn with_server(
    binary: &Path,
    dir: &Path,
    database_url: &str,
    f: impl FnOnce(&str, &str) -> Result<bool>,
) -> Result<bool> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let key = format!("clients-test-key-{nanos:x}-{:x}", std::process::id());
    let log_path = dir.join("plystrad.log");
    let log = fs::File::create(&log_path)?;
    let mut command = Command::new(binary);
    command
        // Port 0: the OS picks the port when plystrad binds, so nothing else can take it between
        // a pick and the bind; the port is read back from the `listening` log line.
        .args(["--host", "127.0.0.1", "--port", "0"])
        .arg("--database-url")
        .arg(database_url)
        .arg("serve")
        .env_remove("DATABASE_URL")
        .env_remove("PLYSTRA_DATABASE_URL")
        .env("PLYSTRA_ENV", "development")
        .env("PLYSTRA_API_KEY", &key)
        // Once API keys carry permissions, the bootstrap key needs every one for the fixture.
        .env("PLYSTRA_API_KEY_PERMISSIONS", "*")
        // The document bounds batches and pages by the most a deployment may configure; the
        // server it is tested against runs at that bound, so every value it allows is taken.
        .env("PLYSTRA_AUTHZ_MAX_BATCH", "10000")
        .env("PLYSTRA_AUTHZ_MAX_PAGE", "10000")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    println!("$ {}", process::describe(&command));
    let mut server = Server(
        command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?,
    );
    let outcome = wait_ready(&mut server.0, &log_path).and_then(|port| {
        let url = format!("http://127.0.0.1:{port}");
        println!("clients: plystrad is ready at {url}");
        f(&url, &key)
    });
    drop(server);
    match outcome {
        Ok(true) => Ok(true),
        other => {
            let log = fs::read_to_string(&log_path).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
            println!(
                "plystrad's log (last {} of {} lines):\n{}",
                tail.len(),
                lines.len(),
                tail.join("\n")
            );
            other
        }
    }
}

/// Reads the port from plystrad's `listening` log line, then polls `/api/v1/ready` until it
/// answers 200; the port. Fails when the server exits or time runs out.
fn wait_ready(server: &mut Child, log: &Path) -> Result<u16> {
    let started = Instant::now();
    let mut port = None;
    let mut last = String::from("no `listening` line in the log");
    while started.elapsed() < READY_TIMEOUT {
        if let Some(status) = server.try_wait()? {
            bail!("plystrad exited before it was ready ({status})");
        }
        if port.is_none() {
            port = fs::read_to_string(log)?
                .lines()
                .filter(|line| line.contains("listening"))
                .find_map(browser::listening_address)
                .map(|address| address.port());
        }
        if let Some(port) = port {
            match status_of(port, "/api/v1/ready") {
                Ok(200) => return Ok(port),
                Ok(status) => last = format!("answered {status}"),
                Err(error) => last = error.to_string(),
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("plystrad was not ready within {READY_TIMEOUT:?}: {last}")
}

/// The HTTP status of a GET on the loopback port (no client library needed for one line).
fn status_of(port: u16, path: &str) -> Result<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 32];
    let read = stream.read(&mut head)?;
    let line = String::from_utf8_lossy(&head[..read]);
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("not an HTTP answer: {line:?}"))
}
