//! Field-level validation: a [`Checker`] collects every problem in a body so the client learns
//! all of them at once, each with its JSON path.

use crate::error::{ApiError, FieldError};

#[derive(Default)]
pub struct Checker {
    errors: Vec<FieldError>,
}

impl Checker {
    pub fn fail(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.to_string(),
            message: message.into(),
        });
    }

    /// A string of `min..=max` characters that is not only whitespace (when `min > 0`).
    pub fn text(&mut self, field: &str, value: &str, min: usize, max: usize) {
        let n = value.chars().count();
        if min > 0 && value.trim().is_empty() {
            self.fail(field, "must not be empty");
        } else if n < min || n > max {
            self.fail(field, format!("must be {min}–{max} characters (got {n})"));
        }
    }

    pub fn opt_text(&mut self, field: &str, value: Option<&str>, max: usize) {
        if let Some(v) = value {
            self.text(field, v, 0, max);
        }
    }

    pub fn range_f64(&mut self, field: &str, value: Option<f64>, lo: f64, hi: f64) {
        if let Some(v) = value {
            if !(lo..=hi).contains(&v) {
                self.fail(field, format!("must be between {lo} and {hi} (got {v})"));
            }
        }
    }

    pub fn range_i64(&mut self, field: &str, value: Option<i64>, lo: i64, hi: i64) {
        if let Some(v) = value {
            if !(lo..=hi).contains(&v) {
                self.fail(field, format!("must be between {lo} and {hi} (got {v})"));
            }
        }
    }

    /// A list of at most `max_items` strings of 1..=`max_len` characters.
    pub fn string_list(&mut self, field: &str, items: &[String], max_items: usize, max_len: usize) {
        if items.len() > max_items {
            self.fail(field, format!("at most {max_items} items"));
        }
        for (i, s) in items.iter().enumerate() {
            self.text(&format!("{field}[{i}]"), s, 1, max_len);
        }
    }

    /// A phone number in E.164: `+`, then 8–15 digits, the first not 0.
    pub fn e164(&mut self, field: &str, value: &str) {
        if !is_e164(value) {
            self.fail(field, "must be an E.164 phone number such as +14155550100");
        }
    }

    /// An absolute http(s) URL.
    pub fn url(&mut self, field: &str, value: &str) {
        match reqwest::Url::parse(value) {
            Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host().is_some() => {
                if value.len() > 2048 {
                    self.fail(field, "must be at most 2048 characters");
                }
            }
            _ => self.fail(field, "must be an absolute http:// or https:// URL"),
        }
    }

    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::fields(self.errors))
        }
    }
}

pub fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (8..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// The `{{variable}}` names a template uses, or what is wrong with its braces.
pub fn template_variables(template: &str) -> Result<Vec<String>, String> {
    let mut vars: Vec<String> = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| "has an unclosed `{{`".to_string())?;
        let name = after[..end].trim();
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
        if !valid {
            return Err(format!(
                "`{{{{{name}}}}}` is not a valid variable (letters, digits, `_` and `.`, not starting with a digit)"
            ));
        }
        if !vars.iter().any(|v| v == name) {
            vars.push(name.to_string());
        }
        rest = &after[end + 2..];
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_rules() {
        assert!(is_e164("+14155550100"));
        assert!(is_e164("+442071234567"));
        assert!(!is_e164("14155550100"));
        assert!(!is_e164("+0123456789"));
        assert!(!is_e164("+1415555"));
        assert!(!is_e164("+1234567890123456"));
        assert!(!is_e164("+1415abc0100"));
    }

    #[test]
    fn template_variables_found_and_checked() {
        assert_eq!(
            template_variables("Hi {{ name }}, order {{order_id}} for {{name}}").unwrap(),
            vec!["name", "order_id"]
        );
        assert!(template_variables("broken {{name").is_err());
        assert!(template_variables("bad {{1x}}").is_err());
        assert!(template_variables("no vars").unwrap().is_empty());
    }
}
