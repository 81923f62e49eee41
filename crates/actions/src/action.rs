//! The [`Action`] trait, what running one yields ([`Step`]), how one fails
//! ([`ActionError`]), and compiling an action of a document into one.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use http::StatusCode;
use portcullis_cel::{Diagnostic, Span};
use portcullis_policy::document;
use portcullis_policy::schema::Phase;
use portcullis_policy::yaml::{Node, NodeKind};

use crate::{RequestCtx, ResultVar};

/// What the pipeline does after an action ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Go on with the next action.
    Next,
    /// The action set a response (`deny`, `custom-response`, `redirect`, a
    /// rejecting `rate-limit`): the phase ends.
    Respond,
    /// Send the request to the internal upstream the action chose
    /// (`forward-internal`): the phase ends.
    Forward,
    /// Drop the connection without a response (`close-connection`, `deny`
    /// on `on_tcp_connect`).
    Close,
}

/// An action that failed while running: the pipeline answers with `status`
/// and `code` unless the action was told to carry on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionError {
    /// The status to answer with.
    pub status: StatusCode,
    /// The error code, ngrok's where ngrok has one (`ERR_NGROK_2254`).
    pub code: &'static str,
    /// What went wrong, for the log and the error page.
    pub message: String,
}

impl ActionError {
    /// An internal failure (500) with `code`.
    pub fn internal(code: &'static str, message: impl Into<String>) -> ActionError {
        ActionError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for ActionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for ActionError {}

/// The future of an action that waits (reads a body, calls out).
pub type StepFuture<'a> = Pin<Box<dyn Future<Output = Result<Step, ActionError>> + Send + 'a>>;

/// An action's run: most finish at once, without allocating a future.
pub enum Run<'a> {
    /// Finished.
    Done(Result<Step, ActionError>),
    /// Finishes when the future does.
    Wait(StepFuture<'a>),
}

impl Run<'_> {
    /// Waits for the run to finish.
    pub async fn finish(self) -> Result<Step, ActionError> {
        match self {
            Run::Done(res) => res,
            Run::Wait(fut) => fut.await,
        }
    }
}

impl From<Result<Step, ActionError>> for Run<'_> {
    fn from(res: Result<Step, ActionError>) -> Self {
        Run::Done(res)
    }
}

/// A compiled action, immutable and shared by every request.
pub trait Action: Send + Sync + fmt::Debug {
    /// The action's type, as a policy names it (`deny`).
    fn kind(&self) -> &'static str;

    /// Runs the action on an exchange.
    fn run<'a>(&'a self, ctx: &'a mut RequestCtx) -> Run<'a>;

    /// What the action reports beside how often it ran (a circuit
    /// breaker's state and counts), for the metrics.
    fn series(&self) -> Vec<Series> {
        Vec::new()
    }

    /// For a sign-in action: the cookie (name, value) of a session it
    /// would accept for a user with `claims`, sealed with its keys. What
    /// `portcullis test` sends for a case whose world has a signed-in
    /// user; the keys are the test run's own, made for it.
    fn test_session(&self, claims: &serde_json::Value) -> Option<(String, String)> {
        let _ = claims;
        None
    }
}

/// One metric an action reports, labelled by the proxy with its endpoint
/// and rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Series {
    /// The metric's name (`portcullis_circuit_breaker_state`).
    pub name: &'static str,
    /// Its help text.
    pub help: &'static str,
    /// A counter; else a gauge.
    pub counter: bool,
    /// Its value.
    pub value: u64,
}

/// What compiling an action may use beyond its config.
#[derive(Clone, Copy, Debug)]
pub struct CompileCx<'a> {
    /// The phase the action runs in.
    pub phase: Phase,
    /// The policy's text, for diagnostics.
    pub src: &'a str,
    /// The names of the internal upstreams `forward-internal` may reach
    /// (`api.internal`).
    pub internal: &'a [String],
    /// The client `http-request` calls out with; without one (in lint),
    /// the action compiles and fails when run.
    pub client: Option<&'a std::sync::Arc<dyn crate::client::HttpClient>>,
    /// The keys sign-in sessions are sealed with, the first sealing; with
    /// none, a random key per compile.
    pub session_keys: &'a [[u8; 32]],
    /// The state replicas share, when there is a store (`state:`);
    /// `None`: each action keeps its own, in this process.
    pub state: Option<&'a portcullis_state::State>,
    /// The deployment's IP Policies (`ip_policies:`), which
    /// `restrict-ips.ip_policies` names; `None`: not known here (lint
    /// without a deployment), so the names are left to be resolved there.
    pub ip_policies: Option<&'a IpPolicies>,
    /// The deployment's OAuth apps by provider (`oauth_apps:`, or
    /// `PORTCULLIS_OAUTH_<PROVIDER>_CLIENT_ID` and `_CLIENT_SECRET`), for
    /// `oauth` actions that name none (ngrok's managed apps); `None`: not
    /// known here (lint).
    pub oauth_apps: Option<&'a OAuthApps>,
}

