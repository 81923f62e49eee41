//! The proxy's configuration: endpoints (listen address, TLS, policy,
//! upstream), internal upstreams for `forward-internal`, the admin
//! listener, timeouts and limits. `portcullis http` builds one from its
//! flags; `portcullis serve --config FILE` reads one from YAML:
//!
//! ```yaml
//! admin: 127.0.0.1:9901            # /metrics and /healthz
//! endpoints:
//!   - listen: 0.0.0.0:8443
//!     url: https://app.example.com  # endpoint.url; default from listen/tls
//!     tls: { cert: cert.pem, key: key.pem }
//!     traffic_policy_file: policy.yml
//!     upstream: http://127.0.0.1:3000
//!     paths: { merge_slashes: true, escaped_slashes: reject }
//!     upgrades: [websocket]         # protocols tunnelled after the policy
//!     headers_with_underscores: drop  # drop (default) | reject | allow
//!     override_headers: drop          # X-Original-URL, X-HTTP-Method-Override…: drop | allow
//!   - listen: 127.0.0.1:4180         # forward-auth: the auth service of another gateway
//!     traffic_policy_file: policy.yml
//!     forward_auth: { gateway: nginx, trusted: [127.0.0.1/32] }  # nginx | caddy | traefik | envoy
//! internal:                        # forward-internal targets
//!   api.internal: http://127.0.0.1:4000
//! upstream_tls:                    # for https:// upstreams
//!   ca: internal-ca.pem             # trusted besides the Mozilla roots
//!   insecure_skip_verify: false     # true: development only
//! state: redis://127.0.0.1:6379   # shared by replicas; or { url, timeout, on_error, prefix, sessions }
//! admin_token: …                   # for the admin listener's /sessions (else loopback only)
//! identity:                        # who the user is, for upstreams
//!   signing_key: assertion-key.pem  # P-256 PKCS#8; default: one per process
//!   upstream_headers: true          # proxied requests carry X-Portcullis-Jwt-Assertion and X-Forwarded-User/-Email/-Groups
//! timeouts: { connect: 5s, upstream: 60s, header_read: 30s, idle: 75s,
//!             send: 60s, upstream_read: 60s, ping: 60s, tunnel_idle: 5m }
//! limits: { max_header_bytes: 65536, max_body_bytes: 10485760 }
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::Uri;
use portcullis_policy::yaml::{self, Node, NodeKind};

pub use crate::tls::UpstreamTls;

/// The whole configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The endpoints to serve.
    pub endpoints: Vec<EndpointConfig>,
    /// Internal upstreams by host name (`api.internal`).
    pub internal: Vec<(String, Upstream)>,
    /// Where `/metrics` and `/healthz` are served, if anywhere.
    pub admin: Option<SocketAddr>,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Limits.
    pub limits: Limits,
    /// The keys sign-in sessions are sealed with, the first sealing
    /// (`session_keys:` in the file, base64 of 32 bytes each); with none, a
    /// random key per process.
    pub session_keys: Vec<[u8; 32]>,
    /// How `https://` upstreams are verified.
    pub upstream_tls: UpstreamTls,
    /// The state replicas share (`state:`); none: this process's memory.
    pub state: Option<portcullis_state::StateConfig>,
    /// The token the admin listener's `/sessions` asks for
    /// (`admin_token:`); none: loopback clients only.
    pub admin_token: Option<String>,
    /// How the user's identity reaches upstreams (`identity:`).
    pub identity: IdentityConfig,
    /// ngrok IP Policies by id (`ip_policies:`), for
    /// `restrict-ips.ip_policies`.
    pub ip_policies: portcullis_actions::IpPolicies,
    /// OAuth apps by provider (`oauth_apps:`), for `oauth` actions that
    /// name no `client_id` and `client_secret` (ngrok's managed apps);
    /// `PORTCULLIS_OAUTH_<PROVIDER>_CLIENT_ID` and `_CLIENT_SECRET` add to
    /// them at start.
    pub oauth_apps: portcullis_actions::OAuthApps,
    /// The file the IP Policies were read from (`--ip-policies FILE`,
    /// `ip_policies_file:`): read again with every policy reload.
    pub ip_policies_file: Option<PathBuf>,
    /// MaxMind DB files for `conn.geo.*` and the IP intelligence variables
    /// (`ip_intelligence:`, paths relative to the config file).
    pub ip_intelligence: Vec<PathBuf>,
    /// Address lists as IP categories (`ip_categories:`, category → file
    /// or files): read again when they change.
    pub ip_categories: Vec<(String, PathBuf)>,
}

