//! The type checker: resolves every name against an [`Env`] and gives every
//! node a [`Type`], reporting undeclared names, unknown functions and
//! argument types that match no overload.
//!
//! Resolution follows CEL: a chain `a.b.c` names the longest declared
//! variable it spells (so ngrok's `req.url` can be a string while
//! `req.url.path` is another variable), comprehension variables shadow
//! globals, `ns.f(x)` may name the global function `ns.f`, and names resolve
//! inside the container first.

use std::sync::Arc;

use crate::ast::{Expr, ExprId, ExprKind, Literal, Macro};
use crate::diagnostic::{Diagnostic, code, did_you_mean};
use crate::env::{Env, Function, VarId};
use crate::types::{Kind, Type};

/// What a name or call resolved to.
#[derive(Clone, Debug)]
pub(crate) enum Ref {
    /// A declared variable (an identifier or a whole select chain).
    Var(VarId),
    /// A comprehension variable, `n` scopes up.
    Local(usize),
    /// A type name used as a value (`int`, `string`).
    TypeName(Kind),
    /// A function call and the overloads it may dispatch to.
    Function {
        /// The resolved (possibly qualified) name.
        name: Arc<str>,
        /// Indices into the function's overloads.
        overloads: Overloads,
        /// The call was written `ns.f(x)` for the global `ns.f`.
        qualified: bool,
    },
    /// An undeclared name, in unchecked mode: an error at run time.
    Unbound(Arc<str>),
}

/// Indices into a function's overloads. Most calls match one, which needs
/// no allocation.
#[derive(Clone, Debug)]
pub(crate) enum Overloads {
    One(usize),
    Many(Vec<usize>),
}

impl Overloads {
    pub(crate) fn as_slice(&self) -> &[usize] {
        match self {
            Overloads::One(i) => std::slice::from_ref(i),
            Overloads::Many(v) => v,
        }
    }

    fn from_vec(mut v: Vec<usize>) -> Overloads {
        match (v.pop(), v.is_empty()) {
            (Some(i), true) => Overloads::One(i),
            (Some(i), false) => {
                v.push(i);
                Overloads::Many(v)
            }
            (None, _) => Overloads::Many(v),
        }
    }
}

/// The checker's output: a type for every node and what names resolved to,
/// both indexed by [`ExprId`] (ids are dense).
#[derive(Debug)]
pub struct Checked {
    pub(crate) types: Vec<Type>,
    pub(crate) refs: Vec<Option<Ref>>,
}

impl Checked {
    /// The type of node `id`.
    pub fn type_of(&self, id: ExprId) -> &Type {
        self.types.get(id.index()).unwrap_or(&Type::Dyn)
    }

    /// Whether the expression reads any variable (declared or not). One
    /// that reads none may fold to a constant.
    pub fn reads_variables(&self) -> bool {
        self.refs
            .iter()
            .flatten()
            .any(|r| matches!(r, Ref::Var(_) | Ref::Unbound(_)))
    }

    pub(crate) fn reference(&self, id: ExprId) -> Option<&Ref> {
        self.refs.get(id.index()).and_then(Option::as_ref)
    }
}

/// Checks `expr`. In `strict` mode type errors are diagnostics; otherwise
/// (for expressions run unchecked, as CEL's `disable_check`) names still
/// resolve but mismatches are left to run time.
pub fn check(env: &Env, expr: &Expr, strict: bool) -> (Checked, Vec<Diagnostic>) {
    // The parser numbers children before their parents, so the root's id
    // is the largest; `set` grows the tables for trees built otherwise.
    let n = expr.id.index() + 1;
    let mut c = Checker {
        env,
        strict,
        types: vec![Type::Dyn; n],
        refs: std::iter::repeat_with(|| None).take(n).collect(),
        diags: Vec::new(),
        scopes: Vec::new(),
        name: String::new(),
    };
    c.expr(expr);
    (
        Checked {
            types: c.types,
            refs: c.refs,
        },
        c.diags,
    )
}

