//! Evaluation of compiled programs.
//!
//! A [`Program`] is a tree of nodes in which every variable is a
//! [`VarId`], every function a function pointer, and every constant a value
//! that evaluation lends out rather than copies. Evaluation reads variables
//! from the caller's [`Activation`] and allocates only for values it builds
//! (concatenations, new lists and maps, error messages).
//!
//! Nothing here panics: out-of-range indices, overflow and type confusion
//! are [`EvalError`]s. Comprehensions draw on a step budget so that no
//! expression can hold a request for long.
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::sync::Arc;

use crate::ast::Macro;
use crate::env::{Impl, Overload, VarId};
use crate::ops;
use crate::pattern::Pattern;
use crate::types::Type;
use crate::value::{Bin, Key, List, Map, MapData, Str, Value};

mod cond;
pub(crate) use cond::Cond;

/// Where evaluation reads variables from. Implemented by callers: the proxy
/// reads request fields lazily, tests and the CLI use [`Bindings`].
pub trait Activation {
    /// The value of `var`, or `None` when it is absent (an unset header-derived
    /// field, an unbound variable). Absence is an error unless tested with `has()`.
    fn resolve(&self, var: VarId) -> Option<Value<'_>>;
}

impl<A: Activation + ?Sized> Activation for &A {
    fn resolve(&self, var: VarId) -> Option<Value<'_>> {
        (**self).resolve(var)
    }
}

impl Activation for () {
    fn resolve(&self, _: VarId) -> Option<Value<'_>> {
        None
    }
}

/// Variable values held in memory, indexed by [`VarId`].
#[derive(Clone, Debug, Default)]
pub struct Bindings {
    values: Vec<Option<Value<'static>>>,
}

impl Bindings {
    /// No values.
    pub fn new() -> Bindings {
        Bindings::default()
    }

    /// Sets `var`.
    pub fn set(&mut self, var: VarId, value: Value<'static>) {
        let i = var.index();
        if self.values.len() <= i {
            self.values.resize(i + 1, None);
        }
        if let Some(slot) = self.values.get_mut(i) {
            *slot = Some(value);
        }
    }
}

impl Activation for Bindings {
    fn resolve(&self, var: VarId) -> Option<Value<'_>> {
        self.values.get(var.index())?.as_ref().map(borrow_static)
    }
}

/// A runtime error. Messages follow cel-go's wording where one exists
/// (`no such key`, `division by zero`, `no matching overload`).
///
/// One pointer wide, so that `Result<bool, EvalError>` is returned in
/// registers on the evaluation path; the message lives behind it.
#[derive(Clone, PartialEq, Eq)]
pub struct EvalError {
    message: Box<Cow<'static, str>>,
}