/// `identity:`: the signed assertion and identity headers.
#[derive(Clone, Debug, Default)]
pub struct IdentityConfig {
    /// The P-256 private key (PEM) assertions are signed with; none: a key
    /// made at start, which only this process's key set verifies.
    pub signing_key: Option<String>,
    /// Whether proxied requests carry the identity (`X-Forwarded-User`,
    /// `-Email`, `-Groups`, `-Preferred-Username` and
    /// `X-Portcullis-Jwt-Assertion`, a client's copies removed), and the
    /// endpoint serves the key set. Forward-auth answers always carry it.
    pub upstream_headers: bool,
}

/// One endpoint.
#[derive(Clone, Debug)]
pub struct EndpointConfig {
    /// The address to listen on.
    pub listen: SocketAddr,
    /// The public URL (`endpoint.url`); by default `http(s)://listen`.
    pub url: Option<String>,
    /// A certificate and key to terminate TLS with.
    pub tls: Option<TlsFiles>,
    /// The policy: a file (reloaded when it changes), or none.
    pub policy: Option<PathBuf>,
    /// Where allowed requests go; none for a forward-auth endpoint.
    pub upstream: Option<Upstream>,
    /// The gateway this endpoint answers, instead of proxying
    /// (`forward_auth:`).
    pub forward_auth: Option<crate::forward_auth::ForwardAuth>,
    /// How request paths are canonicalized (`paths:`).
    pub canon: portcullis_canon::Options,
    /// The protocols a client may switch to (`Upgrade`) once the policy
    /// lets the request through: `websocket` unless configured; `h2c` is
    /// never tunnelled, even if named.
    pub upgrades: Vec<String>,
}

/// The protocols tunnelled by default.
pub fn default_upgrades() -> Vec<String> {
    vec!["websocket".to_owned()]
}

/// PEM files for TLS.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The certificate chain.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

/// An upstream HTTP server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    /// `host:port`.
    pub authority: http::uri::Authority,
    /// Reached over TLS (`https://`).
    pub tls: bool,
}

impl Upstream {
    /// Reads `3000`, `host:3000`, `http://host:3000` or
    /// `https://host:8443`, as `ngrok http` takes its upstream. Without a
    /// port, `http://` means 80 and `https://` 443.
    pub fn parse(text: &str) -> Result<Upstream, String> {
        let text = text.trim();
        let with_scheme = if text.bytes().all(|b| b.is_ascii_digit()) {
            format!("http://127.0.0.1:{text}")
        } else if text.contains("://") {
            text.to_owned()
        } else {
            format!("http://{text}")
        };
        let uri: Uri = with_scheme
            .parse()
            .map_err(|e| format!("`{text}` is not an upstream address: {e}"))?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => {
                return Err(format!(
                    "`{text}`: the upstream must be http:// or https://"
                ));
            }
        };
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| format!("`{text}` has no host"))?;
        let authority = if authority.port().is_some() {
            authority
        } else {
            format!("{}:{}", authority.host(), if tls { 443 } else { 80 })
                .parse()
                .map_err(|e| format!("`{text}`: {e}"))?
        };
        Ok(Upstream { authority, tls })
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> http::uri::Scheme {
        if self.tls {
            http::uri::Scheme::HTTPS
        } else {
            http::uri::Scheme::HTTP
        }
    }
}

/// Timeouts: every connection is bounded, whatever its peer does. The
/// defaults are nginx's where nginx has one (`keepalive_timeout` 75 s,
/// `send_timeout` and `proxy_read_timeout` 60 s) and shorter for the
/// first request head (30 s, against nginx's 60 s
/// `client_header_timeout`): a connection that has sent nothing has
/// earned nothing.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// To connect to an upstream.
    pub connect: Duration,
    /// For an upstream's response head, once the request is sent.
    pub upstream: Duration,
    /// For a client to send its first request head (HTTP/1), or to open
    /// its first stream (HTTP/2).
    pub header_read: Duration,
    /// For a client connection with no request in progress: an HTTP/1
    /// keep-alive connection between requests (the whole next head must
    /// arrive within it), an HTTP/2 connection with no open stream.
    pub idle: Duration,
    /// For a client that stops reading: the longest a write to it may
    /// wait.
    pub send: Duration,
    /// For an upstream that stops sending its response body: the longest
    /// wait between two reads.
    pub upstream_read: Duration,
    /// Between HTTP/2 keep-alive pings to an idle client; a ping not
    /// answered within the same time closes the connection.
    pub ping: Duration,
    /// For a tunnel (WebSocket) in which neither side sends anything.
    pub tunnel_idle: Duration,
    /// For open connections to finish after shutdown begins.
    pub shutdown_grace: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            upstream: Duration::from_secs(60),
            header_read: Duration::from_secs(30),
            idle: Duration::from_secs(75),
            send: Duration::from_secs(60),
            upstream_read: Duration::from_secs(60),
            ping: Duration::from_secs(60),
            tunnel_idle: Duration::from_secs(300),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Limits on what clients send.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The largest request head (HTTP/1.1) or header list (HTTP/2).
    pub max_header_bytes: usize,
    /// The largest request body; larger ones get 413.
    pub max_body_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 64 * 1024,
            max_body_bytes: 10 * 1024 * 1024,
        }
    }
}

