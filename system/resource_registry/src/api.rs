//! The registry's HTTP operations, with upstream's paths, methods and operation IDs. Handlers
//! only parse, call the [`Registry`] and wrap the answer; every route is protected by the kernel,
//! which puts the caller's credential and request ID in the request's extensions ([`Caller::of`]).

use plystra_contracts::pagination::PageRequest;
use plystra_contracts::services::Caller;
use plystra_contracts::{
    ApiError, Envelope, ListEnvelope, RouteApi, ServiceError, ServiceRegistry,
};
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi, Tags};

use crate::actions::{ResourceAction, ResourceActionMutationRequest};
use crate::mappings::{ResourceMapping, ResourceMappingMutationRequest};
use crate::resource_types::{ResourceType, ResourceTypeMutationRequest};
use crate::resources::{
    Resource, ResourceArchiveRequest, ResourceCreateAnywhereRequest, ResourceCreateRequest,
    ResourceFilter, ResourceUpdateRequest,
};
use crate::store::Registry;
use crate::vocabulary::RegistryVocabulary;
use plystra_contracts::body::JsonBody;

#[derive(Tags)]
enum RegistryTag {
    /// Resource types, their actions and their storage mapping.
    #[oai(rename = "Resource Types")]
    ResourceTypes,
    /// Registered resources, globally and per space.
    Resources,
}

/// The answer to an upsert of a resource type.
#[derive(ApiResponse)]
pub enum ResourceTypeUpserted {
    /// An existing type was changed.
    #[oai(status = 200)]
    Updated(Json<Envelope<ResourceType>>),
    /// A new type was registered.
    #[oai(status = 201)]
    Created(Json<Envelope<ResourceType>>),
}

/// The answer to an upsert of an action.
#[derive(ApiResponse)]
pub enum ResourceActionUpserted {
    /// An existing action was changed.
    #[oai(status = 200)]
    Updated(Json<Envelope<ResourceAction>>),
    /// A new action was registered.
    #[oai(status = 201)]
    Created(Json<Envelope<ResourceAction>>),
}

/// The answer to an upsert of a mapping.
#[derive(ApiResponse)]
pub enum ResourceMappingUpserted {
    /// The existing mapping was changed.
    #[oai(status = 200)]
    Updated(Json<Envelope<ResourceMapping>>),
    /// The type's first mapping was registered.
    #[oai(status = 201)]
    Created(Json<Envelope<ResourceMapping>>),
}

/// The answer to a resource creation.
#[derive(ApiResponse)]
pub enum ResourceCreated {
    /// The resource was registered.
    #[oai(status = 201)]
    Created(Json<Envelope<Resource>>),
}

/// The registry routes.
pub struct RegistryApi {
    registry: Registry,
}

impl RouteApi for RegistryApi {
    fn build(services: &ServiceRegistry) -> Result<Self, ServiceError> {
        Ok(Self {
            registry: Registry::from_services(services),
        })
    }
}

