//! What `redirect` and `url-rewrite` share (spec §3.8, §3.9): `from`, a
//! regex matched unanchored against the whole URL after interpolation, and
//! `to`, its replacement with `$1` references. Without `from`, `to` is the
//! whole new URL.

use http::header::HeaderValue;
use http::uri::{PathAndQuery, Uri};
use portcullis_cel::{Diagnostic, Value};
use regex::Regex;

use crate::action::Config;
use crate::template::Template;
use crate::{ActionError, CompileCx, Endpoint, RequestCtx};

/// ngrok's code for a `from` that is not a regex after interpolation.
pub(crate) const BAD_REGEX: &str = "ERR_NGROK_3901";

/// Regexes compiled per request are capped, as ngrok caps them.
pub(crate) const REGEX_SIZE_LIMIT: usize = 1 << 20;

#[derive(Debug)]
enum From {
    Whole,
    Fixed(Regex),
    Interpolated(Template),
}

/// A compiled `from`/`to` pair.
#[derive(Debug)]
pub(crate) struct Rewrite {
    from: From,
    to: Template,
}

/// A rewrite's outcome.
pub(crate) struct Rewritten {
    /// The new URL.
    pub(crate) url: String,
    /// The whole match and each capture of the first match.
    pub(crate) matches: Vec<String>,
}

impl Rewrite {
    pub(crate) fn compile(cfg: &Config<'_>, cx: &CompileCx<'_>) -> Result<Rewrite, Diagnostic> {
        let from = match cfg.get("from") {
            None => From::Whole,
            Some(node) => {
                let t = Template::compile(node, cx.phase, cx.src)?;
                match t.constant() {
                    Some(re) => From::Fixed(regex(re).map_err(|e| cfg.error(Some(node), e))?),
                    None => From::Interpolated(t),
                }
            }
        };
        let to = match cfg.get("to") {
            Some(node) => Template::compile(node, cx.phase, cx.src)?,
            None => return Err(cfg.error(None, "`to` is required")),
        };
        Ok(Rewrite { from, to })
    }

    /// Applies the rewrite to the request's URL; `None` when `from` does
    /// not match. `all` replaces every match (`url-rewrite`), else the
    /// first (`redirect`).
    pub(crate) fn apply(
        &self,
        ctx: &RequestCtx,
        all: bool,
    ) -> Result<Option<Rewritten>, ActionError> {
        let to = self.to.render(ctx)?;
        let url = ctx.url();
        let dynamic;
        let re = match &self.from {
            From::Whole => {
                return Ok(Some(Rewritten {
                    url: to.into_owned(),
                    matches: Vec::new(),
                }));
            }
            From::Fixed(re) => re,
            From::Interpolated(t) => {
                dynamic =
                    regex(&t.render(ctx)?).map_err(|e| ActionError::internal(BAD_REGEX, e))?;
                &dynamic
            }
        };
        let Some(caps) = re.captures(url) else {
            return Ok(None);
        };
        let matches = caps
            .iter()
            .map(|m| m.map_or(String::new(), |m| m.as_str().to_owned()))
            .collect();
        let new = if all {
            re.replace_all(url, to.as_ref())
        } else {
            re.replace(url, to.as_ref())
        };
        Ok(Some(Rewritten {
            url: new.into_owned(),
            matches,
        }))
    }
}

/// `pattern` compiled under the size cap every interpolated `from` has.
pub(crate) fn regex(pattern: &str) -> Result<Regex, String> {
    regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("`from` is not a valid regex: {e}"))
}

/// The matches as a CEL list.
pub(crate) fn matches_value(matches: &[String]) -> Value<'static> {
    Value::list(matches.iter().map(|m| Value::string(m.as_str())).collect())
}

/// A rewritten URL split for the upstream: the new authority (if the URL
/// is absolute) and the new path and query, both canonicalized as a
/// client's would be at `ep`, so that a rewrite can never produce a target
/// the client could not have sent (`Host: x/admin#` once made the URL
/// `http://x/admin#/api/...`; a rewrite to `/a/../admin` would have
/// reached the upstream as such).
pub(crate) fn split(
    url: &str,
    ep: &Endpoint,
) -> Result<(Option<HeaderValue>, PathAndQuery), ActionError> {
    let bad = |why: &dyn std::fmt::Display| {
        ActionError::internal(
            "ERR_NGROK_2300",
            format!("the rewritten URL `{url}` is not a valid URL: {why}"),
        )
    };
    // `http:///products.php`: a rewrite that replaced the authority with
    // a path, as ngrok's own url-rewrite example does (it matches
    // `${req.url.authority}/products/...` and writes `/products.php...`).
    // The URL has no host then, and the request keeps the one it had.
    let hostless = ["http:///", "https:///"]
        .iter()
        .find_map(|p| url.starts_with(p).then(|| &url[p.len() - 1..]));
    let uri: Uri = hostless.unwrap_or(url).parse().map_err(|e| bad(&e))?;
    if uri.scheme().is_none() && !hostless.unwrap_or(url).starts_with('/') {
        return Err(bad(&"neither absolute nor a path"));
    }
    let authority = match uri.authority() {
        Some(a) => {
            let port = if uri.scheme_str() == Some("https") {
                443
            } else {
                80
            };
            let host = portcullis_canon::authority(a.as_str(), port).map_err(|e| bad(&e))?;
            Some(HeaderValue::from_str(&host).map_err(|e| bad(&e))?)
        }
        None => None,
    };
    let path = portcullis_canon::path(uri.path(), &ep.canon.path).map_err(|e| bad(&e))?;
    let pq = match uri.query() {
        Some(q) => format!("{}?{q}", path.path),
        None => path.path.into_owned(),
    };
    let pq = PathAndQuery::try_from(pq).map_err(|e| bad(&e))?;
    Ok((authority, pq))
}

#[cfg(test)]
mod tests {
    use super::split;
    use crate::Endpoint;

    /// What `split` makes of a rewritten URL: the new `Host`, if any, and
    /// the path and query.
    fn parts(url: &str) -> Result<(Option<String>, String), String> {
        let ep = Endpoint::new("http://app.example");
        split(url, &ep)
            .map(|(host, pq)| {
                (
                    host.map(|h| h.to_str().unwrap_or("?").to_owned()),
                    pq.as_str().to_owned(),
                )
            })
            .map_err(|e| format!("{e:?}"))
    }

    #[test]
    fn a_url_without_its_host_keeps_the_requests() {
        assert_eq!(
            parts("http:///products.php?query=123"),
            Ok((None, "/products.php?query=123".to_owned()))
        );
        assert_eq!(parts("https:///a/../b"), Ok((None, "/b".to_owned())));
        // A path that looks like an authority stays a path.
        let (host, _) = parts("http:////evil.example/x").expect("a path");
        assert_eq!(host, None);
        assert_eq!(
            parts("http://other.example/x"),
            Ok((Some("other.example".to_owned()), "/x".to_owned()))
        );
        assert!(parts("ftp:///x").is_err());
    }
}