/// A configuration file that cannot be used.
#[derive(Debug)]
pub struct ConfigError {
    message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads a `serve` configuration; relative paths in it are relative to
    /// the file's directory.
    pub fn parse(src: &str, path: &Path) -> Result<Config, ConfigError> {
        let base = path.parent().unwrap_or(Path::new("."));
        let (root, diags) = yaml::parse(src);
        let at = |node: Option<&Node>| {
            let line = node.map_or(1, |n| yaml::line_of(src, n.span.start as usize));
            format!("{}:{line}", path.display())
        };
        if let Some(d) = diags.iter().find(|d| d.is_error()) {
            return Err(ConfigError {
                message: format!(
                    "{}: {}",
                    format_args!(
                        "{}:{}",
                        path.display(),
                        yaml::line_of(src, d.span.start as usize)
                    ),
                    d.message
                ),
            });
        }
        let err = |node: Option<&Node>, message: String| ConfigError {
            message: format!("{}: {message}", at(node)),
        };
        let root = root.ok_or_else(|| err(None, "the configuration is empty".into()))?;
        let top = entries(&root).ok_or_else(|| err(Some(&root), "expected a mapping".into()))?;
        let mut config = Config {
            endpoints: Vec::new(),
            internal: Vec::new(),
            admin: None,
            timeouts: Timeouts::default(),
            limits: Limits::default(),
            session_keys: Vec::new(),
            upstream_tls: UpstreamTls::default(),
            state: None,
            admin_token: None,
            identity: IdentityConfig::default(),
            ip_policies: portcullis_actions::IpPolicies::new(),
            oauth_apps: portcullis_actions::OAuthApps::new(),
            ip_policies_file: None,
            ip_intelligence: Vec::new(),
            ip_categories: Vec::new(),
        };
        for (key, value) in top {
            match key {
                "admin" => config.admin = Some(addr(value).map_err(|m| err(Some(value), m))?),
                "endpoints" => {
                    let NodeKind::Seq(items) = &value.kind else {
                        return Err(err(Some(value), "`endpoints` must be a list".into()));
                    };
                    for item in items {
                        config
                            .endpoints
                            .push(endpoint(item, base).map_err(|m| err(Some(item), m))?);
                    }
                }
                "internal" => {
                    for (name, up) in entries(value)
                        .ok_or_else(|| err(Some(value), "expected a mapping".into()))?
                    {
                        let up = Upstream::parse(scalar(up).unwrap_or(""))
                            .map_err(|m| err(Some(up), m))?;
                        config.internal.push((name.to_owned(), up));
                    }
                }
                "timeouts" => {
                    for (k, v) in entries(value)
                        .ok_or_else(|| err(Some(value), "expected a mapping".into()))?
                    {
                        let d = duration(v).map_err(|m| err(Some(v), m))?;
                        if d.is_zero() {
                            return Err(err(Some(v), format!("`{k}` must be longer than 0s")));
                        }
                        match k {
                            "connect" => config.timeouts.connect = d,
                            "upstream" => config.timeouts.upstream = d,
                            "header_read" => config.timeouts.header_read = d,
                            "idle" => config.timeouts.idle = d,
                            "send" => config.timeouts.send = d,
                            "upstream_read" => config.timeouts.upstream_read = d,
                            "ping" => config.timeouts.ping = d,
                            "tunnel_idle" => config.timeouts.tunnel_idle = d,
                            "shutdown_grace" => config.timeouts.shutdown_grace = d,
                            other => {
                                return Err(err(Some(v), format!("unknown timeout `{other}`")));
                            }
                        }
                    }
                }
                "session_keys" => {
                    let NodeKind::Seq(items) = &value.kind else {
                        return Err(err(Some(value), "`session_keys` must be a list".into()));
                    };
                    for item in items {
                        let key = scalar(item)
                            .and_then(portcullis_actions::session::parse_key)
                            .ok_or_else(|| {
                                err(
                                    Some(item),
                                    "a session key is 32 random bytes in base64 (`openssl rand -base64 32`)"
                                        .into(),
                                )
                            })?;
                        config.session_keys.push(key);
                    }
                }
                "upstream_tls" => {
                    for (k, v) in entries(value)
                        .ok_or_else(|| err(Some(value), "expected a mapping".into()))?
                    {
                        match k {
                            "ca" => {
                                config.upstream_tls.ca = scalar(v).map(|p| base.join(p));
                            }
                            "insecure_skip_verify" => {
                                config.upstream_tls.insecure_skip_verify =
                                    boolean(v).map_err(|m| err(Some(v), m))?;
                            }
                            other => {
                                return Err(err(
                                    Some(v),
                                    format!("unknown `upstream_tls` setting `{other}`"),
                                ));
                            }
                        }
                    }
                }
                "limits" => {
                    for (k, v) in entries(value)
                        .ok_or_else(|| err(Some(value), "expected a mapping".into()))?
                    {
                        let n: u64 = scalar(v)
                            .and_then(|s| s.parse().ok())
                            .ok_or_else(|| err(Some(v), "expected a number of bytes".into()))?;
                        match k {
                            "max_header_bytes" => {
                                config.limits.max_header_bytes =
                                    usize::try_from(n).unwrap_or(usize::MAX)
                            }
                            "max_body_bytes" => config.limits.max_body_bytes = n,
                            other => return Err(err(Some(v), format!("unknown limit `{other}`"))),
                        }
                    }
                }
                "state" => {
                    config.state = Some(state(value, base).map_err(|m| err(Some(value), m))?);
                }
                "admin_token" => {
                    config.admin_token = scalar(value)
                        .filter(|t| t.len() >= 16)
                        .map(str::to_owned)
                        .ok_or_else(|| {
                            err(
                                Some(value),
                                "`admin_token` must be at least 16 characters".into(),
                            )
                        })
                        .map(Some)?;
                }
                "ip_policies" => {
                    config.ip_policies = ip_policies(value).map_err(|(node, m)| err(node, m))?;
                }
                "ip_policies_file" => {
                    let path = scalar(value).map(|p| base.join(p)).ok_or_else(|| {
                        err(Some(value), "expected the path of a YAML file".into())
                    })?;
                    config.ip_policies =
                        ip_policies_file(&path).map_err(|e| err(Some(value), e.to_string()))?;
                    config.ip_policies_file = Some(path);
                }
                "ip_intelligence" => {
                    let NodeKind::Seq(items) = &value.kind else {
                        return Err(err(
                            Some(value),
                            "`ip_intelligence` must be a list of MaxMind DB files".into(),
                        ));
                    };
                    for item in items {
                        let path = scalar(item).ok_or_else(|| {
                            err(Some(item), "expected the path of a MaxMind DB file".into())
                        })?;
                        config.ip_intelligence.push(base.join(path));
                    }
                }
                "ip_categories" => {
                    for (category, files) in entries(value).ok_or_else(|| {
                        err(
                            Some(value),
                            "`ip_categories` must map a category to a list file or files".into(),
                        )
                    })? {
                        if !is_category(category) {
                            return Err(err(
                                Some(value),
                                format!(
                                    "`{category}` is not a category: write dotted lower-case names, as `blocklist.firehol_org.level_1`"
                                ),
                            ));
                        }
                        let paths: Vec<&Node> = match &files.kind {
                            NodeKind::Seq(items) => items.iter().collect(),
                            _ => vec![files],
                        };
                        for item in paths {
                            let path = scalar(item).ok_or_else(|| {
                                err(Some(item), "expected the path of a list file".into())
                            })?;
                            config
                                .ip_categories
                                .push((category.to_owned(), base.join(path)));
                        }
                    }
                }
                "oauth_apps" => {
                    for (provider, app) in entries(value)
                        .ok_or_else(|| err(Some(value), "expected a mapping of providers".into()))?
                    {
                        let (mut id, mut secret) = (None, None);
                        for (k, v) in entries(app).ok_or_else(|| {
                            err(Some(app), "expected `client_id` and `client_secret`".into())
                        })? {
                            match k {
                                "client_id" => id = scalar(v).map(str::to_owned),
                                "client_secret" => secret = scalar(v).map(str::to_owned),
                                other => {
                                    return Err(err(
                                        Some(v),
                                        format!("unknown `oauth_apps` setting `{other}`"),
                                    ));
                                }
                            }
                        }
                        let (Some(id), Some(secret)) = (id, secret) else {
                            return Err(err(
                                Some(app),
                                format!(
                                    "`oauth_apps.{provider}` needs `client_id` and `client_secret`"
                                ),
                            ));
                        };
                        config.oauth_apps.insert(provider.to_owned(), (id, secret));
                    }
                }
                "identity" => {
                    for (k, v) in entries(value)
                        .ok_or_else(|| err(Some(value), "expected a mapping".into()))?
                    {
                        match k {
                            "signing_key" => {
                                let path = base.join(scalar(v).unwrap_or(""));
                                let pem = std::fs::read_to_string(&path).map_err(|e| {
                                    err(Some(v), format!("cannot read {}: {e}", path.display()))
                                })?;
                                config.identity.signing_key = Some(pem);
                            }
                            "upstream_headers" => {
                                config.identity.upstream_headers =
                                    boolean(v).map_err(|m| err(Some(v), m))?;
                            }
                            other => {
                                return Err(err(
                                    Some(v),
                                    format!("unknown `identity` setting `{other}`"),
                                ));
                            }
                        }
                    }
                }
                other => return Err(err(Some(value), format!("unknown setting `{other}`"))),
            }
        }
        if config.endpoints.is_empty() {
            return Err(err(Some(&root), "no `endpoints`".into()));
        }
        Ok(config)
    }
}

