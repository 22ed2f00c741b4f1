//! Agent instances: one deployment of an agent on a channel (a phone number on Twilio or a SIP
//! trunk, a browser widget, a direct WebSocket), with the `{{variables}}` its prompt is filled
//! with and optionally a pinned version of the agent.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::validate::Checker;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Twilio,
    Sip,
    Webrtc,
    Websocket,
}

/// What a client sets on an instance. `PUT` replaces it whole.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InstanceSpec {
    /// 1–100 characters.
    pub name: String,
    pub channel: Channel,
    /// E.164 number the instance answers on; required for `twilio` and `sip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    /// Values for the agent's `{{variables}}` (≤ 50; names as in templates, values ≤ 2000
    /// characters).
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    /// Run this version of the agent instead of its published (or latest) one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub agent_version: Option<i64>,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Free-form JSON object kept with the instance (≤ 8 KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
}

fn yes() -> bool {
    true
}

/// A `{{variable}}` name as templates accept it.
pub fn valid_variable_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

/// Checks a variables map, reporting under `field.<name>`.
pub fn check_variables(c: &mut Checker, field: &str, vars: &BTreeMap<String, String>) {
    if vars.len() > 50 {
        c.fail(field, "at most 50 variables");
    }
    for (k, v) in vars {
        let f = format!("{field}.{k}");
        if !valid_variable_name(k) {
            c.fail(
                &f,
                "variable names are letters, digits, `_` and `.`, not starting with a digit",
            );
        }
        c.text(&f, v, 0, 2000);
    }
}

impl InstanceSpec {
    /// Checks the instance against the agent's current version.
    pub fn validate(&self, agent_version: i64) -> Result<(), ApiError> {
        let mut c = Checker::default();
        c.text("name", &self.name, 1, 100);
        match (&self.phone_number, self.channel) {
            (Some(p), _) => c.e164("phoneNumber", p),
            (None, Channel::Twilio | Channel::Sip) => {
                c.fail("phoneNumber", "is required for the twilio and sip channels")
            }
            _ => {}
        }
        check_variables(&mut c, "variables", &self.variables);
        if let Some(v) = self.agent_version {
            if v < 1 || v > agent_version {
                c.fail(
                    "agentVersion",
                    format!("must be an existing version of the agent, 1–{agent_version}"),
                );
            }
        }
        if let Some(m) = &self.metadata {
            if !m.is_object() {
                c.fail("metadata", "must be a JSON object");
            } else if m.to_string().len() > 8192 {
                c.fail("metadata", "must be at most 8 KiB");
            }
        }
        c.finish()
    }
}