struct Checker<'e> {
    env: &'e Env,
    strict: bool,
    types: Vec<Type>,
    refs: Vec<Option<Ref>>,
    diags: Vec<Diagnostic>,
    scopes: Vec<(Arc<str>, Type)>,
    /// A buffer for the dotted names of select chains (`req.url.path`),
    /// which are looked up as variables.
    name: String,
}

impl Checker<'_> {
    fn set(&mut self, id: ExprId, ty: Type) -> Type {
        let i = id.index();
        if self.types.len() <= i {
            self.types.resize(i + 1, Type::Dyn);
        }
        if let Some(slot) = self.types.get_mut(i) {
            *slot = ty.clone();
        }
        ty
    }

    fn set_ref(&mut self, id: ExprId, r: Ref) {
        let i = id.index();
        if self.refs.len() <= i {
            self.refs.resize_with(i + 1, || None);
        }
        if let Some(slot) = self.refs.get_mut(i) {
            *slot = Some(r);
        }
    }

    fn error(&mut self, diag: Diagnostic) -> Type {
        if self.strict {
            self.diags.push(diag);
        }
        Type::Error
    }

    fn local(&self, name: &str) -> Option<(usize, Type)> {
        self.scopes
            .iter()
            .rev()
            .enumerate()
            .find(|(_, (n, _))| &**n == name)
            .map(|(depth, (_, t))| (depth, t.clone()))
    }

    fn is_local(&self, name: &str) -> bool {
        self.scopes.iter().any(|(n, _)| &**n == name)
    }

    fn lookup_var(&self, name: &str) -> Option<(VarId, Type)> {
        self.env
            .resolve(name, |c| self.env.var(c).map(|(id, d)| (id, d.ty.clone())))
    }

    fn expr(&mut self, e: &Expr) -> Type {
        let ty = match &e.kind {
            ExprKind::Literal(lit) => match lit {
                Literal::Null => Type::Null,
                Literal::Bool(_) => Type::Bool,
                Literal::Int(_) => Type::Int,
                Literal::Uint(_) => Type::Uint,
                Literal::Double(_) => Type::Double,
                Literal::String(_) => Type::String,
                Literal::Bytes(_) => Type::Bytes,
            },
            ExprKind::Ident(name) => self.ident(e, name),
            ExprKind::Select {
                operand,
                field,
                test_only,
            } => self.select(e, operand, field, *test_only),
            ExprKind::Call {
                target,
                function,
                args,
                ..
            } => self.call(e, target.as_deref(), function, args),
            ExprKind::List(items) => {
                let tys: Vec<Type> = items.iter().map(|i| self.expr(i)).collect();
                Type::list(join(&tys))
            }
            ExprKind::Map(entries) => {
                let mut keys = Vec::new();
                let mut vals = Vec::new();
                for (k, v) in entries {
                    let kt = self.expr(k);
                    if !matches!(
                        kt,
                        Type::Bool
                            | Type::Int
                            | Type::Uint
                            | Type::String
                            | Type::Dyn
                            | Type::Error
                            | Type::Param(_)
                    ) {
                        self.error(Diagnostic::error(
                            code::TYPE_MISMATCH,
                            k.span,
                            format!("map keys must be bool, int, uint or string, not `{kt}`"),
                        ));
                    }
                    keys.push(kt);
                    vals.push(self.expr(v));
                }
                Type::map(join(&keys), join(&vals))
            }
            ExprKind::Struct { type_name, fields } => {
                for (_, v) in fields {
                    self.expr(v);
                }
                self.error(
                    Diagnostic::error(
                        code::UNSUPPORTED,
                        e.span,
                        format!("message literals are not supported (`{type_name}{{...}}`)"),
                    )
                    .with_help("build a map instead: `{'field': value}`"),
                )
            }
            ExprKind::Comprehension(c) => {
                let range = self.expr(&c.range);
                let (first, second) = match &range {
                    Type::List(elem) => {
                        if c.var2.is_some() {
                            (Type::Int, (**elem).clone())
                        } else {
                            ((**elem).clone(), Type::Dyn)
                        }
                    }
                    Type::Map(key, value) => ((**key).clone(), (**value).clone()),
                    Type::Object(_) => (Type::String, Type::Dyn),
                    Type::Dyn | Type::Error => (Type::Dyn, Type::Dyn),
                    other => {
                        let other = other.clone();
                        self.error(
                            Diagnostic::error(
                                code::TYPE_MISMATCH,
                                c.range.span,
                                format!("`{}` cannot iterate over `{other}`", c.kind.name()),
                            )
                            .with_label("expected a list or a map"),
                        );
                        (Type::Dyn, Type::Dyn)
                    }
                };
                let var_ty = first.clone();
                self.scopes.push((c.var.clone(), first.clone()));
                if let Some(v2) = &c.var2 {
                    self.scopes.push((v2.clone(), second.clone()));
                }
                if let Some(filter) = &c.filter {
                    let t = self.expr(filter);
                    self.expect_bool(filter, &t, c.kind);
                }
                let body = self.expr(&c.body);
                self.scopes.pop();
                if c.var2.is_some() {
                    self.scopes.pop();
                }
                match c.kind {
                    Macro::All | Macro::Exists | Macro::ExistsOne => {
                        self.expect_bool(&c.body, &body, c.kind);
                        Type::Bool
                    }
                    Macro::Map | Macro::TransformList => Type::list(body),
                    Macro::TransformMap => Type::map(first, body),
                    Macro::Filter => {
                        self.expect_bool(&c.body, &body, c.kind);
                        Type::list(var_ty)
                    }
                    Macro::SortBy => Type::list(var_ty),
                }
            }
        };
        self.set(e.id, ty)
    }

    /// The type already given to `e`.
    fn checked_type(&self, e: &Expr) -> Type {
        self.types.get(e.id.index()).cloned().unwrap_or(Type::Dyn)
    }

    fn expect_bool(&mut self, e: &Expr, t: &Type, m: Macro) {
        if !matches!(t, Type::Bool | Type::Dyn | Type::Error) {
            self.error(Diagnostic::error(
                code::TYPE_MISMATCH,
                e.span,
                format!("the predicate of `{}` must be `bool`, not `{t}`", m.name()),
            ));
        }
    }

    fn ident(&mut self, e: &Expr, name: &Arc<str>) -> Type {
        if let Some((depth, ty)) = self.local(name) {
            self.set_ref(e.id, Ref::Local(depth));
            return ty;
        }
        if let Some((id, ty)) = self.lookup_var(name) {
            self.set_ref(e.id, Ref::Var(id));
            return ty;
        }
        if let Some((kind, ty)) = type_name(name.strip_prefix('.').unwrap_or(name)) {
            self.set_ref(e.id, Ref::TypeName(kind));
            return Type::type_of(ty);
        }
        self.undeclared(e, name)
    }

    fn undeclared(&mut self, e: &Expr, name: &str) -> Type {
        self.set_ref(e.id, Ref::Unbound(Arc::from(name)));
        let names = self
            .env
            .vars()
            .iter()
            .map(|v| &*v.name)
            .chain(self.scopes.iter().map(|(n, _)| &**n));
        let suggestion = did_you_mean(name, names).map(str::to_string);
        let diag = Diagnostic::error(
            code::UNDECLARED,
            e.span,
            format!("undeclared reference to `{name}`"),
        )
        .with_suggestion(suggestion.as_deref());
        self.error(diag)
    }

    fn select(&mut self, e: &Expr, operand: &Expr, field: &Arc<str>, test_only: bool) -> Type {
        // A whole chain may name a variable: `req.url.path`.
        let mut name = std::mem::take(&mut self.name);
        name.clear();
        let resolved = if qualified_name_into(operand, &mut name) {
            name.push('.');
            name.push_str(field);
            self.select_var(e, &name, test_only)
        } else {
            None
        };
        self.name = name;
        if let Some(ty) = resolved {
            return ty;
        }
        let operand_ty = self.expr(operand);
        let ty = match &operand_ty {
            Type::Map(key, value) => {
                if !matches!(**key, Type::String | Type::Dyn | Type::Param(_)) {
                    let key = (**key).clone();
                    self.error(Diagnostic::error(
                        code::TYPE_MISMATCH,
                        e.span,
                        format!("cannot select field `{field}` from a map with `{key}` keys"),
                    ));
                }
                (**value).clone()
            }
            Type::Object(obj) => match obj.field(field) {
                Some(t) => t.clone(),
                None => {
                    let obj = obj.clone();
                    let suggestion = did_you_mean(field, obj.fields.iter().map(|(n, _)| &**n))
                        .map(str::to_string);
                    self.error(
                        Diagnostic::error(
                            code::UNKNOWN_FIELD,
                            e.span,
                            format!("`{}` has no field `{field}`", obj.name),
                        )
                        .with_suggestion(suggestion.as_deref()),
                    )
                }
            },
            Type::Dyn | Type::Error => Type::Dyn,
            other => {
                let other = other.clone();
                self.error(Diagnostic::error(
                    code::UNKNOWN_FIELD,
                    e.span,
                    format!("type `{other}` has no fields (selecting `{field}`)"),
                ))
            }
        };
        if test_only { Type::Bool } else { ty }
    }

    /// The type of the select chain `e`, which spells `name`, if the chain
    /// names a variable, or is undeclared as a whole (no prefix of it is).
    fn select_var(&mut self, e: &Expr, name: &str, test_only: bool) -> Option<Type> {
        let first = name.split('.').next().unwrap_or("");
        if self.is_local(first) {
            return None;
        }
        if let Some((id, ty)) = self.lookup_var(name) {
            self.set_ref(e.id, Ref::Var(id));
            return Some(if test_only { Type::Bool } else { ty });
        }
        // No prefix of the chain is declared: report the whole name.
        if !self.any_prefix_declared(name) {
            return Some(self.undeclared(e, name));
        }
        None
    }

    fn any_prefix_declared(&self, name: &str) -> bool {
        let mut prefix = name;
        loop {
            if self.lookup_var(prefix).is_some() || type_name(prefix).is_some() {
                return true;
            }
            match prefix.rfind('.') {
                Some(i) => prefix = prefix.get(..i).unwrap_or(""),
                None => return false,
            }
        }
    }

    fn call(
        &mut self,
        e: &Expr,
        target: Option<&Expr>,
        function: &Arc<str>,
        args: &[Expr],
    ) -> Type {
        // `&&`, `||`, `!`: a non-bool operand is reported where it stands,
        // which reads better than a mismatch on the whole chain.
        if target.is_none() && matches!(&**function, "_&&_" | "_||_" | "!_") {
            let mut ok = true;
            for arg in args {
                let t = self.expr(arg);
                if !matches!(t, Type::Bool | Type::Dyn | Type::Error | Type::Param(_)) {
                    ok = false;
                    let op = display_name(function);
                    self.error(
                        Diagnostic::error(
                            code::TYPE_MISMATCH,
                            arg.span,
                            format!("expected `bool`, found `{t}`"),
                        )
                        .with_label(format!("an operand of `{op}`"))
                        .with_help(
                            "compare the value to make a condition, e.g. `x == ...` or `x > 0`",
                        ),
                    );
                }
            }
            if ok {
                let mut arg_tys = ArgTypes::new(args.len());
                for a in args {
                    arg_tys.push(self.checked_type(a));
                }
                return self.resolve(e, function, false, arg_tys.as_slice(), false);
            }
            return Type::Bool;
        }
        let env = self.env;
        // `ns.f(x)`: a qualified global function, when `ns` is not a variable.
        if let Some(t) = target {
            let mut name = std::mem::take(&mut self.name);
            name.clear();
            let mut found = None;
            if qualified_name_into(t, &mut name) {
                let first = name.split('.').next().unwrap_or("");
                if !self.is_local(first) && self.lookup_var(&name).is_none() {
                    name.push('.');
                    name.push_str(function);
                    found = env.resolve(&name, |c| env.function(c));
                }
            }
            self.name = name;
            if let Some(func) = found {
                let mut arg_tys = ArgTypes::new(args.len());
                for a in args {
                    arg_tys.push(self.expr(a));
                }
                return self.resolve_function(e, func, false, arg_tys.as_slice(), true);
            }
        }
        let mut arg_tys = ArgTypes::new(args.len() + usize::from(target.is_some()));
        if let Some(t) = target {
            arg_tys.push(self.expr(t));
        }
        for a in args {
            arg_tys.push(self.expr(a));
        }
        if target.is_some() {
            return self.resolve(e, function, true, arg_tys.as_slice(), false);
        }
        match env.resolve(function, |c| env.function(c)) {
            Some(func) => self.resolve_function(e, func, false, arg_tys.as_slice(), false),
            None => self.resolve(e, function, false, arg_tys.as_slice(), false),
        }
    }

    fn resolve(
        &mut self,
        e: &Expr,
        name: &str,
        member: bool,
        args: &[Type],
        qualified: bool,
    ) -> Type {
        let env = self.env;
        let Some(func) = env.function(name) else {
            let suggestion = did_you_mean(
                name,
                env.function_names()
                    .filter(|n| !n.contains('_') && !n.starts_with('@')),
            )
            .or_else(|| other_language(name).filter(|n| env.function(n).is_some()))
            .map(str::to_string);
            let shown = display_name(name);
            let span = match &e.kind {
                ExprKind::Call { name_span, .. } => *name_span,
                _ => e.span,
            };
            return self.error(
                Diagnostic::error(
                    code::UNKNOWN_FUNCTION,
                    span,
                    format!("unknown function `{shown}`"),
                )
                .with_suggestion(suggestion.as_deref()),
            );
        };
        self.resolve_function(e, func, member, args, qualified)
    }

    /// Picks the overloads of `func` that `args` may call.
    fn resolve_function(
        &mut self,
        e: &Expr,
        func: &Function,
        member: bool,
        args: &[Type],
        qualified: bool,
    ) -> Type {
        let name = &*func.name;
        let mut matched: Option<Overloads> = None;
        let mut result: Option<Type> = None;
        let mut same_result = true;
        for (i, o) in func.overloads.iter().enumerate() {
            if o.member != member || o.params.len() != args.len() {
                continue;
            }
            let mut subst = Subst::default();
            if o.params
                .iter()
                .zip(args)
                .all(|(p, a)| assignable(p, a, &mut subst))
            {
                let r = substitute(&o.result, &subst);
                match &result {
                    None => result = Some(r),
                    Some(prev) if *prev != r => same_result = false,
                    Some(_) => {}
                }
                matched = Some(match matched {
                    None => Overloads::One(i),
                    Some(Overloads::One(first)) => Overloads::Many(vec![first, i]),
                    Some(Overloads::Many(mut v)) => {
                        v.push(i);
                        Overloads::Many(v)
                    }
                });
            }
        }
        let Some(overloads) = matched else {
            let shape: Vec<String> = args.iter().map(ToString::to_string).collect();
            let shown = display_name(name);
            let operator = is_operator(name);
            let applied = match (operator, shape.as_slice()) {
                (true, [a, b]) if name == "_[_]" => format!("`{a}[{b}]`"),
                (true, [a, b]) => format!("`{a} {shown} {b}`"),
                (true, [a]) => format!("`{shown}{a}`"),
                _ if member => {
                    let (recv, rest) = shape
                        .split_first()
                        .map(|(r, rest)| (r.clone(), rest.join(", ")))
                        .unwrap_or_default();
                    format!("`{recv}.{shown}({rest})`")
                }
                _ => format!("`{shown}({})`", shape.join(", ")),
            };
            let sigs: Vec<String> = func
                .overloads
                .iter()
                .filter(|o| o.member == member)
                .take(6)
                .map(|o| o.signature(&shown))
                .collect();
            let mut diag = Diagnostic::error(
                code::NO_OVERLOAD,
                e.span,
                format!("no matching overload for {applied}"),
            );
            if operator && args.len() == 2 && name != "@in" && name != "_[_]" {
                diag = diag.with_help(
                    "both sides must have the same type; convert one, e.g. `int(...)` or `string(...)`",
                );
            } else if sigs.is_empty() {
                let other = if member {
                    format!("call it as `{shown}(...)`")
                } else {
                    format!("call it as a method, `x.{shown}(...)`")
                };
                diag = diag.with_help(other);
            } else {
                diag = diag.with_help(format!("expected {}", sigs.join("; ")));
            }
            if self.strict {
                self.diags.push(diag);
            }
            // Unchecked mode: dispatch on runtime kinds among same-shape overloads.
            let fallback: Vec<usize> = func
                .overloads
                .iter()
                .enumerate()
                .filter(|(_, o)| o.member == member && o.params.len() == args.len())
                .map(|(i, _)| i)
                .collect();
            self.set_ref(
                e.id,
                Ref::Function {
                    name: func.name.clone(),
                    overloads: Overloads::from_vec(fallback),
                    qualified,
                },
            );
            return if self.strict { Type::Error } else { Type::Dyn };
        };
        self.set_ref(
            e.id,
            Ref::Function {
                name: func.name.clone(),
                overloads,
                qualified,
            },
        );
        match result {
            Some(r) if same_result => r,
            _ => Type::Dyn,
        }
    }
}