impl EvalError {
    /// An error with `message`.
    #[cold]
    pub fn new(message: impl Into<Cow<'static, str>>) -> EvalError {
        EvalError {
            message: Box::new(message.into()),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn no_overload(function: &str, args: &[Value<'_>]) -> EvalError {
        let kinds: Vec<&str> = args.iter().map(|a| a.kind().name()).collect();
        EvalError::new(format!(
            "no matching overload for `{function}` applied to ({})",
            kinds.join(", ")
        ))
    }
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EvalError({:?})", self.message)
    }
}

impl std::error::Error for EvalError {}

/// A checked, compiled expression, ready to evaluate many times.
///
/// `Program` is immutable, `Send` and `Sync`: compile once, share in an `Arc`.
#[derive(Debug)]
pub struct Program {
    pub(crate) root: Root,
    pub(crate) result_type: Type,
    pub(crate) budget: u64,
}

/// The largest string, bytes or list an evaluation may build (4 MiB, or
/// 4 Mi elements). Functions that multiply sizes check it before they
/// allocate.
pub const MAX_BUILT_LEN: usize = 4 << 20;

/// Fails when a value of `len` bytes or elements would exceed [`MAX_BUILT_LEN`].
pub fn check_built_len(len: usize) -> Result<(), EvalError> {
    if len > MAX_BUILT_LEN {
        Err(EvalError::new(format!(
            "value too large: {len} exceeds the limit of {MAX_BUILT_LEN} bytes or elements"
        )))
    } else {
        Ok(())
    }
}

/// Default comprehension step budget per evaluation.
pub const DEFAULT_BUDGET: u64 = 1_000_000;

impl Program {
    /// Evaluates against `activation`.
    pub fn eval<'a>(&'a self, activation: &'a dyn Activation) -> Result<Value<'a>, EvalError> {
        let budget = Cell::new(self.budget);
        let frame = Frame {
            act: activation,
            locals: None,
            budget: &budget,
        };
        match &self.root {
            Root::Node(n) => n.eval(&frame),
            Root::Cond(c) => c.test(activation, &frame).map(Value::Bool),
        }
    }

    /// Evaluates a condition: `Ok(true)` or `Ok(false)`, or an error when
    /// the result is not a bool.
    ///
    /// Generic over the activation so that the reads of common conditions
    /// (a variable compared with constants) call its `resolve` directly.
    pub fn eval_bool<A: Activation>(&self, activation: &A) -> Result<bool, EvalError> {
        let budget = Cell::new(self.budget);
        let frame = Frame {
            act: activation,
            locals: None,
            budget: &budget,
        };
        match &self.root {
            Root::Cond(c) => c.test(activation, &frame),
            Root::Node(n) => n.test(&frame),
        }
    }

    /// The checked result type.
    pub fn result_type(&self) -> &Type {
        &self.result_type
    }

    /// Sets the comprehension step budget.
    pub fn with_budget(mut self, steps: u64) -> Program {
        self.budget = steps;
        self
    }

    /// The constant the program folded to, if it did.
    pub fn constant(&self) -> Option<&Value<'static>> {
        match &self.root {
            Root::Node(Node::Const(v)) => Some(v),
            _ => None,
        }
    }
}

/// A program's tree: boolean ones as a [`Cond`].
#[derive(Debug)]
pub(crate) enum Root {
    Node(Node),
    Cond(Cond),
}

impl Root {
    pub(crate) fn new(node: Node) -> Root {
        if Cond::fits(&node) {
            Root::Cond(Cond::from_node(node))
        } else {
            Root::Node(node)
        }
    }
}

/// Per-evaluation state, on the stack.
pub(crate) struct Frame<'a, 'f> {
    act: &'a dyn Activation,
    locals: Option<&'f Local<'a, 'f>>,
    budget: &'f Cell<u64>,
}

/// A comprehension variable, linked to the enclosing one.
pub(crate) struct Local<'a, 'f> {
    value: Value<'a>,
    parent: Option<&'f Local<'a, 'f>>,
}

/// A string predicate with a constant argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StrPred {
    StartsWith,
    EndsWith,
    Contains,
}

