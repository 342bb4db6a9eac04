//! What identity's space-scoped entities (members, bindings, groups) have in common: the routes
//! every one of them serves, declared once by `space_scoped_routes!`, and the reads they answer
//! through.

use plystra_contracts::entity::{self, InSpace, Stored};
use plystra_contracts::storage::Database;
use plystra_contracts::storage::sea_query::{Expr, ExprTrait};
use plystra_contracts::{ApiError, Envelope, ListEnvelope};
use poem_openapi::payload::Json;

use crate::spaces::Space;
use crate::store::{KeyPage, a};

/// One page of a space's `T`s in ID order: what a space-scoped list route answers. 404 when the
/// space does not exist.
pub(crate) async fn list_in<T: InSpace>(
    db: &Database,
    space_id: &str,
    limit: Option<i64>,
    cursor: Option<&str>,
) -> Result<Json<ListEnvelope<T>>, ApiError> {
    let page = KeyPage::parse(limit, cursor)?;
    entity::require::<Space>(db, space_id).await?;
    let mut select = T::select();
    select.and_where(Expr::col((a(T::TABLE), a("space_id"))).eq(space_id));
    Ok(Json(entity::list(db, select, &page).await?))
}

/// A space's `T` with `id`: what a space-scoped read route answers. 404 when the space does not
/// exist, or has no such `T`.
pub(crate) async fn get_in<T: InSpace>(
    db: &Database,
    space_id: &str,
    id: &str,
) -> Result<Json<Envelope<T>>, ApiError> {
    entity::require::<Space>(db, space_id).await?;
    Ok(Json(Envelope::new(
        entity::require_in::<T>(db, space_id, id).await?,
    )))
}

/// `T` with `id`, whatever its space: what a by-ID read route answers.
pub(crate) async fn get_by_id<T: Stored>(
    db: &Database,
    id: &str,
) -> Result<Json<Envelope<T>>, ApiError> {
    Ok(Json(Envelope::new(entity::require::<T>(db, id).await?)))
}

