//! Agent tools: HTTP webhooks the agent's LLM may call, described by a name, a description and
//! a JSON Schema of their parameters (the shape of OpenAI-style function calling).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::json_schema;
use crate::error::ApiError;
use crate::validate::Checker;

/// Tools one agent may have.
pub const MAX_TOOLS_PER_AGENT: i64 = 64;

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ToolType {
    /// An HTTP endpoint called with the arguments as JSON.
    #[default]
    Webhook,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum ToolMethod {
    Get,
    #[default]
    Post,
    Put,
    Patch,
    Delete,
}

impl ToolMethod {
    pub fn as_reqwest(self) -> reqwest::Method {
        match self {
            ToolMethod::Get => reqwest::Method::GET,
            ToolMethod::Post => reqwest::Method::POST,
            ToolMethod::Put => reqwest::Method::PUT,
            ToolMethod::Patch => reqwest::Method::PATCH,
            ToolMethod::Delete => reqwest::Method::DELETE,
        }
    }
    /// Whether the arguments travel as a JSON body (else as query parameters).
    pub fn has_body(self) -> bool {
        matches!(self, ToolMethod::Post | ToolMethod::Put | ToolMethod::Patch)
    }
}

/// What a client sets on a tool. `PUT` replaces it whole.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ToolSpec {
    /// The function name the LLM calls: letters, digits, `_` and `-`, 1–64 characters,
    /// unique within the agent.
    pub name: String,
    /// What the tool does and when to use it (1–1000 characters); the LLM reads it.
    pub description: String,
    #[serde(default, rename = "type")]
    pub tool_type: ToolType,
    /// The endpoint called (http or https).
    pub url: String,
    /// HTTP method (default POST). GET and DELETE send the arguments as query parameters,
    /// the others as the JSON body `{toolCallId, tool, agentId, arguments, test}`.
    #[serde(default)]
    pub method: ToolMethod,
    /// Extra request headers (≤ 20), e.g. an `Authorization` for the endpoint.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// JSON Schema of the arguments; the root must be an object schema. Supported keywords:
    /// type, properties, required, additionalProperties, items, enum, const, minimum, maximum,
    /// exclusiveMinimum, exclusiveMaximum, multipleOf, minLength, maxLength, pattern, minItems,
    /// maxItems, uniqueItems, minProperties, maxProperties, anyOf, oneOf, allOf, not.
    #[serde(default = "empty_object_schema")]
    #[schema(value_type = Object)]
    pub parameters: serde_json::Value,
    /// Request timeout, 100–30000 ms (default 5000).
    #[serde(default = "default_timeout_ms")]
    #[schema(minimum = 100, maximum = 30000, default = 5000)]
    pub timeout_ms: i64,
    /// Disabled tools are kept but not offered to the LLM.
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn empty_object_schema() -> serde_json::Value {
    serde_json::json!({"type": "object", "properties": {}})
}
fn default_timeout_ms() -> i64 {
    5000
}
fn yes() -> bool {
    true
}

/// Headers a tool may not set: the HTTP client owns framing and routing.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-connection",
];

pub fn valid_tool_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl ToolSpec {
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut c = Checker::default();
        if !valid_tool_name(&self.name) {
            c.fail(
                "name",
                "must be 1–64 letters, digits, `_` or `-`, starting with a letter or `_`",
            );
        }
        c.text("description", &self.description, 1, 1000);
        c.url("url", &self.url);
        if self.headers.len() > 20 {
            c.fail("headers", "at most 20 headers");
        }
        for (name, value) in &self.headers {
            let field = format!("headers.{name}");
            match axum::http::HeaderName::from_bytes(name.as_bytes()) {
                Ok(h) if RESERVED_HEADERS.contains(&h.as_str()) => {
                    c.fail(&field, "is set by Parley and cannot be overridden")
                }
                Ok(_) => {}
                Err(_) => c.fail(&field, "is not a valid HTTP header name"),
            }
            if value.len() > 4096 || axum::http::HeaderValue::from_str(value).is_err() {
                c.fail(
                    &field,
                    "must be a printable header value of at most 4096 bytes",
                );
            }
        }
        c.range_i64("timeoutMs", Some(self.timeout_ms), 100, 30_000);
        let mut schema_errors = Vec::new();
        if serde_json::to_vec(&self.parameters).map_or(0, |v| v.len())
            > json_schema::MAX_SCHEMA_BYTES
        {
            c.fail(
                "parameters",
                format!("must be at most {} bytes", json_schema::MAX_SCHEMA_BYTES),
            );
        } else if self.parameters.get("type").and_then(|t| t.as_str()) != Some("object") {
            c.fail(
                "parameters.type",
                "the parameters schema must be `\"type\": \"object\"`",
            );
        } else {
            json_schema::check_schema(&self.parameters, "parameters", &mut schema_errors);
        }
        for e in schema_errors {
            c.fail(&e.field, e.message);
        }
        c.finish()
    }

    /// Checks `arguments` against the parameters schema.
    pub fn check_arguments(&self, arguments: &serde_json::Value) -> Result<(), ApiError> {
        let mut errors = Vec::new();
        json_schema::validate(&self.parameters, arguments, "arguments", &mut errors);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::fields(errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_and_validation() {
        let t: ToolSpec = serde_json::from_value(json!({
            "name": "book_table", "description": "Books a table", "url": "https://example.com/book"
        }))
        .unwrap();
        assert_eq!(t.method, ToolMethod::Post);
        assert_eq!(t.timeout_ms, 5000);
        t.validate().unwrap();
        t.check_arguments(&json!({"anything": 1})).unwrap();

        let bad: ToolSpec = serde_json::from_value(json!({
            "name": "1bad name", "description": "", "url": "ftp://x",
            "headers": {"Host": "evil", "X-Ok": "fine", "bad header": "v"},
            "parameters": {"type": "object", "properties": {"a": {"type": "nope"}}},
            "timeoutMs": 50
        }))
        .unwrap();
        let e = bad.validate().unwrap_err();
        let fields: Vec<_> = e.details.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "name",
                "description",
                "url",
                "headers.Host",
                "headers.bad header",
                "timeoutMs",
                "parameters.properties.a.type"
            ]
        );
    }
}