/// A compiled expression node.
#[derive(Debug)]
pub(crate) enum Node {
    Const(Value<'static>),
    Var(VarId, Arc<str>),
    /// `has(a.b.c)` where `a.b.c` is a declared variable.
    VarPresent(VarId),
    /// A comprehension variable, `n` scopes up.
    Local(usize),
    Unbound(Arc<str>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
    Cond(Box<Node>, Box<Node>, Box<Node>),
    Eq(Box<Node>, Box<Node>),
    Ne(Box<Node>, Box<Node>),
    EqConst(Box<Node>, Value<'static>),
    /// `x == 'c'`.
    EqStr(Box<Node>, Box<str>),
    /// `x != 'c'`.
    NeStr(Box<Node>, Box<str>),
    NeConst(Box<Node>, Value<'static>),
    Cmp(Box<Node>, Box<Node>, ops::CmpOp),
    Arith(Box<Node>, Box<Node>, ops::ArithOp),
    Neg(Box<Node>),
    In(Box<Node>, Box<Node>),
    /// `x in m['k']`, fused: one lookup in a caller's multi-map.
    InIndexStr(Box<Node>, Box<Node>, Box<str>),
    /// `'c' in m['k']`: the same with a constant needle.
    StrInIndexStr(Box<str>, Box<Node>, Box<str>),
    /// `x in ['a', 'b']` with constant strings.
    InStrs(Box<Node>, Box<[Box<str>]>),
    Index(Box<Node>, Box<Node>),
    IndexStr(Box<Node>, Box<str>),
    Select {
        operand: Box<Node>,
        field: Box<str>,
        test_only: bool,
    },
    StrPred(Box<Node>, StrPred, Box<str>),
    Matches(Box<Node>, Box<Pattern>),
    List(Vec<Node>),
    Map(Vec<(Node, Node)>),
    Call {
        name: Arc<str>,
        imp: Impl,
        args: Vec<Node>,
    },
    Dispatch {
        name: Arc<str>,
        overloads: Arc<[Overload]>,
        args: Vec<Node>,
    },
    Comprehension(Box<Comp>),
    /// A boolean subtree recompiled as a [`Cond`]: the body of `all` and
    /// `exists`.
    Test(Box<Cond>),
    Fail(Arc<str>),
}

#[derive(Debug)]
pub(crate) struct Comp {
    pub(crate) kind: Macro,
    /// Binds (index, element) or (key, value) rather than one variable.
    pub(crate) two_vars: bool,
    pub(crate) range: Node,
    pub(crate) filter: Option<Node>,
    pub(crate) body: Node,
    /// Steps charged per iteration: the size of the loop body.
    pub(crate) cost: u64,
}

/// Lends a stored value out at a shorter lifetime: shared strings and bytes
/// become borrows, so evaluation touches no reference counts for constants.
#[inline(always)]
pub(crate) fn borrow_static<'a>(v: &'a Value<'static>) -> Value<'a> {
    match v {
        Value::Bool(b) => Value::Bool(*b),
        Value::Int(i) => Value::Int(*i),
        Value::String(Str::Shared(s)) => Value::String(Str::Borrowed(s)),
        Value::Bytes(Bin::Shared(b)) => Value::Bytes(Bin::Borrowed(b)),
        other => other.clone(),
    }
}

/// `has()` of a variable: whether the activation has a value for it other
/// than `null` (a caller's way to declare an object that may be absent yet
/// compares with `null`, as ngrok's sign-in results do).
fn present(v: Option<Value<'_>>) -> bool {
    !matches!(v, None | Some(Value::Null))
}

fn no_such_attribute(name: &str) -> EvalError {
    EvalError::new(format!("no such attribute: `{name}`"))
}

fn no_such_key(key: &Value<'_>) -> EvalError {
    EvalError::new(format!("no such key: {}", key.display()))
}

impl Node {
    pub(crate) fn eval<'a>(&'a self, f: &Frame<'a, '_>) -> Result<Value<'a>, EvalError> {
        match self {
            Node::Const(v) => Ok(borrow_static(v)),
            Node::Var(id, name) => f.act.resolve(*id).ok_or_else(|| no_such_attribute(name)),
            Node::VarPresent(id) => Ok(Value::Bool(present(f.act.resolve(*id)))),
            Node::Local(depth) => {
                let mut local = f.locals;
                for _ in 0..*depth {
                    local = local.and_then(|l| l.parent);
                }
                local
                    .map(|l| l.value.clone())
                    .ok_or_else(|| EvalError::new("internal: unresolved comprehension variable"))
            }
            Node::Unbound(name) => Err(no_such_attribute(name)),
            Node::And(..)
            | Node::Or(..)
            | Node::Not(_)
            | Node::EqStr(..)
            | Node::NeStr(..)
            | Node::Eq(..)
            | Node::Ne(..)
            | Node::EqConst(..)
            | Node::NeConst(..)
            | Node::InIndexStr(..)
            | Node::StrInIndexStr(..)
            | Node::InStrs(..)
            | Node::StrPred(..)
            | Node::Matches(..)
            | Node::Test(_) => self.test(f).map(Value::Bool),
            Node::Cond(c, t, e) => match c.eval(f)? {
                Value::Bool(true) => t.eval(f),
                Value::Bool(false) => e.eval(f),
                other => Err(EvalError::no_overload("_?_:_", &[other])),
            },
            Node::Cmp(l, r, op) => ops::compare(&operand(l, f)?, &operand(r, f)?, *op),
            Node::Arith(l, r, op) => ops::arith(l.eval(f)?, r.eval(f)?, *op),
            Node::Neg(x) => ops::negate(x.eval(f)?),
            Node::In(x, c) => {
                let needle = operand(x, f)?;
                match operand(c, f)? {
                    Value::List(l) => Ok(Value::Bool(l.contains(&needle))),
                    Value::Map(m) => Ok(Value::Bool(m.contains_key(&needle))),
                    other => Err(EvalError::no_overload("@in", &[needle, other])),
                }
            }
            Node::Index(c, i) => index(c.eval(f)?, &i.eval(f)?),
            Node::IndexStr(c, key) => match operand(c, f)? {
                Value::Map(m) => m.get_str(key).ok_or_else(|| no_such_key(&Value::str(key))),
                other => index(other, &Value::str(key)),
            },
            Node::Select {
                operand,
                field,
                test_only,
            } => select(operand.eval(f)?, field, *test_only),
            Node::List(items) => build_list(items, f),
            Node::Map(entries) => build_map(entries, f),
            Node::Call { name, imp, args } => call(name, imp, args, f),
            Node::Dispatch {
                name,
                overloads,
                args,
            } => dispatch(name, overloads, args, f),
            Node::Comprehension(c) => comprehension(c, f),
            Node::Fail(message) => Err(EvalError::new(message.to_string())),
        }
    }
}

impl Node {
    /// Evaluates a node whose value must be a `bool`. Conditions are most
    /// of what policies evaluate: boolean nodes answer here directly,
    /// without building a [`Value`] at every level; any other node is
    /// evaluated and its value required to be a bool. A non-bool is an
    /// error, which `&&` and `||` absorb like any other.
    pub(crate) fn test<'a>(&'a self, f: &Frame<'a, '_>) -> Result<bool, EvalError> {
        match self {
            Node::Const(Value::Bool(b)) => Ok(*b),
            Node::And(l, r) => match l.test(f) {
                Ok(false) => Ok(false),
                Ok(true) => r.test(f),
                Err(e) => absorb(e, r, f, false),
            },
            Node::Or(l, r) => match l.test(f) {
                Ok(true) => Ok(true),
                Ok(false) => r.test(f),
                Err(e) => absorb(e, r, f, true),
            },
            Node::Not(x) => x.test(f).map(|b| !b),
            Node::EqStr(x, c) => eq_str(x, c, f),
            Node::NeStr(x, c) => eq_str(x, c, f).map(|b| !b),
            Node::Eq(l, r) => Ok(operand(l, f)?.equals(&operand(r, f)?)),
            Node::Ne(l, r) => Ok(!operand(l, f)?.equals(&operand(r, f)?)),
            Node::EqConst(x, c) => Ok(operand(x, f)?.equals(c)),
            Node::NeConst(x, c) => Ok(!operand(x, f)?.equals(c)),
            Node::InIndexStr(x, c, key) => in_index_str(x, c, key, f),
            Node::StrInIndexStr(needle, c, key) => match operand(c, f)? {
                Value::Map(Map::Multi(m)) => m
                    .find_value(key, &mut |v| str_eq(v, needle))
                    .ok_or_else(|| no_such_key(&Value::str(key))),
                other => in_index_value(Value::str(needle), other, key),
            },
            Node::InStrs(x, set) => match operand(x, f)? {
                Value::String(s) => Ok(set.iter().any(|c| str_eq(c, &s))),
                // Heterogeneous `in`: a non-string never equals a string.
                _ => Ok(false),
            },
            Node::StrPred(x, pred, arg) => match operand(x, f)? {
                Value::String(s) => Ok(pred.test(&s, arg)),
                other => Err(EvalError::no_overload(pred.name(), &[other])),
            },
            Node::Matches(x, re) => match operand(x, f)? {
                Value::String(s) => Ok(re.is_match(&s)),
                other => Err(EvalError::no_overload("matches", &[other])),
            },
            Node::VarPresent(id) => Ok(present(f.act.resolve(*id))),
            Node::Test(c) => c.test(f.act, f),
            Node::Comprehension(c) if matches!(c.kind, Macro::All | Macro::Exists) => {
                quantifier(c, f)
            }
            Node::Cond(c, t, e) => {
                if c.test(f)? {
                    t.test(f)
                } else {
                    e.test(f)
                }
            }
            other => match other.eval(f)? {
                Value::Bool(b) => Ok(b),
                v => Err(EvalError::new(format!(
                    "expected bool, found {}",
                    v.kind().name()
                ))),
            },
        }
    }
}

/// The left side of `&&` (`is_or` false) or `||` failed: the right side may
/// still decide (`error && false` is `false`), else the left error stands.
#[cold]
#[inline(never)]
fn absorb<'a>(
    left: EvalError,
    r: &'a Node,
    f: &Frame<'a, '_>,
    is_or: bool,
) -> Result<bool, EvalError> {
    match r.test(f) {
        Ok(b) if b == is_or => Ok(is_or),
        _ => Err(left),
    }
}

