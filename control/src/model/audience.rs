//! Audience groups: named contact lists an outbound campaign dials, each contact with the
//! `{{variables}}` its call's prompt is filled with.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::instance::check_variables;
use crate::error::ApiError;
use crate::validate::Checker;

/// Contacts one group may hold.
pub const MAX_CONTACTS: usize = 5000;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Contact {
    /// E.164, unique within the group.
    pub phone_number: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Values for the agent's `{{variables}}` on this contact's call.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,
}

/// What a client sets on a group. `PUT` replaces it whole.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AudienceGroupSpec {
    /// 1–100 characters.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Up to 5000 contacts.
    #[serde(default)]
    pub contacts: Vec<Contact>,
    /// Free-form labels (≤ 20, each 1–50 characters).
    #[serde(default)]
    pub tags: Vec<String>,
}

impl AudienceGroupSpec {
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut c = Checker::default();
        c.text("name", &self.name, 1, 100);
        c.opt_text("description", self.description.as_deref(), 1000);
        c.string_list("tags", &self.tags, 20, 50);
        if self.contacts.len() > MAX_CONTACTS {
            c.fail("contacts", format!("at most {MAX_CONTACTS} contacts"));
            return c.finish();
        }
        let mut seen = HashSet::new();
        for (i, contact) in self.contacts.iter().enumerate() {
            let f = format!("contacts[{i}]");
            c.e164(&format!("{f}.phoneNumber"), &contact.phone_number);
            if !seen.insert(contact.phone_number.as_str()) {
                c.fail(
                    &format!("{f}.phoneNumber"),
                    "duplicates an earlier contact of this group",
                );
            }
            c.opt_text(&format!("{f}.name"), contact.name.as_deref(), 200);
            check_variables(&mut c, &format!("{f}.variables"), &contact.variables);
        }
        c.finish()
    }
}
