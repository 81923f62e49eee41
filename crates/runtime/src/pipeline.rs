//! [`Pipeline`]: rules per phase, compiled, and the loop that applies them
//! (spec §1.5): rules top to bottom, a rule's expressions ANDed, its
//! actions in order, until an action ends the phase.

use std::sync::Arc;

use http::StatusCode;
use portcullis_actions::client::HttpClient;
use portcullis_actions::trace::{Trace, TraceEvent};
use portcullis_actions::{Action, ActionError, CompileCx, RequestCtx, Run, Step, respond};
use portcullis_cel::{CompileOptions, Diagnostic, Program, Type};
use portcullis_policy::document::Policy;
use portcullis_policy::schema::Phase;

use crate::tally::Tally;

/// ngrok's code for a rule expression that failed at run time.
pub const EXPRESSION_FAILED: &str = "ERR_NGROK_2238";

/// What the caller does after a phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Go on: to the upstream after `on_http_request`, to the client after
    /// `on_http_response`, to HTTP after `on_tcp_connect`.
    Continue,
    /// Answer with the response in the context (an action's, or an error).
    Respond,
    /// Send the request to the internal upstream in `ctx.forward()`.
    Forward,
    /// Drop the connection without an answer.
    Close,
}

/// Settings of a compile.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Internal upstreams `forward-internal` may reach, by host name.
    pub internal: Vec<String>,
    /// The client `http-request` calls out with.
    pub client: Option<Arc<dyn HttpClient>>,
    /// The keys sign-in sessions are sealed with (the first seals); with
    /// none, each compile makes a random key, and a reload signs everyone
    /// out.
    pub session_keys: Vec<[u8; 32]>,
    /// The state replicas share (`state:`): rate limits count in it. With
    /// none, each process counts alone.
    pub state: Option<portcullis_state::State>,
    /// The gateway that asks for decisions (forward-auth), if any: what
    /// cannot work behind it is an error (`E0150`), not a skipped rule.
    pub gateway: Option<portcullis_policy::gateway::Gateway>,
    /// The deployment's IP Policies (`ip_policies:` in the config, or
    /// `--ip-policies FILE`); `None` where no deployment is known (lint).
    pub ip_policies: Option<Arc<portcullis_actions::IpPolicies>>,
    /// The deployment's OAuth apps by provider; `None` where no deployment
    /// is known (lint).
    pub oauth_apps: Option<Arc<portcullis_actions::OAuthApps>>,
    /// Whether the deployment names IP intelligence databases
    /// (`ip_intelligence:`): without, a policy that reads `conn.geo.*` is
    /// warned about at load.
    pub ip_intelligence: bool,
}

/// One action of one rule, as metrics name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The phase's key (`on_http_request`).
    pub phase: &'static str,
    /// The rule's name, or its position (`#2`) when it has none.
    pub rule: String,
    /// The action's type.
    pub action: &'static str,
}

#[derive(Debug)]
struct Rule {
    conditions: Box<[Program]>,
    actions: Box<[(Box<dyn Action>, usize)]>,
}

/// A rule's name (or its place, `#2`) and its conditions as written, for
/// reports of what ran ([`Pipeline::rules`]); kept apart from [`Rule`],
/// which the request path walks.
#[derive(Debug)]
struct Written {
    phase: Phase,
    index: usize,
    name: String,
    texts: Box<[String]>,
}

/// A rule as written, for reports (`portcullis test`'s coverage and
/// explanations).
#[derive(Clone, Debug)]
pub struct RuleInfo<'p> {
    /// The phase's key.
    pub phase: &'static str,
    /// Its place in the phase, from 0.
    pub index: usize,
    /// Its name, or `#n`.
    pub name: &'p str,
    /// Its conditions, as written.
    pub expressions: &'p [String],
    /// Its actions' types.
    pub actions: Vec<&'static str>,
}

/// A compiled policy. Immutable; share it in an `Arc`.
#[derive(Debug)]
pub struct Pipeline {
    tcp: Box<[Rule]>,
    request: Box<[Rule]>,
    response: Box<[Rule]>,
    /// `on_event_stream_message`: per server-sent event.
    events: Box<[Rule]>,
    decisions: Box<[Decision]>,
    written: Box<[Written]>,
    hits: Tally,
    invalid: Option<String>,
}

impl Pipeline {
    /// A pipeline with no rules: every exchange goes to the upstream.
    pub fn empty() -> Pipeline {
        Pipeline {
            tcp: Box::new([]),
            request: Box::new([]),
            response: Box::new([]),
            events: Box::new([]),
            decisions: Box::new([]),
            written: Box::new([]),
            hits: Tally::new(0),
            invalid: None,
        }
    }

