//! `portcullis http`, `portcullis serve` and `portcullis demo`: the edge
//! proxy, from flags (as `ngrok http`), from a config file, or with the
//! embedded demo policy in front of a built-in echo upstream.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use portcullis_proxy::{
    Config, EndpointConfig, ForwardAuth, IdentityConfig, Limits, Timeouts, TlsFiles, Upstream,
    UpstreamTls,
};

/// `portcullis http`.
#[derive(clap::Args)]
pub(crate) struct HttpArgs {
    /// The upstream: a port (`3000`), `host:port`, `http://host:port`, or
    /// `https://host:port` (verified against the Mozilla roots and
    /// `--upstream-ca`).
    upstream: String,
    /// The traffic policy to apply (YAML or JSON); reloaded when it changes.
    #[arg(long, value_name = "FILE")]
    traffic_policy_file: Option<PathBuf>,
    /// Where to listen.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The endpoint's public URL (`endpoint.url`); default `http(s)://LISTEN`.
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Terminate TLS with this certificate chain (PEM); needs `--tls-key`.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) for `--tls-cert`.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve `/metrics` and `/healthz` here.
    #[arg(long, value_name = "ADDR")]
    admin: Option<SocketAddr>,
    /// An internal upstream for `forward-internal` and `http-request`,
    /// as `NAME=ADDR` (`authz.internal=127.0.0.1:4000`); repeatable.
    #[arg(long, value_name = "NAME=ADDR")]
    internal: Vec<String>,
    /// Trust the certificates in this PEM file for an `https://` upstream,
    /// besides the Mozilla roots (a private CA, a self-signed certificate).
    #[arg(long, value_name = "FILE")]
    upstream_ca: Option<PathBuf>,
    /// Accept any certificate from an `https://` upstream (development
    /// only: encrypted, but the upstream is not authenticated).
    #[arg(long)]
    upstream_insecure_skip_verify: bool,
    /// Keep repeated slashes in request paths (`//a` stays `//a`); by
    /// default they are merged, as nginx merges them.
    #[arg(long)]
    no_merge_slashes: bool,
    /// Share rate limits with other replicas through this Redis
    /// (`redis://host:port`, `rediss://…`, `redis+cluster://h:p,h:p`).
    #[arg(long, value_name = "URL")]
    state: Option<String>,
    /// What `%2F`, `%5C` and `\` in a request path do: `reject` (400, the
    /// default), `keep`, `unescape_and_redirect` or `unescape_and_forward`.
    #[arg(long, value_name = "MODE", default_value = "reject")]
    escaped_slashes: String,
    /// ngrok IP Policies for `restrict-ips.ip_policies`: a YAML file
    /// mapping `ipp_…` ids to `allow` and `deny` CIDR lists.
    #[arg(long, value_name = "FILE")]
    ip_policies: Option<PathBuf>,
    /// A MaxMind DB file (GeoIP2/GeoLite2 City or Country, ASN, Anonymous
    /// IP) for `conn.geo.*` and the IP intelligence variables; repeat for
    /// each.
    #[arg(long, value_name = "FILE")]
    ip_intelligence: Vec<PathBuf>,
    /// An address list as an IP category (`blocklist.firehol_org.level_1`,
    /// `proxy.anonymous.tor`, `com.amazon.aws`): one address or CIDR a line,
    /// read again when it changes; repeat for each.
    #[arg(long, value_name = "CATEGORY=FILE")]
    ip_category: Vec<String>,
    /// Send the signed-in user's identity upstream: `X-Forwarded-User`,
    /// `-Email`, `-Groups`, `-Preferred-Username` and a signed
    /// `X-Portcullis-Jwt-Assertion` (keys at
    /// `/.well-known/portcullis/jwks.json`); a client's copies are removed.
    #[arg(long)]
    identity_headers: bool,
    /// Sign identity assertions with this P-256 key (PEM, PKCS#8); by
    /// default a key made at start.
    #[arg(long, value_name = "FILE")]
    identity_signing_key: Option<PathBuf>,
    #[command(flatten)]
    run: RunArgs,
}

/// `portcullis serve`.
#[derive(clap::Args)]
pub(crate) struct ServeArgs {
    /// The configuration file (endpoints, TLS, policies, upstreams).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    #[command(flatten)]
    run: RunArgs,
}

/// `portcullis demo`.
#[derive(clap::Args)]
pub(crate) struct DemoArgs {
    /// Where to listen.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[command(flatten)]
    run: RunArgs,
}