/// An OAuth app's credentials: `(client_id, client_secret)`.
pub type OAuthApps = std::collections::BTreeMap<String, (String, String)>;

/// An ngrok IP Policy as a deployment defines it: CIDRs to allow and to
/// deny.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IpPolicy {
    /// Allowed CIDRs.
    pub allow: Vec<String>,
    /// Denied CIDRs.
    pub deny: Vec<String>,
}

/// IP Policies by id (`ipp_…`).
pub type IpPolicies = std::collections::BTreeMap<String, IpPolicy>;

impl CompileCx<'_> {
    /// The result variable `name`, if the policy reads it. A result no
    /// expression or template names is never built: building the maps and
    /// lists of results costs more than most actions' work.
    pub fn result(&self, name: &str) -> Option<ResultVar> {
        if self.src.contains(name) {
            ResultVar::named(name)
        } else {
            None
        }
    }
}

/// An action's config, read: the policy crate has checked its shape, so
/// a missing or mistyped field here falls back to the documented default.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Config<'a> {
    pub(crate) node: Option<&'a Node>,
    pub(crate) span: Span,
}

impl<'a> Config<'a> {
    pub(crate) fn of(action: &'a document::Action) -> Config<'a> {
        Config {
            node: action.config.as_ref(),
            span: action.span,
        }
    }

    /// The value of `key` (or of its legacy spelling `alias`).
    pub(crate) fn get(&self, key: &str) -> Option<&'a Node> {
        self.node?
            .get(key)
            .filter(|v| !matches!(v.scalar(), Some(s) if portcullis_policy::yaml::is_null(&s.value) && s.style == portcullis_policy::yaml::Style::Plain))
    }

    pub(crate) fn str(&self, key: &str) -> Option<&'a str> {
        self.get(key)?.scalar().map(|s| s.value.as_str())
    }

    pub(crate) fn bool(&self, key: &str, default: bool) -> bool {
        match self.str(key) {
            Some("true" | "True" | "TRUE") => true,
            Some("false" | "False" | "FALSE") => false,
            _ => default,
        }
    }

    pub(crate) fn int(&self, key: &str) -> Option<i64> {
        self.str(key)?.trim().parse().ok()
    }

    /// An HTTP status field (`status_code`), `default` when absent; a value
    /// that is no status is a diagnostic at the field (the schema's range
    /// check reports it first; this keeps a value that slips past from
    /// becoming a panic or a default).
    pub(crate) fn status(&self, key: &str, default: u16) -> Result<StatusCode, Diagnostic> {
        let code = self.int(key).unwrap_or(i64::from(default));
        u16::try_from(code)
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
            .ok_or_else(|| self.error(self.get(key), format!("`{code}` is not an HTTP status")))
    }

    /// The items of a sequence field.
    pub(crate) fn seq(&self, key: &str) -> &'a [Node] {
        match self.get(key).map(|n| &n.kind) {
            Some(NodeKind::Seq(items)) => items,
            _ => &[],
        }
    }

    /// The entries of a mapping field, keys as text.
    pub(crate) fn map(&self, key: &str) -> Vec<(&'a str, &'a Node)> {
        match self.get(key).map(|n| &n.kind) {
            Some(NodeKind::Map(entries)) => entries
                .iter()
                .filter_map(|(k, v)| Some((k.scalar()?.value.as_str(), v)))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// An error about this action.
    pub(crate) fn error(&self, at: Option<&Node>, message: impl Into<String>) -> Diagnostic {
        Diagnostic::error(
            crate::code::ACTION_COMPILE,
            at.map_or(self.span, |n| n.span),
            message,
        )
    }
}