/// Writes the dotted name `e` spells (as [`Expr::qualified_name`] gives it)
/// to `out`, returning false if it spells none.
fn qualified_name_into(e: &Expr, out: &mut String) -> bool {
    match &e.kind {
        ExprKind::Ident(name) => {
            out.push_str(name);
            true
        }
        ExprKind::Select {
            operand,
            field,
            test_only: false,
        } => {
            if !qualified_name_into(operand, out) {
                return false;
            }
            out.push('.');
            out.push_str(field);
            true
        }
        _ => false,
    }
}

/// The argument types of a call, receiver first. Calls rarely pass more
/// than four, which then need no allocation.
enum ArgTypes {
    Inline([Type; 4], usize),
    Heap(Vec<Type>),
}

impl ArgTypes {
    fn new(n: usize) -> ArgTypes {
        if n <= 4 {
            ArgTypes::Inline([Type::Dyn, Type::Dyn, Type::Dyn, Type::Dyn], 0)
        } else {
            ArgTypes::Heap(Vec::with_capacity(n))
        }
    }

    fn push(&mut self, ty: Type) {
        match self {
            ArgTypes::Inline(slots, len) => match slots.get_mut(*len) {
                Some(slot) => {
                    *slot = ty;
                    *len += 1;
                }
                None => {
                    let mut v = slots.to_vec();
                    v.push(ty);
                    *self = ArgTypes::Heap(v);
                }
            },
            ArgTypes::Heap(v) => v.push(ty),
        }
    }

