//! `plystractl audit verify`: walks the audit log's hash chain and prints the first broken link;
//! `audit export` writes a range of it as JSON lines, and `audit verify-export` checks such a
//! file offline.

use plystra_system_audit::store;

use crate::Outcome;
use crate::cli::open;

/// Walks the chain at `url`.
pub async fn verify(url: &str, json: bool) -> anyhow::Result<Outcome> {
    let db = open(url).await?;
    let verification = store::verify(&db).await?;
    match &verification.first_broken {
        None => {
            if json {
                out!(
                    "{}",
                    serde_json::json!({"verified": true, "records": verification.records})
                );
            } else {
                out!("audit chain verified ({} records)", verification.records);
            }
            Ok(Outcome::Ok)
        }
        Some((seq, id, reason)) => {
            if json {
                out!(
                    "{}",
                    serde_json::json!({"verified": false, "records": verification.records,
                        "first_broken": {"seq": seq, "audit_log_id": id, "reason": reason}})
                );
            } else {
                let at = if id.is_empty() {
                    format!("seq {seq}")
                } else {
                    format!("seq {seq} ({id})")
                };
                out!("audit chain broken at {at}: {reason}");
            }
            Ok(Outcome::Failed)
        }
    }
}

/// Writes the chain from the first record created at or after `since` (else from the first) to
/// `output` (else standard output), a JSON line per record (the lines `GET /api/v1/audit/export`
/// streams); the count goes to standard error as it grows when that is a terminal.
pub async fn export(
    url: &str,
    since: Option<&str>,
    output: Option<&std::path::Path>,
) -> anyhow::Result<Outcome> {
    use std::io::{IsTerminal, Write};

    use anyhow::Context;
    let since = match since {
        Some(text) => Some(
            time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .with_context(|| format!("--since {text:?} is not an RFC 3339 instant"))?,
        ),
        None => None,
    };
    let db = open(url).await?;
    let mut from = match since {
        Some(at) => match plystra_system_audit::export::first_seq_since(&db, at).await? {
            Some(seq) => seq,
            None => {
                eprintln!("no audit record was created at or after the given instant");
                return Ok(Outcome::Ok);
            }
        },
        None => 1,
    };
    let mut sink: Box<dyn Write> = match output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let terminal = std::io::stderr().is_terminal();
    let expected = match plystra_system_audit::export::newest_seq(&db).await? {
        Some(newest) if terminal => (newest - from + 1).max(0) as u64,
        _ => 0,
    };
    let mut records = 0u64;
    let page_size = plystra_system_audit::export::PAGE_SIZE;
    loop {
        let page = match plystra_system_audit::export::page(&db, from, page_size).await {
            Ok(page) => page,
            Err(e) => {
                // The file says it is cut off, so that verify-export fails it.
                sink.write_all(plystra_system_audit::export::cut_off_line().as_bytes())?;
                sink.flush()?;
                return Err(e).context(format!("reading the audit log after {records} records"));
            }
        };
        for entry in &page {
            sink.write_all(plystra_system_audit::export::file_line(entry).as_bytes())?;
        }
        records += page.len() as u64;
        if terminal {
            eprint!("\r{}", progress(records, expected));
        }
        match page.last() {
            Some(last) if page.len() as u64 == page_size => from = last.seq + 1,
            _ => break,
        }
    }
    sink.flush()?;
    if terminal {
        eprint!("\r\x1b[K");
    }
    eprintln!("exported {records} audit records");
    Ok(Outcome::Ok)
}

/// The export's progress line: a bar and the count against the records that were there when it
/// began (records appended since make it run past 100 %, shown as full).
fn progress(done: u64, expected: u64) -> String {
    const WIDTH: u64 = 30;
    let filled = (done.min(expected) * WIDTH)
        .checked_div(expected)
        .unwrap_or(WIDTH);
    format!(
        "[{}{}] {done}/{expected} records",
        "#".repeat(filled as usize),
        "-".repeat((WIDTH - filled) as usize),
    )
}

/// Checks an export offline and prints what it found.
pub fn verify_export(file: &std::path::Path, json: bool) -> anyhow::Result<Outcome> {
    use anyhow::Context;
    let text = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?
    };
    let check = plystra_system_audit::export::check_lines(text.lines());
    if json {
        out!(
            "{}",
            serde_json::json!({
                "verified": check.first_broken.is_none(),
                "records": check.records,
                "first_seq": check.range.map(|r| r.0),
                "last_seq": check.range.map(|r| r.1),
                "chained_to": check.chained_to,
                "first_broken": check.first_broken.as_ref().map(|(line, seq, id, reason)| {
                    serde_json::json!({"line": line, "seq": seq, "audit_log_id": id, "reason": reason})
                }),
            })
        );
    }
    match (&check.first_broken, check.range) {
        (Some((line, seq, id, reason)), _) => {
            if !json {
                if id.is_empty() {
                    // A line that is no record (unreadable, or the cut-off line).
                    out!("export broken at line {line}: {reason}");
                } else {
                    out!("export broken at line {line} (seq {seq}, {id}): {reason}");
                }
            }
            Ok(Outcome::Failed)
        }
        (None, None) => {
            if !json {
                out!("export holds no record");
            }
            Ok(Outcome::Failed)
        }
        (None, Some((first, last))) => {
            if !json {
                out!(
                    "export verified: seq {first} to {last} ({} records), chained to prev_hash {}",
                    check.records,
                    check.chained_to.unwrap_or_default()
                );
            }
            Ok(Outcome::Ok)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::progress;

    #[test]
    fn the_bar_fills_with_the_records_and_stays_full_past_them() {
        assert_eq!(
            progress(0, 100),
            format!("[{}] 0/100 records", "-".repeat(30))
        );
        assert_eq!(
            progress(50, 100),
            format!("[{}{}] 50/100 records", "#".repeat(15), "-".repeat(15))
        );
        assert_eq!(
            progress(120, 100),
            format!("[{}] 120/100 records", "#".repeat(30))
        );
        assert_eq!(progress(0, 0), format!("[{}] 0/0 records", "#".repeat(30)));
    }
}
