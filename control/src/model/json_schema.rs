//! A JSON Schema subset for tool parameters: the keywords LLM function-calling schemas use
//! (type, properties, required, additionalProperties, items, enum, const, numeric and length
//! bounds, pattern, anyOf/oneOf/allOf), checked in two steps — [`check_schema`] when a tool is
//! stored (so a broken schema is a 400 at creation, not at call time) and [`validate`] when
//! arguments are offered to it. Unsupported keywords (`$ref`, `if`, …) are rejected up front
//! rather than silently ignored.

use serde_json::{Map, Value};

use crate::error::FieldError;

/// Deepest nesting of schemas accepted.
pub const MAX_DEPTH: usize = 32;
/// Largest schema accepted, serialized.
pub const MAX_SCHEMA_BYTES: usize = 64 * 1024;

const TYPES: &[&str] = &[
    "object", "array", "string", "number", "integer", "boolean", "null",
];

/// Keywords that only annotate and never constrain.
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "default",
    "examples",
    "format",
    "$schema",
    "$comment",
    "$id",
    "deprecated",
    "readOnly",
    "writeOnly",
    "strict",
];

const KEYWORDS: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "const",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
    "anyOf",
    "oneOf",
    "allOf",
    "not",
];

fn fail(errs: &mut Vec<FieldError>, field: &str, message: impl Into<String>) {
    errs.push(FieldError {
        field: field.to_string(),
        message: message.into(),
    });
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Reports `message` at `field` unless `ok`.
fn require(errs: &mut Vec<FieldError>, field: &str, ok: bool, message: &str) {
    if !ok {
        fail(errs, field, message);
    }
}

fn is_nonneg_int(v: &Value) -> bool {
    v.as_u64().is_some()
}

/// Checks that `schema` is a well-formed schema of the supported subset, reporting problems
/// under `path` (e.g. `parameters.properties.date.type`).
pub fn check_schema(schema: &Value, path: &str, errs: &mut Vec<FieldError>) {
    check_at(schema, path, 0, errs)
}

fn check_at(schema: &Value, path: &str, depth: usize, errs: &mut Vec<FieldError>) {
    if depth > MAX_DEPTH {
        fail(errs, path, format!("nests deeper than {MAX_DEPTH} levels"));
        return;
    }
    let obj = match schema {
        Value::Bool(_) => return,
        Value::Object(o) => o,
        _ => {
            fail(errs, path, "must be a JSON Schema object");
            return;
        }
    };
    for (k, v) in obj {
        let here = join(path, k);
        if ANNOTATIONS.contains(&k.as_str()) {
            continue;
        }
        if !KEYWORDS.contains(&k.as_str()) {
            fail(
                errs,
                &here,
                format!(
                    "unsupported JSON Schema keyword `{k}`; supported: {}",
                    KEYWORDS.join(", ")
                ),
            );
            continue;
        }
        match k.as_str() {
            "type" => {
                let names: Vec<&Value> = match v {
                    Value::Array(a) if !a.is_empty() => a.iter().collect(),
                    Value::String(_) => vec![v],
                    _ => {
                        fail(
                            errs,
                            &here,
                            "must be a type name or a non-empty list of them",
                        );
                        continue;
                    }
                };
                for n in names {
                    if !n.as_str().is_some_and(|s| TYPES.contains(&s)) {
                        fail(errs, &here, format!("types are {}", TYPES.join(", ")));
                        break;
                    }
                }
            }
            "properties" => match v.as_object() {
                Some(props) => {
                    for (name, sub) in props {
                        check_at(sub, &join(&here, name), depth + 1, errs);
                    }
                }
                None => fail(errs, &here, "must be an object of schemas"),
            },
            "required" => require(
                errs,
                &here,
                v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
                "must be a list of property names",
            ),
            "additionalProperties" | "items" | "not" => check_at(v, &here, depth + 1, errs),
            "anyOf" | "oneOf" | "allOf" => match v.as_array() {
                Some(a) if !a.is_empty() => {
                    for (i, sub) in a.iter().enumerate() {
                        check_at(sub, &format!("{here}[{i}]"), depth + 1, errs);
                    }
                }
                _ => fail(errs, &here, "must be a non-empty list of schemas"),
            },
            "enum" => require(
                errs,
                &here,
                v.as_array().is_some_and(|a| !a.is_empty()),
                "must be a non-empty list",
            ),
            "const" => {}
            "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum" => {
                require(errs, &here, v.is_number(), "must be a number")
            }
            "multipleOf" => require(
                errs,
                &here,
                v.as_f64().is_some_and(|x| x > 0.0),
                "must be a number greater than 0",
            ),
            "minLength" | "maxLength" | "minItems" | "maxItems" | "minProperties"
            | "maxProperties" => require(
                errs,
                &here,
                is_nonneg_int(v),
                "must be a non-negative integer",
            ),
            "uniqueItems" => require(errs, &here, v.is_boolean(), "must be true or false"),
            "pattern" => match v.as_str() {
                Some(p) => {
                    if let Err(e) = compile(p) {
                        fail(
                            errs,
                            &here,
                            format!("is not a valid regular expression: {e}"),
                        );
                    }
                }
                None => fail(errs, &here, "must be a regular expression string"),
            },
            _ => {}
        }
    }
}

fn compile(pattern: &str) -> Result<regex::Regex, String> {
    if pattern.len() > 1000 {
        return Err("longer than 1000 characters".into());
    }
    regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .dfa_size_limit(1 << 20)
        .build()
        .map_err(|e| {
            e.to_string()
                .lines()
                .last()
                .unwrap_or("invalid")
                .trim()
                .to_string()
        })
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn has_type(v: &Value, t: &str) -> bool {
    match (t, v) {
        ("integer", Value::Number(n)) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        ("number", Value::Number(_)) => true,
        ("string", Value::String(_)) => true,
        ("boolean", Value::Bool(_)) => true,
        ("null", Value::Null) => true,
        ("array", Value::Array(_)) => true,
        ("object", Value::Object(_)) => true,
        _ => false,
    }
}

/// Validates `value` against a schema that passed [`check_schema`], reporting each problem
/// with the path of the offending value under `path` (e.g. `arguments.date`).
pub fn validate(schema: &Value, value: &Value, path: &str, errs: &mut Vec<FieldError>) {
    validate_at(schema, value, path, 0, errs)
}

fn validate_at(
    schema: &Value,
    value: &Value,
    path: &str,
    depth: usize,
    errs: &mut Vec<FieldError>,
) {
    let obj: &Map<String, Value> = match schema {
        Value::Bool(true) => return,
        Value::Bool(false) => {
            fail(errs, path, "is not allowed here");
            return;
        }
        Value::Object(o) => o,
        _ => return,
    };
    if depth > MAX_DEPTH {
        return;
    }
    if let Some(t) = obj.get("type") {
        let ok = match t {
            Value::String(s) => has_type(value, s),
            Value::Array(a) => a
                .iter()
                .filter_map(Value::as_str)
                .any(|s| has_type(value, s)),
            _ => true,
        };
        if !ok {
            let wanted = match t {
                Value::String(s) => s.clone(),
                _ => t
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(" or ")
                    })
                    .unwrap_or_default(),
            };
            fail(
                errs,
                path,
                format!("must be of type {wanted} (got {})", type_name(value)),
            );
            // Further keywords would only repeat the same mismatch.
            return;
        }
    }
    if let Some(Value::Array(options)) = obj.get("enum") {
        if !options.iter().any(|o| json_eq(o, value)) {
            let shown: Vec<String> = options.iter().take(10).map(|o| o.to_string()).collect();
            fail(errs, path, format!("must be one of {}", shown.join(", ")));
        }
    }
    if let Some(c) = obj.get("const") {
        if !json_eq(c, value) {
            fail(errs, path, format!("must be {c}"));
        }
    }
    match value {
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            let bound = |k: &str| obj.get(k).and_then(Value::as_f64);
            if let Some(m) = bound("minimum") {
                if x < m {
                    fail(errs, path, format!("must be at least {m}"));
                }
            }
            if let Some(m) = bound("maximum") {
                if x > m {
                    fail(errs, path, format!("must be at most {m}"));
                }
            }
            if let Some(m) = bound("exclusiveMinimum") {
                if x <= m {
                    fail(errs, path, format!("must be greater than {m}"));
                }
            }
            if let Some(m) = bound("exclusiveMaximum") {
                if x >= m {
                    fail(errs, path, format!("must be less than {m}"));
                }
            }
            if let Some(m) = bound("multipleOf") {
                let q = x / m;
                if m > 0.0 && (q - q.round()).abs() > 1e-9 {
                    fail(errs, path, format!("must be a multiple of {m}"));
                }
            }
        }
        Value::String(s) => {
            let n = s.chars().count() as u64;
            if let Some(m) = obj.get("minLength").and_then(Value::as_u64) {
                if n < m {
                    fail(errs, path, format!("must be at least {m} characters"));
                }
            }
            if let Some(m) = obj.get("maxLength").and_then(Value::as_u64) {
                if n > m {
                    fail(errs, path, format!("must be at most {m} characters"));
                }
            }
            if let Some(p) = obj.get("pattern").and_then(Value::as_str) {
                if let Ok(re) = compile(p) {
                    if !re.is_match(s) {
                        fail(errs, path, format!("must match the pattern {p}"));
                    }
                }
            }
        }
        Value::Array(items) => {
            let n = items.len() as u64;
            if let Some(m) = obj.get("minItems").and_then(Value::as_u64) {
                if n < m {
                    fail(errs, path, format!("must have at least {m} items"));
                }
            }
            if let Some(m) = obj.get("maxItems").and_then(Value::as_u64) {
                if n > m {
                    fail(errs, path, format!("must have at most {m} items"));
                }
            }
            if obj.get("uniqueItems") == Some(&Value::Bool(true)) {
                for i in 1..items.len() {
                    if items[..i].iter().any(|p| json_eq(p, &items[i])) {
                        fail(errs, &format!("{path}[{i}]"), "duplicates an earlier item");
                        break;
                    }
                }
            }
            if let Some(item_schema) = obj.get("items") {
                for (i, item) in items.iter().enumerate() {
                    validate_at(item_schema, item, &format!("{path}[{i}]"), depth + 1, errs);
                }
            }
        }
        Value::Object(map) => {
            let n = map.len() as u64;
            if let Some(m) = obj.get("minProperties").and_then(Value::as_u64) {
                if n < m {
                    fail(errs, path, format!("must have at least {m} properties"));
                }
            }
            if let Some(m) = obj.get("maxProperties").and_then(Value::as_u64) {
                if n > m {
                    fail(errs, path, format!("must have at most {m} properties"));
                }
            }
            if let Some(Value::Array(required)) = obj.get("required") {
                for r in required.iter().filter_map(Value::as_str) {
                    if !map.contains_key(r) {
                        fail(errs, &join(path, r), "is required");
                    }
                }
            }
            let props = obj.get("properties").and_then(Value::as_object);
            for (k, v) in map {
                let here = join(path, k);
                match props.and_then(|p| p.get(k)) {
                    Some(sub) => validate_at(sub, v, &here, depth + 1, errs),
                    None => match obj.get("additionalProperties") {
                        Some(Value::Bool(false)) => fail(errs, &here, "is not a known parameter"),
                        Some(sub @ Value::Object(_)) => validate_at(sub, v, &here, depth + 1, errs),
                        _ => {}
                    },
                }
            }
        }
        _ => {}
    }
    if let Some(Value::Array(all)) = obj.get("allOf") {
        for sub in all {
            validate_at(sub, value, path, depth + 1, errs);
        }
    }
    if let Some(Value::Array(any)) = obj.get("anyOf") {
        if !any.iter().any(|sub| matches(sub, value, path, depth)) {
            fail(
                errs,
                path,
                "does not match any of the allowed schemas (anyOf)",
            );
        }
    }
    if let Some(Value::Array(one)) = obj.get("oneOf") {
        let n = one
            .iter()
            .filter(|sub| matches(sub, value, path, depth))
            .count();
        if n != 1 {
            fail(
                errs,
                path,
                format!("must match exactly one of the schemas in oneOf (matches {n})"),
            );
        }
    }
    if let Some(not) = obj.get("not") {
        if matches(not, value, path, depth) {
            fail(errs, path, "matches a schema it must not match (not)");
        }
    }
}