#[OpenApi]
impl RegistryApi {
    /// The registry's rules clients can rely on: risk levels, storage kinds, statuses,
    /// visibilities and the key pattern.
    #[oai(
        path = "/api/v1/registry/vocabulary",
        method = "get",
        operation_id = "getRegistryVocabulary",
        tag = "RegistryTag::ResourceTypes"
    )]
    async fn vocabulary(&self) -> Result<Json<Envelope<RegistryVocabulary>>, ApiError> {
        Ok(Json(Envelope::new(RegistryVocabulary::current())))
    }

    /// Lists registered resource types by key.
    #[oai(
        path = "/api/v1/resource-types",
        method = "get",
        operation_id = "listResourceTypes",
        tag = "RegistryTag::ResourceTypes"
    )]
    async fn list_resource_types(
        &self,
        /// Page size, 1-200 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<i64>>,
        /// The `pagination.cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> Result<Json<ListEnvelope<ResourceType>>, ApiError> {
        let page = PageRequest::parse(limit.0, cursor.0.as_deref())?;
        let (items, pagination) = self.registry.list_types(&page).await?;
        Ok(Json(ListEnvelope::new(items, pagination)))
    }

    /// Registers a resource type, or changes the one with the same key (upsert). Answers 201
    /// when the type is new and 200 when it existed. Audited as `resource_types.upsert`.
    #[oai(
        path = "/api/v1/resource-types",
        method = "post",
        operation_id = "upsertResourceType",
        tag = "RegistryTag::ResourceTypes"
    )]
    async fn upsert_resource_type(
        &self,
        req: &Request,
        body: JsonBody<ResourceTypeMutationRequest>,
    ) -> Result<ResourceTypeUpserted, ApiError> {
        let (created, t) = self.registry.upsert_type(Caller::of(req), body.0).await?;
        let body = Json(Envelope::new(t));
        Ok(if created {
            ResourceTypeUpserted::Created(body)
        } else {
            ResourceTypeUpserted::Updated(body)
        })
    }

    /// One resource type, by key or ID.
    #[oai(
        path = "/api/v1/resource-types/:resource_type",
        method = "get",
        operation_id = "getResourceType",
        tag = "RegistryTag::ResourceTypes"
    )]
    async fn get_resource_type(
        &self,
        /// The type's key (or ID).
        resource_type: Path<String>,
    ) -> Result<Json<Envelope<ResourceType>>, ApiError> {
        let t = self.registry.get_type(&resource_type.0).await?;
        Ok(Json(Envelope::new(t)))
    }

    /// Lists a resource type's actions by key.
    #[oai(
        path = "/api/v1/resource-types/:resource_type/actions",
        method = "get",
        operation_id = "listResourceActions",
        tag = "RegistryTag::ResourceTypes"
    )]
    async fn list_resource_actions(
        &self,
        /// The type's key (or ID).
        resource_type: Path<String>,
        /// Page size, 1-200 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<i64>>,
        /// The `pagination.cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> Result<Json<ListEnvelope<ResourceAction>>, ApiError> {
        let page = PageRequest::parse(limit.0, cursor.0.as_deref())?;
        let (items, pagination) = self.registry.list_actions(&resource_type.0, &page).await?;
        Ok(Json(ListEnvelope::new(items, pagination)))
    }

    /// Registers an action of a resource type, or changes the one with the same key (upsert).
    /// Answers 201 when the action is new and 200 when it existed. Audited as
    /// `resource_types.upsert`.
    #[oai(
        path = "/api/v1/resource-types/:resource_type/actions",
        method = "post",
        operation_id = "upsertResourceAction",
        tag = "RegistryTag::ResourceTypes"
    )]
    async fn upsert_resource_action(
        &self,
        req: &Request,
        /// The type's key (or ID).
        resource_type: Path<String>,
        body: JsonBody<ResourceActionMutationRequest>,
    ) -> Result<ResourceActionUpserted, ApiError> {
        let (created, a) = self
            .registry
            .upsert_action(Caller::of(req), &resource_type.0, body.0)
            .await?;
        let body = Json(Envelope::new(a));
        Ok(if created {
            ResourceActionUpserted::Created(body)
        } else {
            ResourceActionUpserted::Updated(body)
        })
    }

    /// A resource type's storage mapping.
    #[oai(
        path = "/api/v1/resource-types/:resource_type/mapping",
        method = "get",
        operation_id = "getResourceMapping",
        tag = "RegistryTag::ResourceTypes"
    )]
    async fn get_resource_mapping(
        &self,
        /// The type's key (or ID).
        resource_type: Path<String>,
    ) -> Result<Json<Envelope<ResourceMapping>>, ApiError> {
        let mapping = self.registry.get_mapping(&resource_type.0).await?;
        Ok(Json(Envelope::new(mapping)))
    }

    /// Sets a resource type's storage mapping (upsert; one mapping per type). Answers 201 when
    /// the mapping is new and 200 when it existed. Audited as `resource_types.upsert`.
    #[oai(
        path = "/api/v1/resource-types/:resource_type/mapping",
        method = "post",
        operation_id = "upsertResourceMapping",
        tag = "RegistryTag::ResourceTypes"
    )]
    async fn upsert_resource_mapping(
        &self,
        req: &Request,
        /// The type's key (or ID).
        resource_type: Path<String>,
        body: JsonBody<ResourceMappingMutationRequest>,
    ) -> Result<ResourceMappingUpserted, ApiError> {
        let (created, mapping) = self
            .registry
            .upsert_mapping(Caller::of(req), &resource_type.0, body.0)
            .await?;
        let body = Json(Envelope::new(mapping));
        Ok(if created {
            ResourceMappingUpserted::Created(body)
        } else {
            ResourceMappingUpserted::Updated(body)
        })
    }

    /// Lists resources by ID, optionally of one space and one type. An unknown space or type
    /// in the filter is a 404.
    #[oai(
        path = "/api/v1/resources",
        method = "get",
        operation_id = "listResources",
        tag = "RegistryTag::Resources"
    )]
    async fn list_resources(
        &self,
        /// Only resources of this space.
        space_id: Query<Option<String>>,
        /// Only resources of this type (key or ID).
        resource_type: Query<Option<String>>,
        /// Page size, 1-200 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<i64>>,
        /// The `pagination.cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> Result<Json<ListEnvelope<Resource>>, ApiError> {
        let page = PageRequest::parse(limit.0, cursor.0.as_deref())?;
        let filter = ResourceFilter {
            space_id: space_id.0,
            resource_type: resource_type.0,
        };
        let (items, pagination) = self.registry.list_resources(&filter, &page).await?;
        Ok(Json(ListEnvelope::new(items, pagination)))
    }

    /// Registers a resource in the space the body names. Its group and owner must be in that
    /// space. Audited as `resources.create`.
    #[oai(
        path = "/api/v1/resources",
        method = "post",
        operation_id = "createResource",
        tag = "RegistryTag::Resources"
    )]
    async fn create_resource(
        &self,
        req: &Request,
        body: JsonBody<ResourceCreateAnywhereRequest>,
    ) -> Result<ResourceCreated, ApiError> {
        let r = self
            .registry
            .create_resource(Caller::of(req), None, body.0.0)
            .await?;
        Ok(ResourceCreated::Created(Json(Envelope::new(r))))
    }

    /// One resource, by its type (key or ID) and its ID (or external ID).
    #[oai(
        path = "/api/v1/resources/:resource_type/:resource_id",
        method = "get",
        operation_id = "getResourceByTypeAndID",
        tag = "RegistryTag::Resources"
    )]
    async fn get_resource_by_type_and_id(
        &self,
        /// The type's key (or ID).
        resource_type: Path<String>,
        /// The resource's ID, or its external ID.
        resource_id: Path<String>,
    ) -> Result<Json<Envelope<Resource>>, ApiError> {
        let r = self
            .registry
            .get_resource_by_type(&resource_type.0, &resource_id.0)
            .await?;
        Ok(Json(Envelope::new(r)))
    }

    /// Lists a space's resources by ID, optionally of one type. An unknown space or type is a
    /// 404.
    #[oai(
        path = "/api/v1/spaces/:space_id/resources",
        method = "get",
        operation_id = "listSpaceResources",
        tag = "RegistryTag::Resources"
    )]
    async fn list_space_resources(
        &self,
        /// The space.
        space_id: Path<String>,
        /// Only resources of this type (key or ID).
        resource_type: Query<Option<String>>,
        /// Page size, 1-200 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<i64>>,
        /// The `pagination.cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> Result<Json<ListEnvelope<Resource>>, ApiError> {
        let page = PageRequest::parse(limit.0, cursor.0.as_deref())?;
        let filter = ResourceFilter {
            space_id: Some(space_id.0),
            resource_type: resource_type.0,
        };
        let (items, pagination) = self.registry.list_resources(&filter, &page).await?;
        Ok(Json(ListEnvelope::new(items, pagination)))
    }

    /// Registers a resource in the path's space. Its group and owner must be in that space.
    /// Audited as `resources.create`.
    #[oai(
        path = "/api/v1/spaces/:space_id/resources",
        method = "post",
        operation_id = "createSpaceResource",
        tag = "RegistryTag::Resources"
    )]
    async fn create_space_resource(
        &self,
        req: &Request,
        /// The space.
        space_id: Path<String>,
        body: JsonBody<ResourceCreateRequest>,
    ) -> Result<ResourceCreated, ApiError> {
        let r = self
            .registry
            .create_resource(Caller::of(req), Some(&space_id.0), body.0)
            .await?;
        Ok(ResourceCreated::Created(Json(Envelope::new(r))))
    }

    /// One resource of a space.
    #[oai(
        path = "/api/v1/spaces/:space_id/resources/:resource_id",
        method = "get",
        operation_id = "getSpaceResource",
        tag = "RegistryTag::Resources"
    )]
    async fn get_space_resource(
        &self,
        /// The space.
        space_id: Path<String>,
        /// The resource's ID.
        resource_id: Path<String>,
    ) -> Result<Json<Envelope<Resource>>, ApiError> {
        let r = self
            .registry
            .get_space_resource(&space_id.0, &resource_id.0)
            .await?;
        Ok(Json(Envelope::new(r)))
    }

    /// Changes a resource of a space. A new group or owner must be in the resource's space.
    /// Audited as `resources.update`.
    #[oai(
        path = "/api/v1/spaces/:space_id/resources/:resource_id",
        method = "patch",
        operation_id = "updateSpaceResource",
        tag = "RegistryTag::Resources"
    )]
    async fn update_space_resource(
        &self,
        req: &Request,
        /// The space.
        space_id: Path<String>,
        /// The resource's ID.
        resource_id: Path<String>,
        body: JsonBody<ResourceUpdateRequest>,
    ) -> Result<Json<Envelope<Resource>>, ApiError> {
        let r = self
            .registry
            .update_resource(Caller::of(req), &space_id.0, &resource_id.0, body.0)
            .await?;
        Ok(Json(Envelope::new(r)))
    }

    /// Archives a resource of a space; it stays resolvable for audit and authorization.
    /// Archiving an archived resource is a 409. Audited as `resources.archive`.
    #[oai(
        path = "/api/v1/spaces/:space_id/resources/:resource_id/archive",
        method = "post",
        operation_id = "archiveSpaceResource",
        tag = "RegistryTag::Resources"
    )]
    async fn archive_space_resource(
        &self,
        req: &Request,
        /// The space.
        space_id: Path<String>,
        /// The resource's ID.
        resource_id: Path<String>,
        body: JsonBody<ResourceArchiveRequest>,
    ) -> Result<Json<Envelope<Resource>>, ApiError> {
        let r = self
            .registry
            .archive_resource(Caller::of(req), &space_id.0, &resource_id.0, body.0)
            .await?;
        Ok(Json(Envelope::new(r)))
    }
}
