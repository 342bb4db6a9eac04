//! The registry's wire vocabulary: the closed value sets (risk levels, statuses, storage kinds,
//! visibilities) and the RFC 3339 rendering of stored instants.

use plystra_contracts::ApiError;
use plystra_contracts::storage::time::OffsetDateTime;
use plystra_contracts::storage::time::format_description::well_known::Rfc3339;
use poem_openapi::Enum;

/// Declares a closed value set with its wire names, a parser for stored values and the list of
/// names, so the database, the document and the code agree.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Enum)]
        #[oai(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$(Self::$variant),+];

            /// The value as written on the wire and in the database.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $wire),+
                }
            }

            /// Parses the wire form.
            pub fn parse(value: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == value)
            }

            /// Parses a stored value; an unknown one is reported, never guessed.
            pub(crate) fn stored(value: &str) -> Result<Self, ApiError> {
                Self::parse(value).ok_or_else(|| {
                    tracing::error!(value, kind = stringify!($name), "unknown stored value");
                    ApiError::new(plystra_contracts::ErrorCode::InternalError, "internal error")
                })
            }

            /// Every wire name, in declaration order.
            pub fn names() -> Vec<String> {
                Self::ALL.iter().map(|v| v.as_str().to_owned()).collect()
            }
        }
    };
}

wire_enum! {
    /// How much is at stake when an action is performed, lowest first.
    RiskLevel {
        /// Routine and reversible.
        Low => "low",
        /// The default for everyday actions.
        Normal => "normal",
        /// Consequential: approvals, rejections.
        High => "high",
        /// Destructive or irreversible.
        Critical => "critical",
    }
}

wire_enum! {
    /// Whether a resource type or mapping is in use. A disabled type is treated as unregistered
    /// by authorization and accepts no new resources.
    RegistryEntryStatus {
        /// In use.
        Active => "active",
        /// Kept for history, not in use.
        Disabled => "disabled",
    }
}

wire_enum! {
    /// Where a resource type's records live.
    StorageKind {
        /// In Plystra's own resource table.
        InternalTable => "internal_table",
    }
}

wire_enum! {
    /// A resource's lifecycle state.
    ResourceStatus {
        /// In use.
        Active => "active",
        /// Kept for history and audit; still resolvable.
        Archived => "archived",
    }
}

wire_enum! {
    /// Who may discover a resource, as the application declares it. Informational for
    /// authorization, which decides by grants and scopes.
    ResourceVisibility {
        /// Only its owner member.
        Private => "private",
        /// Members of its group.
        Group => "group",
        /// Members of its space.
        Space => "space",
        /// Anyone who can reach the application.
        Public => "public",
    }
}

/// An instant as RFC 3339 in UTC, as every response writes it.
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.to_offset(plystra_contracts::storage::time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_default()
}

pub use plystra_contracts::storage::now;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        for level in RiskLevel::ALL {
            assert_eq!(RiskLevel::parse(level.as_str()), Some(*level));
        }
        assert_eq!(RiskLevel::names(), ["low", "normal", "high", "critical"]);
        assert_eq!(StorageKind::InternalTable.as_str(), "internal_table");
        assert_eq!(
            ResourceStatus::parse("archived"),
            Some(ResourceStatus::Archived)
        );
        assert_eq!(ResourceVisibility::parse("secret"), None);
        assert!(RegistryEntryStatus::stored("gone").is_err());
    }

    #[test]
    fn the_enum_schema_uses_the_wire_names() {
        use poem_openapi::types::ToJSON;
        assert_eq!(
            RiskLevel::Critical.to_json(),
            Some(serde_json::json!("critical"))
        );
        assert_eq!(
            StorageKind::InternalTable.to_json(),
            Some(serde_json::json!("internal_table"))
        );
    }

    #[test]
    fn instants_render_in_utc_with_microseconds() {
        let at = now();
        assert_eq!(at.nanosecond() % 1000, 0);
        let text = rfc3339(at);
        assert!(text.ends_with('Z'), "{text}");
        let parsed = OffsetDateTime::parse(&text, &Rfc3339).unwrap();
        assert_eq!(parsed, at);
    }
}
