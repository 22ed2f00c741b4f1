//! The engine interface the control plane places and ends calls through.
//!
//! `control` never touches media; it hands an [`OutboundCall`] to a [`CallDispatcher`]. The
//! transports that can actually dial (Twilio, SIP) arrive in later work; until one is wired in,
//! [`NoTransport`] answers every request with a clear error instead of pretending.

use std::future::Future;
use std::pin::Pin;

/// Everything a transport needs to place one outbound call.
#[derive(Debug, Clone)]
pub struct OutboundCall {
    pub call_id: String,
    pub tenant_id: String,
    pub agent_id: String,
    pub task_id: Option<String>,
    pub to_number: String,
    /// The agent's configuration as of dispatch (the published version when there is one).
    pub agent_config: serde_json::Value,
    pub agent_version: i64,
    pub first_message: Option<String>,
    /// Values for the agent's `{{variables}}`.
    pub context: serde_json::Value,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum DispatchError {
    #[error("no transport can place outbound calls yet")]
    NoTransport,
    #[error("the call has no live media on this node")]
    NotActive,
    #[error("{0}")]
    Failed(String),
}

pub type DispatchFuture<'a> = Pin<Box<dyn Future<Output = Result<(), DispatchError>> + Send + 'a>>;

/// The engine side of call control.
pub trait CallDispatcher: Send + Sync + 'static {
    /// Starts dialing; returns once the transport accepted the call (not when it is answered).
    fn place_call(&self, call: OutboundCall) -> DispatchFuture<'_>;
    /// Hangs up a live call.
    fn end_call(&self, call_id: &str) -> DispatchFuture<'_>;
}

/// The dispatcher used until a transport is configured.
pub struct NoTransport;

impl CallDispatcher for NoTransport {
    fn place_call(&self, _call: OutboundCall) -> DispatchFuture<'_> {
        Box::pin(async { Err(DispatchError::NoTransport) })
    }
    fn end_call(&self, _call_id: &str) -> DispatchFuture<'_> {
        Box::pin(async { Err(DispatchError::NotActive) })
    }
}