fn matches(schema: &Value, value: &Value, path: &str, depth: usize) -> bool {
    let mut scratch = Vec::new();
    validate_at(schema, value, path, depth + 1, &mut scratch);
    scratch.is_empty()
}

/// Equality where `1` and `1.0` are the same number, as JSON Schema requires.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema_errors(s: Value) -> Vec<String> {
        let mut e = Vec::new();
        check_schema(&s, "parameters", &mut e);
        e.into_iter().map(|f| f.field).collect()
    }

    fn value_errors(s: Value, v: Value) -> Vec<(String, String)> {
        let mut e = Vec::new();
        validate(&s, &v, "arguments", &mut e);
        e.into_iter().map(|f| (f.field, f.message)).collect()
    }

    fn booking() -> Value {
        json!({
            "type": "object",
            "properties": {
                "date": {"type": "string", "pattern": "^\\d{4}-\\d{2}-\\d{2}$"},
                "guests": {"type": "integer", "minimum": 1, "maximum": 12},
                "seating": {"enum": ["inside", "terrace"]},
                "notes": {"type": ["string", "null"], "maxLength": 5},
                "extras": {"type": "array", "items": {"type": "string"}, "maxItems": 2, "uniqueItems": true}
            },
            "required": ["date", "guests"],
            "additionalProperties": false
        })
    }

    #[test]
    fn well_formed_schemas_pass_and_broken_ones_are_located() {
        assert!(schema_errors(booking()).is_empty());
        assert_eq!(
            schema_errors(json!({"type": "object", "properties": {"a": {"type": "strin"}}})),
            vec!["parameters.properties.a.type"]
        );
        assert_eq!(
            schema_errors(json!({"type": "object", "properties": {"a": {"$ref": "#/x"}}})),
            vec!["parameters.properties.a.$ref"]
        );
        assert_eq!(
            schema_errors(json!({"properties": {"a": {"pattern": "("}}, "required": "a"})),
            vec!["parameters.properties.a.pattern", "parameters.required"]
        );
        assert_eq!(schema_errors(json!([1])), vec!["parameters"]);
    }

    #[test]
    fn arguments_are_validated_with_paths() {
        let s = booking();
        assert!(value_errors(s.clone(), json!({"date": "2025-06-01", "guests": 2})).is_empty());
        assert!(value_errors(s.clone(), json!({"date": "2025-06-01", "guests": 2.0})).is_empty());
        let e = value_errors(
            s.clone(),
            json!({"date": "June 1", "guests": 20, "seating": "roof", "notes": "too long",
                   "extras": ["a", "a", "b"], "color": "red"}),
        );
        let mut fields: Vec<&str> = e.iter().map(|(f, _)| f.as_str()).collect();
        fields.sort();
        assert_eq!(
            fields,
            vec![
                "arguments.color",
                "arguments.date",
                "arguments.extras",
                "arguments.extras[1]",
                "arguments.guests",
                "arguments.notes",
                "arguments.seating"
            ]
        );
        let e = value_errors(s.clone(), json!({"guests": "two"}));
        assert_eq!(e[0].0, "arguments.date");
        assert_eq!(e[0].1, "is required");
        assert_eq!(e[1].0, "arguments.guests");
        assert!(e[1].1.contains("integer"), "{}", e[1].1);
        assert_eq!(value_errors(s, json!([])).len(), 1);
    }

    #[test]
    fn combinators() {
        let s = json!({"oneOf": [{"type": "integer"}, {"type": "number", "minimum": 10}]});
        assert!(value_errors(s.clone(), json!(3)).is_empty());
        assert!(value_errors(s.clone(), json!(2.5)).len() == 1);
        assert!(value_errors(s, json!(12)).len() == 1); // both match
        let s = json!({"anyOf": [{"const": "a"}, {"const": 1}], "not": {"const": 1.0}});
        assert!(value_errors(s.clone(), json!("a")).is_empty());
        assert_eq!(value_errors(s, json!(1)).len(), 1);
    }
}
