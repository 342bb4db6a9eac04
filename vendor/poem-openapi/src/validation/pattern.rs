use derive_more::Display;
use regex::Regex;

use crate::{
    registry::MetaSchema,
    validation::{Validator, ValidatorMeta},
};

#[derive(Display)]
#[display("pattern(\"{pattern}\")")]
pub struct Pattern {
    pattern: &'static str,
}

impl Pattern {
    #[inline]
    pub fn new(pattern: &'static str) -> Self {
        Self { pattern }
    }
}

impl<T: AsRef<str>> Validator<T> for Pattern {
    #[inline]
    fn check(&self, value: &T) -> bool {
        compiled(self.pattern).is_match(value.as_ref())
    }
}

/// Plystra's patch: upstream compiles the pattern on every check (`Regex::new` per field per
/// request, most of a request's CPU time). Each pattern is a `&'static str` written in a
/// `validator(pattern = ...)` attribute, so the set is small and fixed: compile each once per
/// process and keep it (leaked on purpose, so that every check shares one regex and its caches).
fn compiled(pattern: &'static str) -> &'static Regex {
    use std::collections::HashMap;
    use std::sync::{LazyLock, RwLock};

    static COMPILED: LazyLock<RwLock<HashMap<&'static str, &'static Regex>>> =
        LazyLock::new(Default::default);
    if let Some(regex) = COMPILED
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(pattern)
    {
        return regex;
    }
    // The derive macro already refused an invalid pattern at compile time.
    let regex: &'static Regex = Box::leak(Box::new(Regex::new(pattern).unwrap()));
    *COMPILED
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .entry(pattern)
        .or_insert(regex)
}

impl ValidatorMeta for Pattern {
    fn update_meta(&self, meta: &mut MetaSchema) {
        meta.pattern = Some(self.pattern.to_string());
    }
}
