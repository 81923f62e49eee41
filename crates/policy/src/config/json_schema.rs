//! The policy format as a JSON Schema (draft 2020-12), generated from the
//! tables lint checks configs against ([`super::actions::spec`]) and the
//! document's structure, so that editors validate and complete policy
//! files through the YAML language server with no second copy to keep in
//! step.
//!
//! The schema says what a JSON Schema can: shapes, required and unknown
//! fields, enums, ranges, lengths. What needs more than that (CEL, the
//! phases an action runs in, rules across fields and actions) stays lint's:
//! a file the schema accepts may still have lint errors, never the other
//! way round for what the schema covers.

use serde_json::{Map, Value, json};

use super::actions::spec;
use super::{Alias, Field, Format, Ty};
use crate::document::ACTION_TYPES;

/// Where the schema says it lives, for `$id`.
pub const SCHEMA_ID: &str = "urn:portcullis:schema:traffic-policy";

/// The schema of a policy document.
pub fn json_schema() -> Value {
    let mut actions = Vec::new();
    for kind in ACTION_TYPES.iter().chain(["oidc"].iter()) {
        actions.push(action(kind));
    }
    let rule = json!({
        "type": "object",
        "description": "A rule: when every expression holds (or there are none), its actions run in order.",
        "properties": {
            "name": {"type": "string", "description": "A name for the rule, shown in logs and traces."},
            "expressions": {
                "type": "array",
                "items": {"type": "string", "description": "A CEL condition."},
                "description": "CEL conditions, all of which must hold."
            },
            "actions": {
                "type": "array",
                "minItems": 1,
                "items": {"$ref": "#/$defs/action"}
            }
        },
        "required": ["actions"],
        "additionalProperties": false
    });
    let phase = |what: &str| {
        json!({
            "type": "array",
            "description": what,
            "items": {"$ref": "#/$defs/rule"}
        })
    };
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Traffic Policy",
        "description": "An ngrok Traffic Policy document, as Portcullis runs it.",
        "type": "object",
        "properties": {
            "on_tcp_connect": phase("Rules run once per connection."),
            "on_http_request": phase("Rules run per HTTP request, before the upstream sees it."),
            "on_http_response": phase("Rules run per HTTP response, after the upstream answers."),
            "on_event_stream_message": phase("Rules run per server-sent event of a response."),
            "inbound": {"$ref": "#/$defs/legacy_phase", "deprecated": true},
            "outbound": {"$ref": "#/$defs/legacy_phase", "deprecated": true}
        },
        "additionalProperties": false,
        "$defs": {
            "rule": rule,
            "legacy_phase": {
                "type": "array",
                "description": "The pre-2024 name of a phase.",
                "items": {"$ref": "#/$defs/rule"}
            },
            "action": {
                "type": "object",
                "required": ["type"],
                "properties": {
                    "type": {"enum": ACTION_TYPES.iter().chain(["oidc"].iter()).collect::<Vec<_>>()},
                    "config": {}
                },
                "additionalProperties": false,
                "allOf": actions
            }
        }
    })
}

/// `if type is kind then its config is ...`.
fn action(kind: &str) -> Value {
    let lookup = if kind == "oidc" {
        "openid-connect"
    } else {
        kind
    };
    let config = match spec(lookup).and_then(|s| s.fields) {
        Some(fields) => object(fields),
        // An action without config takes none (ngrok: `config` may be
        // absent, or an empty map).
        None if spec(lookup).is_some() => json!({"type": ["object", "null"], "maxProperties": 0}),
        // Documented by ngrok, not built here: any config.
        None => json!({}),
    };
    let mut then = Map::new();
    then.insert("properties".into(), json!({ "config": config }));
    if spec(lookup)
        .and_then(|s| s.fields)
        .is_some_and(|f| f.iter().any(|f| f.required))
    {
        then.insert("required".into(), json!(["config"]));
    }
    json!({
        "if": {"properties": {"type": {"const": kind}}, "required": ["type"]},
        "then": Value::Object(then)
    })
}

/// A config or nested object: its fields, the required ones, no others.
fn object(fields: &[Field]) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for f in fields {
        let schema = match f.alias {
            // ngrok rejects a removed field: the schema does too.
            Alias::Removed(_) => Value::Bool(false),
            Alias::Deprecated(now) => {
                let mut s = ty(&f.ty);
                if let Value::Object(m) = &mut s {
                    m.insert("deprecated".into(), Value::Bool(true));
                    m.insert(
                        "description".into(),
                        json!(format!("Legacy name of `{now}`.")),
                    );
                }
                s
            }
            Alias::None => ty(&f.ty),
        };
        properties.insert(f.name.into(), schema);
        if f.required {
            required.push(f.name);
        }
    }
    let mut m = Map::new();
    m.insert("type".into(), json!("object"));
    m.insert("properties".into(), Value::Object(properties));
    if !required.is_empty() {
        m.insert("required".into(), json!(required));
    }
    m.insert("additionalProperties".into(), Value::Bool(false));
    Value::Object(m)
}

