//! Declarations: the variables an expression may read and the functions it
//! may call, with their overloads and implementations.
//!
//! The standard library registers itself through the same API that callers
//! use for their own functions ([`Env::add_function`]), so ngrok's function
//! library in `portcullis-policy` is no different from `startsWith`.

use std::collections::HashMap;
use std::sync::Arc;

use rustc_hash::FxBuildHasher;

use crate::eval::{Activation, EvalError};
use crate::types::{Kind, Type};
use crate::value::Value;

/// Names a declared variable; evaluation asks the [`Activation`] for values by
/// id, never by name.
///
/// [`Activation`]: crate::Activation
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct VarId(pub u32);

impl VarId {
    /// The id as a table index.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A declared variable.
#[derive(Clone, Debug)]
pub struct VarDecl {
    /// Its qualified name (`req.url.path`).
    pub name: Arc<str>,
    /// Its type.
    pub ty: Type,
}

/// A declared function: a name and its overloads.
#[derive(Clone, Debug)]
pub struct Function {
    /// The name, possibly qualified (`base64.encode`).
    pub name: Arc<str>,
    /// The overloads, in declaration order.
    pub overloads: Vec<Overload>,
}

/// One signature of a function, with its implementation.
#[derive(Clone, Debug)]
pub struct Overload {
    /// A unique id, as in cel-go (`string_starts_with_string`).
    pub id: Arc<str>,
    /// Called as `target.f(args)` rather than `f(args)`; the receiver is `params[0]`.
    pub member: bool,
    /// Parameter types, the receiver first for member overloads.
    pub params: Vec<Type>,
    /// Result type.
    pub result: Type,
    /// What runs; `None` for a declaration without an implementation
    /// (operators the compiler implements itself, or check-only declarations).
    pub imp: Option<Impl>,
    /// Whether the result depends only on the arguments, so calls with
    /// constant arguments fold at compile time.
    pub pure: bool,
}

/// The signature of closure implementations.
pub type ClosureFn = dyn for<'a> Fn(&[Value<'a>]) -> Result<Value<'a>, EvalError> + Send + Sync;

/// The signature of host implementations: they also read the caller's
/// [`Activation`], as ngrok's `getReqHeader(name)` reads the request.
pub type HostFn =
    dyn for<'a> Fn(&'a dyn Activation, &[Value<'a>]) -> Result<Value<'a>, EvalError> + Send + Sync;

/// A function implementation.
#[derive(Clone)]
pub enum Impl {
    /// One argument.
    Unary(for<'a> fn(Value<'a>) -> Result<Value<'a>, EvalError>),
    /// Two arguments.
    Binary(for<'a> fn(Value<'a>, Value<'a>) -> Result<Value<'a>, EvalError>),
    /// Any number of arguments.
    Variadic(for<'a> fn(&[Value<'a>]) -> Result<Value<'a>, EvalError>),
    /// A closure, for implementations that carry state (a secret store).
    Closure(Arc<ClosureFn>),
    /// A closure that reads the activation too; never folded.
    Host(Arc<HostFn>),
}

impl std::fmt::Debug for Impl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Impl::Unary(_) => "Impl::Unary",
            Impl::Binary(_) => "Impl::Binary",
            Impl::Variadic(_) => "Impl::Variadic",
            Impl::Closure(_) => "Impl::Closure",
            Impl::Host(_) => "Impl::Host",
        })
    }
}

impl Overload {
    /// A global overload `f(params) -> result`.
    pub fn global(id: &str, params: impl Into<Vec<Type>>, result: Type) -> Overload {
        Overload {
            id: Arc::from(id),
            member: false,
            params: params.into(),
            result,
            imp: None,
            pure: true,
        }
    }

    /// A member overload `params[0].f(params[1..]) -> result`.
    pub fn member(id: &str, params: impl Into<Vec<Type>>, result: Type) -> Overload {
        Overload {
            member: true,
            ..Overload::global(id, params, result)
        }
    }

