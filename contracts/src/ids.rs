//! Entity IDs: a readable prefix, then 26 characters that sort by creation time and carry 80
//! random bits (`audit_01j9z3…`), unless the caller supplies a valid ID of their own.

use rand::RngCore;

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// A new ID: `prefix` + 10 characters of milliseconds since the epoch + 16 random characters.
pub fn generate(prefix: &str) -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut random = [0u8; 10];
    rand::rng().fill_bytes(&mut random);
    let mut id = String::with_capacity(prefix.len() + 26);
    id.push_str(prefix);
    for shift in (0..10).rev() {
        id.push(ALPHABET[((millis >> (shift * 5)) & 31) as usize] as char);
    }
    let mut bits: u128 = 0;
    for b in random {
        bits = (bits << 8) | u128::from(b);
    }
    for shift in (0..16).rev() {
        id.push(ALPHABET[((bits >> (shift * 5)) & 31) as usize] as char);
    }
    id
}

/// Whether `id` is acceptable as a caller-supplied ID with `prefix`: the prefix, then 1–120
/// characters of `[a-z0-9_]`.
pub fn is_valid(prefix: &str, id: &str) -> bool {
    id.strip_prefix(prefix).is_some_and(|rest| {
        (1..=120).contains(&rest.len())
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_prefix_sort_by_time_and_differ() {
        let a = generate("audit_");
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = generate("audit_");
        assert!(a.starts_with("audit_") && a.len() == 6 + 26, "{a}");
        assert!(a < b, "{a} < {b}");
        assert_ne!(generate("x_"), generate("x_"));
        assert!(is_valid("audit_", &a));
    }

    #[test]
    fn supplied_ids_are_checked() {
        assert!(is_valid("user_", "user_alice"));
        assert!(!is_valid("user_", "user_"));
        assert!(!is_valid("user_", "space_alice"));
        assert!(!is_valid("user_", "user_Alice"));
        assert!(!is_valid("user_", "user_a-b"));
    }
}