/// The schema of a value of type `t`, as lint's tables say it.
fn ty(t: &Ty) -> Value {
    match t {
        Ty::Str(s) => {
            let mut m = Map::new();
            m.insert("type".into(), json!("string"));
            if s.nonempty {
                m.insert("minLength".into(), json!(1));
            }
            if s.max_len != usize::MAX {
                m.insert("maxLength".into(), json!(s.max_len));
            }
            if s.format == Format::Url && s.cel == super::Cel::No {
                m.insert("format".into(), json!("uri"));
            }
            if s.cel == super::Cel::Template {
                m.insert(
                    "description".into(),
                    json!("May interpolate CEL: `${...}`."),
                );
            }
            Value::Object(m)
        }
        Ty::Bool => json!({"type": "boolean"}),
        Ty::Int { min, max } => {
            let mut m = Map::new();
            m.insert("type".into(), json!("integer"));
            if *min != i64::MIN {
                m.insert("minimum".into(), json!(min));
            }
            if *max != i64::MAX {
                m.insert("maximum".into(), json!(max));
            }
            Value::Object(m)
        }
        Ty::Float { min, max } => {
            let mut m = Map::new();
            m.insert("type".into(), json!("number"));
            if min.is_finite() {
                m.insert("minimum".into(), json!(min));
            }
            if max.is_finite() {
                m.insert("maximum".into(), json!(max));
            }
            Value::Object(m)
        }
        // A Go duration: `90s`, `1h30m`, `500ms`.
        Ty::Duration(_) => json!({
            "type": "string",
            "pattern": r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"
        }),
        Ty::Enum { values, .. } => json!({"enum": values}),
        Ty::List {
            item,
            min,
            max,
            unique,
        } => {
            let mut m = Map::new();
            m.insert("type".into(), json!("array"));
            m.insert("items".into(), ty(item));
            if *min > 0 {
                m.insert("minItems".into(), json!(min));
            }
            if *max != usize::MAX {
                m.insert("maxItems".into(), json!(max));
            }
            if *unique == super::Unique::Exact {
                m.insert("uniqueItems".into(), json!(true));
            }
            Value::Object(m)
        }
        Ty::Map { value, min, max } => {
            let mut m = Map::new();
            m.insert("type".into(), json!("object"));
            m.insert("additionalProperties".into(), ty(value));
            if *min > 0 {
                m.insert("minProperties".into(), json!(min));
            }
            if *max != usize::MAX {
                m.insert("maxProperties".into(), json!(max));
            }
            Value::Object(m)
        }
        Ty::Obj(fields) => object(fields),
        Ty::Any => json!({}),
        // Checked by code: the shapes it takes, any of them.
        Ty::Custom(_, []) => json!({}),
        Ty::Custom(_, shapes) => {
            let mut any: Vec<Value> = shapes.iter().map(ty).collect();
            // The shapes say where CEL may be, not every shape the field
            // takes (a list of one-key maps, a number): a scalar of any
            // kind is left to lint.
            any.push(json!({"type": ["string", "number", "boolean"]}));
            json!({ "anyOf": any })
        }
    }
}

/// An action type as documentation, for the language server's hover and
/// completion.
pub struct ActionDoc {
    /// The phases it runs in.
    pub phases: Vec<&'static str>,
    /// Its config fields: name, type in words, whether required.
    pub fields: Vec<FieldDoc>,
}

/// A config field as documentation.
pub struct FieldDoc {
    /// Its name.
    pub name: &'static str,
    /// Its type, in a few words.
    pub ty: String,
    /// Whether the config must have it.
    pub required: bool,
}

/// The documentation of action type `kind`; `None` for an unknown type.
pub fn describe_action(kind: &str) -> Option<ActionDoc> {
    let lookup = if kind == "oidc" {
        "openid-connect"
    } else {
        kind
    };
    let s = spec(lookup)?;
    let phases = s.phases.iter().map(|p| p.key()).collect();
    let fields = s
        .fields
        .unwrap_or(&[])
        .iter()
        .filter(|f| !matches!(f.alias, Alias::Removed(_)))
        .map(|f| FieldDoc {
            name: f.name,
            ty: words(&f.ty),
            required: f.required,
        })
        .collect();
    Some(ActionDoc { phases, fields })
}

/// A type in a few words: `string (CEL ${...})`, `integer 1–100`, ...
fn words(t: &Ty) -> String {
    match t {
        Ty::Str(s) if s.cel == super::Cel::Template => "string (may interpolate `${...}`)".into(),
        Ty::Str(s) if s.cel == super::Cel::Bare => "CEL expression".into(),
        Ty::Str(s) => match s.format {
            Format::Regex => "regular expression (RE2)".into(),
            Format::Url | Format::BaseUrl => "URL".into(),
            Format::Cidr => "CIDR".into(),
            Format::Any => "string".into(),
        },
        Ty::Bool => "boolean".into(),
        Ty::Int { min, max } if *min != i64::MIN && *max != i64::MAX => {
            format!("integer {min}–{max}")
        }
        Ty::Int { .. } => "integer".into(),
        Ty::Float { .. } => "number".into(),
        Ty::Duration(_) => "duration (`90s`, `1h30m`)".into(),
        Ty::Enum { values, .. } => format!("one of {}", values.join(", ")),
        Ty::List { item, .. } => format!("list of {}", words(item)),
        Ty::Map { value, .. } => format!("map of {}", words(value)),
        Ty::Obj(fields) => format!(
            "object: {}",
            fields.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
        ),
        Ty::Any => "any value".into(),
        Ty::Custom(..) => "see the action's documentation".into(),
    }
}
