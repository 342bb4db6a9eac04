//! The input boundary of paths and query strings, before routing: a percent-decoded path segment
//! or query value holding a control character (`limits::refused_character`: NUL, the C0 and C1
//! ranges, DEL) or longer than its cap (`limits::MAX_PATH_SEGMENT_LENGTH`,
//! `limits::MAX_QUERY_VALUE_LENGTH`) is refused with 400 `VALIDATION_FAILED` naming the
//! parameter, so it never reaches a handler, a database (PostgreSQL fails on NUL) or a 404 that
//! would echo it. Path parameters are named by the linked route sets' path templates. The
//! document declares the same rules on every string path and query parameter
//! (`document::parameter_rules`: `maxLength` and the pattern `limits::NO_CONTROL_CHARACTERS`).

use std::sync::OnceLock;

use plystra_contracts::ApiError;
use plystra_contracts::limits;
use poem::Request;

/// Refuses `req` when a path segment or query value breaks the input rules.
pub async fn check(req: Request) -> poem::Result<Request> {
    let path = req.uri().path();
    let segments: Vec<&str> = path.split('/').collect();
    for (position, raw) in segments.iter().enumerate() {
        let value = percent_decode(raw, false);
        if let Some(problem) = problem_of(&value, limits::MAX_PATH_SEGMENT_LENGTH) {
            let name = parameter_at(&segments, position).unwrap_or("path");
            return Err(refusal(name, "path", problem).into());
        }
    }
    if let Some(query) = req.uri().query() {
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = percent_decode(name, true);
            let value = percent_decode(value, true);
            let problem = problem_of(&name, limits::MAX_QUERY_VALUE_LENGTH)
                .map(|p| (String::from("query"), p))
                .or_else(|| {
                    problem_of(&value, limits::MAX_QUERY_VALUE_LENGTH).map(|p| (name.clone(), p))
                });
            if let Some((name, problem)) = problem {
                return Err(refusal(&name, "query", problem).into());
            }
        }
    }
    Ok(req)
}

fn refusal(name: &str, location: &str, problem: String) -> ApiError {
    ApiError::invalid_field(name, problem)
        .with_detail("parameter", name)
        .with_detail("in", location)
}

fn problem_of(value: &str, max: usize) -> Option<String> {
    if let Some(c) = limits::refused_character(value, false) {
        return Some(format!(
            "must not hold the control character U+{:04X}",
            u32::from(c)
        ));
    }
    (value.chars().count() > max).then(|| format!("must be at most {max} characters"))
}

/// Decodes `%XX` escapes (and `+` as a space in a query); invalid UTF-8 becomes U+FFFD.
fn percent_decode(raw: &str, plus_is_space: bool) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The linked route sets' path templates (from their poem-openapi metadata), split into segments.
fn templates() -> &'static [Vec<String>] {
    static TEMPLATES: OnceLock<Vec<Vec<String>>> = OnceLock::new();
    TEMPLATES.get_or_init(|| {
        plystra_contracts::registration::linked()
            .flat_map(|r| crate::http::operations::served(&r.routes))
            .map(|op| op.path.split('/').map(str::to_owned).collect())
            .collect()
    })
}

/// The name of the path parameter at `position` of `segments`, by the first template that
/// matches the path's literal segments.
fn parameter_at(segments: &[&str], position: usize) -> Option<&'static str> {
    templates()
        .iter()
        .filter(|t| t.len() == segments.len())
        .find(|t| {
            t.iter()
                .zip(segments)
                .enumerate()
                .all(|(i, (t, s))| i == position || t.starts_with('{') || t == s)
        })
        .and_then(|t| t[position].strip_prefix('{')?.strip_suffix('}'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_escapes_decode_and_broken_ones_stay() {
        assert_eq!(percent_decode("a%00b", false), "a\0b");
        assert_eq!(percent_decode("a%2", false), "a%2");
        assert_eq!(percent_decode("%zz+x", true), "%zz x");
        assert_eq!(percent_decode("caf%C3%A9", false), "café");
    }

    #[test]
    fn problems_are_control_characters_and_length() {
        assert!(problem_of("a\0", 10).is_some());
        assert!(problem_of("a\u{85}", 10).is_some());
        assert!(problem_of("abcdefghijk", 10).is_some());
        assert!(problem_of("café", 10).is_none());
    }
}
