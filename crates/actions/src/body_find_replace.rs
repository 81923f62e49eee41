//! `request-body-find-replace` and `response-body-find-replace`: RE2
//! patterns replaced in a body, in order, every match, as ngrok documents.
//!
//! - **Whole bodies, bounded.** A pattern may match across the chunks a
//!   body arrives in, so the body is read whole first, as ngrok reads it,
//!   up to [`MAX_BODY`] (8 MiB); a larger one is refused
//!   (`ERR_NGROK_3903`: 413 for a request, 502 for a response), never
//!   passed on unchanged: a redaction that does not happen is a leak.
//! - **Content codings.** A body in `gzip`, `deflate` (zlib, or raw DEFLATE
//!   as some servers send it) or `br` is decoded (to the same bound: no
//!   decompression bomb), rewritten, and encoded again with the same
//!   coding, so the client or upstream gets what it asked for. A coding
//!   this action cannot decode (`compress`, `zstd`, several stacked) is
//!   `ERR_NGROK_3904`, not a pass.
//! - **Patterns** are the regex crate's, RE2's syntax and linear time (no
//!   backtracking to blow up), matched on bytes (Unicode-aware where the
//!   body is UTF-8). `from` and `to` may interpolate CEL; `$1` in `to` is a
//!   capture group. An interpolated `from` that is no regex is
//!   `ERR_NGROK_3901`.
//! - `Content-Length` is set to the new length; the matches are the
//!   result `actions.ngrok.*_body_find_replace.replacements`.

use std::io::Read as _;

use bytes::Bytes;
use http::StatusCode;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, HeaderMap, HeaderValue};
use portcullis_cel::{Diagnostic, Value};
use regex::bytes::Regex;

use crate::action::Config;
use crate::encoding::Algorithm;
use crate::rewrite::{BAD_REGEX, REGEX_SIZE_LIMIT};
use crate::template::Template;
use crate::{Action, ActionError, BodyError, CompileCx, RequestCtx, ResultVar, Run, Step};

#[cfg(test)]
mod tests;

/// The largest body read (and decoded), in bytes.
pub const MAX_BODY: usize = 8 * 1024 * 1024;
/// ngrok's code for a body that could not be read whole.
const NOT_BUFFERED: &str = "ERR_NGROK_3903";
/// ngrok's code for a body that could not be rewritten.
const NOT_MODIFIED: &str = "ERR_NGROK_3904";
/// The most matches kept in the result (the body changes for all).
const MAX_RESULTS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Request,
    Response,
}

#[derive(Debug)]
enum From {
    Fixed(Regex),
    Interpolated(Template),
}

#[derive(Debug)]
struct Replacement {
    from: From,
    to: Template,
}

#[derive(Debug)]
pub(crate) struct BodyFindReplace {
    side: Side,
    replacements: Vec<Replacement>,
    result: Option<ResultVar>,
}

pub(crate) fn compile_request(
    cfg: Config<'_>,
    cx: &CompileCx<'_>,
) -> Result<Box<dyn Action>, Diagnostic> {
    compile(cfg, cx, Side::Request)
}

pub(crate) fn compile_response(
    cfg: Config<'_>,
    cx: &CompileCx<'_>,
) -> Result<Box<dyn Action>, Diagnostic> {
    compile(cfg, cx, Side::Response)
}

fn compile(cfg: Config<'_>, cx: &CompileCx<'_>, side: Side) -> Result<Box<dyn Action>, Diagnostic> {
    let mut replacements = Vec::new();
    for item in cfg.seq("replacements") {
        let item_cfg = Config {
            node: Some(item),
            span: item.span,
        };
        let field = |key: &str| item_cfg.get(key);
        let Some(from_node) = field("from") else {
            return Err(cfg.error(Some(item), "a replacement needs `from`"));
        };
        let from = Template::compile(from_node, cx.phase, cx.src)?;
        let from = match from.constant() {
            Some(pattern) => {
                From::Fixed(regex(pattern).map_err(|e| cfg.error(Some(from_node), e))?)
            }
            None => From::Interpolated(from),
        };
        let to = match field("to") {
            Some(node) => Template::compile(node, cx.phase, cx.src)?,
            None => Template::text(""),
        };
        replacements.push(Replacement { from, to });
    }
    if replacements.is_empty() {
        return Err(cfg.error(cfg.get("replacements"), "`replacements` needs at least one"));
    }
    let result = cx.result(match side {
        Side::Request => "actions.ngrok.request_body_find_replace.replacements",
        Side::Response => "actions.ngrok.response_body_find_replace.replacements",
    });
    Ok(Box::new(BodyFindReplace {
        side,
        replacements,
        result,
    }))
}