/// `ip_policies:`: `ipp_…` ids, each with `allow` and `deny` CIDR lists.
fn ip_policies(value: &Node) -> Result<portcullis_actions::IpPolicies, (Option<&Node>, String)> {
    let mut out = portcullis_actions::IpPolicies::new();
    for (id, policy) in
        entries(value).ok_or((Some(value), "expected a mapping of IP Policy ids".into()))?
    {
        if !id.starts_with("ipp_") {
            return Err((
                Some(policy),
                format!("`{id}` is not an IP Policy id (they start with `ipp_`)"),
            ));
        }
        let mut p = portcullis_actions::IpPolicy::default();
        for (k, v) in entries(policy).ok_or((Some(policy), "expected `allow` and `deny`".into()))? {
            let NodeKind::Seq(items) = &v.kind else {
                return Err((Some(v), format!("`{k}` must be a list of CIDRs")));
            };
            let mut cidrs = Vec::new();
            for item in items {
                let text = scalar(item).unwrap_or("");
                if portcullis_policy::functions::parse_cidr(text).is_none() {
                    return Err((Some(item), format!("`{text}` is not a CIDR")));
                }
                cidrs.push(text.trim().to_owned());
            }
            match k {
                "allow" => p.allow = cidrs,
                "deny" => p.deny = cidrs,
                other => {
                    return Err((
                        Some(v),
                        format!("unknown IP Policy setting `{other}` (`allow`, `deny`)"),
                    ));
                }
            }
        }
        out.insert(id.to_owned(), p);
    }
    Ok(out)
}

