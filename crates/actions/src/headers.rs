//! `add-headers` and `remove-headers` (spec §3.10), on the request in
//! `on_http_request` and on the response in `on_http_response`. Added
//! values are appended, except `host`, which replaces.

use std::sync::Arc;

use http::header::{HOST, HeaderMap, HeaderName, HeaderValue};
use portcullis_cel::value::MapData;
use portcullis_cel::{Diagnostic, Map, Value};
use portcullis_policy::schema::Phase;

use crate::action::Config;
use crate::ctx::has_header;
use crate::intern;
use crate::record::key;
use crate::template::Template;
use crate::{Action, ActionError, CompileCx, RequestCtx, ResultVar, Run, Step};

/// The templates of a `headers` map field, names lower-cased (and
/// interned: they are cloned into every exchange).
pub(crate) fn compile_map(
    cfg: &Config<'_>,
    field: &str,
    cx: &CompileCx<'_>,
) -> Result<Vec<(HeaderName, Template)>, Diagnostic> {
    cfg.map(field)
        .into_iter()
        .map(|(name, node)| {
            let name = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
                .map_err(|_| cfg.error(Some(node), format!("`{name}` is not a header name")))?;
            Ok((
                intern::name(name),
                Template::compile(node, cx.phase, cx.src)?,
            ))
        })
        .collect()
}

/// A rendered header value, checked.
pub(crate) fn value(text: &str) -> Result<HeaderValue, ActionError> {
    HeaderValue::from_str(text).map_err(|_| {
        ActionError::internal(
            "ERR_NGROK_2300",
            format!(
                "header value `{}` contains a control character",
                text.escape_debug()
            ),
        )
    })
}

fn headers_of(ctx: &mut RequestCtx, phase: Phase) -> Option<&mut HeaderMap> {
    match phase {
        Phase::HttpResponse => ctx.res_headers_mut(),
        _ => Some(ctx.req_headers_mut()),
    }
}

// === add-headers ===

#[derive(Debug)]
pub(crate) struct AddHeaders {
    phase: Phase,
    /// Each header, with its value made once when it is constant.
    headers: Vec<(HeaderName, Template, Option<HeaderValue>)>,
    added: Option<ResultVar>,
}

pub(crate) fn compile_add(
    cfg: Config<'_>,
    cx: &CompileCx<'_>,
) -> Result<Box<dyn Action>, Diagnostic> {
    let headers = compile_map(&cfg, "headers", cx)?
        .into_iter()
        .map(|(name, t)| {
            let fixed = t.constant().and_then(intern::value);
            (name, t, fixed)
        })
        .collect();
    Ok(Box::new(AddHeaders {
        phase: cx.phase,
        headers,
        added: cx.result("actions.ngrok.add_headers.headers_added"),
    }))
}

impl Action for AddHeaders {
    fn kind(&self) -> &'static str {
        "add-headers"
    }

    fn run<'a>(&'a self, ctx: &'a mut RequestCtx) -> Run<'a> {
        Run::Done(self.add(ctx))
    }
}

impl AddHeaders {
    fn add(&self, ctx: &mut RequestCtx) -> Result<Step, ActionError> {
        // Render every template before adding any header: a later header's
        // template reads the exchange as it was when the action began, not
        // with an earlier header added. One template (the common case)
        // waits on the stack; more in a vector.
        let mut one = None;
        let mut more = Vec::new();
        for (_, t, fixed) in &self.headers {
            if fixed.is_none() {
                let v = value(&t.render(ctx)?)?;
                match one {
                    None if more.is_empty() => one = Some(v),
                    _ => more.push(v),
                }
            }
        }
        let mut more = more.into_iter();
        let mut entries = Vec::new();
        if let Some(headers) = headers_of(ctx, self.phase) {
            for (name, _, fixed) in &self.headers {
                let v = match fixed {
                    Some(v) => v.clone(),
                    None => match one.take().or_else(|| more.next()) {
                        Some(v) => v,
                        None => continue,
                    },
                };
                if self.added.is_some() {
                    let text = String::from_utf8_lossy(v.as_bytes()).into_owned();
                    entries.push((key(name.as_str()), Value::string(text)));
                }
                if *name == HOST {
                    headers.insert(name.clone(), v);
                } else {
                    headers.append(name.clone(), v);
                }
            }
        }
        if let Some(var) = self.added
            && let Ok(m) = MapData::from_entries(entries)
        {
            ctx.set_result(var, Value::Map(Map::Values(Arc::new(m))));
        }
        Ok(Step::Next)
    }
}

// === remove-headers ===

#[derive(Debug)]
pub(crate) struct RemoveHeaders {
    phase: Phase,
    names: Vec<HeaderName>,
    removed: Option<ResultVar>,
}

pub(crate) fn compile_remove(
    cfg: Config<'_>,
    cx: &CompileCx<'_>,
) -> Result<Box<dyn Action>, Diagnostic> {
    let names = cfg
        .seq("headers")
        .iter()
        .map(|node| {
            let text = node.scalar().map_or("", |s| s.value.as_str());
            HeaderName::from_bytes(text.to_ascii_lowercase().as_bytes())
                .map_err(|_| cfg.error(Some(node), format!("`{text}` is not a header name")))
        })
        .collect::<Result<_, _>>()?;
    Ok(Box::new(RemoveHeaders {
        phase: cx.phase,
        names,
        removed: cx.result("actions.ngrok.remove_headers.headers_removed"),
    }))
}

impl Action for RemoveHeaders {
    fn kind(&self) -> &'static str {
        "remove-headers"
    }

    fn run<'a>(&'a self, ctx: &'a mut RequestCtx) -> Run<'a> {
        let mut removed = Vec::new();
        if let Some(headers) = headers_of(ctx, self.phase) {
            for name in &self.names {
                // Most often absent: a scan says so before a hash does.
                if has_header(headers, name) && headers.remove(name).is_some() {
                    removed.push(Value::string(name.as_str()));
                }
            }
        }
        if let Some(var) = self.removed {
            ctx.set_result(var, Value::list(removed));
        }
        Run::Done(Ok(Step::Next))
    }
}
