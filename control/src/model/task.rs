//! Outbound call tasks: what to call, with which agent and context, and the status rules.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::timestamps;
use crate::validate::Checker;

/// Events a per-task webhook may subscribe to.
pub const TASK_EVENTS: &[&str] = &[
    "call.started",
    "call.completed",
    "call.failed",
    "conversation.ended",
    "handoff.requested",
];

/// The settable part of a task. `PATCH` merges into it (pending tasks only).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TaskSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The number to call, E.164 (`+14155550100`).
    pub to_number: String,
    /// Overrides the agent's first message for this call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_message: Option<String>,
    /// Values for the agent's `{{variables}}` (a JSON object, ≤ 16 KiB).
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub context_data: serde_json::Value,
    /// 0–100; higher runs first.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 100)]
    pub priority: i64,
    /// When the call should be placed (RFC 3339). Stored and returned; `execute` may be called
    /// at any time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_at: Option<String>,
    /// Receives this task's events, signed like every webhook; the secret is returned once,
    /// as `webhookSecret`, when the task is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// Events for `webhookUrl` (default: call.started, call.completed, call.failed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhook_events: Vec<String>,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

/// `POST /v1/tasks`: a [`TaskSpec`] plus the agent that makes the call.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateTask {
    pub agent_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub to_number: String,
    pub first_message: Option<String>,
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub context_data: serde_json::Value,
    #[serde(default)]
    pub priority: i64,
    pub scheduled_at: Option<String>,
    pub webhook_url: Option<String>,
    #[serde(default)]
    pub webhook_events: Vec<String>,
}

impl CreateTask {
    pub fn split(self) -> (String, TaskSpec) {
        (
            self.agent_id,
            TaskSpec {
                name: self.name,
                description: self.description,
                to_number: self.to_number,
                first_message: self.first_message,
                context_data: self.context_data,
                priority: self.priority,
                scheduled_at: self.scheduled_at,
                webhook_url: self.webhook_url,
                webhook_events: self.webhook_events,
            },
        )
    }
}

impl TaskSpec {
    pub fn validate(&mut self) -> Result<(), ApiError> {
        let mut c = Checker::default();
        c.opt_text("name", self.name.as_deref(), 200);
        c.opt_text("description", self.description.as_deref(), 1000);
        c.e164("toNumber", &self.to_number);
        c.opt_text("firstMessage", self.first_message.as_deref(), 1000);
        if !self.context_data.is_object() {
            c.fail("contextData", "must be a JSON object");
        } else if self.context_data.to_string().len() > 16 * 1024 {
            c.fail("contextData", "must be at most 16 KiB of JSON");
        }
        c.range_i64("priority", Some(self.priority), 0, 100);
        if let Some(at) = &self.scheduled_at {
            match timestamps::parse(at) {
                Some(ms) => self.scheduled_at = Some(timestamps::to_rfc3339(ms)),
                None => c.fail("scheduledAt", "must be an RFC 3339 timestamp"),
            }
        }
        if let Some(u) = &self.webhook_url {
            c.url("webhookUrl", u);
        }
        for (i, e) in self.webhook_events.iter().enumerate() {
            if !TASK_EVENTS.contains(&e.as_str()) {
                c.fail(
                    &format!("webhookEvents[{i}]"),
                    format!("must be one of {}", TASK_EVENTS.join(", ")),
                );
            }
        }
        if !self.webhook_events.is_empty() && self.webhook_url.is_none() {
            c.fail("webhookEvents", "needs webhookUrl");
        }
        c.finish()
    }
}
