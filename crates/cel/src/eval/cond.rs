//! Conditions: a boolean program's top, recompiled for [`Program::eval_bool`].
//!
//! Policy conditions are mostly `&&` and `||` chains of comparisons between
//! one variable and constants: `req.method == 'POST'`, `email in [...]`,
//! `path.startsWith('/api')`, `'admin' in req.headers['x-roles']`. A
//! [`Cond`] gives each of those shapes a variant that reads its variable
//! directly and compares in place, and flattens the chains, so that the
//! common condition costs a handful of small calls instead of a walk
//! through the general [`Node`] evaluator. Everything else stays a `Node`.
//!
//! The semantics are exactly the nodes': a chain absorbs errors as CEL's
//! commutative `&&` and `||` do (a `false` in an `&&` chain wins over an
//! error anywhere in it; otherwise the first error stands).
//!
//! [`Program::eval_bool`]: super::Program::eval_bool

use std::sync::Arc;

use super::{Activation, EvalError, Frame, Node, StrPred, no_such_attribute, no_such_key, str_eq};
use crate::env::VarId;
use crate::pattern::Pattern;
use crate::value::{Map, Str, Value};

/// A compiled condition.
#[derive(Debug)]
pub(crate) enum Cond {
    /// `a && b && ...`
    All(Box<[Cond]>),
    /// `a || b || ...`
    Any(Box<[Cond]>),
    Not(Box<Cond>),
    /// `v == 'c'`, or `v != 'c'` when negated.
    VarEqStr(Var, Box<str>, bool),
    /// `v in ['a', 'b']`, or its negation.
    VarInStrs(Var, Box<[Box<str>]>, bool),
    /// `v.startsWith('p')` and the other string predicates.
    VarStrPred(Var, StrPred, Box<str>),
    /// Neighbouring string predicates on one variable in a chain:
    /// `p.startsWith('/.env') || p.startsWith('/.git') || ...` (`true`: of
    /// `||`). The variable is read once.
    VarStrPreds(Var, Box<[(StrPred, Box<str>)]>, bool),
    /// The same on the innermost comprehension variable: `k` in
    /// `m.exists(k, k.startsWith('debug'))`.
    LocalStrPred(StrPred, Box<str>),
    /// `v.matches('re')`.
    VarMatches(Var, Box<Pattern>),
    /// `'c' in v['k']`: a value among a multi-map key's values.
    StrInVarKey(Box<str>, Var, Box<str>),
    /// `'k' in v`: a key of a map (`'x-api-key' in req.headers`) or an
    /// element of a list; or its negation.
    StrInVar(Box<str>, Var, bool),
    /// Any other boolean node.
    Node(Node),
}

/// A declared variable a leaf reads, with its name for the error when it
/// is absent.
#[derive(Debug)]
pub(crate) struct Var {
    id: VarId,
    name: Arc<str>,
}

impl Var {
    /// The variable `node` reads, if it is a plain read.
    fn of(node: &Node) -> Option<Var> {
        match node {
            Node::Var(id, name) => Some(Var {
                id: *id,
                name: name.clone(),
            }),
            _ => None,
        }
    }
}

impl Cond {
    /// The condition for `node`, a boolean node.
    pub(crate) fn from_node(node: Node) -> Cond {
        match node {
            Node::And(l, r) => {
                let mut items = Vec::new();
                flatten(*l, &mut items, true);
                flatten(*r, &mut items, true);
                match group(items, false) {
                    mut one if one.len() == 1 => one.remove(0),
                    items => Cond::All(items.into()),
                }
            }
            Node::Or(l, r) => {
                let mut items = Vec::new();
                flatten(*l, &mut items, false);
                flatten(*r, &mut items, false);
                match group(items, true) {
                    mut one if one.len() == 1 => one.remove(0),
                    items => Cond::Any(items.into()),
                }
            }
            Node::Not(x) => match Cond::from_node(*x) {
                Cond::VarEqStr(v, c, negate) => Cond::VarEqStr(v, c, !negate),
                Cond::VarInStrs(v, set, negate) => Cond::VarInStrs(v, set, !negate),
                Cond::StrInVar(needle, v, negate) => Cond::StrInVar(needle, v, !negate),
                Cond::Not(inner) => *inner,
                other => Cond::Not(Box::new(other)),
            },
            Node::EqStr(x, c) => match Var::of(&x) {
                Some(v) => Cond::VarEqStr(v, c, false),
                None => Cond::Node(Node::EqStr(x, c)),
            },
            Node::NeStr(x, c) => match Var::of(&x) {
                Some(v) => Cond::VarEqStr(v, c, true),
                None => Cond::Node(Node::NeStr(x, c)),
            },
            Node::InStrs(x, set) => match Var::of(&x) {
                Some(v) => Cond::VarInStrs(v, set, false),
                None => Cond::Node(Node::InStrs(x, set)),
            },
            Node::StrPred(x, pred, arg) => match (Var::of(&x), &*x) {
                (Some(v), _) => Cond::VarStrPred(v, pred, arg),
                (None, Node::Local(0)) => Cond::LocalStrPred(pred, arg),
                (None, _) => Cond::Node(Node::StrPred(x, pred, arg)),
            },
            Node::Matches(x, re) => match Var::of(&x) {
                Some(v) => Cond::VarMatches(v, re),
                None => Cond::Node(Node::Matches(x, re)),
            },
            Node::In(x, c) => match (&*x, Var::of(&c)) {
                (Node::Const(Value::String(needle)), Some(v)) => {
                    Cond::StrInVar(Box::from(&**needle), v, false)
                }
                _ => Cond::Node(Node::In(x, c)),
            },
            Node::StrInIndexStr(needle, c, key) => match Var::of(&c) {
                Some(v) => Cond::StrInVarKey(needle, v, key),
                None => Cond::Node(Node::StrInIndexStr(needle, c, key)),
            },
            other => Cond::Node(other),
        }
    }