    /// A pipeline that answers every request with 500: what runs when no
    /// valid policy was ever loaded. Never allow-all.
    pub fn invalid(reason: impl Into<String>) -> Pipeline {
        Pipeline {
            invalid: Some(reason.into()),
            ..Pipeline::empty()
        }
    }

    /// Checks and compiles a policy document. Errors are every error
    /// diagnostic; warnings do not stop a load (`portcullis lint` shows
    /// them).
    pub fn load(src: &str, options: &Options) -> Result<Pipeline, Vec<Diagnostic>> {
        let (policy, mut diags) = portcullis_policy::check(src);
        if let Some(gateway) = options.gateway {
            diags.extend(portcullis_policy::gateway::check(&policy, gateway));
        }
        let mut errors: Vec<Diagnostic> = diags.into_iter().filter(Diagnostic::is_error).collect();
        if !errors.is_empty() {
            errors.extend(Pipeline::unsupported(&policy));
            errors.sort_by_key(|d| d.span.start);
            return Err(errors);
        }
        Pipeline::compile(&policy, src, options)
    }

    /// `E0141` for each action of `policy` that this build does not run:
    /// said even beside other errors (`compile` says it otherwise), since
    /// fixing those would not make the policy run.
    pub fn unsupported(policy: &Policy) -> Vec<Diagnostic> {
        policy
            .phases
            .iter()
            .flat_map(|p| &p.rules)
            .flat_map(|r| &r.actions)
            .filter(|a| {
                portcullis_policy::document::ACTION_TYPES.contains(&a.kind.as_str())
                    && !portcullis_actions::supports(&a.kind)
            })
            .map(portcullis_actions::unsupported)
            .collect()
    }