/// Settings of the process.
#[derive(clap::Args)]
struct RunArgs {
    /// Worker threads (default: one per CPU).
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// Access and event log format.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// The demo policy.
const DEMO_POLICY: &str = include_str!("../../policies/demo.yaml");

pub(crate) fn http(args: &HttpArgs) -> anyhow::Result<ExitCode> {
    let upstream = Upstream::parse(&args.upstream).map_err(anyhow::Error::msg)?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ => None,
    };
    let mut internal = Vec::new();
    for spec in &args.internal {
        let (name, addr) = spec
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("`--internal {spec}`: expected NAME=ADDR"))?;
        internal.push((
            name.trim().to_owned(),
            Upstream::parse(addr).map_err(anyhow::Error::msg)?,
        ));
    }
    let mut ip_categories = Vec::new();
    for spec in &args.ip_category {
        let (category, file) = spec
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("`--ip-category {spec}`: expected CATEGORY=FILE"))?;
        if !portcullis_proxy::config::is_category(category) {
            anyhow::bail!(
                "`--ip-category {spec}`: `{category}` is not a category (dotted lower-case names, as `blocklist.firehol_org.level_1`)"
            );
        }
        ip_categories.push((category.to_owned(), PathBuf::from(file)));
    }
    let mut canon = portcullis_canon::Options::default();
    canon.path.merge_slashes = !args.no_merge_slashes;
    canon.path.escaped_slashes = portcullis_canon::EscapedSlashes::parse(&args.escaped_slashes)
        .ok_or_else(|| {
            anyhow::anyhow!("--escaped-slashes: {}", portcullis_proxy::ESCAPED_SLASHES)
        })?;
    let config = Config {
        endpoints: vec![EndpointConfig {
            listen: args.listen,
            url: args.url.clone(),
            tls,
            policy: args.traffic_policy_file.clone(),
            upstream: Some(upstream),
            forward_auth: None,
            canon,
            upgrades: portcullis_proxy::default_upgrades(),
        }],
        internal,
        admin: args.admin,
        timeouts: Timeouts::default(),
        limits: Limits::default(),
        session_keys: session_keys_from_env()?,
        upstream_tls: UpstreamTls {
            ca: args.upstream_ca.clone(),
            insecure_skip_verify: args.upstream_insecure_skip_verify,
        },
        state: args
            .state
            .as_deref()
            .map(portcullis_state::StateConfig::new),
        admin_token: admin_token_from_env(),
        identity: IdentityConfig {
            signing_key: signing_key(args.identity_signing_key.as_deref())?,
            upstream_headers: args.identity_headers,
        },
        ip_policies: match &args.ip_policies {
            Some(path) => portcullis_proxy::config::ip_policies_file(path)
                .map_err(|e| anyhow::anyhow!("{e}"))?,
            None => portcullis_actions::IpPolicies::new(),
        },
        oauth_apps: portcullis_actions::OAuthApps::new(),
        ip_policies_file: args.ip_policies.clone(),
        ip_intelligence: args.ip_intelligence.clone(),
        ip_categories,
    };
    run(config, &args.run, None)
}

/// `portcullis forward-auth`.
#[derive(clap::Args)]
pub(crate) struct ForwardAuthArgs {
    /// The gateway that asks: `nginx` (auth_request), `caddy`
    /// (forward_auth), `traefik` (forwardAuth) or `envoy` (ext_authz, HTTP
    /// and gRPC).
    #[arg(long, value_name = "NAME")]
    gateway: String,
    /// The traffic policy to apply (YAML or JSON); reloaded when it
    /// changes. Checked for the gateway: what it cannot apply is an error.
    #[arg(long, value_name = "FILE")]
    traffic_policy_file: PathBuf,
    /// Where to listen.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:4180")]
    listen: SocketAddr,
    /// An address or CIDR range the gateway connects from; repeatable.
    /// Default: loopback only. Anyone else is refused.
    #[arg(long, value_name = "CIDR")]
    trusted: Vec<String>,
    /// The application's public URL (`endpoint.url`).
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Serve `/metrics` and `/healthz` here.
    #[arg(long, value_name = "ADDR")]
    admin: Option<SocketAddr>,
    /// Share rate limits and sessions with other replicas through this
    /// Redis.
    #[arg(long, value_name = "URL")]
    state: Option<String>,
    /// Sign identity assertions with this P-256 key (PEM, PKCS#8); by
    /// default a key made at start.
    #[arg(long, value_name = "FILE")]
    identity_signing_key: Option<PathBuf>,
    #[command(flatten)]
    run: RunArgs,
}

pub(crate) fn forward_auth(args: &ForwardAuthArgs) -> anyhow::Result<ExitCode> {
    let gateway = portcullis_policy::gateway::Gateway::parse(&args.gateway)
        .ok_or_else(|| anyhow::anyhow!("--gateway: one of nginx, caddy, traefik, envoy"))?;
    let mut fa = ForwardAuth::new(gateway);
    if !args.trusted.is_empty() {
        fa.trusted = args
            .trusted
            .iter()
            .map(|t| portcullis_proxy::trusted_net(t))
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow::anyhow!("--trusted: {e}"))?;
    }
    let config = Config {
        endpoints: vec![EndpointConfig {
            listen: args.listen,
            url: args.url.clone(),
            tls: None,
            policy: Some(args.traffic_policy_file.clone()),
            upstream: None,
            forward_auth: Some(fa),
            canon: portcullis_canon::Options::default(),
            upgrades: Vec::new(),
        }],
        internal: Vec::new(),
        admin: args.admin,
        timeouts: Timeouts::default(),
        limits: Limits::default(),
        session_keys: session_keys_from_env()?,
        upstream_tls: UpstreamTls::default(),
        state: args
            .state
            .as_deref()
            .map(portcullis_state::StateConfig::new),
        admin_token: admin_token_from_env(),
        identity: IdentityConfig {
            signing_key: signing_key(args.identity_signing_key.as_deref())?,
            upstream_headers: false,
        },
        ip_policies: portcullis_actions::IpPolicies::new(),
        oauth_apps: portcullis_actions::OAuthApps::new(),
        ip_policies_file: None,
        ip_intelligence: Vec::new(),
        ip_categories: Vec::new(),
    };
    run(config, &args.run, None)
}

