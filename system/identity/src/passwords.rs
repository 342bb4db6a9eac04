//! Passwords: Argon2id hashes in the PHC string format, a minimum length, verification that
//! costs the same whether or not the user exists, and [`Hashing`], the bound on how many hashes
//! run at once.
//!
//! Argon2id with the default parameters needs 19 MiB per hash. [`Hashing`] lets at most `limit`
//! run at once (`PLYSTRA_PASSWORD_HASH_CONCURRENCY`, default the number of cores), each in one of
//! `limit` memory areas allocated once and reused, so password hashing holds at most
//! `limit × 19 MiB` however many requests arrive; a caller waits at most `wait`
//! (`PLYSTRA_PASSWORD_HASH_WAIT_MS`) for its turn and is otherwise refused with 503
//! `SERVER_BUSY` and `Retry-After`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use plystra_contracts::metrics::{Counter, Metrics};
use plystra_contracts::{ApiError, ErrorCode};
use rand::RngCore;
use tokio::sync::Semaphore;

/// The shortest password accepted, in characters.
pub const MIN_LENGTH: usize = 12;
/// The longest password accepted, in characters (hashing cost stays bounded).
pub const MAX_LENGTH: usize = 1024;

/// The metric counting password hashes, by `operation` (`hash`, `verify`) and `outcome` (`done`,
/// `busy` when refused for want of a free slot).
pub const HASHES_METRIC: &str = "plystra_password_hashes_total";

/// How long a refused caller is told to wait before trying again.
const BUSY_RETRY_AFTER_SECONDS: u64 = 1;

/// The salt every verification of an unknown user hashes with (its result is thrown away).
const DUMMY_SALT: &[u8; 16] = b"plystra-no-user!";

/// The Argon2id parameters new hashes use: the crate's defaults (19 MiB, 2 passes, 1 lane).
fn params() -> Params {
    Params::default()
}

/// The memory blocks one hash with [`params`] needs.
fn blocks_needed() -> usize {
    params().block_count()
}

fn internal() -> ApiError {
    ApiError::new(ErrorCode::InternalError, "internal error")
}

/// Checks the password policy; the error names the `password` field and never echoes it.
pub fn check(password: &str) -> Result<(), ApiError> {
    let len = password.chars().count();
    if len < MIN_LENGTH {
        return Err(ApiError::invalid_field(
            "password",
            format!("must be at least {MIN_LENGTH} characters"),
        ));
    }
    if len > MAX_LENGTH {
        return Err(ApiError::invalid_field(
            "password",
            format!("must be at most {MAX_LENGTH} characters"),
        ));
    }
    Ok(())
}