fn regex(pattern: &str) -> Result<Regex, String> {
    regex::bytes::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("`from` is not a valid regex: {e}"))
}

impl Action for BodyFindReplace {
    fn kind(&self) -> &'static str {
        match self.side {
            Side::Request => "request-body-find-replace",
            Side::Response => "response-body-find-replace",
        }
    }

    fn run<'a>(&'a self, ctx: &'a mut RequestCtx) -> Run<'a> {
        Run::Wait(Box::pin(self.rewrite(ctx)))
    }
}

/// A failure of the action `kind`.
fn fail(kind: &str, status: StatusCode, code: &'static str, why: &str) -> ActionError {
    ActionError {
        status,
        code,
        message: format!("{kind}: {why}"),
    }
}

impl BodyFindReplace {
    async fn rewrite(&self, ctx: &mut RequestCtx) -> Result<Step, ActionError> {
        let kind = self.kind();
        // The patterns and replacements first: what they interpolate is
        // read from the request as it stands.
        let mut rules = Vec::with_capacity(self.replacements.len());
        for r in &self.replacements {
            // A `Regex` clone shares its compiled program.
            let re = match &r.from {
                From::Fixed(re) => re.clone(),
                From::Interpolated(t) => regex(&t.render(ctx)?)
                    .map_err(|e| fail(kind, StatusCode::INTERNAL_SERVER_ERROR, BAD_REGEX, &e))?,
            };
            rules.push((re, r.to.render(ctx)?.into_owned()));
        }
        let too_large = match self.side {
            Side::Request => StatusCode::PAYLOAD_TOO_LARGE,
            Side::Response => StatusCode::BAD_GATEWAY,
        };
        let (raw, headers) = match self.side {
            Side::Request => (ctx.buffer_body(MAX_BODY).await, ctx.req_headers().clone()),
            Side::Response => (
                ctx.buffer_res_body(MAX_BODY).await,
                ctx.res_headers().cloned().unwrap_or_default(),
            ),
        };
        let raw = raw.map_err(|e| match e {
            BodyError::TooLarge => fail(
                kind,
                too_large,
                NOT_BUFFERED,
                &format!("the body is larger than {} MiB", MAX_BODY >> 20),
            ),
            BodyError::Read => fail(
                kind,
                StatusCode::BAD_GATEWAY,
                NOT_BUFFERED,
                "the body could not be read",
            ),
        })?;
        if raw.is_empty() {
            // Nothing to rewrite (HEAD, 204, 304 keep their coding header
            // with no body).
            return Ok(Step::Next);
        }
        let coding = coding(&headers)
            .map_err(|why| fail(kind, StatusCode::BAD_GATEWAY, NOT_MODIFIED, &why))?;
        let plain = match coding {
            None => raw.clone(),
            Some(c) => decode(&raw, c).map_err(|why| fail(kind, too_large, NOT_MODIFIED, &why))?,
        };
        let mut body = plain.to_vec();
        let mut matched = Vec::new();
        for (index, (re, to)) in rules.iter().enumerate() {
            if matched.len() < MAX_RESULTS {
                for m in re.find_iter(&body).take(MAX_RESULTS - matched.len()) {
                    matched.push((index, String::from_utf8_lossy(m.as_bytes()).into_owned()));
                }
            }
            if let std::borrow::Cow::Owned(b) = re.replace_all(&body, to.as_bytes()) {
                body = b;
            }
        }
        if let Some(var) = self.result {
            let list = matched
                .iter()
                .map(|(i, m)| {
                    crate::record::record(vec![
                        (
                            "replacement_index",
                            Value::Int(i64::try_from(*i).unwrap_or(i64::MAX)),
                        ),
                        ("matched_content", Value::string(m.as_str())),
                    ])
                })
                .collect();
            ctx.set_result(var, Value::list(list));
        }
        if matched.is_empty() && body.as_slice() == plain.as_ref() {
            // Nothing matched: the body goes on as it came.
            return Ok(Step::Next);
        }
        let out = match coding {
            None => Bytes::from(body),
            Some(c) => encode(&body, c)
                .map_err(|why| fail(kind, StatusCode::BAD_GATEWAY, NOT_MODIFIED, &why))?,
        };
        let len = HeaderValue::from(out.len());
        match self.side {
            Side::Request => {
                ctx.set_body(out);
                ctx.req_headers_mut().insert(CONTENT_LENGTH, len);
            }
            Side::Response => {
                ctx.set_res_body(out);
                if let Some(h) = ctx.res_headers_mut() {
                    h.insert(CONTENT_LENGTH, len);
                }
            }
        }
        Ok(Step::Next)
    }
}