    /// Compiles a checked policy. Reports every action that cannot be
    /// built, not just the first.
    pub fn compile(
        policy: &Policy,
        src: &str,
        options: &Options,
    ) -> Result<Pipeline, Vec<Diagnostic>> {
        if src.contains("req.user_agent.") {
            // uap-core's regexes compile once per process, in a fraction
            // of a second: now, beside the load, rather than on the first
            // request that reads them.
            std::thread::spawn(|| portcullis_actions::user_agent::parse(""));
        }
        let mut errors = Vec::new();
        let mut decisions = Vec::new();
        let mut written = Vec::new();
        let (mut tcp, mut request, mut response, mut events) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let condition = CompileOptions {
            expect: Some(Type::Bool),
            ..CompileOptions::default()
        };
        for phase_rules in &policy.phases {
            let phase = phase_rules.phase;
            let env = portcullis_actions::env::env(phase);
            let cx = CompileCx {
                phase,
                src,
                internal: &options.internal,
                client: options.client.as_ref(),
                session_keys: &options.session_keys,
                state: options.state.as_ref().filter(|s| s.is_shared()),
                ip_policies: options.ip_policies.as_deref(),
                oauth_apps: options.oauth_apps.as_deref(),
            };
            let out = match phase {
                Phase::TcpConnect => &mut tcp,
                Phase::HttpRequest => &mut request,
                Phase::HttpResponse => &mut response,
                Phase::EventStreamMessage => &mut events,
            };
            for (rule_idx, rule) in phase_rules.rules.iter().enumerate() {
                let mut conditions = Vec::new();
                let mut texts = Vec::new();
                for expr in &rule.expressions {
                    let text = expr.scalar().map_or("", |s| s.value.as_str());
                    texts.push(text.to_owned());
                    match env.compile_with(text, &condition) {
                        Ok(p) => conditions.push(p),
                        Err(diags) => errors.extend(
                            diags.into_iter().filter(Diagnostic::is_error).map(|mut d| {
                                d.span = expr.value_span(src, d.span);
                                d
                            }),
                        ),
                    }
                }
                let name = rule
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("#{}", rule_idx + 1));
                let mut actions = Vec::new();
                for action in &rule.actions {
                    match portcullis_actions::compile(action, &cx) {
                        Ok(a) => {
                            decisions.push(Decision {
                                phase: phase.key(),
                                rule: name.clone(),
                                action: a.kind(),
                            });
                            actions.push((a, decisions.len() - 1));
                        }
                        Err(d) => errors.push(d),
                    }
                }
                out.push(Rule {
                    conditions: conditions.into(),
                    actions: actions.into(),
                });
                written.push(Written {
                    phase,
                    index: rule_idx,
                    name,
                    texts: texts.into(),
                });
            }
        }
        if !errors.is_empty() {
            errors.sort_by_key(|d| d.span.start);
            return Err(errors);
        }
        let hits = Tally::new(decisions.len());
        Ok(Pipeline {
            tcp: tcp.into(),
            request: request.into(),
            response: response.into(),
            events: events.into(),
            decisions: decisions.into(),
            written: written.into(),
            hits,
            invalid: None,
        })
    }

    /// Every rule, phase by phase in the order they run.
    pub fn rules(&self) -> impl Iterator<Item = RuleInfo<'_>> {
        let order = |p: Phase| match p {
            Phase::TcpConnect => 0,
            Phase::HttpRequest => 1,
            Phase::HttpResponse => 2,
            Phase::EventStreamMessage => 3,
        };
        let mut written: Vec<&Written> = self.written.iter().collect();
        written.sort_by_key(|w| (order(w.phase), w.index));
        written.into_iter().map(move |w| {
            let rules = match w.phase {
                Phase::TcpConnect => &self.tcp,
                Phase::HttpRequest => &self.request,
                Phase::HttpResponse => &self.response,
                Phase::EventStreamMessage => &self.events,
            };
            RuleInfo {
                phase: w.phase.key(),
                index: w.index,
                name: &w.name,
                expressions: &w.texts,
                actions: rules
                    .get(w.index)
                    .map(|r| r.actions.iter().map(|(a, _)| a.kind()).collect())
                    .unwrap_or_default(),
            }
        })
    }

    /// The session cookies under which every sign-in action of the policy
    /// would take the user to be the one `claims` describe: for
    /// `portcullis test`, whose pipeline has keys of its own.
    pub fn test_sessions(&self, claims: &serde_json::Value) -> Vec<(String, String)> {
        self.request
            .iter()
            .flat_map(|r| r.actions.iter())
            .filter_map(|(a, _)| a.test_session(claims))
            .collect()
    }

    /// Whether the policy has `on_tcp_connect` rules.
    pub fn has_tcp_rules(&self) -> bool {
        !self.tcp.is_empty()
    }

    /// Whether `on_tcp_connect` may terminate TLS (`terminate-tls`): the
    /// connection's phase then runs before the handshake, which follows
    /// the termination the action chose.
    pub fn terminates_tls(&self) -> bool {
        self.tcp
            .iter()
            .flat_map(|rule| rule.actions.iter())
            .any(|(action, _)| action.kind() == "terminate-tls")
    }

    /// Whether the policy has `on_event_stream_message` rules: an event
    /// stream's messages then go through them one by one.
    pub fn has_event_rules(&self) -> bool {
        !self.events.is_empty()
    }

    /// Runs `on_event_stream_message` on the message in `ctx`
    /// ([`RequestCtx::set_event`]). Anything but `Continue` ends the
    /// stream: a message a rule could not handle is not sent as it was.
    pub async fn on_event(&self, ctx: &mut RequestCtx) -> Outcome {
        self.run(&self.events, Phase::EventStreamMessage, ctx).await
    }

    /// Whether the policy has `on_http_response` rules.
    pub fn has_response_rules(&self) -> bool {
        !self.response.is_empty()
    }

    /// Every action of the policy, in order, as metrics label them.
    pub fn decisions(&self) -> &[Decision] {
        &self.decisions
    }

    /// What the actions report beside how often they ran (a circuit
    /// breaker's state), each with its [`Decision`].
    pub fn series(&self) -> impl Iterator<Item = (&Decision, portcullis_actions::Series)> {
        [&self.tcp, &self.request, &self.response, &self.events]
            .into_iter()
            .flat_map(|rules| rules.iter())
            .flat_map(|rule| rule.actions.iter())
            .flat_map(|(action, i)| {
                let decision = self.decisions.get(*i);
                action
                    .series()
                    .into_iter()
                    .filter_map(move |s| Some((decision?, s)))
            })
    }

    /// How often each action of [`decisions`](Self::decisions) ran.
    pub fn decision_counts(&self) -> impl Iterator<Item = (&Decision, u64)> {
        self.decisions
            .iter()
            .enumerate()
            .map(|(i, d)| (d, self.hits.get(i)))
    }

    /// Runs `on_tcp_connect` for a new connection (a context made with
    /// [`RequestCtx::connection`]).
    pub async fn on_connect(&self, ctx: &mut RequestCtx) -> Outcome {
        self.run(&self.tcp, Phase::TcpConnect, ctx).await
    }

    /// Runs `on_http_request`.
    pub async fn on_request(&self, ctx: &mut RequestCtx) -> Outcome {
        if let Some(reason) = &self.invalid {
            ctx.set_response(respond::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ERR_NGROK_2300",
                &format!("no valid traffic policy is loaded: {reason}"),
            ));
            return Outcome::Respond;
        }
        self.run(&self.request, Phase::HttpRequest, ctx).await
    }

    /// Runs `on_http_response` on the response in `ctx`. An action may
    /// replace it (`custom-response`) or change it.
    pub async fn on_response(&self, ctx: &mut RequestCtx) -> Outcome {
        if !ctx.has_response() {
            return Outcome::Continue;
        }
        self.run(&self.response, Phase::HttpResponse, ctx).await
    }

    /// Runs a phase's rules: the loop the request path runs, or the same
    /// loop recording each step when the exchange asked for a trace
    /// (`portcullis test`), chosen once per phase so that the request
    /// path carries no per-rule check for it.
    async fn run(&self, rules: &[Rule], phase: Phase, ctx: &mut RequestCtx) -> Outcome {
        if ctx.trace().is_some() {
            self.run_rules::<true>(rules, phase, ctx).await
        } else {
            self.run_rules::<false>(rules, phase, ctx).await
        }
    }

    async fn run_rules<const TRACE: bool>(
        &self,
        rules: &[Rule],
        phase: Phase,
        ctx: &mut RequestCtx,
    ) -> Outcome {
        ctx.enter(phase);
        if rules.is_empty() {
            return Outcome::Continue;
        }
        let counts = self.hits.counts();
        for (index, rule) in rules.iter().enumerate() {
            let matched = match ctx.trace().filter(|_| TRACE) {
                None => matches(rule, ctx),
                Some(trace) => matches_traced(rule, ctx, trace, phase, index),
            };
            match matched {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => return fail(ctx, phase, &e),
            }
            for (action, decision) in &rule.actions {
                counts.add(*decision);
                // Most actions finish at once: their step is taken without
                // `Run::finish`'s future (made, polled and dropped per action).
                let step = match action.run(ctx) {
                    Run::Done(step) => step,
                    Run::Wait(fut) => fut.await,
                };
                if TRACE && let Some(trace) = ctx.trace() {
                    trace_action(trace, action.kind(), &step);
                }
                match step {
                    Ok(Step::Next) => {}
                    Ok(Step::Respond) => return Outcome::Respond,
                    Ok(Step::Forward) => return Outcome::Forward,
                    Ok(Step::Close) => return Outcome::Close,
                    Err(e) => return fail(ctx, phase, &e),
                }
            }
        }
        Outcome::Continue
    }
}