/// Reads `--ip-policies FILE`: the `ip_policies:` mapping alone.
pub fn ip_policies_file(path: &Path) -> Result<portcullis_actions::IpPolicies, ConfigError> {
    let src = std::fs::read_to_string(path).map_err(|e| ConfigError {
        message: format!("cannot read {}: {e}", path.display()),
    })?;
    let (root, diags) = yaml::parse(&src);
    let at = |node: Option<&Node>| {
        let line = node.map_or(1, |n| yaml::line_of(&src, n.span.start as usize));
        format!("{}:{line}", path.display())
    };
    if let Some(d) = diags.iter().find(|d| d.is_error()) {
        return Err(ConfigError {
            message: format!("{}: {}", at(None), d.message),
        });
    }
    let root = root.ok_or_else(|| ConfigError {
        message: format!("{}: the file is empty", at(None)),
    })?;
    ip_policies(&root).map_err(|(node, m)| ConfigError {
        message: format!("{}: {m}", at(node)),
    })
}

fn entries(node: &Node) -> Option<Vec<(&str, &Node)>> {
    match &node.kind {
        NodeKind::Map(es) => Some(
            es.iter()
                .filter_map(|(k, v)| Some((k.scalar()?.value.as_str(), v)))
                .collect(),
        ),
        _ => None,
    }
}