/// The body's one content coding, if any; several, or one this action
/// cannot decode, is an error.
pub(crate) fn coding(headers: &HeaderMap) -> Result<Option<Algorithm>, String> {
    let mut codings = headers
        .get_all(CONTENT_ENCODING)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("?").split(','))
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty() && c != "identity");
    let (Some(one), None) = (codings.next(), codings.next()) else {
        let all: Vec<String> = headers
            .get_all(CONTENT_ENCODING)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        return if all
            .iter()
            .all(|c| c.trim().is_empty() || c.trim() == "identity")
        {
            Ok(None)
        } else {
            Err(format!(
                "the body is in several content codings ({})",
                all.join(", ")
            ))
        };
    };
    match one.as_str() {
        "gzip" | "x-gzip" => Ok(Some(Algorithm::Gzip)),
        "deflate" => Ok(Some(Algorithm::Deflate)),
        "br" => Ok(Some(Algorithm::Br)),
        other => Err(format!(
            "the body is in the content coding `{other}`, which cannot be decoded here"
        )),
    }
}

/// `raw` decoded from `coding`, at most [`MAX_BODY`] bytes of it (what
/// the action does to a coded body before rewriting it; public for the
/// fuzz target).
pub fn decode(raw: &[u8], coding: Algorithm) -> Result<Bytes, String> {
    let mut out = Vec::new();
    let limit = u64::try_from(MAX_BODY).unwrap_or(u64::MAX) + 1;
    let read = match coding {
        Algorithm::Gzip => flate2::read::MultiGzDecoder::new(raw)
            .take(limit)
            .read_to_end(&mut out),
        Algorithm::Deflate => {
            // RFC 9110's deflate is zlib; some servers send raw DEFLATE.
            let zlib = flate2::read::ZlibDecoder::new(raw)
                .take(limit)
                .read_to_end(&mut out);
            if zlib.is_err() {
                out.clear();
                flate2::read::DeflateDecoder::new(raw)
                    .take(limit)
                    .read_to_end(&mut out)
            } else {
                zlib
            }
        }
        Algorithm::Br => brotli::Decompressor::new(raw, 4096)
            .take(limit)
            .read_to_end(&mut out),
        Algorithm::Compress => return Err("`compress` bodies cannot be decoded here".into()),
    };
    read.map_err(|e| format!("the {} body does not decode: {e}", coding.token()))?;
    if out.len() > MAX_BODY {
        return Err(format!(
            "the body decodes to more than {} MiB",
            MAX_BODY >> 20
        ));
    }
    Ok(Bytes::from(out))
}

/// `plain` encoded in `coding` again.
pub fn encode(plain: &[u8], coding: Algorithm) -> Result<Bytes, String> {
    use std::io::Write as _;
    let failed = |e: std::io::Error| format!("the body could not be encoded again: {e}");
    let out = match coding {
        Algorithm::Gzip => {
            let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            z.write_all(plain).map_err(failed)?;
            z.finish().map_err(failed)?
        }
        Algorithm::Deflate => {
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            z.write_all(plain).map_err(failed)?;
            z.finish().map_err(failed)?
        }
        Algorithm::Br => {
            let mut w = brotli::CompressorWriter::new(Vec::new(), 4096, 5, 22);
            w.write_all(plain).map_err(failed)?;
            // Finishes the stream.
            w.into_inner()
        }
        Algorithm::Compress => return Err("`compress` bodies cannot be encoded here".into()),
    };
    Ok(Bytes::from(out))
}
