//! Runtime values.
//!
//! A [`Value<'a>`] borrows from the program and the caller's data for `'a`:
//! strings read from a request are `&'a str`, constants are borrowed from the
//! compiled program, and only values built during evaluation (concatenations,
//! new lists) are reference-counted. Callers expose their data through
//! [`HostMap`], [`HostList`] and [`MultiMap`] without copying it into maps.
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

use crate::eval::EvalError;
use crate::time::{Duration, Timestamp};
use crate::types::Kind;

/// A CEL value.
#[derive(Clone, Debug)]
pub enum Value<'a> {
    /// `null`
    Null,
    /// `bool`
    Bool(bool),
    /// `int`
    Int(i64),
    /// `uint`
    Uint(u64),
    /// `double`
    Double(f64),
    /// `string`
    String(Str<'a>),
    /// `bytes`
    Bytes(Bin<'a>),
    /// `list`
    List(List<'a>),
    /// `map`
    Map(Map<'a>),
    /// `google.protobuf.Timestamp`
    Timestamp(Timestamp),
    /// `google.protobuf.Duration`
    Duration(Duration),
    /// A type value, such as `int` or `type(x)`.
    Type(Kind),
}

/// A string: borrowed when it can be, shared when it was built.
#[derive(Clone)]
pub enum Str<'a> {
    /// Borrowed from the program or the caller.
    Borrowed(&'a str),
    /// Built during evaluation or owned by the caller's value store.
    Shared(Arc<str>),
}

/// Bytes: borrowed when they can be, shared when they were built.
#[derive(Clone)]
pub enum Bin<'a> {
    /// Borrowed from the program or the caller.
    Borrowed(&'a [u8]),
    /// Built during evaluation.
    Shared(Arc<[u8]>),
}

/// A list value.
#[derive(Clone)]
pub enum List<'a> {
    /// Elements held in memory.
    Values(Arc<[Value<'a>]>),
    /// Elements owned by the caller.
    Host(&'a dyn HostList),
    /// The values of one key of a caller's multi-map (a header's values).
    Multi(&'a dyn MultiMap, Str<'a>),
}

/// A map value.
#[derive(Clone)]
pub enum Map<'a> {
    /// Entries held in memory.
    Values(Arc<MapData<'a>>),
    /// Entries owned by the caller.
    Host(&'a dyn HostMap),
    /// A caller's `map(string, list(string))`, such as headers.
    Multi(&'a dyn MultiMap),
}

/// A list the caller owns, read element by element.
pub trait HostList: Send + Sync {
    /// Number of elements.
    fn len(&self) -> usize;
    /// Whether there are no elements.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The element at `index`.
    fn get(&self, index: usize) -> Option<Value<'_>>;
}

/// A map the caller owns, read key by key.
pub trait HostMap: Send + Sync {
    /// Number of entries.
    fn len(&self) -> usize;
    /// Whether there are no entries.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The value under `key`.
    fn get(&self, key: &Value<'_>) -> Option<Value<'_>>;
    /// The keys, for iteration and comparison.
    fn keys(&self) -> Vec<Value<'_>>;
}

/// A map from strings to lists of strings that the caller owns, such as
/// HTTP headers or query parameters. Lookups never copy.
pub trait MultiMap: Send + Sync {
    /// Number of distinct keys.
    fn key_count(&self) -> usize;
    /// The key at `index`, in a stable order.
    fn key_at(&self, index: usize) -> Option<&str>;
    /// Number of values under `key` (0 when absent).
    fn count(&self, key: &str) -> usize;
    /// Whether `key` has a value: `in`, `has()` and `m['k']` ask this.
    /// Implementations that scan should stop at the first match.
    fn contains(&self, key: &str) -> bool {
        self.count(key) > 0
    }
    /// The `index`th value under `key`.
    fn value(&self, key: &str, index: usize) -> Option<&str>;
    /// Calls `found` on the values under `key`, in order, until it returns
    /// `true`; `None` when `key` is absent, else whether `found` said `true`.
    /// One lookup of `key`, where `count` plus `value` take several;
    /// implementations over hash maps or header maps should override it.
    fn find_value(&self, key: &str, found: &mut dyn FnMut(&str) -> bool) -> Option<bool> {
        let n = self.count(key);
        if n == 0 {
            return None;
        }
        Some((0..n).any(|i| self.value(key, i).is_some_and(&mut *found)))
    }

    /// Calls `visit` on the distinct keys, in the order of [`key_at`], until
    /// it returns `true`; whether it did. `exists` and `all` over the map
    /// iterate with it: one pass, where `key_at` per index may rescan (a
    /// header map finds its `n`th key by walking). Implementations whose
    /// `key_at` is not constant-time should override it.
    ///
    /// [`key_at`]: MultiMap::key_at
    fn find_key<'s>(&'s self, visit: &mut dyn FnMut(&'s str) -> bool) -> bool {
        (0..self.key_count()).any(|i| self.key_at(i).is_some_and(&mut *visit))
    }
}

/// The entries of an in-memory map, in insertion order.
#[derive(Default)]
pub struct MapData<'a> {
    entries: Vec<(Key<'a>, Value<'a>)>,
    index: Option<HashMap<Key<'a>, usize>>,
}

/// A map key: CEL allows bool, int, uint and string keys.
#[derive(Clone, Debug)]
pub enum Key<'a> {
    /// `bool`
    Bool(bool),
    /// `int`
    Int(i64),
    /// `uint`
    Uint(u64),
    /// `string`
    String(Str<'a>),
}

// === impl Str ===

impl Deref for Str<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            Str::Borrowed(s) => s,
            Str::Shared(s) => s,
        }
    }
}

impl fmt::Debug for Str<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl PartialEq for Str<'_> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}
impl Eq for Str<'_> {}
impl Hash for Str<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (**self).hash(state);
    }
}

impl Str<'_> {
    /// A copy that borrows nothing.
    pub fn to_static(&self) -> Str<'static> {
        match self {
            Str::Borrowed(s) => Str::Shared(Arc::from(*s)),
            Str::Shared(s) => Str::Shared(s.clone()),
        }
    }
}