    /// Implements a one-parameter overload (a member overload's receiver counts).
    pub fn unary(self, f: for<'a> fn(Value<'a>) -> Result<Value<'a>, EvalError>) -> Overload {
        Overload {
            imp: Some(Impl::Unary(f)),
            ..self
        }
    }

    /// Implements a two-parameter overload.
    pub fn binary(
        self,
        f: for<'a> fn(Value<'a>, Value<'a>) -> Result<Value<'a>, EvalError>,
    ) -> Overload {
        Overload {
            imp: Some(Impl::Binary(f)),
            ..self
        }
    }

    /// Implements an overload of any arity.
    pub fn variadic(self, f: for<'a> fn(&[Value<'a>]) -> Result<Value<'a>, EvalError>) -> Overload {
        Overload {
            imp: Some(Impl::Variadic(f)),
            ..self
        }
    }

    /// Implements an overload with a closure.
    pub fn closure(
        self,
        f: impl for<'a> Fn(&[Value<'a>]) -> Result<Value<'a>, EvalError> + Send + Sync + 'static,
    ) -> Overload {
        Overload {
            imp: Some(Impl::Closure(Arc::new(f))),
            ..self
        }
    }

    /// Implements an overload with a closure that also reads the caller's
    /// activation, such as a function over the request being evaluated.
    /// Such an overload is impure: it never folds at compile time.
    pub fn host(
        self,
        f: impl for<'a> Fn(&'a dyn Activation, &[Value<'a>]) -> Result<Value<'a>, EvalError>
        + Send
        + Sync
        + 'static,
    ) -> Overload {
        Overload {
            imp: Some(Impl::Host(Arc::new(f))),
            pure: false,
            ..self
        }
    }

    /// Marks the overload as reading more than its arguments (the clock, a
    /// random source, a secret store): it never folds at compile time.
    pub fn impure(self) -> Overload {
        Overload {
            pure: false,
            ..self
        }
    }

    /// Whether runtime values of these kinds may call this overload.
    pub(crate) fn accepts(&self, args: &[Value<'_>]) -> bool {
        self.params.len() == args.len()
            && self
                .params
                .iter()
                .zip(args)
                .all(|(p, a)| accepts_kind(p, a.kind()))
    }

    /// The signature as users read it: `string.startsWith(string) -> bool`.
    pub fn signature(&self, name: &str) -> String {
        let list = |ps: &[Type]| {
            ps.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        match (self.member, self.params.split_first()) {
            (true, Some((recv, rest))) => {
                format!("{recv}.{name}({}) -> {}", list(rest), self.result)
            }
            _ => format!("{name}({}) -> {}", list(&self.params), self.result),
        }
    }
}

fn accepts_kind(param: &Type, kind: Kind) -> bool {
    match param.kind() {
        None => true,
        Some(k) => k == kind,
    }
}

/// The tables of declared names. They hash with FxHash (rustc's hash), not
/// SipHash: the names come from the host and the policy author, never from
/// requests, so there is no flooding to defend against, and checking an
/// expression looks names up at every node, where SipHash costs several
/// times what FxHash does on short names.
type NameMap<V> = HashMap<Arc<str>, V, FxBuildHasher>;

/// Variables and functions an expression is checked and compiled against.
#[derive(Clone, Debug, Default)]
pub struct Env {
    vars: Vec<VarDecl>,
    var_index: NameMap<VarId>,
    functions: NameMap<Function>,
    container: Option<Arc<str>>,
}

impl Env {
    /// An environment with nothing declared, not even operators.
    pub fn empty() -> Env {
        Env::default()
    }

    /// The CEL standard library and the cel-go extensions ngrok documents
    /// (strings, lists, math, encoders).
    pub fn standard() -> Env {
        let mut env = Env::empty();
        crate::stdlib::register(&mut env);
        env
    }

    /// Declares a variable; redeclaring a name replaces its type.
    pub fn declare_var(&mut self, name: &str, ty: Type) -> VarId {
        if let Some(id) = self.var_index.get(name) {
            if let Some(decl) = self.vars.get_mut(id.index()) {
                decl.ty = ty;
            }
            return *id;
        }
        let id = VarId(u32::try_from(self.vars.len()).unwrap_or(u32::MAX));
        let name: Arc<str> = Arc::from(name);
        self.vars.push(VarDecl {
            name: name.clone(),
            ty,
        });
        self.var_index.insert(name, id);
        id
    }

    /// Adds an overload to the function `name`, declaring it if new.
    pub fn add_function(&mut self, name: &str, overload: Overload) {
        let f = self
            .functions
            .entry(Arc::from(name))
            .or_insert_with(|| Function {
                name: Arc::from(name),
                overloads: Vec::new(),
            });
        if let Some(existing) = f.overloads.iter_mut().find(|o| o.id == overload.id) {
            *existing = overload;
        } else {
            f.overloads.push(overload);
        }
    }

    /// Sets the container (namespace) that names resolve in first, as CEL's
    /// `container` option: in container `a.b`, `x` may name `a.b.x`.
    pub fn set_container(&mut self, container: &str) {
        self.container = (!container.is_empty()).then(|| Arc::from(container));
    }

    /// The declared variable `name`.
    pub fn var(&self, name: &str) -> Option<(VarId, &VarDecl)> {
        let id = *self.var_index.get(name)?;
        Some((id, self.vars.get(id.index())?))
    }

    /// The declaration of `id`.
    pub fn var_decl(&self, id: VarId) -> Option<&VarDecl> {
        self.vars.get(id.index())
    }

    /// All variables, indexed by [`VarId`].
    pub fn vars(&self) -> &[VarDecl] {
        &self.vars
    }

    /// The function `name`.
    pub fn function(&self, name: &str) -> Option<&Function> {
        self.functions.get(name)
    }

    /// All function names.
    pub fn function_names(&self) -> impl Iterator<Item = &str> {
        self.functions.keys().map(|k| &**k)
    }

    /// The first of `name`'s candidates (see [`Env::candidates`]) for which
    /// `found` gives something. Without a container, no names are built.
    pub(crate) fn resolve<T>(
        &self,
        name: &str,
        mut found: impl FnMut(&str) -> Option<T>,
    ) -> Option<T> {
        match (&self.container, name.strip_prefix('.')) {
            (_, Some(abs)) => found(abs),
            (None, None) => found(name),
            (Some(_), None) => self.candidates(name).iter().find_map(|c| found(c)),
        }
    }

    /// Names to try for `name`, most qualified first (CEL container resolution).
    pub(crate) fn candidates(&self, name: &str) -> Vec<String> {
        if let Some(abs) = name.strip_prefix('.') {
            return vec![abs.to_string()];
        }
        let mut out = Vec::new();
        if let Some(container) = &self.container {
            let mut prefix: &str = container;
            loop {
                out.push(format!("{prefix}.{name}"));
                match prefix.rfind('.') {
                    Some(i) => prefix = prefix.get(..i).unwrap_or(""),
                    None => break,
                }
            }
        }
        out.push(name.to_string());
        out
    }
}
