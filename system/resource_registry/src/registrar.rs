//! The registry as business plugins use it (`ResourceRegistrar`): declare a type and its actions
//! at start, register resources as they are created, read their metadata back. Each write goes
//! through the same audited path as the HTTP routes.

use async_trait::async_trait;
use plystra_contracts::ApiError;
use plystra_contracts::not_blank::NotBlank;
use plystra_contracts::services::{Caller, NewResource, RegisteredResource, ResourceRegistrar};
use poem_openapi::types::MaybeUndefined;

use crate::actions::ResourceActionMutationRequest;
use crate::model::RiskLevel;
use crate::resource_types::ResourceTypeMutationRequest;
use crate::resources::ResourceCreateRequest;
use crate::store::Registry;

#[async_trait]
impl ResourceRegistrar for Registry {
    async fn declare_type(
        &self,
        key: &str,
        display_name: &str,
        actions: &[(&str, &str)],
    ) -> Result<(), ApiError> {
        self.upsert_type(
            Caller::internal(),
            ResourceTypeMutationRequest {
                id: None,
                key: key.to_owned(),
                display_name: Some(NotBlank::field("display_name", display_name)?),
                description: MaybeUndefined::Undefined,
                status: None,
                source: Some(NotBlank::from_static("plugin")),
                metadata: None,
            },
        )
        .await?;
        for (action, risk) in actions {
            let risk_level = RiskLevel::parse(risk).ok_or_else(|| {
                ApiError::invalid_field("risk_level", format!("{risk} is not a risk level"))
            })?;
            self.upsert_action(
                Caller::internal(),
                key,
                ResourceActionMutationRequest {
                    id: None,
                    key: (*action).to_owned(),
                    display_name: None,
                    risk_level: Some(risk_level),
                    audit_default: None,
                    metadata: None,
                },
            )
            .await?;
        }
        Ok(())
    }

    async fn create_resource(&self, resource: NewResource) -> Result<String, ApiError> {
        // Checked like the pipeline checks an incoming one: it goes into the audit record.
        let request_id = plystra_contracts::input::text("request_id", &resource.request_id, 128)?;
        let created = Registry::create_resource(
            self,
            Caller {
                credential: resource.credential.as_ref(),
                request_id: &request_id,
            },
            Some(&resource.space_id),
            ResourceCreateRequest {
                id: resource.id,
                resource_type: resource.resource_type,
                space_id: Some(resource.space_id.clone()),
                external_id: None,
                display_name: None,
                group_id: resource.group_id,
                owner_member_id: resource.owner_member_id,
                visibility: None,
                status: None,
                metadata: resource.metadata.map(|m| m.into_iter().collect()),
            },
        )
        .await?;
        Ok(created.id)
    }

    async fn resource(
        &self,
        resource_type: &str,
        resource_id: &str,
    ) -> Result<Option<RegisteredResource>, ApiError> {
        match self.get_resource_by_type(resource_type, resource_id).await {
            Ok(r) => Ok(Some(RegisteredResource {
                id: r.id,
                space_id: r.space_id,
                group_id: r.group_id,
                owner_member_id: r.owner_member_id,
                metadata: r.metadata.unwrap_or_default().into_iter().collect(),
            })),
            Err(e) if e.status() == poem::http::StatusCode::NOT_FOUND => Ok(None),
            Err(e) => Err(e),
        }
    }
}
