//! The abstract syntax tree of a CEL expression.
//!
//! Operators are calls with CEL's internal names (`_+_`, `_&&_`, `@in`, ...),
//! as in cel-go and the CEL specification, so that the checker types them
//! through the same overload tables as named functions. Macros (`has`, `all`,
//! `exists`, `exists_one`, `map`, `filter`) are expanded by the parser into
//! [`ExprKind::Select`] with `test_only` and [`ExprKind::Comprehension`].

use std::fmt;
use std::sync::Arc;

/// A byte range in the expression's source text.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    /// First byte.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
}

impl Span {
    /// A span from byte offsets.
    pub fn new(start: usize, end: usize) -> Span {
        Span {
            start: clamp(start),
            end: clamp(end),
        }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    /// This span moved `by` bytes to the right, as when an expression sits
    /// inside a larger document.
    pub fn shift(self, by: usize) -> Span {
        Span::new(self.start as usize + by, self.end as usize + by)
    }

    /// The span as a `Range` of byte offsets.
    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

fn clamp(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl fmt::Debug for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

/// Index of a node in its tree; the checker keys its tables by it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ExprId(pub u32);

impl ExprId {
    /// The id as a table index.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// An expression node.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    /// Unique within one parsed expression, dense from 0.
    pub id: ExprId,
    /// Where the node stands in the source.
    pub span: Span,
    /// What the node is.
    pub kind: ExprKind,
}

/// The kinds of expression node.
#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// A literal constant.
    Literal(Literal),
    /// A (possibly qualified by a leading dot) identifier.
    Ident(Arc<str>),
    /// `operand.field`; with `test_only`, the expansion of `has(operand.field)`.
    Select {
        /// The value selected from.
        operand: Box<Expr>,
        /// The field name.
        field: Arc<str>,
        /// `true` for `has()`.
        test_only: bool,
    },
    /// A function call, an operator, or a receiver call `target.function(args)`.
    Call {
        /// The receiver of a member call.
        target: Option<Box<Expr>>,
        /// The function name; operators use CEL's internal names.
        function: Arc<str>,
        /// Where the function name (or the operator) stands.
        name_span: Span,
        /// The arguments, receiver excluded.
        args: Vec<Expr>,
    },
    /// `[a, b]`.
    List(Vec<Expr>),
    /// `{k: v}`.
    Map(Vec<(Expr, Expr)>),
    /// `Name{field: value}`: a message literal. Portcullis has no message
    /// types, so the checker rejects these; they parse for fidelity.
    Struct {
        /// The message type name as written.
        type_name: Arc<str>,
        /// Field initialisers.
        fields: Vec<(Arc<str>, Expr)>,
    },
    /// An expanded comprehension macro.
    Comprehension(Box<Comprehension>),
}

/// A literal constant.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    /// `null`
    Null,
    /// `true`, `false`
    Bool(bool),
    /// `1`, `-0x10`
    Int(i64),
    /// `1u`
    Uint(u64),
    /// `1.5`, `1e3`
    Double(f64),
    /// `'text'`
    String(Arc<str>),
    /// `b'bytes'`
    Bytes(Arc<[u8]>),
}

/// The comprehension macros, kept by name rather than as the specification's
/// generic fold so that each evaluates with a tight loop and the right error
/// absorption.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Macro {
    /// `range.all(x, p)`
    All,
    /// `range.exists(x, p)`
    Exists,
    /// `range.exists_one(x, p)`
    ExistsOne,
    /// `range.map(x, t)` and `range.map(x, p, t)`
    Map,
    /// `range.filter(x, p)`
    Filter,
    /// `list.transformList(i, v, [p,] t)`: a list of `t` per element.
    TransformList,
    /// `map.transformMap(k, v, [p,] t)`: the same keys, mapped to `t`.
    TransformMap,
    /// `list.sortBy(x, key)`: the elements, ordered by `key` (ngrok's, and
    /// cel-go's `ext.Lists`).
    SortBy,
}

impl Macro {
    /// The macro's name as written.
    pub fn name(self) -> &'static str {
        match self {
            Macro::All => "all",
            Macro::Exists => "exists",
            Macro::ExistsOne => "exists_one",
            Macro::Map => "map",
            Macro::Filter => "filter",
            Macro::TransformList => "transformList",
            Macro::TransformMap => "transformMap",
            Macro::SortBy => "sortBy",
        }
    }
}

/// `range.all(var, body)` and friends.
#[derive(Clone, Debug, PartialEq)]
pub struct Comprehension {
    /// Which macro.
    pub kind: Macro,
    /// The iteration variable.
    pub var: Arc<str>,
    /// Where the iteration variable is declared.
    pub var_span: Span,
    /// The second variable of the two-variable forms (`all(k, v, p)`): the
    /// element for lists (`var` is then the index), the value for maps.
    pub var2: Option<Arc<str>>,
    /// The list or map iterated over (maps iterate their keys).
    pub range: Expr,
    /// `map`'s optional filter (`map(x, p, t)`).
    pub filter: Option<Expr>,
    /// The predicate, or `map`'s transform.
    pub body: Expr,
}

impl Expr {
    /// Calls `f` on each direct child.
    pub fn children(&self) -> Vec<&Expr> {
        match &self.kind {
            ExprKind::Literal(_) | ExprKind::Ident(_) => Vec::new(),
            ExprKind::Select { operand, .. } => vec![operand],
            ExprKind::Call { target, args, .. } => {
                target.iter().map(|t| &**t).chain(args).collect()
            }
            ExprKind::List(items) => items.iter().collect(),
            ExprKind::Map(entries) => entries.iter().flat_map(|(k, v)| [k, v]).collect(),
            ExprKind::Struct { fields, .. } => fields.iter().map(|(_, v)| v).collect(),
            ExprKind::Comprehension(c) => {
                let mut out = vec![&c.range];
                out.extend(c.filter.as_ref());
                out.push(&c.body);
                out
            }
        }
    }

    /// The dotted name this expression spells if it is a chain of
    /// identifiers and field selections (`req.url.path`), else `None`.
    pub fn qualified_name(&self) -> Option<String> {
        match &self.kind {
            ExprKind::Ident(name) => Some(name.to_string()),
            ExprKind::Select {
                operand,
                field,
                test_only: false,
            } => {
                let mut name = operand.qualified_name()?;
                name.push('.');
                name.push_str(field);
                Some(name)
            }
            _ => None,
        }
    }
}
