//! Records: the maps with string keys that request variables (cookies,
//! content-type parameters) and action results (`http_request.res`, a
//! verified token) are made of.

use std::sync::Arc;

use portcullis_cel::value::{Key, MapData};
use portcullis_cel::{Map, Str, Value};

/// A string map key.
pub(crate) fn key(s: impl Into<Arc<str>>) -> Key<'static> {
    Key::String(Str::Shared(s.into()))
}

/// A map of `entries`; of duplicate keys, the first stays.
pub(crate) fn map(entries: Vec<(Key<'static>, Value<'static>)>) -> Value<'static> {
    let mut kept: Vec<(Key<'static>, Value<'static>)> = Vec::with_capacity(entries.len());
    for (k, v) in entries {
        if !kept.iter().any(|(s, _)| *s == k) {
            kept.push((k, v));
        }
    }
    MapData::from_entries(kept)
        .map(|m| Value::Map(Map::Values(Arc::new(m))))
        .unwrap_or_else(|_| empty())
}

/// A record with named fields.
pub(crate) fn record(fields: Vec<(&str, Value<'static>)>) -> Value<'static> {
    map(fields.into_iter().map(|(k, v)| (key(k), v)).collect())
}

/// A map with nothing in it.
pub(crate) fn empty() -> Value<'static> {
    Value::Map(Map::Values(Arc::new(MapData::default())))
}
