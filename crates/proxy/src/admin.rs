//! The admin listener: `/metrics` (Prometheus text format) and
//! `/healthz`. Kept off the public listeners so that a policy cannot
//! expose it and a flood of public traffic cannot starve it of accepts.

use std::sync::Arc;

use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use portcullis_actions::body::{self, Body};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::metrics::{self, DecisionCount};
use crate::server::{Shared, Site};

pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    sites: Vec<Arc<Site>>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            res = listener.accept() => res,
            _ = stopped.wait_for(|s| *s) => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let (shared, sites) = (shared.clone(), sites.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let res = answer(&req, &shared, &sites);
                async move { Ok::<_, std::convert::Infallible>(res) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer(req: &Request<Incoming>, shared: &Shared, sites: &[Arc<Site>]) -> Response<Body> {
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n".into(), "text/plain; charset=utf-8"),
        "/metrics" => {
            // Each endpoint's running pipeline, held while its counts are
            // borrowed; a reload during the scrape swaps in a new one without
            // touching these.
            let pipelines: Vec<_> = sites.iter().map(|site| site.pipeline.load()).collect();
            let counts: Vec<DecisionCount<'_>> = sites
                .iter()
                .zip(&pipelines)
                .flat_map(|(site, pipeline)| {
                    pipeline
                        .decision_counts()
                        .map(|(decision, count)| DecisionCount {
                            endpoint: &site.endpoint.url,
                            phase: decision.phase,
                            rule: &decision.rule,
                            action: decision.action,
                            count,
                        })
                })
                .collect();
            let mut out = shared.metrics.render(&counts);
            if let Some(state) = &shared.options.state {
                crate::metrics::render_state(&mut out, &state.stats());
            }
            text(StatusCode::OK, out, metrics::CONTENT_TYPE)
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found\n".into(),
            "text/plain; charset=utf-8",
        ),
    }
}

fn text(status: StatusCode, body: String, content_type: &'static str) -> Response<Body> {
    let mut res = Response::new(body::full(body));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}
