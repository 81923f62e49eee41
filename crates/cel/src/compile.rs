//! Checked AST to [`Program`]: names become [`VarId`]s and function
//! pointers, constant subtrees fold, and the common shapes of policy
//! conditions get dedicated nodes (`x == 'c'`, `x in ['a', 'b']`,
//! `s.startsWith('p')`, `m['k']`, `s.matches('re')` with the regex compiled
//! once).
//!
//! [`VarId`]: crate::VarId

use std::sync::Arc;

use crate::ast::{Expr, ExprKind, Literal, Macro};
use crate::check::{Checked, Ref};
use crate::diagnostic::{Diagnostic, code};
use crate::env::{Env, Overload};
use crate::eval::{Comp, Cond, Node, StrPred, eval_const};
use crate::ops::{ArithOp, CmpOp};
use crate::pattern::Pattern;
use crate::value::{Bin, Str, Value};

/// Compiles a checked expression. Fails only for constant arguments that
/// cannot work (an invalid regex literal).
pub(crate) fn compile(env: &Env, expr: &Expr, checked: &Checked) -> Result<Node, Diagnostic> {
    Compiler { env, checked }.node(expr)
}

struct Compiler<'e> {
    env: &'e Env,
    checked: &'e Checked,
}

fn literal(lit: &Literal) -> Value<'static> {
    match lit {
        Literal::Null => Value::Null,
        Literal::Bool(b) => Value::Bool(*b),
        Literal::Int(i) => Value::Int(*i),
        Literal::Uint(u) => Value::Uint(*u),
        Literal::Double(d) => Value::Double(*d),
        Literal::String(s) => Value::String(Str::Shared(s.clone())),
        Literal::Bytes(b) => Value::Bytes(Bin::Shared(b.clone())),
    }
}

fn is_const(n: &Node) -> bool {
    matches!(n, Node::Const(_))
}

/// Replaces a node whose inputs are all constants by its value. A node that
/// fails stays as it is, so the error surfaces at run time, where `&&` and
/// `||` may still absorb it.
fn fold(node: Node) -> Node {
    match eval_const(&node) {
        // A large constant (`lists.range(100000)`) would live in the program
        // for good; computing it per evaluation keeps it under the budget.
        Ok(Value::List(l)) if l.len() > MAX_FOLDED_LEN => node,
        Ok(Value::Map(m)) if m.len() > MAX_FOLDED_LEN => node,
        Ok(v) => Node::Const(v),
        Err(_) => node,
    }
}

/// The largest list or map constant folding keeps.
const MAX_FOLDED_LEN: usize = 4096;