    fn as_slice(&self) -> &[Type] {
        match self {
            ArgTypes::Inline(slots, len) => slots.get(..*len).unwrap_or(&[]),
            ArgTypes::Heap(v) => v,
        }
    }
}

/// Type parameter bindings while an overload is matched. Signatures use
/// one or two parameters (`A`, `B`), so slots inline replace a map.
#[derive(Default)]
struct Subst {
    slots: [Option<(Arc<str>, Type)>; 4],
    more: Vec<(Arc<str>, Type)>,
}

impl Subst {
    fn get(&self, param: &str) -> Option<&Type> {
        self.slots
            .iter()
            .flatten()
            .chain(&self.more)
            .find(|(p, _)| &**p == param)
            .map(|(_, t)| t)
    }

    fn insert(&mut self, param: &Arc<str>, ty: Type) {
        let bound = self
            .slots
            .iter_mut()
            .flatten()
            .chain(&mut self.more)
            .find(|(p, _)| p == param);
        if let Some((_, t)) = bound {
            *t = ty;
        } else if let Some(free) = self.slots.iter_mut().find(|s| s.is_none()) {
            *free = Some((param.clone(), ty));
        } else {
            self.more.push((param.clone(), ty));
        }
    }
}

/// Whether `name` is one of CEL's operator functions.
fn is_operator(name: &str) -> bool {
    name.starts_with('_') || name.starts_with('@') || name == "!_" || name == "-_"
}