    /// Whether the top of `node` is one a `Cond` improves on.
    pub(crate) fn fits(node: &Node) -> bool {
        matches!(
            node,
            Node::And(..)
                | Node::Or(..)
                | Node::Not(_)
                | Node::EqStr(..)
                | Node::NeStr(..)
                | Node::InStrs(..)
                | Node::StrPred(..)
                | Node::Matches(..)
                | Node::StrInIndexStr(..)
                | Node::In(..)
        )
    }

    /// Evaluates the condition. Leaves read their variable from `act`
    /// directly (the same activation `f` holds, but statically typed, so
    /// that its `resolve` inlines); [`Cond::Node`] evaluates through `f`.
    ///
    /// Inlined into the loop of `chain`: a chain of leaves runs
    /// without a call per term.
    #[inline(always)]
    pub(crate) fn test<'a, A: Activation + ?Sized>(
        &'a self,
        act: &'a A,
        f: &Frame<'a, '_>,
    ) -> Result<bool, EvalError> {
        match self {
            Cond::All(items) => chain::<false, _>(items, act, f),
            Cond::Any(items) => chain::<true, _>(items, act, f),
            Cond::Not(c) => not(c, act, f),
            Cond::VarEqStr(v, c, negate) => var_eq_str(v, c, *negate, act),
            Cond::VarInStrs(v, set, negate) => var_in_strs(v, set, *negate, act),
            Cond::VarStrPred(v, pred, arg) => var_str_pred(v, *pred, arg, act),
            Cond::VarStrPreds(v, preds, any) => var_str_preds(v, preds, *any, act),
            Cond::LocalStrPred(pred, arg) => match f.locals.map(|l| &l.value) {
                Some(Value::String(s)) => Ok(pred.test(s, arg)),
                _ => local_str_pred_error(*pred, f),
            },
            Cond::VarMatches(v, re) => var_matches(v, re, act),
            Cond::StrInVarKey(needle, v, key) => str_in_var_key(needle, v, key, act),
            Cond::StrInVar(needle, v, negate) => str_in_var(needle, v, act).map(|b| b != *negate),
            Cond::Node(n) => node(n, f),
        }
    }
}

/// Reads a leaf's variable.
#[inline(always)]
fn read<'a, A: Activation + ?Sized>(v: &Var, act: &'a A) -> Result<Value<'a>, EvalError> {
    match act.resolve(v.id) {
        Some(value) => Ok(value),
        None => Err(no_such_attribute(&v.name)),
    }
}

// The leaves are small functions of their own rather than arms inlined
// into `chain`: its loop stays small, and each leaf saves
// only the registers it uses.

#[inline(never)]
fn var_eq_str<A: Activation + ?Sized>(
    v: &Var,
    c: &str,
    negate: bool,
    act: &A,
) -> Result<bool, EvalError> {
    match act.resolve(v.id) {
        Some(Value::String(s)) => Ok(str_eq(&s, c) != negate),
        Some(other) => Ok(other.equals(&Value::str(c)) != negate),
        None => Err(no_such_attribute(&v.name)),
    }
}

#[inline(never)]
fn var_in_strs<A: Activation + ?Sized>(
    v: &Var,
    set: &[Box<str>],
    negate: bool,
    act: &A,
) -> Result<bool, EvalError> {
    match act.resolve(v.id) {
        Some(Value::String(s)) => Ok(set.iter().any(|c| str_eq(c, &s)) != negate),
        // Heterogeneous `in`: a non-string never equals a string.
        Some(_) => Ok(negate),
        None => Err(no_such_attribute(&v.name)),
    }
}

#[inline(never)]
fn var_str_pred<A: Activation + ?Sized>(
    v: &Var,
    pred: StrPred,
    arg: &str,
    act: &A,
) -> Result<bool, EvalError> {
    match act.resolve(v.id) {
        Some(Value::String(s)) => Ok(pred.test(&s, arg)),
        Some(other) => Err(EvalError::no_overload(pred.name(), &[other])),
        None => Err(no_such_attribute(&v.name)),
    }
}