impl Compiler<'_> {
    fn node(&self, e: &Expr) -> Result<Node, Diagnostic> {
        Ok(match &e.kind {
            ExprKind::Literal(lit) => Node::Const(literal(lit)),
            ExprKind::Ident(name) => self.reference(e, name),
            ExprKind::Select {
                operand,
                field,
                test_only,
            } => {
                if let Some(Ref::Var(id)) = self.checked.reference(e.id) {
                    let name = self
                        .env
                        .var_decl(*id)
                        .map(|d| d.name.clone())
                        .unwrap_or_else(|| Arc::from(&**field));
                    return Ok(if *test_only {
                        Node::VarPresent(*id)
                    } else {
                        Node::Var(*id, name)
                    });
                }
                if let Some(Ref::Unbound(name)) = self.checked.reference(e.id) {
                    return Ok(Node::Unbound(name.clone()));
                }
                let operand = self.node(operand)?;
                let constant = is_const(&operand);
                let node = Node::Select {
                    operand: Box::new(operand),
                    field: Box::from(&**field),
                    test_only: *test_only,
                };
                if constant { fold(node) } else { node }
            }
            ExprKind::Call {
                target,
                function,
                args,
                ..
            } => self.call(e, target.as_deref(), function, args)?,
            ExprKind::List(items) => {
                let items = items
                    .iter()
                    .map(|i| self.node(i))
                    .collect::<Result<Vec<_>, _>>()?;
                let constant = items.iter().all(is_const);
                let node = Node::List(items);
                if constant { fold(node) } else { node }
            }
            ExprKind::Map(entries) => {
                let entries = entries
                    .iter()
                    .map(|(k, v)| Ok((self.node(k)?, self.node(v)?)))
                    .collect::<Result<Vec<_>, Diagnostic>>()?;
                let constant = entries.iter().all(|(k, v)| is_const(k) && is_const(v));
                let node = Node::Map(entries);
                if constant { fold(node) } else { node }
            }
            ExprKind::Struct { type_name, .. } => Node::Fail(Arc::from(format!(
                "message literals are not supported: `{type_name}`"
            ))),
            ExprKind::Comprehension(c) => {
                let range = self.node(&c.range)?;
                let filter = c.filter.as_ref().map(|f| self.node(f)).transpose()?;
                let body = self.node(&c.body)?;
                let cost = 1 + size(&body) + filter.as_ref().map_or(0, size);
                // `all` and `exists` test their body once per element.
                let body = match c.kind {
                    Macro::All | Macro::Exists if Cond::fits(&body) => {
                        Node::Test(Box::new(Cond::from_node(body)))
                    }
                    _ => body,
                };
                Node::Comprehension(Box::new(Comp {
                    kind: c.kind,
                    two_vars: c.var2.is_some(),
                    range,
                    filter,
                    body,
                    cost,
                }))
            }
        })
    }

    fn reference(&self, e: &Expr, name: &Arc<str>) -> Node {
        match self.checked.reference(e.id) {
            Some(Ref::Var(id)) => Node::Var(*id, name.clone()),
            Some(Ref::Local(depth)) => Node::Local(*depth),
            Some(Ref::TypeName(kind)) => Node::Const(Value::Type(*kind)),
            _ => Node::Unbound(name.clone()),
        }
    }

    fn call(
        &self,
        e: &Expr,
        target: Option<&Expr>,
        function: &str,
        args: &[Expr],
    ) -> Result<Node, Diagnostic> {
        let (name, overloads, qualified) = match self.checked.reference(e.id) {
            Some(Ref::Function {
                name,
                overloads,
                qualified,
            }) => (name.clone(), overloads.as_slice(), *qualified),
            _ => (Arc::from(function), &[][..], false),
        };
        let mut all: Vec<&Expr> = Vec::with_capacity(args.len() + 1);
        if let (Some(t), false) = (target, qualified) {
            all.push(t);
        }
        all.extend(args);
        let mut nodes = all
            .iter()
            .map(|a| self.node(a))
            .collect::<Result<Vec<_>, _>>()?;
        let constant = nodes.iter().all(is_const);

        if let Some(node) = self.operator(&name, &mut nodes) {
            let foldable = constant && !matches!(node, Node::Comprehension(_));
            return Ok(if foldable { fold(node) } else { node });
        }
        if let Some(node) = self.specialize(e, &name, &mut nodes)? {
            return Ok(node);
        }

        let func = self.env.function(&name);
        let chosen: Vec<&Overload> = func
            .map(|f| {
                overloads
                    .iter()
                    .filter_map(|i| f.overloads.get(*i))
                    .collect()
            })
            .unwrap_or_default();
        let pure = chosen.iter().all(|o| o.pure);
        let node = match chosen.as_slice() {
            [] => {
                return Ok(Node::Fail(Arc::from(format!(
                    "no matching overload for `{name}`"
                ))));
            }
            [one] => match &one.imp {
                Some(imp) => Node::Call {
                    name,
                    imp: imp.clone(),
                    args: nodes,
                },
                None => Node::Fail(Arc::from(format!(
                    "function `{name}` has no implementation"
                ))),
            },
            many => Node::Dispatch {
                name,
                overloads: many.iter().map(|o| (*o).clone()).collect(),
                args: nodes,
            },
        };
        Ok(if constant && pure { fold(node) } else { node })
    }

    /// Operators the evaluator implements directly.
    fn operator(&self, name: &str, nodes: &mut Vec<Node>) -> Option<Node> {
        let mut it = std::mem::take(nodes).into_iter();
        let (a, b, c) = (it.next(), it.next(), it.next());
        let bx = Box::new;
        let node = match (name, a, b, c) {
            ("_&&_", Some(l), Some(r), None) => Node::And(bx(l), bx(r)),
            ("_||_", Some(l), Some(r), None) => Node::Or(bx(l), bx(r)),
            ("!_", Some(x), None, None) => Node::Not(bx(x)),
            ("-_", Some(x), None, None) => Node::Neg(bx(x)),
            ("_?_:_", Some(c), Some(t), Some(f)) => Node::Cond(bx(c), bx(t), bx(f)),
            ("_==_", Some(Node::Const(k)), Some(x), None)
            | ("_==_", Some(x), Some(Node::Const(k)), None)
                if !is_const(&x) =>
            {
                match k {
                    Value::String(s) => Node::EqStr(bx(x), Box::from(&*s)),
                    k => Node::EqConst(bx(x), k),
                }
            }
            ("_!=_", Some(Node::Const(k)), Some(x), None)
            | ("_!=_", Some(x), Some(Node::Const(k)), None)
                if !is_const(&x) =>
            {
                match k {
                    Value::String(s) => Node::NeStr(bx(x), Box::from(&*s)),
                    k => Node::NeConst(bx(x), k),
                }
            }
            ("_==_", Some(l), Some(r), None) => Node::Eq(bx(l), bx(r)),
            ("_!=_", Some(l), Some(r), None) => Node::Ne(bx(l), bx(r)),
            ("_<_", Some(l), Some(r), None) => Node::Cmp(bx(l), bx(r), CmpOp::Lt),
            ("_<=_", Some(l), Some(r), None) => Node::Cmp(bx(l), bx(r), CmpOp::Le),
            ("_>_", Some(l), Some(r), None) => Node::Cmp(bx(l), bx(r), CmpOp::Gt),
            ("_>=_", Some(l), Some(r), None) => Node::Cmp(bx(l), bx(r), CmpOp::Ge),
            ("_+_", Some(l), Some(r), None) => Node::Arith(bx(l), bx(r), ArithOp::Add),
            ("_-_", Some(l), Some(r), None) => Node::Arith(bx(l), bx(r), ArithOp::Sub),
            ("_*_", Some(l), Some(r), None) => Node::Arith(bx(l), bx(r), ArithOp::Mul),
            ("_/_", Some(l), Some(r), None) => Node::Arith(bx(l), bx(r), ArithOp::Div),
            ("_%_", Some(l), Some(r), None) => Node::Arith(bx(l), bx(r), ArithOp::Rem),
            ("@in", Some(x), Some(Node::Const(Value::List(list))), None)
                if list.iter().all(|v| matches!(v, Value::String(_))) && !is_const(&x) =>
            {
                let strs: Box<[Box<str>]> = list
                    .iter()
                    .filter_map(|v| v.as_str().map(Box::from))
                    .collect();
                Node::InStrs(bx(x), strs)
            }
            ("@in", Some(Node::Const(Value::String(s))), Some(Node::IndexStr(c, key)), None) => {
                Node::StrInIndexStr(Box::from(&*s), c, key)
            }
            ("@in", Some(x), Some(Node::IndexStr(c, key)), None) => Node::InIndexStr(bx(x), c, key),
            ("@in", Some(x), Some(c), None) => Node::In(bx(x), bx(c)),
            ("_[_]", Some(c), Some(Node::Const(Value::String(k))), None) if !is_const(&c) => {
                Node::IndexStr(bx(c), Box::from(&*k))
            }
            ("_[_]", Some(c), Some(i), None) => Node::Index(bx(c), bx(i)),
            (_, a, b, c) => {
                *nodes = a.into_iter().chain(b).chain(c).chain(it).collect();
                return None;
            }
        };
        Some(node)
    }

    /// Library calls with a constant argument that deserve their own node.
    fn specialize(
        &self,
        e: &Expr,
        name: &str,
        nodes: &mut Vec<Node>,
    ) -> Result<Option<Node>, Diagnostic> {
        let pred = match name {
            "startsWith" => Some(StrPred::StartsWith),
            "endsWith" => Some(StrPred::EndsWith),
            "contains" => Some(StrPred::Contains),
            "matches" => None,
            _ => return Ok(None),
        };
        let receiver_is_string = matches!(nodes.first(), Some(n) if !is_const(n));
        let arg = match nodes.as_slice() {
            [_, Node::Const(Value::String(s))] if receiver_is_string => s.clone(),
            _ => return Ok(None),
        };
        // Only when the receiver is known to be a string: `contains` on a
        // dyn receiver might be another overload.
        let recv_ty = match &e.kind {
            ExprKind::Call {
                target: Some(t), ..
            } => self.checked.type_of(t.id).clone(),
            ExprKind::Call { args, .. } => args
                .first()
                .map(|a| self.checked.type_of(a.id).clone())
                .unwrap_or(crate::Type::Dyn),
            _ => crate::Type::Dyn,
        };
        if recv_ty != crate::Type::String {
            return Ok(None);
        }
        let recv = nodes.swap_remove(0);
        Ok(Some(match pred {
            Some(p) => Node::StrPred(Box::new(recv), p, Box::from(&*arg)),
            None => {
                let re = Pattern::new(&arg).map_err(|err| {
                    let span = match &e.kind {
                        ExprKind::Call { args, .. } => {
                            args.last().map(|a| a.span).unwrap_or(e.span)
                        }
                        _ => e.span,
                    };
                    Diagnostic::error(code::BAD_CONSTANT, span, "invalid regular expression")
                        .with_label(first_line(&err.to_string()))
                        .with_help("patterns use RE2 syntax")
                })?;
                Node::Matches(Box::new(recv), Box::new(re))
            }
        }))
    }
}