impl Deref for Bin<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bin::Borrowed(s) => s,
            Bin::Shared(s) => s,
        }
    }
}

impl fmt::Debug for Bin<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b{:?}", String::from_utf8_lossy(self))
    }
}

// === impl Key ===

impl PartialEq for Key<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Key::Bool(a), Key::Bool(b)) => a == b,
            (Key::String(a), Key::String(b)) => a == b,
            (Key::Int(a), Key::Int(b)) => a == b,
            (Key::Uint(a), Key::Uint(b)) => a == b,
            (Key::Int(a), Key::Uint(b)) | (Key::Uint(b), Key::Int(a)) => {
                u64::try_from(*a).is_ok_and(|a| a == *b)
            }
            _ => false,
        }
    }
}
impl Eq for Key<'_> {}

impl Hash for Key<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Numeric keys that compare equal across int and uint hash alike.
        match self {
            Key::Bool(b) => (0u8, b).hash(state),
            Key::Int(i) => (1u8, *i as i128).hash(state),
            Key::Uint(u) => (1u8, *u as i128).hash(state),
            Key::String(s) => (2u8, &**s).hash(state),
        }
    }
}

impl<'a> Key<'a> {
    /// The key as a value.
    pub fn to_value(&self) -> Value<'a> {
        match self {
            Key::Bool(b) => Value::Bool(*b),
            Key::Int(i) => Value::Int(*i),
            Key::Uint(u) => Value::Uint(*u),
            Key::String(s) => Value::String(s.clone()),
        }
    }

    /// The key for `value`: doubles with an integral value find int keys,
    /// as heterogeneous equality requires.
    pub fn from_lookup(value: &Value<'a>) -> Option<Key<'a>> {
        Some(match value {
            Value::Bool(b) => Key::Bool(*b),
            Value::Int(i) => Key::Int(*i),
            Value::Uint(u) => Key::Uint(*u),
            Value::String(s) => Key::String(s.clone()),
            Value::Double(d)
                if d.fract() == 0.0
                    && *d >= -9.223_372_036_854_776e18
                    && *d < 9.223_372_036_854_776e18 =>
            {
                Key::Int(*d as i64)
            }
            Value::Double(d)
                if d.fract() == 0.0 && *d >= 0.0 && *d < 1.844_674_407_370_955_2e19 =>
            {
                Key::Uint(*d as u64)
            }
            _ => return None,
        })
    }

    /// The key for building a map: only bool, int, uint and string values are keys.
    pub fn from_value(value: &Value<'a>) -> Option<Key<'a>> {
        match value {
            Value::Bool(_) | Value::Int(_) | Value::Uint(_) | Value::String(_) => {
                Key::from_lookup(value)
            }
            _ => None,
        }
    }
}

// === impl MapData ===

/// Maps larger than this get a hash index.
const INDEX_THRESHOLD: usize = 8;

impl<'a> MapData<'a> {
    /// Builds a map; fails on a repeated key, as CEL map literals do.
    pub fn from_entries(entries: Vec<(Key<'a>, Value<'a>)>) -> Result<MapData<'a>, EvalError> {
        let mut map = MapData {
            entries: Vec::with_capacity(entries.len()),
            index: None,
        };
        for (k, v) in entries {
            if map.get_key(&k).is_some() {
                return Err(EvalError::new(format!(
                    "repeated key in map literal: {}",
                    k.to_value().display()
                )));
            }
            map.push(k, v);
        }
        Ok(map)
    }

    fn push(&mut self, k: Key<'a>, v: Value<'a>) {
        self.entries.push((k.clone(), v));
        let n = self.entries.len();
        if let Some(index) = &mut self.index {
            index.insert(k, n - 1);
        } else if n > INDEX_THRESHOLD {
            self.index = Some(
                self.entries
                    .iter()
                    .enumerate()
                    .map(|(i, (k, _))| (k.clone(), i))
                    .collect(),
            );
        }
    }

    /// The value under `key`.
    pub fn get_key(&self, key: &Key<'_>) -> Option<&Value<'a>> {
        let i = match &self.index {
            Some(index) => lookup_index(index, key),
            None => self.entries.iter().position(|(k, _)| k == key),
        };
        i.and_then(|i| self.entries.get(i)).map(|(_, v)| v)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry at `index`, in insertion order.
    pub fn entry(&self, index: usize) -> Option<&(Key<'a>, Value<'a>)> {
        self.entries.get(index)
    }

    /// The entries in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = &(Key<'a>, Value<'a>)> {
        self.entries.iter()
    }
}

/// Looks `key` up at the shorter of the two lifetimes; `Key` is covariant,
/// so the index can be viewed at the probe's lifetime without copying.
fn lookup_index<'c>(index: &HashMap<Key<'c>, usize>, key: &Key<'c>) -> Option<usize> {
    index.get(key).copied()
}

