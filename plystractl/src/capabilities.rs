//! `plystractl capabilities --url`: a running server's capabilities, read through the client
//! generated from the OpenAPI document, with `--api-key` or the key in `PLYSTRACTL_API_KEY` or
//! `PLYSTRA_API_KEY`.

use crate::{Outcome, api};

/// Prints one line per capability (`id state version kind`), or the list as JSON; exit 1 when
/// the server cannot be read.
pub async fn run(base: &str, api_key: Option<String>, json: bool) -> Outcome {
    let Some((key, _)) = api::key(api_key) else {
        eprintln!(
            "error: pass --api-key or set PLYSTRACTL_API_KEY (or PLYSTRA_API_KEY) to a key with \
             capabilities:read"
        );
        return Outcome::Usage;
    };
    let client = match api::client(base, Some(&key)) {
        Ok(client) => client,
        Err(e) => {
            eprintln!("error: {e}");
            return Outcome::Usage;
        }
    };
    let list = match client.list_capabilities().await {
        Ok(list) => list.into_inner(),
        Err(e) => {
            eprintln!(
                "error: {} {}",
                base.trim_end_matches('/'),
                api::describe(&e)
            );
            return Outcome::Failed;
        }
    };
    if json {
        match serde_json::to_string(&list.data) {
            Ok(text) => out!("{text}"),
            Err(e) => {
                eprintln!("error: {e}");
                return Outcome::Failed;
            }
        }
    } else {
        for c in &list.data {
            let reason = c
                .state_reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            out!("{} {} {} {}{reason}", c.id, c.state, c.version, c.kind);
        }
    }
    Outcome::Ok
}