#[inline(never)]
fn var_str_preds<A: Activation + ?Sized>(
    v: &Var,
    preds: &[(StrPred, Box<str>)],
    any: bool,
    act: &A,
) -> Result<bool, EvalError> {
    match act.resolve(v.id) {
        // As the chain of single predicates: the first that equals `any`
        // decides.
        Some(Value::String(s)) => Ok(preds.iter().any(|(p, arg)| p.test(&s, arg) == any) == any),
        // Every term fails alike; the chain reports the first.
        Some(other) => Err(EvalError::no_overload(
            preds.first().map_or("startsWith", |(p, _)| p.name()),
            &[other],
        )),
        None => Err(no_such_attribute(&v.name)),
    }
}

/// A string predicate on a comprehension variable that is not a string.
#[cold]
#[inline(never)]
fn local_str_pred_error(pred: StrPred, f: &Frame<'_, '_>) -> Result<bool, EvalError> {
    Err(match f.locals {
        Some(l) => EvalError::no_overload(pred.name(), std::slice::from_ref(&l.value)),
        None => EvalError::new("internal: unresolved comprehension variable"),
    })
}

#[inline(never)]
fn not<'a, A: Activation + ?Sized>(
    c: &'a Cond,
    act: &'a A,
    f: &Frame<'a, '_>,
) -> Result<bool, EvalError> {
    c.test(act, f).map(|b| !b)
}

#[inline(never)]
fn node<'a>(n: &'a Node, f: &Frame<'a, '_>) -> Result<bool, EvalError> {
    n.test(f)
}

#[inline(never)]
fn var_matches<A: Activation + ?Sized>(v: &Var, re: &Pattern, act: &A) -> Result<bool, EvalError> {
    match read(v, act)? {
        Value::String(s) => Ok(re.is_match(&s)),
        other => Err(EvalError::no_overload("matches", &[other])),
    }
}

#[inline(never)]
fn str_in_var_key<A: Activation + ?Sized>(
    needle: &str,
    v: &Var,
    key: &str,
    act: &A,
) -> Result<bool, EvalError> {
    match read(v, act)? {
        Value::Map(Map::Multi(m)) => m
            .find_value(key, &mut |x| str_eq(x, needle))
            .ok_or_else(|| no_such_key(&Value::str(key))),
        other => super::in_index_value(Value::String(Str::Borrowed(needle)), other, key),
    }
}

#[inline(never)]
fn str_in_var<A: Activation + ?Sized>(needle: &str, v: &Var, act: &A) -> Result<bool, EvalError> {
    let needle = Value::String(Str::Borrowed(needle));
    match read(v, act)? {
        Value::Map(m) => Ok(m.contains_key(&needle)),
        Value::List(l) => Ok(l.contains(&needle)),
        other => Err(EvalError::no_overload("@in", &[needle, other])),
    }
}

/// Merges each run of neighbouring [`Cond::VarStrPred`]s on one variable
/// in a chain (`any`: of `||`) into a [`Cond::VarStrPreds`]. Exact: the
/// terms of a run fail or succeed on the same value, and a run decides
/// the chain where its first deciding term would have.
fn group(items: Vec<Cond>, any: bool) -> Vec<Cond> {
    let mut out: Vec<Cond> = Vec::with_capacity(items.len());
    for item in items {
        let Cond::VarStrPred(v, pred, arg) = item else {
            out.push(item);
            continue;
        };
        if let Some(Cond::VarStrPreds(w, preds, _)) = out.last_mut()
            && w.id == v.id
        {
            let mut all = std::mem::take(preds).into_vec();
            all.push((pred, arg));
            *preds = all.into();
        } else {
            out.push(Cond::VarStrPreds(v, Box::new([(pred, arg)]), any));
        }
    }
    // A run of one stays a single predicate.
    out.into_iter()
        .map(|c| match c {
            Cond::VarStrPreds(v, preds, _) if preds.len() == 1 => {
                let mut preds = preds.into_vec();
                let (pred, arg) = preds.remove(0);
                Cond::VarStrPred(v, pred, arg)
            }
            other => other,
        })
        .collect()
}

/// Appends the terms of a chain (`is_and`: of `&&`) to `items`.
fn flatten(node: Node, items: &mut Vec<Cond>, is_and: bool) {
    match node {
        Node::And(l, r) if is_and => {
            flatten(*l, items, true);
            flatten(*r, items, true);
        }
        Node::Or(l, r) if !is_and => {
            flatten(*l, items, false);
            flatten(*r, items, false);
        }
        other => items.push(Cond::from_node(other)),
    }
}

/// A chain of `&&` (`DECISIVE` false) or `||` (`DECISIVE` true): a term
/// equal to `DECISIVE` decides; else the first error stands; else the
/// chain is `!DECISIVE`. A constant parameter, so that each kind of chain
/// compiles to its own loop.
#[inline(never)]
fn chain<'a, const DECISIVE: bool, A: Activation + ?Sized>(
    items: &'a [Cond],
    act: &'a A,
    f: &Frame<'a, '_>,
) -> Result<bool, EvalError> {
    let mut error = None;
    for c in items {
        match c.test(act, f) {
            Ok(b) if b == DECISIVE => return Ok(DECISIVE),
            Ok(_) => {}
            Err(e) => {
                error.get_or_insert(e);
            }
        }
    }
    error.map_or(Ok(!DECISIVE), Err)
}
