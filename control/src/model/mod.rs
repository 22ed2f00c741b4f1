//! Request/response types that carry real rules (validation, defaults, merging).

pub mod agent;
pub mod audience;
pub mod instance;
pub mod json_schema;
pub mod provider;
pub mod task;
pub mod tool;