fn scalar(node: &Node) -> Option<&str> {
    node.scalar().map(|s| s.value.as_str())
}

fn boolean(node: &Node) -> Result<bool, String> {
    match scalar(node) {
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        _ => Err("expected true or false".into()),
    }
}

fn addr(node: &Node) -> Result<SocketAddr, String> {
    let text = scalar(node).unwrap_or("");
    text.parse()
        .map_err(|_| format!("`{text}` is not an address (host:port)"))
}

fn duration(node: &Node) -> Result<Duration, String> {
    let text = scalar(node).unwrap_or("");
    portcullis_cel::time::Duration::parse(text)
        .ok()
        .and_then(|d| u64::try_from(d.nanos()).ok())
        .map(Duration::from_nanos)
        .ok_or_else(|| format!("`{text}` is not a duration (`30s`, `1m`)"))
}

/// `state: redis://…`, or a mapping with `url`, `timeout`, `on_error`
/// (`local`, `allow`, `deny`), `prefix`, `sessions` (`stored`, `cookie`)
/// and `ca` (a PEM file to trust for `rediss://`).
fn state(node: &Node, base: &Path) -> Result<portcullis_state::StateConfig, String> {
    if let Some(url) = scalar(node) {
        return Ok(portcullis_state::StateConfig::new(url));
    }
    let es = entries(node).ok_or("`state` is a URL or a mapping with `url`")?;
    let url = es
        .iter()
        .find(|(k, _)| *k == "url")
        .and_then(|(_, v)| scalar(v))
        .ok_or("`state` needs `url` (redis://, rediss://, redis+cluster://)")?;
    let mut config = portcullis_state::StateConfig::new(url);
    for (k, v) in es {
        match k {
            "url" => {}
            "timeout" => config.timeout = duration(v)?,
            "on_error" => {
                config.on_error = scalar(v)
                    .and_then(portcullis_state::OnError::parse)
                    .ok_or("`on_error` is one of local, allow, deny")?;
            }
            "prefix" => config.prefix = scalar(v).unwrap_or("").to_owned(),
            "ca" => {
                let path = base.join(scalar(v).unwrap_or(""));
                config.ca =
                    Some(std::fs::read(&path).map_err(|e| {
                        format!("`state`: `ca`: cannot read {}: {e}", path.display())
                    })?);
            }
            "sessions" => {
                config.sessions = match scalar(v) {
                    Some("stored") => portcullis_state::SessionStore::Stored,
                    Some("cookie") => portcullis_state::SessionStore::Cookie,
                    _ => return Err("`sessions` is `stored` or `cookie`".into()),
                };
            }
            other => return Err(format!("unknown `state` setting `{other}`")),
        }
    }
    Ok(config)
}

/// What `escaped_slashes` takes.
pub const ESCAPED_SLASHES: &str =
    "`escaped_slashes` is one of reject, keep, unescape_and_redirect, unescape_and_forward";

