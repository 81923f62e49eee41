//! Calls the canonicalizers a known number of times, for instruction
//! counts under callgrind (wall time is too noisy on a shared machine to
//! tell tens of instructions apart):
//!
//! ```sh
//! cargo build --release -p portcullis-canon --example count
//! valgrind --tool=callgrind --toggle-collect='portcullis_canon::path::path' \
//!     target/release/examples/count path 100000 [/the/path]
//! ```
//!
//! Instructions per call are the collected total divided by the count.
//! The first argument picks what is called: `path` (an already-canonical
//! path, the common case: the load benchmark's `/api/items` unless a third
//! argument gives another), `rewrite` (one to rewrite), `authority`
//! (an already-canonical host and port), `request` (a whole head with a
//! canonical target and `Host`) or `parse` (the baseline: `http` parsing
//! the same target, as the server does before canonicalization).

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool: its output is the point"
)]

use std::hint::black_box;

use portcullis_canon::{Options, PathOptions, authority, path, request};

fn main() {
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_else(|| "path".to_owned());
    let n: u32 = args.next().and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let opts = PathOptions::default();
    let given = args.next();
    let mut total = 0usize;
    match what.as_str() {
        "path" => {
            let p = given.as_deref().unwrap_or("/api/items");
            for _ in 0..n {
                total += path(black_box(p), &opts).map_or(0, |r| r.path.len());
            }
        }
        "parse" => {
            // The baseline: what parsing the same target costs the server
            // before canonicalization starts.
            let p = given.as_deref().unwrap_or("/api/items");
            for _ in 0..n {
                total += parse_once(black_box(p));
            }
        }
        "rewrite" => {
            for _ in 0..n {
                total += path(black_box("/api/./v1//users/%34%32/../42"), &opts)
                    .map_or(0, |r| r.path.len());
            }
        }
        "authority" => {
            for _ in 0..n {
                total += authority(black_box("app.example.com:8443"), 443).map_or(0, |a| a.len());
            }
        }
        "request" => {
            let template = http::Request::builder()
                .uri("/api/v1/users/42/profile?x=1")
                .header("host", "app.example.com")
                .header("user-agent", "curl/8.5.0")
                .header("accept", "*/*")
                .body(())
                .unwrap_or_default();
            let canon = Options::default();
            for _ in 0..n {
                let mut req = black_box(template.clone());
                total += usize::from(canon_once(&mut req, &canon));
            }
        }
        other => {
            eprintln!("unknown `{other}`: path, parse, rewrite, authority or request");
            std::process::exit(2);
        }
    }
    println!("{total}");
}

/// One call of `request`, out of line so that callgrind can count it
/// (`--toggle-collect='count::canon_once'`).
#[inline(never)]
fn canon_once(req: &mut http::Request<()>, opts: &Options) -> bool {
    request(req, true, opts).is_ok()
}

/// Parses a request target as `http` does for the server
/// (`--toggle-collect='count::parse_once'`).
#[inline(never)]
fn parse_once(target: &str) -> usize {
    target
        .parse::<http::uri::PathAndQuery>()
        .map_or(0, |p| p.path().len())
}