fn first_line(s: &str) -> String {
    s.lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .to_string()
}

/// Node count, for comprehension step accounting.
fn size(n: &Node) -> u64 {
    1 + match n {
        Node::And(a, b)
        | Node::Or(a, b)
        | Node::Eq(a, b)
        | Node::Ne(a, b)
        | Node::Cmp(a, b, _)
        | Node::Arith(a, b, _)
        | Node::In(a, b)
        | Node::InIndexStr(a, b, _)
        | Node::Index(a, b) => size(a) + size(b),
        Node::Not(a)
        | Node::StrInIndexStr(_, a, _)
        | Node::Neg(a)
        | Node::EqConst(a, _)
        | Node::NeConst(a, _)
        | Node::EqStr(a, _)
        | Node::NeStr(a, _)
        | Node::InStrs(a, _)
        | Node::IndexStr(a, _)
        | Node::StrPred(a, _, _)
        | Node::Matches(a, _) => size(a),
        Node::Select { operand, .. } => size(operand),
        Node::Cond(a, b, c) => size(a) + size(b) + size(c),
        Node::List(items) | Node::Call { args: items, .. } | Node::Dispatch { args: items, .. } => {
            items.iter().map(size).sum()
        }
        Node::Map(entries) => entries.iter().map(|(k, v)| size(k) + size(v)).sum(),
        Node::Comprehension(c) => size(&c.range) + c.cost,
        _ => 0,
    }
}
