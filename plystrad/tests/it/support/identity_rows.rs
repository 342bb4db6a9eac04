//! Identity rows written directly with sea-query, for modules that test another capability on
//! spaces, groups and members without going through the identity routes.

use plystra_contracts::storage::Database;
use plystra_contracts::storage::sea_query::{self, Alias, Expr, Query};
use plystra_contracts::storage::time::OffsetDateTime;

/// Now, to the microsecond (what both backends store).
pub fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1000 * 1000)
        .unwrap()
}

/// Inserts one row of `values` into `table`.
pub async fn insert(db: &Database, table: &str, values: &[(&str, sea_query::Value)]) {
    let mut insert = Query::insert();
    insert
        .into_table(Alias::new(table))
        .columns(values.iter().map(|(c, _)| Alias::new(*c)))
        .values_panic(values.iter().map(|(_, v)| Expr::val(v.clone())));
    db.execute(&insert).await.unwrap();
}

/// An active space `id`, named `Space {id}`.
pub async fn space(db: &Database, id: &str) {
    let at = now();
    insert(
        db,
        "sys_identity_spaces",
        &[
            ("id", id.into()),
            ("name", format!("Space {id}").into()),
            ("slug", id.into()),
            ("type", "organization".into()),
            ("status", "active".into()),
            ("created_at", at.into()),
            ("updated_at", at.into()),
        ],
    )
    .await;
}

/// An active group `id` at `path` in `space_id`, under `parent`.
pub async fn group(db: &Database, space_id: &str, id: &str, path: &str, parent: Option<&str>) {
    let at = now();
    insert(
        db,
        "sys_identity_groups",
        &[
            ("id", id.into()),
            ("space_id", space_id.into()),
            ("parent_id", parent.map(str::to_owned).into()),
            ("name", path.rsplit('.').next().unwrap().into()),
            ("path", path.into()),
            ("depth", (path.matches('.').count() as i64).into()),
            ("sort_order", 0i64.into()),
            ("status", "active".into()),
            ("created_at", at.into()),
            ("updated_at", at.into()),
        ],
    )
    .await;
}

/// An active person `id` named `name` in `space_id`.
pub async fn member(db: &Database, space_id: &str, id: &str, name: &str) {
    let at = now();
    insert(
        db,
        "sys_identity_members",
        &[
            ("id", id.into()),
            ("space_id", space_id.into()),
            ("member_type", "person".into()),
            ("display_name", name.into()),
            ("status", "active".into()),
            ("created_at", at.into()),
            ("updated_at", at.into()),
        ],
    )
    .await;
}
