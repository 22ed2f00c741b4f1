//! The HTTP routes, one module per resource. Each handler carries its `#[utoipa::path]`, and
//! the routers here are the single list of what is served and documented.

pub mod agents;
pub mod audience_groups;
pub mod calls;
pub mod instances;
pub mod keys;
pub mod meta;
pub mod observability;
pub mod provider_keys;
pub mod sessions;
pub mod tasks;
pub mod tools;
pub mod usage;
pub mod webhooks;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// Routes that need no API key.
pub fn public() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(meta::health))
        .routes(routes!(meta::ready))
        .routes(routes!(meta::openapi_json))
        .routes(routes!(meta::metrics))
        .routes(routes!(calls::live_ws))
        .routes(routes!(sessions::twilio_webhook))
        .routes(routes!(sessions::twilio_stream))
        .routes(routes!(sessions::agent_session))
}

/// Everything under `/v1` (authenticated).
pub fn v1() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(meta::index))
        .routes(routes!(keys::create_key, keys::list_keys))
        .routes(routes!(keys::revoke_key))
        .routes(routes!(keys::rotate_key))
        .routes(routes!(agents::create_agent, agents::list_agents))
        .routes(routes!(agents::provision_agent))
        .routes(routes!(
            agents::get_agent,
            agents::replace_agent,
            agents::patch_agent,
            agents::delete_agent
        ))
        .routes(routes!(agents::activate_agent))
        .routes(routes!(agents::deactivate_agent))
        .routes(routes!(agents::duplicate_agent))
        .routes(routes!(agents::publish_agent))
        .routes(routes!(agents::list_versions))
        .routes(routes!(agents::get_version))
        .routes(routes!(tasks::create_task, tasks::list_tasks))
        .routes(routes!(
            tasks::get_task,
            tasks::patch_task,
            tasks::delete_task
        ))
        .routes(routes!(tasks::execute_task))
        .routes(routes!(tasks::reset_task))
        .routes(routes!(tasks::create_agent_task, tasks::list_agent_tasks))
        .routes(routes!(tasks::get_agent_task))
        .routes(routes!(calls::list_calls))
        .routes(routes!(calls::get_call))
        .routes(routes!(calls::get_transcript))
        .routes(routes!(calls::get_recording))
        .routes(routes!(calls::end_call))
        .routes(routes!(calls::cancel_call))
        .routes(routes!(calls::live_info))
        .routes(routes!(calls::list_conversations))
        .routes(routes!(calls::get_conversation))
        .routes(routes!(webhooks::create_webhook, webhooks::list_webhooks))
        .routes(routes!(
            webhooks::get_webhook,
            webhooks::update_webhook,
            webhooks::delete_webhook
        ))
        .routes(routes!(webhooks::list_deliveries))
        .routes(routes!(usage::get_usage))
        .routes(routes!(tools::create_tool, tools::list_tools))
        .routes(routes!(
            tools::get_tool,
            tools::update_tool,
            tools::delete_tool
        ))
        .routes(routes!(tools::test_tool))
        .routes(routes!(
            instances::create_instance,
            instances::list_instances
        ))
        .routes(routes!(
            instances::get_instance,
            instances::update_instance,
            instances::delete_instance
        ))
        .routes(routes!(
            audience_groups::create_group,
            audience_groups::list_groups
        ))
        .routes(routes!(
            audience_groups::get_group,
            audience_groups::update_group,
            audience_groups::delete_group
        ))
        .routes(routes!(provider_keys::store_key, provider_keys::list_keys))
        .routes(routes!(provider_keys::delete_key))
        .routes(routes!(provider_keys::verify_key))
        .routes(routes!(observability::list_sessions))
        .routes(routes!(observability::interruption_quality))
        .routes(routes!(observability::get_session))
        .routes(routes!(observability::session_root_cause))
        .routes(routes!(observability::session_timeline))
        .routes(routes!(observability::get_call_detail))
        .routes(routes!(observability::call_root_cause))
        .routes(routes!(observability::get_recording))
}