/// How users write operator names in messages: `_+_` is `+`.
fn display_name(name: &str) -> String {
    match name {
        "@in" => "in".to_string(),
        "_?_:_" => "?:".to_string(),
        "_[_]" => "[]".to_string(),
        n if n.starts_with('_') && n.ends_with('_') && n.len() > 2 => {
            n.trim_matches('_').to_string()
        }
        n if n.ends_with('_') && n.len() == 2 => n.trim_end_matches('_').to_string(),
        n => n.to_string(),
    }
}

/// The type a type name denotes, for `type(x) == int`.
fn type_name(name: &str) -> Option<(Kind, Type)> {
    Some(match name {
        "int" => (Kind::Int, Type::Int),
        "uint" => (Kind::Uint, Type::Uint),
        "double" => (Kind::Double, Type::Double),
        "bool" => (Kind::Bool, Type::Bool),
        "string" => (Kind::String, Type::String),
        "bytes" => (Kind::Bytes, Type::Bytes),
        "list" => (Kind::List, Type::list(Type::Dyn)),
        "map" => (Kind::Map, Type::map(Type::Dyn, Type::Dyn)),
        "null_type" => (Kind::Null, Type::Null),
        "type" => (Kind::Type, Type::Type(None)),
        "google.protobuf.Timestamp" => (Kind::Timestamp, Type::Timestamp),
        "google.protobuf.Duration" => (Kind::Duration, Type::Duration),
        _ => return None,
    })
}

