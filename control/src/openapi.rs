//! The OpenAPI document's frame: title, security scheme, tags. The paths and schemas come from
//! the `#[utoipa::path]` annotations on the handlers, collected by the router.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Parley control plane API",
        description = "Agents, tasks, calls, webhooks and keys of a Parley voice-agent runtime.\n\n\
Conventions: JSON bodies in camelCase; unknown fields are rejected; lists are cursor-paginated \
(`limit`, `cursor` → `{data, nextCursor, hasMore}`); errors are `{code, message, requestId, field?, details?}`; \
every response carries `X-Request-Id`; authenticated responses carry `X-RateLimit-Limit`, \
`X-RateLimit-Remaining` and `X-RateLimit-Reset`, and 429 when the per-key limit is exceeded. \
Authenticate with `Authorization: Bearer plabs_…`; keys have scopes read < write < admin \
(GET needs read, other methods write; `/v1/keys` and changes to `/v1/provider-keys` need admin)."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "service", description = "Health, readiness, API index and this document"),
        (name = "keys", description = "API keys of the tenant"),
        (name = "agents", description = "Voice agents, their versions and publishing"),
        (name = "tools", description = "HTTP webhook tools an agent can call"),
        (name = "instances", description = "Deployments of an agent on a channel"),
        (name = "audience-groups", description = "Contact lists for outbound tasks"),
        (name = "tasks", description = "Outbound call tasks"),
        (name = "calls", description = "Calls and their transcripts, recordings and live streams"),
        (name = "conversations", description = "The same sessions seen as conversations"),
        (name = "webhooks", description = "Signed event deliveries to your endpoints"),
        (name = "provider-keys", description = "Encrypted credentials for STT/TTS/LLM providers"),
        (name = "usage", description = "Minutes, calls and provider consumption")
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("plabs_…")
                    .build(),
            ),
        );
    }
}