// === impl Value ===

impl<'a> Value<'a> {
    /// A borrowed string value.
    pub fn str(s: &'a str) -> Value<'a> {
        Value::String(Str::Borrowed(s))
    }

    /// A string value that owns its text.
    pub fn string(s: impl Into<Arc<str>>) -> Value<'a> {
        Value::String(Str::Shared(s.into()))
    }

    /// A list value from elements.
    pub fn list(items: Vec<Value<'a>>) -> Value<'a> {
        Value::List(List::Values(items.into()))
    }

    /// The runtime kind.
    pub fn kind(&self) -> Kind {
        match self {
            Value::Null => Kind::Null,
            Value::Bool(_) => Kind::Bool,
            Value::Int(_) => Kind::Int,
            Value::Uint(_) => Kind::Uint,
            Value::Double(_) => Kind::Double,
            Value::String(_) => Kind::String,
            Value::Bytes(_) => Kind::Bytes,
            Value::List(_) => Kind::List,
            Value::Map(_) => Kind::Map,
            Value::Timestamp(_) => Kind::Timestamp,
            Value::Duration(_) => Kind::Duration,
            Value::Type(_) => Kind::Type,
        }
    }

    /// A copy that borrows nothing, for storing beyond `'a`.
    pub fn to_static(&self) -> Value<'static> {
        match self {
            Value::Null => Value::Null,
            Value::Bool(b) => Value::Bool(*b),
            Value::Int(i) => Value::Int(*i),
            Value::Uint(u) => Value::Uint(*u),
            Value::Double(d) => Value::Double(*d),
            Value::String(s) => Value::String(s.to_static()),
            Value::Bytes(b) => Value::Bytes(Bin::Shared(Arc::from(&**b))),
            Value::List(l) => Value::List(List::Values(l.iter().map(|v| v.to_static()).collect())),
            Value::Map(m) => {
                let entries = m
                    .entries()
                    .into_iter()
                    .filter_map(|(k, v)| Some((Key::from_value(&k.to_static())?, v.to_static())))
                    .collect();
                Value::Map(Map::Values(Arc::new(
                    MapData::from_entries(entries).unwrap_or_default(),
                )))
            }
            Value::Timestamp(t) => Value::Timestamp(*t),
            Value::Duration(d) => Value::Duration(*d),
            Value::Type(k) => Value::Type(*k),
        }
    }