/// The common type of aggregate elements: the one type if all agree, else `dyn`.
fn join(tys: &[Type]) -> Type {
    let mut it = tys.iter().filter(|t| !matches!(t, Type::Error));
    let Some(first) = it.next() else {
        return Type::Dyn;
    };
    if it.all(|t| t == first) {
        first.clone()
    } else {
        Type::Dyn
    }
}

/// Whether an argument of type `arg` may bind to parameter `param`,
/// binding type parameters in `subst`.
fn assignable(param: &Type, arg: &Type, subst: &mut Subst) -> bool {
    match (param, arg) {
        (Type::Param(p), _) => match subst.get(p).cloned() {
            Some(bound) => {
                if bound.is_dyn() || arg.is_dyn() || assignable(&bound, arg, subst) {
                    true
                } else if assignable(arg, &bound, subst) {
                    // The argument is more general (list(dyn) vs list(int)).
                    subst.insert(p, arg.clone());
                    true
                } else {
                    false
                }
            }
            None => {
                subst.insert(
                    p,
                    if matches!(arg, Type::Error) {
                        Type::Dyn
                    } else {
                        arg.clone()
                    },
                );
                true
            }
        },
        (_, Type::Dyn | Type::Error) | (Type::Dyn | Type::Error, _) => true,
        (Type::List(p), Type::List(a)) => assignable(p, a, subst),
        (Type::Map(pk, pv), Type::Map(ak, av)) => {
            assignable(pk, ak, subst) && assignable(pv, av, subst)
        }
        (Type::Map(pk, pv), Type::Object(_)) => {
            assignable(pk, &Type::String, subst) && assignable(pv, &Type::Dyn, subst)
        }
        // Type values compare across types: `type(1) == type(1u)` is false, not an error.
        (Type::Type(_), Type::Type(_)) => true,
        (Type::Object(p), Type::Object(a)) => p.name == a.name,
        _ => param == arg,
    }
}

