//! Request/response types that carry real rules (validation, defaults, merging).

pub mod agent;
pub mod task;
