//! The compiled Traffic Policy pipeline, applied per request.
//!
//! [`Pipeline::load`] checks a policy document (the same checks as
//! `portcullis lint`) and compiles it: every expression into a CEL
//! program, every action into a `portcullis_actions::Action`. The result
//! is immutable and shared; a reload builds a new one and swaps it whole.
//!
//! Per exchange, the caller makes a [`RequestCtx`] and runs the phases
//! (spec §1.5): [`Pipeline::on_request`], then the upstream (unless the
//! outcome says otherwise), then [`Pipeline::on_response`] on whatever
//! response there is, the upstream's or one an action made.
//!
//! ```
//! use std::sync::Arc;
//! use portcullis_runtime::{Conn, Endpoint, Outcome, Pipeline, RequestCtx, body};
//!
//! let policy = r#"
//! on_http_request:
//!   - expressions: ["req.url.path.startsWith('/admin')"]
//!     actions: [{ type: deny }]
//! "#;
//! let pipeline = Pipeline::load(policy, &Default::default()).expect("valid policy");
//! let conn = Arc::new(Conn::new(
//!     "203.0.113.7:50000".parse().unwrap(),
//!     "127.0.0.1:8080".parse().unwrap(),
//!     None,
//! ));
//! let endpoint = Arc::new(Endpoint::new("http://app.example.com"));
//! let req = http::Request::get("/admin/users").body(body::empty()).unwrap();
//! let mut ctx = RequestCtx::new(req, conn, endpoint);
//! let outcome = futures_lite_block_on(pipeline.on_request(&mut ctx));
//! assert_eq!(outcome, Outcome::Respond);
//! assert_eq!(ctx.status(), Some(http::StatusCode::FORBIDDEN));
//! # fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     portcullis_runtime::block_on(f)
//! # }
//! ```

mod layer;
mod pipeline;
mod tally;

pub use portcullis_actions::{Conn, Endpoint, RequestCtx, Tls, body, respond};

pub use crate::layer::{PolicyLayer, PolicyService};
pub use crate::pipeline::{Decision, EXPRESSION_FAILED, Options, Outcome, Pipeline, RuleInfo};

/// Runs a future that never waits on I/O to completion on this thread:
/// for tests and examples of policies whose actions do not wait.
pub fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::yield_now();
    }
}