fn endpoint(node: &Node, base: &Path) -> Result<EndpointConfig, String> {
    let es = entries(node).ok_or("an endpoint must be a mapping")?;
    let (mut listen, mut url, mut tls, mut policy, mut upstream) = (None, None, None, None, None);
    let mut canon = portcullis_canon::Options::default();
    let mut upgrades = default_upgrades();
    let mut forward_auth = None;
    for (k, v) in es {
        match k {
            "forward_auth" => forward_auth = Some(forward_auth_config(v)?),
            "listen" => listen = Some(addr(v)?),
            "url" => url = scalar(v).map(str::to_owned),
            "traffic_policy_file" => policy = scalar(v).map(|p| base.join(p)),
            "upstream" => upstream = Some(Upstream::parse(scalar(v).unwrap_or(""))?),
            "tls" => {
                let (mut cert, mut key) = (None, None);
                for (k, v) in entries(v).ok_or("`tls` must be a mapping")? {
                    match k {
                        "cert" => cert = scalar(v).map(|p| base.join(p)),
                        "key" => key = scalar(v).map(|p| base.join(p)),
                        other => return Err(format!("unknown `tls` setting `{other}`")),
                    }
                }
                match (cert, key) {
                    (Some(cert), Some(key)) => tls = Some(TlsFiles { cert, key }),
                    _ => return Err("`tls` needs both `cert` and `key`".into()),
                }
            }
            "paths" => {
                for (k, v) in entries(v).ok_or("`paths` must be a mapping")? {
                    match (k, scalar(v)) {
                        ("merge_slashes", Some("true")) => canon.path.merge_slashes = true,
                        ("merge_slashes", Some("false")) => canon.path.merge_slashes = false,
                        ("merge_slashes", _) => {
                            return Err("`merge_slashes` must be true or false".into());
                        }
                        ("escaped_slashes", text) => {
                            canon.path.escaped_slashes = text
                                .and_then(portcullis_canon::EscapedSlashes::parse)
                                .ok_or(ESCAPED_SLASHES)?;
                        }
                        (other, _) => return Err(format!("unknown `paths` setting `{other}`")),
                    }
                }
            }
            "override_headers" => {
                canon.keep_overrides = match scalar(v) {
                    Some("drop") => false,
                    Some("allow") => true,
                    _ => return Err("`override_headers` is `drop` or `allow`".into()),
                };
            }
            "headers_with_underscores" => {
                canon.underscores = scalar(v)
                    .and_then(portcullis_canon::Underscores::parse)
                    .ok_or("`headers_with_underscores` is one of drop, reject, allow")?;
            }
            "upgrades" => {
                let NodeKind::Seq(items) = &v.kind else {
                    return Err("`upgrades` must be a list of protocol names".into());
                };
                upgrades = items
                    .iter()
                    .map(|i| scalar(i).map(str::to_ascii_lowercase))
                    .collect::<Option<_>>()
                    .ok_or("`upgrades` must be a list of protocol names")?;
            }
            other => return Err(format!("unknown endpoint setting `{other}`")),
        }
    }
    match (&upstream, &forward_auth) {
        (None, None) => return Err("an endpoint needs `upstream` (or `forward_auth`)".into()),
        (Some(_), Some(_)) => {
            return Err(
                "an endpoint has `upstream` or `forward_auth`, not both: a forward-auth endpoint answers its gateway, which proxies".into(),
            );
        }
        _ => {}
    }
    Ok(EndpointConfig {
        listen: listen.ok_or("an endpoint needs `listen`")?,
        url,
        tls,
        policy,
        upstream,
        forward_auth,
        canon,
        upgrades,
    })
}

/// `forward_auth: { gateway: nginx, trusted: [10.0.0.0/8] }`.
fn forward_auth_config(node: &Node) -> Result<crate::forward_auth::ForwardAuth, String> {
    use portcullis_policy::gateway::Gateway;
    const GATEWAYS: &str = "`gateway` is one of nginx, caddy, traefik, envoy";
    let es = entries(node).ok_or("`forward_auth` must be a mapping with `gateway`")?;
    let gateway = es
        .iter()
        .find(|(k, _)| *k == "gateway")
        .and_then(|(_, v)| scalar(v))
        .ok_or(GATEWAYS)?;
    let mut fa = crate::forward_auth::ForwardAuth::new(Gateway::parse(gateway).ok_or(GATEWAYS)?);
    for (k, v) in es {
        match k {
            "gateway" => {}
            "trusted" => {
                let NodeKind::Seq(items) = &v.kind else {
                    return Err("`trusted` must be a list of addresses or CIDR ranges".into());
                };
                fa.trusted = items
                    .iter()
                    .map(|i| trusted_net(scalar(i).unwrap_or("")))
                    .collect::<Result<_, _>>()?;
            }
            other => return Err(format!("unknown `forward_auth` setting `{other}`")),
        }
    }
    Ok(fa)
}

/// A category name as ngrok's are written: dotted labels of lower-case
/// letters, digits, `_` and `-` (`com.amazon.aws`).
pub fn is_category(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        })
}

