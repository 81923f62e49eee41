//! JSON to and from values, for `portcullis cel --vars` and `json.decode`.

use std::sync::Arc;

use serde_json::Value as Json;

use crate::eval::EvalError;
use crate::value::{Key, List, Map, MapData, Str, Value};

/// A JSON document as a CEL value: numbers become `int` when integral and
/// in range, else `double`; objects become maps with string keys.
pub fn from_json(json: &Json) -> Value<'static> {
    match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => match n.as_u64() {
                Some(u) => Value::Uint(u),
                None => Value::Double(n.as_f64().unwrap_or(f64::NAN)),
            },
        },
        Json::String(s) => Value::String(Str::Shared(Arc::from(s.as_str()))),
        Json::Array(items) => Value::List(List::Values(items.iter().map(from_json).collect())),
        Json::Object(obj) => {
            let entries = obj
                .iter()
                .map(|(k, v)| {
                    (
                        Key::String(Str::Shared(Arc::from(k.as_str()))),
                        from_json(v),
                    )
                })
                .collect();
            Value::Map(Map::Values(Arc::new(
                MapData::from_entries(entries).unwrap_or_default(),
            )))
        }
    }
}

/// A value as JSON. Bytes become base64 strings, timestamps RFC 3339
/// strings, durations `"1.5s"` strings, uints numbers; map keys become strings.
pub fn to_json(value: &Value<'_>) -> Result<Json, EvalError> {
    use base64::Engine as _;
    Ok(match value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::Uint(u) => Json::from(*u),
        Value::Double(d) => serde_json::Number::from_f64(*d)
            .map(Json::Number)
            .unwrap_or_else(|| Json::String(crate::stdlib::format_double(*d))),
        Value::String(s) => Json::String(s.to_string()),
        Value::Bytes(b) => Json::String(base64::engine::general_purpose::STANDARD.encode(&**b)),
        Value::List(l) => Json::Array(l.iter().map(|v| to_json(&v)).collect::<Result<_, _>>()?),
        Value::Map(m) => {
            let mut obj = serde_json::Map::new();
            for (k, v) in m.entries() {
                let key = match &k {
                    Value::String(s) => s.to_string(),
                    other => other.display(),
                };
                obj.insert(key, to_json(&v)?);
            }
            Json::Object(obj)
        }
        Value::Timestamp(t) => Json::String(t.to_rfc3339()),
        Value::Duration(d) => Json::String(d.to_string()),
        Value::Type(k) => Json::String(k.name().to_string()),
    })
}
