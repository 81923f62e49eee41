//! `restrict-ips` (spec §3.5): allows a client by its layer-4 address
//! (`conn.client_ip`, never `X-Forwarded-For`). A client is allowed when
//! it matches an `allow` CIDR (or there is no `allow` list) and no `deny`
//! CIDR. Denied: 403 on HTTP, the connection closed on `on_tcp_connect`.
//! `ip_policies` names ngrok IP Policies, which the deployment defines
//! (`ip_policies:` in the config, `--ip-policies FILE`): their `allow` and
//! `deny` CIDRs join the lists.
//! With `enforce: false` the decision is only recorded.

use std::borrow::Cow;
use std::net::IpAddr;

use http::StatusCode;
use portcullis_cel::{Diagnostic, Value};
use portcullis_policy::functions::{cidr_contains, net_contains, parse_cidr};
use portcullis_policy::schema::Phase;

use crate::action::Config;
use crate::template::Template;
use crate::{Action, ActionError, CompileCx, RequestCtx, ResultVar, Run, Step, respond};

/// ngrok's code for a client an IP restriction rejected.
const DENIED: &str = "ERR_NGROK_3205";

#[derive(Debug)]
enum Cidr {
    /// Parsed once: the text (for `matched_cidr`), the network and the
    /// prefix length.
    Fixed(String, IpAddr, u32),
    Interpolated(Template),
}

#[derive(Debug)]
pub(crate) struct RestrictIps {
    allow: Vec<Cidr>,
    deny: Vec<Cidr>,
    enforce: bool,
    close: bool,
    action: Option<ResultVar>,
    matched: Option<ResultVar>,
}

pub(crate) fn compile(cfg: Config<'_>, cx: &CompileCx<'_>) -> Result<Box<dyn Action>, Diagnostic> {
    let list = |key: &str| {
        cfg.seq(key)
            .iter()
            .map(|node| {
                let t = Template::compile(node, cx.phase, cx.src)?;
                match t.constant() {
                    Some(text) => match parse_cidr(text) {
                        Some((net, len)) => Ok(Cidr::Fixed(text.trim().to_owned(), net, len)),
                        None => Err(cfg.error(Some(node), format!("`{text}` is not a CIDR"))),
                    },
                    None => Ok(Cidr::Interpolated(t)),
                }
            })
            .collect::<Result<Vec<_>, _>>()
    };
    let (mut allow, mut deny) = (list("allow")?, list("deny")?);
    // ngrok IP Policies, from the deployment: their CIDRs join the lists.
    // An id the deployment does not define stops the load: a rule that
    // names a policy and allows everyone would not hold.
    if let Some(policies) = cx.ip_policies {
        for node in cfg.seq("ip_policies") {
            let id = node.scalar().map_or("", |s| s.value.trim());
            let policy = policies.get(id).ok_or_else(|| {
                cfg.error(
                    Some(node),
                    format!("IP Policy `{id}` is not defined in this deployment"),
                )
                .with_help("define it under `ip_policies:` in the config, or in the file of `--ip-policies`")
            })?;
            for (cidrs, into) in [(&policy.allow, &mut allow), (&policy.deny, &mut deny)] {
                for text in cidrs {
                    let (net, len) = parse_cidr(text).ok_or_else(|| {
                        cfg.error(
                            Some(node),
                            format!("IP Policy `{id}`: `{text}` is not a CIDR"),
                        )
                    })?;
                    into.push(Cidr::Fixed(text.clone(), net, len));
                }
            }
        }
    }
    Ok(Box::new(RestrictIps {
        allow,
        deny,
        enforce: cfg.bool("enforce", true),
        close: cx.phase == Phase::TcpConnect,
        action: cx.result("actions.ngrok.restrict_ips.action"),
        matched: cx.result("actions.ngrok.restrict_ips.matched_cidr"),
    }))
}

impl Action for RestrictIps {
    fn kind(&self) -> &'static str {
        "restrict-ips"
    }

    fn run<'a>(&'a self, ctx: &'a mut RequestCtx) -> Run<'a> {
        Run::Done(self.restrict(ctx))
    }
}

impl RestrictIps {
    fn first_match<'c>(
        list: &'c [Cidr],
        ip: IpAddr,
        ctx: &RequestCtx,
    ) -> Result<Option<Cow<'c, str>>, ActionError> {
        for cidr in list {
            match cidr {
                Cidr::Fixed(text, net, len) => {
                    if net_contains(ip, *net, *len) {
                        return Ok(Some(Cow::Borrowed(text)));
                    }
                }
                Cidr::Interpolated(t) => {
                    let text = t.render(ctx)?;
                    if cidr_contains(ip, &text) == Some(true) {
                        return Ok(Some(Cow::Owned(text.into_owned())));
                    }
                }
            }
        }
        Ok(None)
    }

    fn restrict(&self, ctx: &mut RequestCtx) -> Result<Step, ActionError> {
        let ip = ctx.conn().client.ip();
        let denied = RestrictIps::first_match(&self.deny, ip, ctx)?;
        let (allowed, matched) = match denied {
            Some(cidr) => (false, cidr),
            None if self.allow.is_empty() => (true, Cow::Borrowed("")),
            None => match RestrictIps::first_match(&self.allow, ip, ctx)? {
                Some(cidr) => (true, cidr),
                None => (false, Cow::Borrowed("")),
            },
        };
        if let Some(var) = self.action {
            ctx.set_result(var, Value::str(if allowed { "allow" } else { "deny" }));
        }
        if let Some(var) = self.matched {
            ctx.set_result(var, Value::string(matched.as_ref()));
        }
        if allowed || !self.enforce {
            return Ok(Step::Next);
        }
        if self.close {
            return Ok(Step::Close);
        }
        ctx.set_response(respond::error(
            StatusCode::FORBIDDEN,
            DENIED,
            "the client's IP address is not allowed",
        ));
        Ok(Step::Respond)
    }
}
