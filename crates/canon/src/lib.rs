//! One canonical form of each request, so that what a rule reads is what
//! the upstream receives.
//!
//! A rule such as `req.url.path.startsWith('/admin')` holds only if no
//! other spelling of `/admin` reaches the upstream: `/%61dmin`, `//admin`,
//! `/./admin` and `/x/../admin` are the same resource to any framework
//! that decodes or normalizes, and `Host: ADMIN.Example.` is the same host
//! as `admin.example`. So the edge decides once, at arrival, what the
//! request *is*, refuses what has no single meaning, and from then on the
//! policy reads, and the upstream receives, that one form (Envoy's
//! `normalize_path` and `merge_slashes`, nginx's `$uri`; the advisories
//! that motivate both are in CVE-2019-9901, CVE-2021-29492 and
//! CVE-2021-31920).
//!
//! - [`path`]: RFC 3986 §6.2.2 normalization of a request path (decode
//!   unreserved characters, upper-case the rest's hex, remove dot segments
//!   including their encoded spellings), repeated slashes merged, and
//!   encoded separators, NUL, control bytes, malformed escapes and
//!   invalid UTF-8 refused.
//! - [`authority`]: a Host or `:authority` checked against RFC 3986's
//!   grammar and made lower-case, without a trailing dot or the scheme's
//!   default port.
//! - [`request`]: both applied to an `http` request head: exactly one
//!   authority (absolute form wins over `Host`; HTTP/2's `:authority` must
//!   agree with a `Host`), the target rewritten into its canonical origin
//!   form, and the fields a client names in `Connection` removed before
//!   the policy runs.
//!
//! The crate knows nothing of policies, tokio or hyper: the proxy and the
//! tower layer call it, and so do the actions that build URLs, which
//! canonicalize what they built.

mod authority;
mod path;
mod request;

pub use authority::{HostError, authority};
pub use path::{EscapedSlashes, PathError, PathOptions, Rewritten, path};
pub use request::{
    Arrival, Options, Refusal, Underscores, request, strip_connection_named, strip_hop_by_hop,
};