impl StrPred {
    /// Whether `s` passes with the constant `arg`.
    #[inline(always)]
    fn test(self, s: &str, arg: &str) -> bool {
        match self {
            StrPred::StartsWith => s.get(..arg.len()).is_some_and(|head| str_eq(head, arg)),
            StrPred::EndsWith => s.ends_with(arg),
            StrPred::Contains => s.contains(arg),
        }
    }

    fn name(self) -> &'static str {
        match self {
            StrPred::StartsWith => "startsWith",
            StrPred::EndsWith => "endsWith",
            StrPred::Contains => "contains",
        }
    }
}

/// String equality with short strings compared inline: policy constants
/// and header values are mostly a few bytes, where a `memcmp` call costs
/// more than the comparison.
#[inline(always)]
fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    // Overlapping word loads: the first and last 4 or 8 bytes cover
    // every length from 4 to 16.
    fn words<const N: usize>(x: &[u8]) -> Option<([u8; N], [u8; N])> {
        Some((*x.first_chunk::<N>()?, *x.last_chunk::<N>()?))
    }
    match a.len() {
        0..=3 => a.iter().zip(b).all(|(x, y)| x == y),
        4..=7 => words::<4>(a) == words::<4>(b),
        8..=16 => words::<8>(a) == words::<8>(b),
        _ => a == b,
    }
}