/// The PEM text of `--identity-signing-key`.
fn signing_key(path: Option<&std::path::Path>) -> anyhow::Result<Option<String>> {
    path.map(|p| std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display())))
        .transpose()
}

pub(crate) fn serve(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let src = std::fs::read_to_string(&args.config)
        .with_context(|| format!("cannot read {}", args.config.display()))?;
    let mut config = Config::parse(&src, &args.config)?;
    if config.session_keys.is_empty() {
        config.session_keys = session_keys_from_env()?;
    }
    if config.admin_token.is_none() {
        config.admin_token = admin_token_from_env();
    }
    run(config, &args.run, None)
}

pub(crate) fn demo(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    // The policy goes through a file so that it is loaded (and reloadable)
    // exactly as a user's would be.
    let dir = std::env::temp_dir().join(format!("portcullis-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).context("cannot create a temporary directory")?;
    let policy = dir.join("demo.yaml");
    std::fs::write(&policy, DEMO_POLICY).context("cannot write the demo policy")?;
    let config = Config {
        endpoints: vec![EndpointConfig {
            listen: args.listen,
            url: None,
            tls: None,
            policy: Some(policy.clone()),
            // Replaced by the echo upstream's address once it is bound.
            upstream: None,
            forward_auth: None,
            canon: portcullis_canon::Options::default(),
            upgrades: portcullis_proxy::default_upgrades(),
        }],
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
    let res = run(config, &args.run, Some(policy.display().to_string()));
    let _ = std::fs::remove_dir_all(&dir);
    res
}

/// `PORTCULLIS_ADMIN_TOKEN`: what the admin listener's `/sessions` asks
/// for.
fn admin_token_from_env() -> Option<String> {
    std::env::var("PORTCULLIS_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
}

/// `PORTCULLIS_SESSION_KEYS`: base64 keys, comma-separated, the first
/// sealing new sessions.
fn session_keys_from_env() -> anyhow::Result<Vec<[u8; 32]>> {
    let Ok(text) = std::env::var("PORTCULLIS_SESSION_KEYS") else {
        return Ok(Vec::new());
    };
    text.split(',')
        .filter(|k| !k.trim().is_empty())
        .map(|k| {
            portcullis_actions::session::parse_key(k).ok_or_else(|| {
                anyhow::anyhow!(
                    "PORTCULLIS_SESSION_KEYS: a key is 32 random bytes in base64 (`openssl rand -base64 32`)"
                )
            })
        })
        .collect()
}

fn run(mut config: Config, args: &RunArgs, demo: Option<String>) -> anyhow::Result<ExitCode> {
    init_logging(args.log_format);
    // One worker: a single-threaded runtime, which wakes tasks without
    // crossing threads.
    let mut rt = match args.workers {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut rt = tokio::runtime::Builder::new_multi_thread();
            rt.worker_threads(n.max(1));
            rt
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let rt = rt
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    rt.block_on(async move {
        if let Some(policy) = &demo {
            let echo = portcullis_proxy::echo::spawn(SocketAddr::from(([127, 0, 0, 1], 0)))
                .await
                .context("cannot start the echo upstream")?;
            for ep in &mut config.endpoints {
                ep.upstream = Some(Upstream::parse(&echo.to_string()).map_err(anyhow::Error::msg)?);
            }
            let at = config.endpoints.first().map(|e| e.listen);
            if let Some(at) = at {
                super::eprint(&format!(
                    "portcullis demo: the policy {policy} in front of an echo upstream\n\
                     try:  curl -i http://{at}/hello\n      \
                     curl -i http://{at}/admin      (denied)\n      \
                     curl -i http://{at}/v1/items   (redirected)\n      \
                     curl -i http://{at}/healthz    (answered by the proxy)\n\
                     edit the policy file and it reloads; Ctrl-C stops"
                ));
            }
        }
        match portcullis_proxy::run(config, shutdown_signal()).await {
            Ok(()) => Ok(ExitCode::SUCCESS),
            Err(e) => {
                super::eprint(&format!("error: {e}"));
                Ok(ExitCode::from(1))
            }
        }
    })
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PORTCULLIS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Resolves on SIGTERM or Ctrl-C. The handlers are installed when this is
/// called, not when it is first polled: a signal that arrives while the
/// proxy starts (before its `run` awaits this) stops it gracefully instead
/// of killing the process by the signal's default action.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        async move {
            match (term, int) {
                (Some(mut term), Some(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                (Some(mut term), None) => {
                    term.recv().await;
                }
                (None, Some(mut int)) => {
                    int.recv().await;
                }
                (None, None) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