/// Writes a space-scoped entity's route set, `#[OpenApi] impl $api`: its list, read, update,
/// optional disable and by-ID read routes, then the entity's own `routes { … }` (create, revoke,
/// the group tree). Each route's doc comment is its description in the OpenAPI document; the
/// path, method and operation ID stay next to it, as in a hand-written `#[oai]`:
///
/// ```text
/// space_scoped_routes! {
///     impl MembersApi for Member, tag "ApiTag::Members", id member_id "The member's ID.";
///     /// Lists a space's members by ID, a page at a time.
///     list "listMembers" at "/api/v1/spaces/:space_id/members"
///         "Members per page, 1-200 (default 50).";
///     /// Reads one member of a space.
///     get "getMember" at "/api/v1/spaces/:space_id/members/:member_id";
///     /// Changes a member's display name, kind, status or metadata.
///     update "updateMember" with MemberUpdateRequest as "members.update";
///     /// Reads one member by ID, whatever its space.
///     get_by_id "getMemberByID" at "/api/v1/members/:member_id";
///     /// Disables an active member. 409 when already disabled.
///     disable "disableMember" at "/api/v1/spaces/:space_id/members/:member_id/disable"
///         as "members.disable";
///     routes { /* the entity's own routes, written as usual */ }
/// }
/// ```
///
/// The update route is a `PATCH` of the read route's path. The update and the (optional) disable
/// route call the API's own `self.change(req, space_id, id, action, update, strict)`, which every
/// space-scoped API defines: `strict` is `None` for an update, and `Some(Status::Disabled)` for a
/// disable, which answers 409 when the entity is already disabled.
macro_rules! space_scoped_routes {
    (
        impl $api:ident for $entity:ident, tag $tag:literal, id $id:ident $id_doc:literal;
        $(#[$list_doc:meta])* list $list_op:literal at $collection:literal $per_page:literal;
        $(#[$get_doc:meta])* get $get_op:literal at $item:literal;
        $(#[$update_doc:meta])*
        update $update_op:literal with $update:ident as $update_action:literal;
        $(#[$by_id_doc:meta])* get_by_id $by_id_op:literal at $by_id:literal;
        $(
            $(#[$disable_doc:meta])* disable $disable_op:literal at $disable_path:literal
            as $disable_action:literal;
        )?
        routes { $($routes:tt)* }
    ) => {
        #[::poem_openapi::OpenApi(tag = $tag)]
        impl $api {
            $(#[$list_doc])*
            #[oai(path = $collection, method = "get", operation_id = $list_op)]
            async fn list(
                &self,
                #[doc = "The space's ID."]
                space_id: ::poem_openapi::param::Path<String>,
                #[doc = $per_page]
                #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
                limit: ::poem_openapi::param::Query<Option<i64>>,
                #[doc = "The `pagination.cursor` of the previous page."]
                cursor: ::poem_openapi::param::Query<Option<String>>,
            ) -> Result<
                ::poem_openapi::payload::Json<::plystra_contracts::ListEnvelope<$entity>>,
                ::plystra_contracts::ApiError,
            > {
                $crate::space_scoped::list_in(
                    &self.ctx.db,
                    &space_id.0,
                    limit.0,
                    cursor.0.as_deref(),
                )
                .await
            }

            $($routes)*

            $(#[$get_doc])*
            #[oai(path = $item, method = "get", operation_id = $get_op)]
            async fn get_in_space(
                &self,
                #[doc = "The space's ID."]
                space_id: ::poem_openapi::param::Path<String>,
                #[doc = $id_doc]
                $id: ::poem_openapi::param::Path<String>,
            ) -> Result<
                ::poem_openapi::payload::Json<::plystra_contracts::Envelope<$entity>>,
                ::plystra_contracts::ApiError,
            > {
                $crate::space_scoped::get_in(&self.ctx.db, &space_id.0, &$id.0).await
            }

            $(#[$update_doc])*
            #[oai(path = $item, method = "patch", operation_id = $update_op)]
            async fn update(
                &self,
                req: &::poem::Request,
                #[doc = "The space's ID."]
                space_id: ::poem_openapi::param::Path<String>,
                #[doc = $id_doc]
                $id: ::poem_openapi::param::Path<String>,
                body: ::plystra_contracts::body::JsonBody<$update>,
            ) -> Result<
                ::poem_openapi::payload::Json<::plystra_contracts::Envelope<$entity>>,
                ::plystra_contracts::ApiError,
            > {
                self.change(req, &space_id.0, &$id.0, $update_action, body.0, None)
                    .await
            }

            $(
                $(#[$disable_doc])*
                #[oai(path = $disable_path, method = "post", operation_id = $disable_op)]
                async fn disable(
                    &self,
                    req: &::poem::Request,
                    #[doc = "The space's ID."]
                    space_id: ::poem_openapi::param::Path<String>,
                    #[doc = $id_doc]
                    $id: ::poem_openapi::param::Path<String>,
                ) -> Result<
                    ::poem_openapi::payload::Json<::plystra_contracts::Envelope<$entity>>,
                    ::plystra_contracts::ApiError,
                > {
                    self.change(
                        req,
                        &space_id.0,
                        &$id.0,
                        $disable_action,
                        $update::default(),
                        Some($crate::store::Status::Disabled),
                    )
                    .await
                }
            )?

            $(#[$by_id_doc])*
            #[oai(path = $by_id, method = "get", operation_id = $by_id_op)]
            async fn get_by_id(
                &self,
                #[doc = $id_doc]
                $id: ::poem_openapi::param::Path<String>,
            ) -> Result<
                ::poem_openapi::payload::Json<::plystra_contracts::Envelope<$entity>>,
                ::plystra_contracts::ApiError,
            > {
                $crate::space_scoped::get_by_id::<$entity>(&self.ctx.db, &$id.0).await
            }
        }
    };
}

pub(crate) use space_scoped_routes;