    /// The value as a bool, if it is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The value as a string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// CEL equality: heterogeneous numbers compare by value, NaN is unequal
    /// to itself, lists and maps compare element-wise, values of different
    /// kinds are unequal.
    pub fn equals(&self, other: &Value<'_>) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::String(a), Value::String(b)) => **a == **b,
            (Value::Bytes(a), Value::Bytes(b)) => **a == **b,
            (Value::Timestamp(a), Value::Timestamp(b)) => a == b,
            (Value::Duration(a), Value::Duration(b)) => a == b,
            (Value::Type(a), Value::Type(b)) => a == b,
            (Value::List(a), Value::List(b)) => {
                a.len() == b.len()
                    && (0..a.len())
                        .all(|i| matches!((a.get(i), b.get(i)), (Some(x), Some(y)) if x.equals(&y)))
            }
            (Value::Map(a), Value::Map(b)) => {
                a.len() == b.len()
                    && a.entries()
                        .iter()
                        .all(|(k, v)| b.get(k).is_some_and(|w| v.equals(&w)))
            }
            _ => matches!(numeric_cmp(self, other), Some(Ordering::Equal)),
        }
    }

    /// CEL ordering for `<`, `<=`, `>`, `>=`: numbers across kinds, strings,
    /// bytes, bools, timestamps, durations. `None` means no ordering exists
    /// for these kinds (or a NaN is involved).
    pub fn compare(&self, other: &Value<'_>) -> Option<Ordering> {
        match (self, other) {
            (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
            (Value::String(a), Value::String(b)) => Some((**a).cmp(&**b)),
            (Value::Bytes(a), Value::Bytes(b)) => Some((**a).cmp(&**b)),
            (Value::Timestamp(a), Value::Timestamp(b)) => Some(a.cmp(b)),
            (Value::Duration(a), Value::Duration(b)) => Some(a.cmp(b)),
            _ => numeric_cmp(self, other),
        }
    }

    /// The value as text where it is put into a string (an interpolated
    /// `${...}`): scalars as CEL's `string()` writes them (`5u` as `5`, a
    /// timestamp in RFC 3339, a duration as `1.5s`, bytes as UTF-8), lists
    /// and maps as [`Value::display`] writes them.
    pub fn to_text(&self) -> String {
        match self {
            Value::String(s) => s.to_string(),
            Value::Uint(u) => u.to_string(),
            Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
            Value::Timestamp(t) => t.to_rfc3339(),
            Value::Duration(d) => d.to_string(),
            other => other.display(),
        }
    }

    /// A human-readable rendering in CEL literal syntax (`5u`,
    /// `timestamp("...")`, `["a", "b"]`), for messages and debugging.
    pub fn display(&self) -> String {
        let mut out = String::new();
        write_display(&mut out, self);
        out
    }
}

/// Compares two numbers of any numeric kinds exactly (no rounding through
/// `f64` for large integers).
pub fn numeric_cmp(a: &Value<'_>, b: &Value<'_>) -> Option<Ordering> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Uint(x), Value::Uint(y)) => Some(x.cmp(y)),
        (Value::Double(x), Value::Double(y)) => x.partial_cmp(y),
        (Value::Int(x), Value::Uint(y)) => Some((*x as i128).cmp(&(*y as i128))),
        (Value::Uint(x), Value::Int(y)) => Some((*x as i128).cmp(&(*y as i128))),
        // Like cel-go, integers compare with doubles as doubles.
        (Value::Int(x), Value::Double(y)) => (*x as f64).partial_cmp(y),
        (Value::Uint(x), Value::Double(y)) => (*x as f64).partial_cmp(y),
        (Value::Double(x), Value::Int(y)) => x.partial_cmp(&(*y as f64)),
        (Value::Double(x), Value::Uint(y)) => x.partial_cmp(&(*y as f64)),
        _ => None,
    }
}

fn write_display(out: &mut String, v: &Value<'_>) {
    use std::fmt::Write as _;
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Uint(u) => {
            let _ = write!(out, "{u}u");
        }
        Value::Double(d) => out.push_str(&crate::stdlib::format_double(*d)),
        Value::String(s) => {
            let _ = write!(out, "{:?}", &**s);
        }
        Value::Bytes(b) => {
            let _ = write!(out, "b{:?}", String::from_utf8_lossy(b));
        }
        Value::List(l) => {
            out.push('[');
            for (i, item) in l.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_display(out, &item);
            }
            out.push(']');
        }
        Value::Map(m) => {
            out.push('{');
            for (i, (k, v)) in m.entries().iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_display(out, k);
                out.push_str(": ");
                write_display(out, v);
            }
            out.push('}');
        }
        Value::Timestamp(t) => {
            let _ = write!(out, "timestamp({:?})", t.to_rfc3339());
        }
        Value::Duration(d) => {
            let _ = write!(out, "duration({:?})", d.to_string());
        }
        Value::Type(k) => out.push_str(k.name()),
    }
}

impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display())
    }
}

// === impl List ===

impl<'a> List<'a> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            List::Values(v) => v.len(),
            List::Host(h) => h.len(),
            List::Multi(m, key) => m.count(key),
        }
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element at `index`.
    pub fn get(&self, index: usize) -> Option<Value<'a>> {
        match self {
            List::Values(v) => v.get(index).cloned(),
            List::Host(h) => h.get(index),
            List::Multi(m, key) => m.value(key, index).map(Value::str),
        }
    }

    /// The elements, in order.
    pub fn iter(&self) -> impl Iterator<Item = Value<'a>> + '_ {
        (0..self.len()).map_while(|i| self.get(i))
    }

    /// Whether some element equals `needle` (CEL `in`).
    pub fn contains(&self, needle: &Value<'_>) -> bool {
        match (self, needle) {
            // Header values: compare borrowed strings without building values.
            (List::Multi(m, key), Value::String(s)) => {
                m.find_value(key, &mut |v| v == &**s).unwrap_or(false)
            }
            (List::Values(v), _) => v.iter().any(|x| x.equals(needle)),
            _ => self.iter().any(|x| x.equals(needle)),
        }
    }
}

impl fmt::Debug for List<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

// === impl Map ===

impl<'a> Map<'a> {
    /// Number of entries.
    pub fn len(&self) -> usize {
        match self {
            Map::Values(m) => m.len(),
            Map::Host(h) => h.len(),
            Map::Multi(m) => m.key_count(),
        }
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value under `key`, with CEL's numeric key equivalence.
    pub fn get(&self, key: &Value<'_>) -> Option<Value<'a>> {
        match self {
            Map::Values(m) => Key::from_lookup(key)
                .and_then(|k| m.get_key(&k))
                .cloned()
                .or_else(|| {
                    // A uint-valued double may match a uint key.
                    match key {
                        Value::Double(d) if *d >= 0.0 && d.fract() == 0.0 => {
                            m.get_key(&Key::Uint(*d as u64)).cloned()
                        }
                        _ => None,
                    }
                }),
            Map::Host(h) => h.get(key),
            Map::Multi(m) => match key {
                Value::String(s) if m.contains(s) => {
                    // The key text must outlive the lookup: borrow the
                    // caller's copy of it.
                    let idx = (0..m.key_count()).find(|i| m.key_at(*i) == Some(&**s))?;
                    let stored = m.key_at(idx)?;
                    Some(Value::List(List::Multi(*m, Str::Borrowed(stored))))
                }
                _ => None,
            },
        }
    }

    /// The value under a string key; the fast path for `m['k']` and `m.k`.
    pub fn get_str(&self, key: &'a str) -> Option<Value<'a>> {
        match self {
            Map::Multi(m) if m.contains(key) => {
                Some(Value::List(List::Multi(*m, Str::Borrowed(key))))
            }
            Map::Multi(_) => None,
            Map::Values(m) => m.get_key(&Key::String(Str::Borrowed(key))).cloned(),
            Map::Host(_) => self.get(&Value::str(key)),
        }
    }

    /// Whether `key` is present (CEL `in` on maps).
    pub fn contains_key(&self, key: &Value<'_>) -> bool {
        match (self, key) {
            (Map::Multi(m), Value::String(s)) => m.contains(s),
            _ => self.get(key).is_some(),
        }
    }

    /// All entries; builds values for caller-owned maps.
    pub fn entries(&self) -> Vec<(Value<'a>, Value<'a>)> {
        match self {
            Map::Values(m) => m.iter().map(|(k, v)| (k.to_value(), v.clone())).collect(),
            Map::Host(h) => h
                .keys()
                .into_iter()
                .filter_map(|k| {
                    let v = h.get(&k)?;
                    Some((k, v))
                })
                .collect(),
            Map::Multi(m) => (0..m.key_count())
                .filter_map(|i| {
                    let k = m.key_at(i)?;
                    Some((
                        Value::str(k),
                        Value::List(List::Multi(*m, Str::Borrowed(k))),
                    ))
                })
                .collect(),
        }
    }

    /// The keys, for iteration by comprehensions.
    pub fn keys(&self) -> Vec<Value<'a>> {
        match self {
            Map::Values(m) => m.iter().map(|(k, _)| k.to_value()).collect(),
            Map::Multi(m) => (0..m.key_count())
                .filter_map(|i| m.key_at(i).map(Value::str))
                .collect(),
            Map::Host(h) => h.keys(),
        }
    }
}

impl fmt::Debug for Map<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.entries()).finish()
    }
}