/// `x == 'c'`: borrowed strings compare and drop without a call.
#[inline(always)]
fn eq_str<'a>(x: &'a Node, c: &str, f: &Frame<'a, '_>) -> Result<bool, EvalError> {
    match operand(x, f)? {
        Value::String(Str::Borrowed(s)) => Ok(str_eq(s, c)),
        other => Ok(other.equals(&Value::str(c))),
    }
}

/// Evaluates a child: variables and constants directly, without a
/// recursive call. These are most of the leaves of policy conditions.
#[inline(always)]
fn operand<'a>(x: &'a Node, f: &Frame<'a, '_>) -> Result<Value<'a>, EvalError> {
    match x {
        Node::Var(id, name) => f.act.resolve(*id).ok_or_else(|| no_such_attribute(name)),
        Node::Const(v) => Ok(borrow_static(v)),
        // The innermost comprehension variable: `k` in `m.exists(k, ...)`.
        Node::Local(0) => match f.locals {
            Some(l) => Ok(match &l.value {
                Value::String(Str::Borrowed(s)) => Value::String(Str::Borrowed(s)),
                v => v.clone(),
            }),
            None => x.eval(f),
        },
        _ => x.eval(f),
    }
}

#[inline(never)]
fn build_list<'a>(items: &'a [Node], f: &Frame<'a, '_>) -> Result<Value<'a>, EvalError> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        out.push(item.eval(f)?);
    }
    Ok(Value::List(List::Values(out.into())))
}

#[inline(never)]
fn build_map<'a>(entries: &'a [(Node, Node)], f: &Frame<'a, '_>) -> Result<Value<'a>, EvalError> {
    let mut out = Vec::with_capacity(entries.len());
    for (k, v) in entries {
        let key = k.eval(f)?;
        let key = Key::from_value(&key).ok_or_else(|| {
            EvalError::new(format!("unsupported map key type: {}", key.kind().name()))
        })?;
        out.push((key, v.eval(f)?));
    }
    Ok(Value::Map(Map::Values(Arc::new(MapData::from_entries(
        out,
    )?))))
}

#[inline(never)]
fn dispatch<'a>(
    name: &str,
    overloads: &'a [Overload],
    args: &'a [Node],
    f: &Frame<'a, '_>,
) -> Result<Value<'a>, EvalError> {
    let mut vals = Vec::with_capacity(args.len());
    for a in args {
        vals.push(a.eval(f)?);
    }
    let Some(imp) = overloads
        .iter()
        .find_map(|o| o.imp.as_ref().filter(|_| o.accepts(&vals)))
    else {
        return Err(EvalError::no_overload(name, &vals));
    };
    charge(f, 1 + vals.iter().map(size_of).sum::<u64>())?;
    charged(f, invoke(imp, f.act, vals))
}

/// `needle in container[key]`, fused so that a caller's multi-map (a
/// header's values) is searched in one lookup.
#[inline(never)]
fn in_index_str<'a>(
    needle: &'a Node,
    container: &'a Node,
    key: &'a str,
    f: &Frame<'a, '_>,
) -> Result<bool, EvalError> {
    let needle = operand(needle, f)?;
    match (operand(container, f)?, &needle) {
        (Value::Map(Map::Multi(m)), Value::String(s)) => m
            .find_value(key, &mut |v| str_eq(v, s))
            .ok_or_else(|| no_such_key(&Value::str(key))),
        (other, _) => in_index_value(needle, other, key),
    }
}

/// `needle in container[key]` for containers other than a caller's multi-map.
#[cold]
#[inline(never)]
fn in_index_value(needle: Value<'_>, container: Value<'_>, key: &str) -> Result<bool, EvalError> {
    let inner = match container {
        Value::Map(m) => m
            .get_str(key)
            .ok_or_else(|| no_such_key(&Value::str(key)))?,
        other => index(other, &Value::str(key))?,
    };
    match inner {
        Value::List(l) => Ok(l.contains(&needle)),
        Value::Map(m) => Ok(m.contains_key(&needle)),
        other => Err(EvalError::no_overload("@in", &[needle, other])),
    }
}

