//! Domain events. Each event is offered to the tenant's webhook subscriptions; delivery happens
//! in the background so the request that caused it never waits on a receiver.

use crate::state::AppState;

/// The events a webhook can subscribe to.
pub const EVENTS: &[&str] = &[
    "call.started",
    "call.completed",
    "call.failed",
    "conversation.ended",
    "handoff.requested",
    "agent.created",
    "agent.updated",
    "tool.executed",
];

/// Queues `event` for every matching subscription of the tenant (and of `task_id`, when the
/// event concerns a task). Failures to queue are logged, never surfaced to the caller.
pub fn emit(
    state: &AppState,
    tenant_id: &str,
    event: &str,
    task_id: Option<&str>,
    data: serde_json::Value,
) {
    debug_assert!(EVENTS.contains(&event), "unknown event {event}");
    let db = state.db.clone();
    let wake = state.webhook_wake.clone();
    let tenant_id = tenant_id.to_string();
    let event = event.to_string();
    let task_id = task_id.map(str::to_string);
    tokio::spawn(async move {
        match crate::store::webhooks::enqueue(&db, &tenant_id, task_id.as_deref(), &event, &data)
            .await
        {
            Ok(0) => {}
            Ok(_) => wake.notify_one(),
            Err(e) => tracing::error!(error = %e, %event, "cannot queue webhook deliveries"),
        }
    });
}
