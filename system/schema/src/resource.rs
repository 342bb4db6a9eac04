//! The tables of the `sys_resource` migration namespace, as the schema model declares them.
//!
//! The migrations `migrations/{sqlite,postgres}/*_sys_resource_*.sql` create them; `plystractl ent check`
//! compares this model with the live database. Keep both in step.

use plystra_contracts::schema::{Column, ColumnType, ForeignKey, Index, Stamps, Table};

use crate::identity::{GROUPS, MEMBERS, SPACES};

/// The migration namespace these tables belong to.
pub const NAMESPACE: &str = "sys_resource";

/// Registered resource types.
pub const RESOURCE_TYPES: Table = Table::new(
    "sys_resource_resource_types",
    &[
        Column::required("id", ColumnType::Text),
        Column::required("key", ColumnType::Text),
        Column::required("display_name", ColumnType::Text),
        Column::required("source", ColumnType::Text),
        Column::required("status", ColumnType::Text),
        Column::optional("description", ColumnType::Text),
    ],
)
.stamped(Stamps::Changes)
.indexes(&[Index::unique("sys_resource_resource_types_key", &["key"])]);

/// The actions a resource type supports.
pub const RESOURCE_ACTIONS: Table = Table::new(
    "sys_resource_resource_actions",
    &[
        Column::required("id", ColumnType::Text),
        Column::required("resource_type_id", ColumnType::Text),
        Column::required("key", ColumnType::Text),
        Column::required("display_name", ColumnType::Text),
        Column::required("risk_level", ColumnType::Text),
        Column::required("audit_default", ColumnType::Boolean),
    ],
)
.stamped(Stamps::Changes)
.indexes(&[Index::unique(
    "sys_resource_resource_actions_type_key",
    &["resource_type_id", "key"],
)])
.foreign_keys(&[ForeignKey::new(
    &["resource_type_id"],
    RESOURCE_TYPES.name,
    &["id"],
)]);

/// How a resource type maps onto stored records.
pub const RESOURCE_MAPPINGS: Table = Table::new(
    "sys_resource_resource_mappings",
    &[
        Column::required("id", ColumnType::Text),
        Column::required("resource_type_id", ColumnType::Text),
        Column::required("source", ColumnType::Text),
        Column::required("storage_kind", ColumnType::Text),
        Column::optional("table_name", ColumnType::Text),
        Column::optional("id_field", ColumnType::Text),
        Column::optional("space_field", ColumnType::Text),
        Column::optional("group_field", ColumnType::Text),
        Column::optional("owner_member_field", ColumnType::Text),
        Column::optional("visibility_field", ColumnType::Text),
        Column::optional("metadata_field", ColumnType::Text),
        Column::optional("display_name", ColumnType::Text),
        Column::required("status", ColumnType::Text),
    ],
)
.stamped(Stamps::Changes)
.indexes(&[
    Index::plain("sys_resource_resource_mappings_type", &["resource_type_id"]),
    Index::unique(
        "sys_resource_resource_mappings_type_unique",
        &["resource_type_id"],
    ),
])
.foreign_keys(&[ForeignKey::new(
    &["resource_type_id"],
    RESOURCE_TYPES.name,
    &["id"],
)]);

/// Registered resources; group and owner are in the resource's space.
pub const RESOURCES: Table = Table::new(
    "sys_resource_resources",
    &[
        Column::required("id", ColumnType::Text),
        Column::required("space_id", ColumnType::Text),
        Column::required("resource_type_id", ColumnType::Text),
        Column::required("external_id", ColumnType::Text),
        Column::optional("display_name", ColumnType::Text),
        Column::optional("group_id", ColumnType::Text),
        Column::optional("owner_member_id", ColumnType::Text),
        Column::required("visibility", ColumnType::Text),
        Column::required("status", ColumnType::Text),
    ],
)
.stamped(Stamps::SoftDeleted)
.indexes(&[
    Index::unique(
        "sys_resource_resources_external",
        &["space_id", "resource_type_id", "external_id"],
    ),
    Index::plain("sys_resource_resources_group", &["space_id", "group_id"]),
    Index::plain(
        "sys_resource_resources_owner",
        &["space_id", "owner_member_id"],
    ),
])
.foreign_keys(&[
    ForeignKey::new(&["resource_type_id"], RESOURCE_TYPES.name, &["id"]),
    ForeignKey::new(&["space_id"], SPACES.name, &["id"]),
    ForeignKey::new(&["space_id", "group_id"], GROUPS.name, &["space_id", "id"]),
    ForeignKey::new(
        &["space_id", "owner_member_id"],
        MEMBERS.name,
        &["space_id", "id"],
    ),
]);