fn substitute(t: &Type, subst: &Subst) -> Type {
    if t.is_concrete() {
        // Nothing to replace: share the type rather than rebuild it.
        return t.clone();
    }
    match t {
        Type::Param(p) => subst
            .get(p)
            .map(|b| substitute(b, subst))
            .unwrap_or(Type::Dyn),
        Type::List(e) => Type::list(substitute(e, subst)),
        Type::Map(k, v) => Type::map(substitute(k, subst), substitute(v, subst)),
        Type::Type(Some(inner)) => Type::type_of(substitute(inner, subst)),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests;

/// CEL's name for a function other languages name otherwise: too far
/// apart for an edit distance to suggest (`includes` is `contains`).
fn other_language(name: &str) -> Option<&'static str> {
    Some(match name {
        "includes" | "has_substring" | "contain" => "contains",
        "length" | "len" | "count" => "size",
        "toLowerCase" | "toLower" | "lower" | "lowercase" => "lowerAscii",
        "toUpperCase" | "toUpper" | "upper" | "uppercase" => "upperAscii",
        "match" | "test" | "regex" => "matches",
        "startswith" | "hasPrefix" | "starts_with" => "startsWith",
        "endswith" | "hasSuffix" | "ends_with" => "endsWith",
        _ => return None,
    })
}