/// The Argon2id hash of `password` with a fresh random salt, computed in `memory` (grown to
/// what [`params`] needs when smaller).
fn hash_in(memory: &mut Vec<Block>, password: &str) -> Result<String, ApiError> {
    if memory.len() < blocks_needed() {
        memory.resize(blocks_needed(), Block::default());
    }
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt_text = SaltString::encode_b64(&salt).map_err(|_| internal())?;
    let params = params();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, &mut memory[..])
        .map_err(|_| internal())?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|_| internal())?,
        salt: Some(salt_text.as_salt()),
        hash: Some(Output::new(&out).map_err(|_| internal())?),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches `encoded`, computed in `memory`. With no hash (unknown user,
/// disabled user, no password set) it runs the same Argon2id computation with the same
/// parameters against a fixed salt, so the answer costs the same, and returns false.
fn verify_in(memory: &mut Vec<Block>, password: &str, encoded: Option<&str>) -> bool {
    if memory.len() < blocks_needed() {
        memory.resize(blocks_needed(), Block::default());
    }
    let Some(encoded) = encoded else {
        let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
        let _ = Argon2::new(Algorithm::Argon2id, Version::V0x13, params())
            .hash_password_into_with_memory(
                password.as_bytes(),
                DUMMY_SALT,
                &mut out,
                &mut memory[..],
            );
        return false;
    };
    let Ok(parsed) = PasswordHash::new(encoded) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::V0x13,
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let Ok(stored) = Params::try_from(&parsed) else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    // A hash made with more memory than ours (another system's) gets its own, freed after.
    let mut larger;
    let blocks: &mut [Block] = if memory.len() >= stored.block_count() {
        &mut memory[..]
    } else {
        larger = vec![Block::default(); stored.block_count()];
        &mut larger[..]
    };
    let mut out = vec![0u8; expected.len()];
    let computed = Argon2::new(algorithm, version, stored).hash_password_into_with_memory(
        password.as_bytes(),
        salt,
        &mut out,
        blocks,
    );
    // `Output` compares in constant time.
    computed.is_ok() && Output::new(&out).is_ok_and(|o| o == expected)
}

/// The Argon2id hash of `password` with a fresh random salt, on the calling thread, with its
/// own memory (tests and tools; the server hashes through [`Hashing`]).
pub fn hash(password: &str) -> Result<String, ApiError> {
    hash_in(&mut Vec::new(), password)
}

/// Whether `password` matches `encoded`, on the calling thread, with its own memory (tests and
/// tools; the server verifies through [`Hashing`]).
pub fn verify(password: &str, encoded: Option<&str>) -> bool {
    verify_in(&mut Vec::new(), password, encoded)
}

/// The bound on password hashing: at most `limit` hashes or verifications at once, on the
/// blocking pool, each in a reused memory area; callers wait at most `wait` for a turn.
#[derive(Debug)]
pub struct Hashing {
    permits: Arc<Semaphore>,
    limit: usize,
    wait: Duration,
    memory: Arc<Mutex<Vec<Vec<Block>>>>,
    running: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    /// [`HASHES_METRIC`], once `instrument` has run.
    hashes: OnceLock<Counter<2>>,
}

impl Hashing {
    /// The default number at once: the number of cores.
    pub fn default_limit() -> usize {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    }

    /// The default wait for a turn.
    pub const DEFAULT_WAIT: Duration = Duration::from_millis(1000);

    /// At most `limit` (at least 1) at once; a caller waits at most `wait` for a turn.
    pub fn new(limit: usize, wait: Duration) -> Self {
        let limit = limit.max(1);
        Self {
            permits: Arc::new(Semaphore::new(limit)),
            limit,
            wait,
            memory: Arc::default(),
            running: Arc::default(),
            peak: Arc::default(),
            hashes: OnceLock::new(),
        }
    }

    /// Counts, from now on, every hash and verification in `metrics` ([`HASHES_METRIC`]).
    pub fn instrument(&self, metrics: &Metrics) {
        let _ = self.hashes.set(metrics.counter(
            HASHES_METRIC,
            "Password hashes and verifications, by operation and outcome (busy: refused for want of a free slot).",
            ["operation", "outcome"],
        ));
    }

    /// How many run at once at most.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The most that have run at once so far.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    /// Hashes `password` (Argon2id, a fresh salt) when a turn comes; 503 `SERVER_BUSY` when none
    /// comes within the wait.
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        self.run("hash", move |memory| hash_in(memory, &password))
            .await?
    }

    /// Whether `password` matches `encoded` (see [`verify`]: no hash costs the same as a wrong
    /// one), when a turn comes; 503 `SERVER_BUSY` when none comes within the wait.
    pub async fn verify(
        &self,
        password: String,
        encoded: Option<String>,
    ) -> Result<bool, ApiError> {
        self.run("verify", move |memory| {
            verify_in(memory, &password, encoded.as_deref())
        })
        .await
    }

    async fn run<T: Send + 'static>(
        &self,
        operation: &'static str,
        job: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let permit =
            match tokio::time::timeout(self.wait, self.permits.clone().acquire_owned()).await {
                Ok(Ok(permit)) => permit,
                _ => {
                    self.count(operation, "busy");
                    return Err(ApiError::new(
                        ErrorCode::ServerBusy,
                        "too many password checks are in progress; try again shortly",
                    )
                    .with_detail("retry_after_seconds", BUSY_RETRY_AFTER_SECONDS));
                }
            };
        let memory = self.memory.clone();
        let running = self.running.clone();
        let peak = self.peak.clone();
        // The permit moves into the blocking task: a caller that goes away does not free its
        // turn before the hash it started has finished.
        let result = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            let mut area = memory
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop()
                .unwrap_or_default();
            let out = job(&mut area);
            memory.lock().unwrap_or_else(|p| p.into_inner()).push(area);
            running.fetch_sub(1, Ordering::SeqCst);
            out
        })
        .await
        .map_err(|_| internal())?;
        self.count(operation, "done");
        Ok(result)
    }

    /// Counts one hash or verification (nothing before `instrument`).
    fn count(&self, operation: &'static str, outcome: &'static str) {
        if let Some(hashes) = self.hashes.get() {
            hashes.inc([operation.into(), outcome.into()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_salted_and_verify() {
        let a = hash("correct horse battery").unwrap();
        let b = hash("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$v=19$"), "{a}");
        assert_ne!(a, b, "salted");
        assert!(verify("correct horse battery", Some(&a)));
        assert!(!verify("wrong horse battery", Some(&a)));
        assert!(!verify("correct horse battery", None));
        assert!(!verify("correct horse battery", Some("garbage")));
    }

    #[test]
    fn hashes_match_the_argon2_crate_both_ways() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let theirs = Argon2::default()
            .hash_password(
                b"correct horse battery",
                &SaltString::encode_b64(b"0123456789abcdef").unwrap(),
            )
            .unwrap()
            .to_string();
        assert!(verify("correct horse battery", Some(&theirs)));
        assert!(!verify("correct horse batterz", Some(&theirs)));
        let ours = hash("correct horse battery").unwrap();
        assert_eq!(ours.len(), theirs.len(), "{ours} / {theirs}");
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse battery", &parsed)
                .is_ok()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hashing_never_runs_more_than_its_limit_at_once() {
        let hashing = Arc::new(Hashing::new(2, Duration::from_secs(120)));
        let encoded = hash("correct horse battery").unwrap();
        let tasks: Vec<_> = (0..10)
            .map(|i| {
                let hashing = hashing.clone();
                let encoded = encoded.clone();
                tokio::spawn(async move {
                    if i % 2 == 0 {
                        hashing
                            .verify("correct horse battery".into(), Some(encoded))
                            .await
                            .map(|ok| assert!(ok))
                    } else {
                        hashing
                            .verify("correct horse battery".into(), None)
                            .await
                            .map(|ok| assert!(!ok))
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert_eq!(
            hashing.peak(),
            2,
            "ten concurrent verifications with a limit of two"
        );
        // Each run used one of at most two memory areas, kept for the next.
        assert_eq!(hashing.memory.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_caller_with_no_turn_within_the_wait_is_refused_as_busy() {
        let hashing = Hashing::new(1, Duration::from_millis(10));
        // The only turn is taken.
        let _held = hashing.permits.clone().acquire_owned().await.unwrap();
        let err = hashing
            .verify("correct horse battery".into(), None)
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::ServerBusy);
        assert_eq!(err.details["retry_after_seconds"], 1);
        let err = hashing
            .hash("correct horse battery".into())
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::ServerBusy);
        assert_eq!(hashing.peak(), 0, "nothing ran");
    }

    #[test]
    fn the_policy_needs_twelve_characters() {
        assert!(check("elevenchars").is_err());
        assert!(check("twelve chars").is_ok());
        let err = check("short").unwrap_err();
        assert!(err.details["fields"]["password"].is_string());
        assert!(!err.message.contains("short"));
    }
}