#[inline(never)]
pub(crate) fn index<'a>(container: Value<'a>, key: &Value<'_>) -> Result<Value<'a>, EvalError> {
    match container {
        Value::List(list) => {
            let i = match key {
                Value::Int(i) => *i,
                Value::Uint(u) => i64::try_from(*u).unwrap_or(i64::MAX),
                Value::Double(d) if d.fract() == 0.0 => *d as i64,
                Value::Double(_) => {
                    return Err(EvalError::new(
                        "unsupported index value: non-integral double",
                    ));
                }
                other => {
                    return Err(EvalError::no_overload(
                        "_[_]",
                        &[Value::List(list), other.to_static()],
                    ));
                }
            };
            usize::try_from(i)
                .ok()
                .and_then(|i| list.get(i))
                .ok_or_else(|| {
                    EvalError::new(format!(
                        "index out of bounds: {i}, list size {}",
                        list.len()
                    ))
                })
        }
        Value::Map(map) => match key {
            Value::Bool(_)
            | Value::Int(_)
            | Value::Uint(_)
            | Value::Double(_)
            | Value::String(_) => map.get(key).ok_or_else(|| no_such_key(key)),
            other => Err(EvalError::new(format!(
                "unsupported map key type: {}",
                other.kind().name()
            ))),
        },
        other => Err(EvalError::no_overload("_[_]", &[other, key.to_static()])),
    }
}

#[inline(never)]
fn select<'a>(operand: Value<'a>, field: &'a str, test_only: bool) -> Result<Value<'a>, EvalError> {
    match operand {
        Value::Map(m) => {
            let v = m.get_str(field);
            if test_only {
                Ok(Value::Bool(v.is_some()))
            } else {
                v.ok_or_else(|| no_such_key(&Value::str(field)))
            }
        }
        other => Err(EvalError::new(format!(
            "type `{}` has no field `{field}`",
            other.kind().name()
        ))),
    }
}

/// The size a library call is charged for touching `v`. A call costs one
/// step plus the sizes of the lists and maps it reads and returns, so that
/// `sort`, `distinct` or `lists.range` on large data draw on the budget as a
/// comprehension over the same data would.
fn size_of(v: &Value<'_>) -> u64 {
    match v {
        Value::List(l) => l.len() as u64,
        Value::Map(m) => m.len() as u64,
        // Text is cheap per byte; a step per 64 bytes keeps large bodies
        // affordable and runaway string building bounded.
        Value::String(s) => s.len() as u64 / 64,
        Value::Bytes(b) => b.len() as u64 / 64,
        _ => 0,
    }
}

fn charged<'a>(
    f: &Frame<'a, '_>,
    res: Result<Value<'a>, EvalError>,
) -> Result<Value<'a>, EvalError> {
    let v = res?;
    charge(f, size_of(&v))?;
    Ok(v)
}

#[inline(never)]
fn call<'a>(
    name: &str,
    imp: &Impl,
    args: &'a [Node],
    f: &Frame<'a, '_>,
) -> Result<Value<'a>, EvalError> {
    match (imp, args) {
        (Impl::Unary(func), [a]) => {
            let a = a.eval(f)?;
            charge(f, 1 + size_of(&a))?;
            charged(f, func(a))
        }
        (Impl::Binary(func), [a, b]) => {
            let (a, b) = (a.eval(f)?, b.eval(f)?);
            charge(f, 1 + size_of(&a) + size_of(&b))?;
            charged(f, func(a, b))
        }
        _ => {
            let mut vals = Vec::with_capacity(args.len());
            for a in args {
                vals.push(a.eval(f)?);
            }
            charge(f, 1 + vals.iter().map(size_of).sum::<u64>())?;
            charged(
                f,
                match imp {
                    Impl::Variadic(func) => func(&vals),
                    Impl::Closure(func) => func(&vals),
                    Impl::Host(func) => func(f.act, &vals),
                    _ => Err(EvalError::no_overload(name, &vals)),
                },
            )
        }
    }
}

#[inline(never)]
pub(crate) fn invoke<'a>(
    imp: &Impl,
    act: &'a dyn Activation,
    mut vals: Vec<Value<'a>>,
) -> Result<Value<'a>, EvalError> {
    match imp {
        Impl::Unary(func) if vals.len() == 1 => func(vals.swap_remove(0)),
        Impl::Binary(func) if vals.len() == 2 => {
            let b = vals.swap_remove(1);
            let a = vals.swap_remove(0);
            func(a, b)
        }
        Impl::Variadic(func) => func(&vals),
        Impl::Closure(func) => func(&vals),
        Impl::Host(func) => func(act, &vals),
        _ => Err(EvalError::new("internal: implementation arity mismatch")),
    }
}

fn charge(f: &Frame<'_, '_>, cost: u64) -> Result<(), EvalError> {
    let left = f.budget.get();
    if left < cost {
        return Err(EvalError::new("evaluation cost limit exceeded"));
    }
    f.budget.set(left - cost);
    Ok(())
}