/// Whether every condition of `rule` holds.
fn matches(rule: &Rule, ctx: &RequestCtx) -> Result<bool, ActionError> {
    for c in &rule.conditions {
        match c.eval_bool(ctx) {
            Ok(true) => {}
            Ok(false) => return Ok(false),
            Err(e) => {
                return Err(ActionError::internal(
                    EXPRESSION_FAILED,
                    format!("a rule's expression failed: {}", e.message()),
                ));
            }
        }
    }
    Ok(true)
}

/// What an action did, recorded. Out of line: the request path only
/// checks that no trace is asked for.
#[cold]
#[inline(never)]
fn trace_action(trace: &Trace, kind: &'static str, step: &Result<Step, ActionError>) {
    trace.push(TraceEvent::Action {
        kind,
        step: match step {
            Ok(Step::Next) => Ok("next"),
            Ok(Step::Respond) => Ok("respond"),
            Ok(Step::Forward) => Ok("forward"),
            Ok(Step::Close) => Ok("close"),
            Err(e) => Err(format!("{} ({})", e.message, e.code)),
        },
    });
}

/// [`matches`], the rule reached and each condition's value recorded.
#[cold]
#[inline(never)]
fn matches_traced(
    rule: &Rule,
    ctx: &RequestCtx,
    trace: &Trace,
    phase: Phase,
    index: usize,
) -> Result<bool, ActionError> {
    trace.push(TraceEvent::Rule {
        phase: phase.key(),
        index,
    });
    for (index, c) in rule.conditions.iter().enumerate() {
        let value = c.eval_bool(ctx).map_err(|e| e.message().to_owned());
        trace.push(TraceEvent::Condition {
            index,
            value: value.clone(),
        });
        match value {
            Ok(true) => {}
            Ok(false) => return Ok(false),
            Err(e) => {
                return Err(ActionError::internal(
                    EXPRESSION_FAILED,
                    format!("a rule's expression failed: {e}"),
                ));
            }
        }
    }
    Ok(true)
}

/// A failure: on `on_tcp_connect` the connection closes; on HTTP the
/// answer is the error's status and code. Never a pass.
fn fail(ctx: &mut RequestCtx, phase: Phase, e: &ActionError) -> Outcome {
    tracing::warn!(phase = phase.key(), code = e.code, "{}", e.message);
    if phase == Phase::TcpConnect {
        return Outcome::Close;
    }
    ctx.set_response(respond::error(e.status, e.code, &e.message));
    Outcome::Respond
}