/// An address (`10.0.0.7`, one host) or a CIDR range (`10.0.0.0/8`).
pub fn trusted_net(text: &str) -> Result<ipnet::IpNet, String> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("`{text}` is not an address or a CIDR range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> (String, bool) {
        let up = Upstream::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        (up.authority.to_string(), up.tls)
    }

    #[test]
    fn upstreams_are_read_as_ngrok_http_reads_them() {
        assert_eq!(parsed("3000"), ("127.0.0.1:3000".into(), false));
        assert_eq!(parsed("app.local:8080"), ("app.local:8080".into(), false));
        assert_eq!(parsed("http://app.local"), ("app.local:80".into(), false));
        assert_eq!(
            parsed("https://localhost:8443"),
            ("localhost:8443".into(), true)
        );
        assert_eq!(parsed("https://app.local"), ("app.local:443".into(), true));
    }

    #[test]
    fn other_schemes_are_refused() {
        let err = Upstream::parse("ftp://app.local").expect_err("ftp");
        assert!(err.contains("http:// or https://"), "{err}");
    }

    #[test]
    fn upstream_tls_is_read_from_the_file() {
        let dir = std::env::temp_dir();
        let text = "endpoints:\n  - listen: 127.0.0.1:0\n    upstream: https://localhost:8443\nupstream_tls:\n  ca: ca.pem\n  insecure_skip_verify: false\n";
        let config = Config::parse(text, &dir.join("portcullis.yml")).expect("config");
        assert_eq!(config.upstream_tls.ca, Some(dir.join("ca.pem")));
        assert!(!config.upstream_tls.insecure_skip_verify);
        let bad = "endpoints:\n  - listen: 127.0.0.1:0\n    upstream: 3000\nupstream_tls:\n  insecure_skip_verify: maybe\n";
        let err = Config::parse(bad, &dir.join("portcullis.yml")).expect_err("not a bool");
        assert!(err.to_string().contains("expected true or false"), "{err}");
    }

    #[test]
    fn ip_policies_are_read_from_the_file() {
        let dir = std::env::temp_dir();
        let text = "endpoints:\n  - listen: 127.0.0.1:0\n    upstream: 3000\nip_policies:\n  ipp_office:\n    allow: [10.0.0.0/8, 2001:db8::/32]\n    deny: [10.1.0.0/16]\n";
        let config = Config::parse(text, &dir.join("portcullis.yml")).expect("config");
        let office = &config.ip_policies["ipp_office"];
        assert_eq!(office.allow, ["10.0.0.0/8", "2001:db8::/32"]);
        assert_eq!(office.deny, ["10.1.0.0/16"]);
        for (bad, why) in [
            (
                "ip_policies:\n  office:\n    allow: [10.0.0.0/8]\n",
                "not an IP Policy id",
            ),
            (
                "ip_policies:\n  ipp_x:\n    allow: [10.0.0.300/8]\n",
                "is not a CIDR",
            ),
            (
                "ip_policies:\n  ipp_x:\n    block: [10.0.0.0/8]\n",
                "unknown IP Policy setting",
            ),
        ] {
            let err = Config::parse(bad, &dir.join("portcullis.yml")).expect_err(bad);
            assert!(err.to_string().contains(why), "{err}");
        }
    }

    #[test]
    fn ip_intelligence_files_are_relative_to_the_config() {
        let text = "endpoints:\n  - listen: 127.0.0.1:0\n    upstream: 3000\nip_intelligence:\n  - geo/City.mmdb\n  - /var/lib/asn.mmdb\n";
        let config =
            Config::parse(text, Path::new("/etc/portcullis/portcullis.yml")).expect("config");
        assert_eq!(
            config.ip_intelligence,
            [
                PathBuf::from("/etc/portcullis/geo/City.mmdb"),
                PathBuf::from("/var/lib/asn.mmdb")
            ]
        );
        let err =
            Config::parse("ip_intelligence: City.mmdb\n", Path::new("p.yml")).expect_err("a list");
        assert!(err.to_string().contains("must be a list"), "{err}");
    }

    #[test]
    fn ip_categories_map_a_category_to_its_files() {
        let text = "endpoints:\n  - listen: 127.0.0.1:0\n    upstream: 3000\nip_categories:\n  proxy.anonymous.tor: lists/tor.txt\n  com.amazon.aws: [aws4.txt, /srv/aws6.txt]\n";
        let config = Config::parse(text, Path::new("/etc/p/portcullis.yml")).expect("config");
        assert_eq!(
            config.ip_categories,
            [
                (
                    "proxy.anonymous.tor".to_owned(),
                    PathBuf::from("/etc/p/lists/tor.txt")
                ),
                (
                    "com.amazon.aws".to_owned(),
                    PathBuf::from("/etc/p/aws4.txt")
                ),
                ("com.amazon.aws".to_owned(), PathBuf::from("/srv/aws6.txt")),
            ]
        );
        let err = Config::parse("ip_categories:\n  Tor Exits: t.txt\n", Path::new("p.yml"))
            .expect_err("not a category");
        assert!(err.to_string().contains("is not a category"), "{err}");
    }
}
