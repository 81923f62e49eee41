//! CEL types, as the checker sees them.

use std::fmt;
use std::sync::Arc;

/// A CEL type.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Type {
    /// Any type; checked at run time.
    Dyn,
    /// `null_type`.
    Null,
    /// `bool`.
    Bool,
    /// `int` (64-bit signed).
    Int,
    /// `uint` (64-bit unsigned).
    Uint,
    /// `double`.
    Double,
    /// `string`.
    String,
    /// `bytes`.
    Bytes,
    /// `google.protobuf.Timestamp`.
    Timestamp,
    /// `google.protobuf.Duration`.
    Duration,
    /// `list(T)`.
    List(Arc<Type>),
    /// `map(K, V)`.
    Map(Arc<Type>, Arc<Type>),
    /// `type(T)`: the type of a type value; `Type(None)` is `type` itself.
    Type(Option<Arc<Type>>),
    /// An object with named, typed fields (ngrok's cookies, URL parts),
    /// represented at run time as a map with string keys.
    Object(Arc<ObjectType>),
    /// A type parameter in an overload signature (`A` in `list(A)`).
    Param(Arc<str>),
    /// The type of an expression that failed to check.
    Error,
}

/// A named record type.
#[derive(PartialEq, Eq, Hash, Debug)]
pub struct ObjectType {
    /// Its name in messages, e.g. `ngrok.Cookie`.
    pub name: Arc<str>,
    /// Its fields.
    pub fields: Vec<(Arc<str>, Type)>,
}

impl ObjectType {
    /// The type of `field`, if declared.
    pub fn field(&self, field: &str) -> Option<&Type> {
        self.fields
            .iter()
            .find(|(n, _)| &**n == field)
            .map(|(_, t)| t)
    }
}

impl Type {
    /// `list(elem)`.
    pub fn list(elem: Type) -> Type {
        Type::List(Arc::new(elem))
    }

    /// `map(key, value)`.
    pub fn map(key: Type, value: Type) -> Type {
        Type::Map(Arc::new(key), Arc::new(value))
    }

    /// A type parameter.
    pub fn param(name: &str) -> Type {
        Type::Param(Arc::from(name))
    }

    /// `type(t)`.
    pub fn type_of(t: Type) -> Type {
        Type::Type(Some(Arc::new(t)))
    }

    /// Whether values of this type are only known at run time.
    pub fn is_dyn(&self) -> bool {
        matches!(self, Type::Dyn | Type::Error)
    }

    /// Whether the type contains no type parameter.
    pub fn is_concrete(&self) -> bool {
        match self {
            Type::Param(_) => false,
            Type::List(e) => e.is_concrete(),
            Type::Map(k, v) => k.is_concrete() && v.is_concrete(),
            Type::Type(Some(t)) => t.is_concrete(),
            _ => true,
        }
    }

    /// The kind of runtime value this type admits, if it admits just one.
    pub fn kind(&self) -> Option<Kind> {
        Some(match self {
            Type::Null => Kind::Null,
            Type::Bool => Kind::Bool,
            Type::Int => Kind::Int,
            Type::Uint => Kind::Uint,
            Type::Double => Kind::Double,
            Type::String => Kind::String,
            Type::Bytes => Kind::Bytes,
            Type::Timestamp => Kind::Timestamp,
            Type::Duration => Kind::Duration,
            Type::List(_) => Kind::List,
            Type::Map(..) | Type::Object(_) => Kind::Map,
            Type::Type(_) => Kind::Type,
            Type::Dyn | Type::Param(_) | Type::Error => return None,
        })
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Dyn => f.write_str("dyn"),
            Type::Null => f.write_str("null_type"),
            Type::Bool => f.write_str("bool"),
            Type::Int => f.write_str("int"),
            Type::Uint => f.write_str("uint"),
            Type::Double => f.write_str("double"),
            Type::String => f.write_str("string"),
            Type::Bytes => f.write_str("bytes"),
            Type::Timestamp => f.write_str("google.protobuf.Timestamp"),
            Type::Duration => f.write_str("google.protobuf.Duration"),
            Type::List(e) => write!(f, "list({e})"),
            Type::Map(k, v) => write!(f, "map({k}, {v})"),
            Type::Type(None) => f.write_str("type"),
            Type::Type(Some(t)) => write!(f, "type({t})"),
            Type::Object(o) => f.write_str(&o.name),
            Type::Param(p) => f.write_str(p),
            Type::Error => f.write_str("*error*"),
        }
    }
}

/// The kind of a runtime value: what overload dispatch and `type()` look at.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Kind {
    /// `null`
    Null,
    /// `bool`
    Bool,
    /// `int`
    Int,
    /// `uint`
    Uint,
    /// `double`
    Double,
    /// `string`
    String,
    /// `bytes`
    Bytes,
    /// `list`
    List,
    /// `map`
    Map,
    /// `google.protobuf.Timestamp`
    Timestamp,
    /// `google.protobuf.Duration`
    Duration,
    /// `type`
    Type,
}

impl Kind {
    /// The CEL name of the kind's type, as `type(x)` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Null => "null_type",
            Kind::Bool => "bool",
            Kind::Int => "int",
            Kind::Uint => "uint",
            Kind::Double => "double",
            Kind::String => "string",
            Kind::Bytes => "bytes",
            Kind::List => "list",
            Kind::Map => "map",
            Kind::Timestamp => "google.protobuf.Timestamp",
            Kind::Duration => "google.protobuf.Duration",
            Kind::Type => "type",
        }
    }
}
