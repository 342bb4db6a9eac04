//! The registry vocabulary: the closed value sets and the key pattern, served so clients can
//! build forms and validate before they call.

use poem_openapi::Object;

use crate::model::{
    RegistryEntryStatus, ResourceStatus, ResourceVisibility, RiskLevel, StorageKind,
};
use crate::validation::KEY_PATTERN;

/// The registry vocabulary.
#[derive(Debug, Clone, PartialEq, Object)]
pub struct RegistryVocabulary {
    /// Risk levels an action can carry, lowest first.
    pub risk_levels: Vec<String>,
    /// Where a resource type's records live.
    pub storage_kinds: Vec<String>,
    /// The statuses of resource types and mappings.
    pub entry_statuses: Vec<String>,
    /// The statuses of resources.
    pub resource_statuses: Vec<String>,
    /// The visibilities of resources.
    pub visibilities: Vec<String>,
    /// The pattern resource type and action keys follow.
    pub key_pattern: String,
}

impl RegistryVocabulary {
    /// The vocabulary this build serves.
    pub fn current() -> Self {
        Self {
            risk_levels: RiskLevel::names(),
            storage_kinds: StorageKind::names(),
            entry_statuses: RegistryEntryStatus::names(),
            resource_statuses: ResourceStatus::names(),
            visibilities: ResourceVisibility::names(),
            key_pattern: KEY_PATTERN.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vocabulary_lists_every_value() {
        let v = RegistryVocabulary::current();
        assert_eq!(v.risk_levels, ["low", "normal", "high", "critical"]);
        assert_eq!(v.storage_kinds, ["internal_table"]);
        assert_eq!(v.resource_statuses, ["active", "archived"]);
        assert_eq!(v.key_pattern, "^[a-z][a-z0-9_]*$");
    }
}