#[inline(never)]
fn comprehension<'a>(c: &'a Comp, f: &Frame<'a, '_>) -> Result<Value<'a>, EvalError> {
    if matches!(c.kind, Macro::All | Macro::Exists) {
        return quantifier(c, f).map(Value::Bool);
    }
    let range = Range::of(c.range.eval(f)?)?;
    let mut error: Option<EvalError> = None;
    let mut count = 0usize;
    let mut out: Vec<Value<'a>> = Vec::new();
    let mut out_map: Vec<(Key<'a>, Value<'a>)> = Vec::new();
    let mut out_map_keys: Vec<Value<'a>> = Vec::new();
    for i in 0..range.len() {
        let Some((first, second)) = range.item(i, c.two_vars) else {
            break;
        };
        charge(f, c.cost)?;
        let outer = Local {
            value: first,
            parent: f.locals,
        };
        let inner_local;
        let local: &Local<'a, '_> = match second {
            Some(v) => {
                inner_local = Local {
                    value: v,
                    parent: Some(&outer),
                };
                &inner_local
            }
            None => &outer,
        };
        let inner = Frame {
            act: f.act,
            locals: Some(local),
            budget: f.budget,
        };
        let keep = |inner: &Frame<'a, '_>| -> Result<bool, EvalError> {
            match &c.filter {
                None => Ok(true),
                Some(p) => match p.eval(inner)? {
                    Value::Bool(b) => Ok(b),
                    other => Err(EvalError::no_overload(c.kind.name(), &[other])),
                },
            }
        };
        match c.kind {
            Macro::All | Macro::Exists => {
                let decisive = c.kind == Macro::Exists;
                match c.body.eval(&inner) {
                    Ok(Value::Bool(b)) if b == decisive => return Ok(Value::Bool(decisive)),
                    Ok(Value::Bool(_)) => {}
                    Ok(other) => {
                        error = error.or(Some(EvalError::no_overload(c.kind.name(), &[other])))
                    }
                    Err(e) => error = error.or(Some(e)),
                }
            }
            Macro::ExistsOne => match c.body.eval(&inner)? {
                Value::Bool(true) => count += 1,
                Value::Bool(false) => {}
                other => return Err(EvalError::no_overload(c.kind.name(), &[other])),
            },
            Macro::Filter => match c.body.eval(&inner)? {
                Value::Bool(true) => out.push(outer.value.clone()),
                Value::Bool(false) => {}
                other => return Err(EvalError::no_overload("filter", &[other])),
            },
            Macro::Map | Macro::TransformList => {
                if keep(&inner)? {
                    out.push(c.body.eval(&inner)?);
                }
            }
            Macro::SortBy => {
                let key = c.body.eval(&inner)?;
                out_map_keys.push(key);
                out.push(outer.value.clone());
            }
            Macro::TransformMap => {
                if keep(&inner)? {
                    let key = Key::from_value(&outer.value)
                        .ok_or_else(|| EvalError::new("unsupported map key type"))?;
                    out_map.push((key, c.body.eval(&inner)?));
                }
            }
        }
    }
    match c.kind {
        Macro::All | Macro::Exists => match error {
            Some(e) => Err(e),
            None => Ok(Value::Bool(c.kind == Macro::All)),
        },
        Macro::ExistsOne => Ok(Value::Bool(count == 1)),
        Macro::Filter | Macro::Map | Macro::TransformList => {
            Ok(Value::List(List::Values(out.into())))
        }
        Macro::TransformMap => Ok(Value::Map(Map::Values(Arc::new(MapData::from_entries(
            out_map,
        )?)))),
        Macro::SortBy => crate::stdlib::lists::sort_by_keys(out, out_map_keys),
    }
}

