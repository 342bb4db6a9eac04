//! How much one decision call may ask for: the checks or evaluations of one batch and the
//! results of one lookup or search page. Settings with documented defaults, read once at boot;
//! a request past them is a 400 that says the limit.

use plystra_contracts::{ApiError, CapabilityError};

/// The setting that bounds the items of one batch: `authz/check/batch` checks and AuthZEN
/// `evaluations`.
pub const MAX_BATCH_SETTING: &str = "PLYSTRA_AUTHZ_MAX_BATCH";
/// The setting that bounds one page of a lookup or an AuthZEN search.
pub const MAX_PAGE_SETTING: &str = "PLYSTRA_AUTHZ_MAX_PAGE";
/// The items one batch may hold unless configured otherwise.
pub const DEFAULT_MAX_BATCH: usize = 100;
/// The results one page may hold unless configured otherwise.
pub const DEFAULT_MAX_PAGE: u32 = 1000;
/// The page size when a request names none (smaller than the largest page when that is set
/// lower).
pub const DEFAULT_PAGE: u32 = 100;
/// The most either setting may be: a batch or a page is answered in one response, held whole
/// in memory, and each of a batch's items writes an audit record. The document declares it as
/// the `maximum`/`maxItems` of every limited field (a deployment's setting may be lower).
pub const CEILING: u64 = 10_000;

/// The limits in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most items of one batch.
    pub max_batch: usize,
    /// The most results of one page.
    pub max_page: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_batch: DEFAULT_MAX_BATCH,
            max_page: DEFAULT_MAX_PAGE,
        }
    }
}

impl Limits {
    /// The limits `setting` configures (a setting's value by its environment name); a value
    /// that is not a whole number from 1 to [`CEILING`] refuses the boot, naming the setting.
    pub fn from_settings(
        setting: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, CapabilityError> {
        let read = |name: &str, default: u64| -> Result<u64, CapabilityError> {
            match setting(name).filter(|v| !v.trim().is_empty()) {
                None => Ok(default),
                Some(value) => value
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|n| (1..=CEILING).contains(n))
                    .ok_or_else(|| {
                        CapabilityError::Configuration(format!(
                            "{name} must be a whole number from 1 to {CEILING}, not {value:?}"
                        ))
                    }),
            }
        };
        let max_batch = read(MAX_BATCH_SETTING, DEFAULT_MAX_BATCH as u64)?;
        let max_page = read(MAX_PAGE_SETTING, u64::from(DEFAULT_MAX_PAGE))?;
        Ok(Self {
            max_batch: usize::try_from(max_batch).unwrap_or(DEFAULT_MAX_BATCH),
            max_page: u32::try_from(max_page).unwrap_or(DEFAULT_MAX_PAGE),
        })
    }

    /// The batch `items` long, or a 400 naming `field` when it is empty or past the limit.
    pub fn batch(&self, field: &str, items: usize) -> Result<(), ApiError> {
        if items == 0 || items > self.max_batch {
            return Err(ApiError::invalid_field(
                field,
                format!(
                    "must hold 1 to {} items, not {items} (the limit is {MAX_BATCH_SETTING})",
                    self.max_batch
                ),
            ));
        }
        Ok(())
    }

    /// The page size a request asks for with `limit` (the default when absent), or a 400 naming
    /// `field` when it is below 1 or past the limit.
    pub fn page(&self, field: &str, limit: Option<i64>) -> Result<u32, ApiError> {
        let Some(limit) = limit else {
            return Ok(DEFAULT_PAGE.min(self.max_page));
        };
        u32::try_from(limit)
            .ok()
            .filter(|l| (1..=self.max_page).contains(l))
            .ok_or_else(|| {
                ApiError::invalid_field(
                    field,
                    format!(
                        "must be from 1 to {}, not {limit} (the limit is {MAX_PAGE_SETTING})",
                        self.max_page
                    ),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(settings: &[(&str, &str)]) -> Result<Limits, CapabilityError> {
        Limits::from_settings(|name| {
            settings
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn the_defaults_hold_unless_a_setting_says_otherwise() {
        assert_eq!(limits(&[]).unwrap(), Limits::default());
        let set = limits(&[(MAX_BATCH_SETTING, "7"), (MAX_PAGE_SETTING, " 50 ")]).unwrap();
        assert_eq!((set.max_batch, set.max_page), (7, 50));
        for bad in ["0", "-1", "ten", "10001", "1.5"] {
            let err = limits(&[(MAX_PAGE_SETTING, bad)]).unwrap_err().to_string();
            assert!(err.contains(MAX_PAGE_SETTING), "{bad}: {err}");
        }
    }

    #[test]
    fn the_document_bounds_every_limited_field_by_the_ceiling() {
        use poem_openapi::registry::{MetaSchemaRef, Registry};
        use poem_openapi::types::Type;
        let mut registry = Registry::new();
        crate::lookup::LookupResourcesRequest::register(&mut registry);
        crate::lookup::LookupSubjectsRequest::register(&mut registry);
        crate::authzen::wire::AuthzenPageRequest::register(&mut registry);
        crate::authzen::wire::AuthzenEvaluationsRequest::register(&mut registry);
        crate::check::BatchCheckRequest::register(&mut registry);
        let bound = |schema: &str, field: &str| {
            let property = registry.schemas[schema]
                .properties
                .iter()
                .find(|(name, _)| *name == field)
                .map(|(_, p)| p.clone());
            match property {
                Some(MetaSchemaRef::Inline(s)) => s.maximum.or(s.max_items.map(|n| n as f64)),
                other => panic!("{schema}.{field}: {other:?}"),
            }
        };
        for (schema, field) in [
            ("LookupResourcesRequest", "limit"),
            ("LookupSubjectsRequest", "limit"),
            ("AuthzenPageRequest", "limit"),
            ("AuthzenEvaluationsRequest", "evaluations"),
            ("BatchCheckRequest", "checks"),
        ] {
            assert_eq!(
                bound(schema, field),
                Some(CEILING as f64),
                "{schema}.{field}"
            );
        }
    }

    #[test]
    fn a_batch_or_page_past_the_limit_is_a_400_naming_the_field() {
        let set = limits(&[(MAX_BATCH_SETTING, "3"), (MAX_PAGE_SETTING, "20")]).unwrap();
        assert!(set.batch("evaluations", 3).is_ok());
        for items in [0, 4] {
            let err = set.batch("evaluations", items).unwrap_err();
            assert!(err.details["fields"]["evaluations"].is_string(), "{err:?}");
        }
        assert_eq!(set.page("limit", None).unwrap(), 20);
        assert_eq!(Limits::default().page("limit", None).unwrap(), DEFAULT_PAGE);
        assert_eq!(set.page("limit", Some(20)).unwrap(), 20);
        for limit in [0, -1, 21, i64::MAX] {
            let err = set.page("page.limit", Some(limit)).unwrap_err();
            assert!(err.details["fields"]["page.limit"].is_string(), "{err:?}");
        }
    }
}
