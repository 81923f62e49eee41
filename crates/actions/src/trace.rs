//! A record of how a policy decided one exchange: each rule reached, each
//! condition's value, each action's step. Off unless asked for
//! ([`RequestCtx::set_trace`](crate::RequestCtx::set_trace)), so the
//! request path pays one empty check per rule for it. `portcullis test`
//! reads it for coverage and for the explanation of a decision.

use std::sync::Mutex;

/// One step of a decision.
#[derive(Clone, Debug, PartialEq)]
pub enum TraceEvent {
    /// The rule at `index` of `phase` was reached.
    Rule {
        /// The phase's key (`on_http_request`).
        phase: &'static str,
        /// Its place in the phase, from 0.
        index: usize,
    },
    /// The rule's condition at `index` was evaluated.
    Condition {
        /// Its place in the rule, from 0.
        index: usize,
        /// Its value, or why it failed.
        value: Result<bool, String>,
    },
    /// `set-vars` set `vars.<name>` (its value as JSON).
    Var {
        /// The variable's name.
        name: String,
        /// Its value.
        value: serde_json::Value,
    },
    /// An action ran.
    Action {
        /// Its type.
        kind: &'static str,
        /// What it did: `next`, `respond`, `forward`, `close`, or the
        /// error it failed with.
        step: Result<&'static str, String>,
    },
}

/// The events of one exchange, in order.
#[derive(Debug, Default)]
pub struct Trace(Mutex<Vec<TraceEvent>>);

impl Trace {
    /// Records `event`.
    pub fn push(&self, event: TraceEvent) {
        if let Ok(mut events) = self.0.lock() {
            events.push(event);
        }
    }

    /// The events so far.
    pub fn events(&self) -> Vec<TraceEvent> {
        self.0.lock().map(|e| e.clone()).unwrap_or_default()
    }
}