/// `all` and `exists`: the body is a condition, evaluated with
/// [`Node::test`], and a caller's multi-map is walked by
/// [`MultiMap::find_key`] rather than key by key.
///
/// [`MultiMap::find_key`]: crate::MultiMap::find_key
fn quantifier<'a>(c: &'a Comp, f: &Frame<'a, '_>) -> Result<bool, EvalError> {
    let decisive = c.kind == Macro::Exists;
    let mut error: Option<EvalError> = None;
    // One iteration: `Some(result)` ends the loop (decided, or out of budget).
    let mut decide = |body: Result<bool, EvalError>| match body {
        Ok(b) if b == decisive => Some(Ok(decisive)),
        Ok(_) => None,
        Err(e) => {
            error.get_or_insert(e);
            None
        }
    };
    // One iteration: `Some(result)` ends the loop (decided, or out of budget).
    let mut step =
        |first: Value<'a>, second: Option<Value<'a>>| -> Option<Result<bool, EvalError>> {
            if let Err(e) = charge(f, c.cost) {
                return Some(Err(e));
            }
            let outer = Local {
                value: first,
                parent: f.locals,
            };
            let body = match second {
                None => {
                    let body = test_body(c, f, &outer);
                    release(outer.value);
                    body
                }
                Some(v) => {
                    let inner = Local {
                        value: v,
                        parent: Some(&outer),
                    };
                    test_body(c, f, &inner)
                }
            };
            decide(body)
        };
    let mut ended = None;
    match c.range.eval(f)? {
        // Keys of a caller's map (`req.query_params.exists(k, ...)`): the
        // variable is a borrowed string, built in place per key.
        Value::Map(Map::Multi(m)) if !c.two_vars => {
            m.find_key(&mut |k| {
                if let Err(e) = charge(f, c.cost) {
                    ended = Some(Err(e));
                    return true;
                }
                let local = Local {
                    value: Value::String(Str::Borrowed(k)),
                    parent: f.locals,
                };
                let body = test_body(c, f, &local);
                release(local.value);
                ended = decide(body);
                ended.is_some()
            });
        }
        range => {
            let range = Range::of(range)?;
            for i in 0..range.len() {
                let Some((first, second)) = range.item(i, c.two_vars) else {
                    break;
                };
                ended = step(first, second);
                if ended.is_some() {
                    break;
                }
            }
        }
    }
    match (ended, error) {
        (Some(result), _) => result,
        (None, Some(e)) => Err(e),
        (None, None) => Ok(!decisive),
    }
}

/// The body of `all` or `exists` with `local` as its innermost variable.
#[inline(always)]
fn test_body<'a>(c: &'a Comp, f: &Frame<'a, '_>, local: &Local<'a, '_>) -> Result<bool, EvalError> {
    let inner = Frame {
        act: f.act,
        locals: Some(local),
        budget: f.budget,
    };
    match &c.body {
        Node::Test(cond) => cond.test(inner.act, &inner),
        node => node.test(&inner),
    }
}

/// Drops a comprehension variable's value. Most are strings borrowed from
/// the request, which own nothing: those skip the call to `Value`'s drop
/// glue, one per element otherwise.
#[inline(always)]
fn release(v: Value<'_>) {
    if matches!(v, Value::String(Str::Borrowed(_))) {
        std::mem::forget(v);
    } else {
        drop(v);
    }
}

/// What a comprehension iterates, read by index so that lists and
/// caller-owned maps are not copied first.
enum Range<'a> {
    List(List<'a>),
    Map(Map<'a>),
    Entries(Vec<(Value<'a>, Value<'a>)>),
}

impl<'a> Range<'a> {
    /// What iterating `value` visits: a list's elements or a map's keys.
    fn of(value: Value<'a>) -> Result<Range<'a>, EvalError> {
        Ok(match value {
            Value::List(l) => Range::List(l),
            Value::Map(Map::Host(h)) => Range::Entries(Map::Host(h).entries()),
            Value::Map(m) => Range::Map(m),
            other => {
                return Err(EvalError::new(format!(
                    "expression of type `{}` cannot be iterated; use a list or a map",
                    other.kind().name()
                )));
            }
        })
    }

    fn len(&self) -> usize {
        match self {
            Range::List(l) => l.len(),
            Range::Map(m) => m.len(),
            Range::Entries(e) => e.len(),
        }
    }

    /// The variables of iteration `i`: the element (or index and element)
    /// of a list, the key (or key and value) of a map.
    fn item(&self, i: usize, two_vars: bool) -> Option<(Value<'a>, Option<Value<'a>>)> {
        match self {
            Range::List(l) => {
                let v = l.get(i)?;
                Some(if two_vars {
                    (Value::Int(i64::try_from(i).ok()?), Some(v))
                } else {
                    (v, None)
                })
            }
            Range::Map(Map::Multi(m)) => {
                let k = m.key_at(i)?;
                let v = two_vars.then_some(Value::List(List::Multi(*m, Str::Borrowed(k))));
                Some((Value::str(k), v))
            }
            Range::Map(Map::Values(m)) => {
                let (k, v) = m.entry(i)?;
                Some((k.to_value(), two_vars.then(|| v.clone())))
            }
            Range::Map(Map::Host(_)) => None,
            Range::Entries(e) => {
                let (k, v) = e.get(i)?;
                Some((k.clone(), two_vars.then(|| v.clone())))
            }
        }
    }
}

/// Evaluates a node without variables, for constant folding.
pub(crate) fn eval_const(node: &Node) -> Result<Value<'static>, EvalError> {
    let budget = Cell::new(DEFAULT_BUDGET);
    let frame = Frame {
        act: &(),
        locals: None,
        budget: &budget,
    };
    node.eval(&frame).map(|v| v.to_static())
}

#[cfg(test)]
mod tests;
