//! A request as a proxy holds it, exposed to `portcullis-cel` without
//! copying: headers and query parameters through `MultiMap` over borrowed
//! pairs, fields through an `Activation` keyed by the declared `VarId`s.
//! Shared by the allocation test (`tests/alloc.rs`) and the benchmark
//! (`benches/cel.rs`), so that both measure the same thing.

use portcullis_cel::{Activation, Env, Map, MultiMap, Program, Type, Value, VarId};

/// An HTTP request as a proxy holds it.
pub(crate) struct Request {
    pub(crate) method: String,
    pub(crate) path: String,
    /// Lower-case names; a name may repeat.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) client_ip: String,
    pub(crate) email: String,
}

/// Name/value pairs read as CEL's `map(string, list(string))`, borrowing them.
pub(crate) struct Pairs<'r>(&'r [(String, String)]);

impl Pairs<'_> {
    /// The distinct names, in order of first appearance.
    fn names(&self) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .enumerate()
            .filter(|(i, (k, _))| !self.0.iter().take(*i).any(|(p, _)| p == k))
            .map(|(_, (k, _))| k.as_str())
    }
}

impl MultiMap for Pairs<'_> {
    fn key_count(&self) -> usize {
        self.names().count()
    }

    fn key_at(&self, index: usize) -> Option<&str> {
        self.names().nth(index)
    }

    fn count(&self, key: &str) -> usize {
        self.0.iter().filter(|(k, _)| k == key).count()
    }

    fn value(&self, key: &str, index: usize) -> Option<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .nth(index)
            .map(|(_, v)| v.as_str())
    }

    fn find_key<'s>(&'s self, visit: &mut dyn FnMut(&'s str) -> bool) -> bool {
        for (i, (k, _)) in self.0.iter().enumerate() {
            let first = !self.0.iter().take(i).any(|(p, _)| p == k);
            if first && visit(k) {
                return true;
            }
        }
        false
    }

    fn find_value(&self, key: &str, found: &mut dyn FnMut(&str) -> bool) -> Option<bool> {
        let mut present = false;
        for (k, v) in self.0 {
            if k == key {
                present = true;
                if found(v) {
                    return Some(true);
                }
            }
        }
        present.then_some(false)
    }
}

/// The request fields expressions may read.
#[derive(Clone, Copy)]
pub(crate) enum Field {
    Method,
    Path,
    Headers,
    Query,
    ClientIp,
    Email,
}

/// The environment, with a table from [`VarId`] to request field.
pub(crate) struct Vars {
    pub(crate) env: Env,
    fields: Vec<Option<Field>>,
}

impl Vars {
    pub(crate) fn new() -> Vars {
        let mut env = Env::standard();
        let multi = || Type::map(Type::String, Type::list(Type::String));
        let decls = [
            ("req.method", Type::String, Field::Method),
            ("req.url.path", Type::String, Field::Path),
            ("req.headers", multi(), Field::Headers),
            ("req.query_params", multi(), Field::Query),
            ("conn.client_ip", Type::String, Field::ClientIp),
            (
                "actions.ngrok.oauth.identity.email",
                Type::String,
                Field::Email,
            ),
        ];
        let mut fields = Vec::new();
        for (name, ty, field) in decls {
            let id = env.declare_var(name, ty);
            if fields.len() <= id.index() {
                fields.resize(id.index() + 1, None);
            }
            fields[id.index()] = Some(field);
        }
        Vars { env, fields }
    }

    pub(crate) fn compile(&self, src: &str) -> Program {
        self.env
            .compile_condition(src)
            .unwrap_or_else(|d| panic!("{src}: {d:?}"))
    }
}

/// A request seen through the declared variables; building one is free.
pub(crate) struct RequestActivation<'r> {
    vars: &'r Vars,
    req: &'r Request,
    headers: Pairs<'r>,
    query: Pairs<'r>,
}

impl<'r> RequestActivation<'r> {
    pub(crate) fn new(vars: &'r Vars, req: &'r Request) -> Self {
        RequestActivation {
            vars,
            req,
            headers: Pairs(&req.headers),
            query: Pairs(&req.query),
        }
    }
}

impl Activation for RequestActivation<'_> {
    fn resolve(&self, var: VarId) -> Option<Value<'_>> {
        Some(match (*self.vars.fields.get(var.index())?)? {
            Field::Method => Value::str(&self.req.method),
            Field::Path => Value::str(&self.req.path),
            Field::Headers => Value::Map(Map::Multi(&self.headers)),
            Field::Query => Value::Map(Map::Multi(&self.query)),
            Field::ClientIp => Value::str(&self.req.client_ip),
            Field::Email => Value::str(&self.req.email),
        })
    }
}

/// Pairs from string slices.
pub(crate) fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}
