//! Webhook signature verification, per provider: the pure core of the `verify-webhook` action.
//!
//! [`verify`] checks one request against one provider's signing scheme and a secret. It does no
//! I/O and reads the clock only through its `now` argument, so the action can call it once the
//! body is buffered and tests can pin time.
//!
//! Three rules hold for every provider:
//!
//! - Signatures are compared in constant time (`subtle`), so response timing does not reveal how
//!   much of a forged signature was right.
//! - Where a provider signs a timestamp, the timestamp must lie within the provider's own
//!   recommended tolerance of `now`, in either direction; providers that publish no number get the
//!   180 s that ngrok's legacy webhook-verification module documents.
//! - Where a provider may send several signatures (Stripe-style `v1=` lists, Svix's
//!   space-separated list, PagerDuty), one match is enough: that is how they rotate secrets.
//!
//! Provider endpoint-verification challenges (Zoom, Twitter, Xero, Worldline) are answered by the
//! action, not here.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest as _, Sha256, Sha512};
use subtle::{Choice, ConstantTimeEq};

/// A webhook sender whose signing scheme `verify-webhook` knows, named by its ngrok provider id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    /// Bitbucket Cloud (`bitbucket`): `X-Hub-Signature: sha256=<hex>` over the body.
    Bitbucket,
    /// Calendly (`calendly`): `Calendly-Webhook-Signature: t=<ts>,v1=<hex>` over `<ts>.<body>`.
    Calendly,
    /// Clerk (`clerk`), which delivers through Svix: same scheme as [`Provider::Svix`].
    Clerk,
    /// Dropbox (`dropbox`): `X-Dropbox-Signature: <hex>` over the body, keyed by the app secret.
    Dropbox,
    /// Facebook Graph API (`facebook_graph_api`): `X-Hub-Signature-256: sha256=<hex>`, keyed by the
    /// app secret.
    FacebookGraphApi,
    /// Facebook Messenger (`facebook_messenger`): Meta's `X-Hub-Signature-256` scheme.
    FacebookMessenger,
    /// A Portcullis extension, not an ngrok provider (`hmac_sha256`): `X-Signature: <hex>` (optionally
    /// `sha256=<hex>`), HMAC-SHA256 over the body, for senders no named provider covers.
    GenericHmac,
    /// GitHub (`github`): `X-Hub-Signature-256: sha256=<hex>` over the body.
    Github,
    /// GitLab (`gitlab`): `X-Gitlab-Token` carries the secret itself; the body is not signed.
    Gitlab,
    /// Heroku app webhooks (`heroku`): `Heroku-Webhook-Hmac-SHA256: <base64>` over the body.
    Heroku,
    /// Instagram (`instagram`): Meta's `X-Hub-Signature-256` scheme.
    Instagram,
    /// Intercom (`intercom`): `X-Hub-Signature: sha1=<hex>` (HMAC-SHA1) over the body.
    Intercom,
    /// Linear (`linear`): `Linear-Signature: <hex>` over the body, whose `webhookTimestamp`
    /// (milliseconds) must be within 60 s.
    Linear,
    /// Mailgun (`mailgun`): the body carries `timestamp`, `token` and `signature`, the hex
    /// HMAC-SHA256 of `<timestamp><token>`; the event data itself is not signed.
    Mailgun,
    /// Mux (`mux`): `Mux-Signature: t=<ts>,v1=<hex>` over `<ts>.<body>`.
    Mux,
    /// PagerDuty v3 webhooks (`pagerduty`): `X-PagerDuty-Signature: v1=<hex>[,v1=<hex>…]` over the
    /// body.
    Pagerduty,
    /// Sentry integrations (`sentry`): `Sentry-Hook-Signature: <hex>` over the body.
    Sentry,
    /// Shopify (`shopify`): `X-Shopify-Hmac-Sha256: <base64>` over the body.
    Shopify,
    /// Slack (`slack`): `X-Slack-Signature: v0=<hex>` over `v0:<ts>:<body>`, with the timestamp in
    /// `X-Slack-Request-Timestamp`.
    Slack,
    /// Square (`square`): `x-square-hmacsha256-signature: <base64>` over `<notification url><body>`.
    Square,
    /// Stripe (`stripe`): `Stripe-Signature: t=<ts>,v1=<hex>[,v1=<hex>…]` over `<ts>.<body>`.
    Stripe,
    /// Svix (`svix`): `svix-signature: v1,<base64>[ v1,<base64>…]` over `<id>.<ts>.<body>`, keyed by
    /// the base64 part of a `whsec_` secret; `webhook-*` (Standard Webhooks) headers also accepted.
    Svix,
    /// HCP Terraform notifications (`terraform`): `X-TFE-Notification-Signature: <hex>`, HMAC-SHA512
    /// over the body.
    Terraform,
    /// Twilio (`twilio`): `X-Twilio-Signature: <base64>`, HMAC-SHA1 over the URL followed by the
    /// sorted form parameters.
    Twilio,
    /// Twitter / X Account Activity (`twitter`): `X-Twitter-Webhooks-Signature: sha256=<base64>`.
    Twitter,
    /// Typeform (`typeform`): `Typeform-Signature: sha256=<base64>` over the body.
    Typeform,
    /// WhatsApp Business (`whatsapp`): Meta's `X-Hub-Signature-256` scheme.
    Whatsapp,
    /// Xero (`xero`): `X-Xero-Signature: <base64>` over the body.
    Xero,
    /// Zoom (`zoom`): `x-zm-signature: v0=<hex>` over `v0:<ts>:<body>`, with the timestamp in
    /// `x-zm-request-timestamp`.
    Zoom,
}

/// What [`verify`] needs from the request.
#[derive(Debug, Clone, Copy)]
pub struct Signed<'a> {
    /// The request method, e.g. `POST`.
    pub method: &'a str,
    /// The full URL the provider called, as ngrok would reconstruct it:
    /// `scheme://host[:port]/path?query`. Twilio and Square sign it.
    pub url: &'a str,
    /// The request headers.
    pub headers: &'a http::HeaderMap,
    /// The raw request body, exactly as received.
    pub body: &'a [u8],
}

/// Checks that `req` carries a valid `provider` signature made with `secret`, and that any signed
/// timestamp is within the provider's tolerance of `now`.
pub fn verify(
    provider: Provider,
    secret: &str,
    req: &Signed<'_>,
    now: SystemTime,
) -> Result<(), WebhookError> {
    // An empty key is a key everyone knows: a secret that interpolated to nothing must not turn
    // verification into a formality.
    if secret.is_empty() {
        return Err(WebhookError::new(
            WebhookErrorKind::InvalidSecret,
            "secret is empty".to_owned(),
        ));
    }
    let now_ms = unix_millis(now);
    let key = secret.as_bytes();
    match provider.scheme() {
        Scheme::Body {
            header: name,
            alg,
            encoding,
            prefix,
        } => verify_body(req, key, name, alg, encoding, prefix),
        Scheme::BodyList { header: name } => verify_body_list(req, key, name),
        Scheme::Token { header: name } => verify_token(req, key, name),
        Scheme::TimestampDotBody {
            header: name,
            tolerance,
        } => verify_timestamp_dot_body(req, key, name, tolerance, now_ms),
        Scheme::VersionedTimestamp {
            signature,
            timestamp,
            tolerance,
        } => verify_versioned_timestamp(req, key, signature, timestamp, tolerance, now_ms),
        Scheme::Svix => verify_svix(req, secret, now_ms),
        Scheme::Twilio => verify_twilio(req, key),
        Scheme::Square => verify_square(req, key),
        Scheme::Mailgun => verify_mailgun(req, key, now_ms),
        Scheme::Linear => verify_linear(req, key, now_ms),
    }
}

/// Why a request failed verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookError {
    kind: WebhookErrorKind,
    message: String,
}

/// The broad reason behind a [`WebhookError`], for callers that branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WebhookErrorKind {
    /// A header the scheme needs is absent.
    MissingHeader,
    /// A header is present but not in the provider's format.
    MalformedHeader,
    /// The body lacks what the scheme signs (Mailgun fields, Linear's timestamp, Twilio's body hash).
    MalformedBody,
    /// The configured secret cannot be used (empty, or not a `whsec_` secret for Svix).
    InvalidSecret,
    /// No provided signature matches the one computed from the request.
    SignatureMismatch,
    /// The signature is valid but its timestamp is too far from now: a replay or a skewed clock.
    TimestampOutOfTolerance,
}

// === impl Provider ===

impl Provider {
    /// The provider with ngrok provider id `id` (e.g. `github`), if this module supports it.
    pub fn from_id(id: &str) -> Option<Provider> {
        Provider::all().iter().copied().find(|it| it.id() == id)
    }

    /// The provider id used in policies, e.g. `github` or `facebook_graph_api`.
    pub fn id(self) -> &'static str {
        match self {
            Provider::Bitbucket => "bitbucket",
            Provider::Calendly => "calendly",
            Provider::Clerk => "clerk",
            Provider::Dropbox => "dropbox",
            Provider::FacebookGraphApi => "facebook_graph_api",
            Provider::FacebookMessenger => "facebook_messenger",
            Provider::GenericHmac => "hmac_sha256",
            Provider::Github => "github",
            Provider::Gitlab => "gitlab",
            Provider::Heroku => "heroku",
            Provider::Instagram => "instagram",
            Provider::Intercom => "intercom",
            Provider::Linear => "linear",
            Provider::Mailgun => "mailgun",
            Provider::Mux => "mux",
            Provider::Pagerduty => "pagerduty",
            Provider::Sentry => "sentry",
            Provider::Shopify => "shopify",
            Provider::Slack => "slack",
            Provider::Square => "square",
            Provider::Stripe => "stripe",
            Provider::Svix => "svix",
            Provider::Terraform => "terraform",
            Provider::Twilio => "twilio",
            Provider::Twitter => "twitter",
            Provider::Typeform => "typeform",
            Provider::Whatsapp => "whatsapp",
            Provider::Xero => "xero",
            Provider::Zoom => "zoom",
        }
    }

    /// Every supported provider, sorted by id.
    pub fn all() -> &'static [Provider] {
        &ALL_PROVIDERS
    }

    fn scheme(self) -> Scheme {
        use Alg::{Sha1, Sha256, Sha512};
        use Encoding::{Base64, Hex};
        let body = |header, alg, encoding, prefix| Scheme::Body {
            header,
            alg,
            encoding,
            prefix,
        };
        match self {
            Provider::Bitbucket => {
                body("X-Hub-Signature", Sha256, Hex, Prefix::Required("sha256="))
            }
            Provider::Calendly => Scheme::TimestampDotBody {
                header: "Calendly-Webhook-Signature",
                tolerance: DEFAULT_TOLERANCE_SECS,
            },
            Provider::Clerk | Provider::Svix => Scheme::Svix,
            Provider::Dropbox => body("X-Dropbox-Signature", Sha256, Hex, Prefix::None),
            Provider::FacebookGraphApi
            | Provider::FacebookMessenger
            | Provider::Instagram
            | Provider::Whatsapp => body(
                "X-Hub-Signature-256",
                Sha256,
                Hex,
                Prefix::Required("sha256="),
            ),
            Provider::GenericHmac => body("X-Signature", Sha256, Hex, Prefix::Optional("sha256=")),
            Provider::Github => body(
                "X-Hub-Signature-256",
                Sha256,
                Hex,
                Prefix::Required("sha256="),
            ),
            Provider::Gitlab => Scheme::Token {
                header: "X-Gitlab-Token",
            },
            Provider::Heroku => body("Heroku-Webhook-Hmac-SHA256", Sha256, Base64, Prefix::None),
            Provider::Intercom => body("X-Hub-Signature", Sha1, Hex, Prefix::Required("sha1=")),
            Provider::Linear => Scheme::Linear,
            Provider::Mailgun => Scheme::Mailgun,
            // Mux's SDKs default to a five-minute tolerance.
            Provider::Mux => Scheme::TimestampDotBody {
                header: "Mux-Signature",
                tolerance: 300,
            },
            Provider::Pagerduty => Scheme::BodyList {
                header: "X-PagerDuty-Signature",
            },
            Provider::Sentry => body("Sentry-Hook-Signature", Sha256, Hex, Prefix::None),
            Provider::Shopify => body("X-Shopify-Hmac-Sha256", Sha256, Base64, Prefix::None),
            // Slack's guide rejects requests more than five minutes old.
            Provider::Slack => Scheme::VersionedTimestamp {
                signature: "X-Slack-Signature",
                timestamp: "X-Slack-Request-Timestamp",
                tolerance: 300,
            },
            Provider::Square => Scheme::Square,
            // Stripe's libraries default to a five-minute tolerance.
            Provider::Stripe => Scheme::TimestampDotBody {
                header: "Stripe-Signature",
                tolerance: 300,
            },
            Provider::Terraform => body("X-TFE-Notification-Signature", Sha512, Hex, Prefix::None),
            Provider::Twilio => Scheme::Twilio,
            Provider::Twitter => body(
                "X-Twitter-Webhooks-Signature",
                Sha256,
                Base64,
                Prefix::Required("sha256="),
            ),
            Provider::Typeform => body(
                "Typeform-Signature",
                Sha256,
                Base64,
                Prefix::Required("sha256="),
            ),
            Provider::Xero => body("X-Xero-Signature", Sha256, Base64, Prefix::None),
            Provider::Zoom => Scheme::VersionedTimestamp {
                signature: "x-zm-signature",
                timestamp: "x-zm-request-timestamp",
                tolerance: DEFAULT_TOLERANCE_SECS,
            },
        }
    }
}

static ALL_PROVIDERS: [Provider; 29] = [
    Provider::Bitbucket,
    Provider::Calendly,
    Provider::Clerk,
    Provider::Dropbox,
    Provider::FacebookGraphApi,
    Provider::FacebookMessenger,
    Provider::Github,
    Provider::Gitlab,
    Provider::Heroku,
    Provider::GenericHmac,
    Provider::Instagram,
    Provider::Intercom,
    Provider::Linear,
    Provider::Mailgun,
    Provider::Mux,
    Provider::Pagerduty,
    Provider::Sentry,
    Provider::Shopify,
    Provider::Slack,
    Provider::Square,
    Provider::Stripe,
    Provider::Svix,
    Provider::Terraform,
    Provider::Twilio,
    Provider::Twitter,
    Provider::Typeform,
    Provider::Whatsapp,
    Provider::Xero,
    Provider::Zoom,
];

// === impl WebhookError ===

impl WebhookError {
    /// The lowercase, one-line description shown to users, e.g. ``missing `Stripe-Signature` header``.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The broad reason, for callers that branch on it.
    pub fn kind(&self) -> WebhookErrorKind {
        self.kind
    }

    fn new(kind: WebhookErrorKind, message: String) -> WebhookError {
        WebhookError { kind, message }
    }

    fn missing_header(name: &str) -> WebhookError {
        WebhookError::new(
            WebhookErrorKind::MissingHeader,
            format!("missing `{name}` header"),
        )
    }

    fn malformed_header(name: &str, what: &str) -> WebhookError {
        WebhookError::new(
            WebhookErrorKind::MalformedHeader,
            format!("`{name}` header {what}"),
        )
    }

    fn malformed_body(what: &str) -> WebhookError {
        WebhookError::new(
            WebhookErrorKind::MalformedBody,
            format!("request body {what}"),
        )
    }

    fn mismatch() -> WebhookError {
        WebhookError::new(
            WebhookErrorKind::SignatureMismatch,
            "signature does not match".to_owned(),
        )
    }

    fn stale(tolerance_secs: u64) -> WebhookError {
        WebhookError::new(
            WebhookErrorKind::TimestampOutOfTolerance,
            format!("timestamp outside the {tolerance_secs} s tolerance"),
        )
    }
}

impl fmt::Display for WebhookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for WebhookError {}

// === schemes ===

/// ngrok's legacy webhook-verification module documents 180 s for providers without their own.
const DEFAULT_TOLERANCE_SECS: u64 = 180;

/// Linear's SDK rejects deliveries whose `webhookTimestamp` is more than a minute off.
const LINEAR_TOLERANCE_SECS: u64 = 60;

/// Svix's libraries (and so Clerk's) allow five minutes either way.
const SVIX_TOLERANCE_SECS: u64 = 300;

/// How a provider signs, with the names and numbers that differ between providers that share a
/// construction.
#[derive(Debug, Clone, Copy)]
enum Scheme {
    /// One signature of the raw body in one header.
    Body {
        header: &'static str,
        alg: Alg,
        encoding: Encoding,
        prefix: Prefix,
    },
    /// `v1=<hex>` entries, comma-separated, each an HMAC-SHA256 of the raw body (PagerDuty).
    BodyList {
        header: &'static str,
    },
    /// The header carries the secret itself (GitLab).
    Token {
        header: &'static str,
    },
    /// `t=<ts>,v1=<hex>[,v1=<hex>…]` over `<ts>.<body>` (Stripe and the schemes copied from it).
    TimestampDotBody {
        header: &'static str,
        tolerance: u64,
    },
    /// `v0=<hex>` over `v0:<ts>:<body>`, timestamp in its own header (Slack and Zoom).
    VersionedTimestamp {
        signature: &'static str,
        timestamp: &'static str,
        tolerance: u64,
    },
    Svix,
    Twilio,
    Square,
    Mailgun,
    Linear,
}

#[derive(Debug, Clone, Copy)]
enum Alg {
    Sha1,
    Sha256,
    Sha512,
}

#[derive(Debug, Clone, Copy)]
enum Encoding {
    Hex,
    Base64,
}

#[derive(Debug, Clone, Copy)]
enum Prefix {
    None,
    Required(&'static str),
    Optional(&'static str),
}

fn verify_body(
    req: &Signed<'_>,
    key: &[u8],
    name: &'static str,
    alg: Alg,
    encoding: Encoding,
    prefix: Prefix,
) -> Result<(), WebhookError> {
    let value = header(req, name)?;
    let signature = match prefix {
        Prefix::None => value,
        Prefix::Required(prefix) => value.strip_prefix(prefix).ok_or_else(|| {
            WebhookError::malformed_header(name, &format!("does not start with `{prefix}`"))
        })?,
        Prefix::Optional(prefix) => value.strip_prefix(prefix).unwrap_or(value),
    };
    check(hmac(alg, key, &[req.body]), [encoding.decode(signature)])
}

fn verify_body_list(req: &Signed<'_>, key: &[u8], name: &'static str) -> Result<(), WebhookError> {
    let value = header(req, name)?;
    let signatures: Vec<_> = value
        .split(',')
        .filter_map(|it| it.trim().strip_prefix("v1="))
        .map(|it| Encoding::Hex.decode(it))
        .collect();
    if signatures.is_empty() {
        return Err(WebhookError::malformed_header(
            name,
            "has no `v1=` signature",
        ));
    }
    check(hmac(Alg::Sha256, key, &[req.body]), signatures)
}

fn verify_token(req: &Signed<'_>, key: &[u8], name: &'static str) -> Result<(), WebhookError> {
    let value = header(req, name)?;
    // Comparing digests rather than the strings keeps the comparison constant-time even in the
    // secret's length, which a plain slice comparison would reveal.
    let expected = Sha256::digest(key).to_vec();
    check(
        Some(expected),
        [Some(Sha256::digest(value.as_bytes()).to_vec())],
    )
}

fn verify_timestamp_dot_body(
    req: &Signed<'_>,
    key: &[u8],
    name: &'static str,
    tolerance: u64,
    now_ms: i64,
) -> Result<(), WebhookError> {
    let value = header(req, name)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for (k, v) in value.split(',').filter_map(|it| it.trim().split_once('=')) {
        match k {
            // The first `t` wins; a second one cannot smuggle in a different time because the
            // signed string uses the same one.
            "t" if timestamp.is_none() => timestamp = Some(v),
            "v1" => signatures.push(Encoding::Hex.decode(v)),
            _ => {}
        }
    }
    let timestamp =
        timestamp.ok_or_else(|| WebhookError::malformed_header(name, "has no `t=` timestamp"))?;
    if signatures.is_empty() {
        return Err(WebhookError::malformed_header(
            name,
            "has no `v1=` signature",
        ));
    }
    let seconds = parse_unix_seconds(timestamp).ok_or_else(|| {
        WebhookError::malformed_header(name, "has a `t=` value that is not a unix timestamp")
    })?;
    let expected = hmac(Alg::Sha256, key, &[timestamp.as_bytes(), b".", req.body]);
    check(expected, signatures)?;
    check_tolerance(seconds.saturating_mul(1000), now_ms, tolerance)
}

fn verify_versioned_timestamp(
    req: &Signed<'_>,
    key: &[u8],
    signature_name: &'static str,
    timestamp_name: &'static str,
    tolerance: u64,
    now_ms: i64,
) -> Result<(), WebhookError> {
    let signature = header(req, signature_name)?;
    let timestamp = header(req, timestamp_name)?;
    let signature = signature.strip_prefix("v0=").ok_or_else(|| {
        WebhookError::malformed_header(signature_name, "does not start with `v0=`")
    })?;
    let seconds = parse_unix_seconds(timestamp)
        .ok_or_else(|| WebhookError::malformed_header(timestamp_name, "is not a unix timestamp"))?;
    let expected = hmac(
        Alg::Sha256,
        key,
        &[b"v0:", timestamp.as_bytes(), b":", req.body],
    );
    check(expected, [Encoding::Hex.decode(signature)])?;
    check_tolerance(seconds.saturating_mul(1000), now_ms, tolerance)
}

fn verify_svix(req: &Signed<'_>, secret: &str, now_ms: i64) -> Result<(), WebhookError> {
    // Svix's own libraries accept the secret with or without its `whsec_` prefix; the key is the
    // base64-decoded rest.
    let key = BASE64
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .ok()
        .filter(|it| !it.is_empty())
        .ok_or_else(|| {
            WebhookError::new(
                WebhookErrorKind::InvalidSecret,
                "secret is not a svix signing secret (`whsec_` followed by base64)".to_owned(),
            )
        })?;
    // Svix sends `svix-*` headers; the Standard Webhooks spec it grew into names them `webhook-*`.
    let [id_name, timestamp_name, signature_name] = if req.headers.contains_key("svix-signature")
        || !req.headers.contains_key("webhook-signature")
    {
        ["svix-id", "svix-timestamp", "svix-signature"]
    } else {
        ["webhook-id", "webhook-timestamp", "webhook-signature"]
    };
    let id = header(req, id_name)?;
    let timestamp = header(req, timestamp_name)?;
    let value = header(req, signature_name)?;
    // Entries are `<version>,<base64>`; only `v1` is HMAC (`v1a` is an asymmetric signature).
    let signatures: Vec<_> = value
        .split_whitespace()
        .filter_map(|it| it.strip_prefix("v1,"))
        .map(|it| Encoding::Base64.decode(it))
        .collect();
    if signatures.is_empty() {
        return Err(WebhookError::malformed_header(
            signature_name,
            "has no `v1,` signature",
        ));
    }
    let seconds = parse_unix_seconds(timestamp)
        .ok_or_else(|| WebhookError::malformed_header(timestamp_name, "is not a unix timestamp"))?;
    let expected = hmac(
        Alg::Sha256,
        &key,
        &[id.as_bytes(), b".", timestamp.as_bytes(), b".", req.body],
    );
    check(expected, signatures)?;
    check_tolerance(seconds.saturating_mul(1000), now_ms, SVIX_TOLERANCE_SECS)
}

fn verify_twilio(req: &Signed<'_>, key: &[u8]) -> Result<(), WebhookError> {
    const NAME: &str = "X-Twilio-Signature";
    let provided = Encoding::Base64.decode(header(req, NAME)?);
    let mut params = if req.body.is_empty() {
        Vec::new()
    } else if req.method.eq_ignore_ascii_case("POST") && is_form(req) {
        form_pairs(req.body)
    } else {
        // Twilio signs only the URL of a JSON request and vouches for the body through a
        // `bodySHA256` query parameter, so that hash must be checked or the body is unsigned.
        let claimed = query_param(req.url, "bodySHA256").ok_or_else(|| {
            WebhookError::malformed_body(
                "is not form data and the url has no `bodySHA256` parameter",
            )
        })?;
        check(
            Some(Sha256::digest(req.body).to_vec()),
            [Encoding::Hex.decode(claimed)],
        )?;
        Vec::new()
    };
    params.sort();
    let signed_input = |url: &str| {
        let mut it = url.as_bytes().to_vec();
        for (k, v) in &params {
            it.extend_from_slice(k);
            it.extend_from_slice(v);
        }
        it
    };
    // Twilio's own validators also try the URL with the default port added or removed, because
    // proxies disagree on whether `:443` belongs in the URL Twilio was given.
    let mut matched = Choice::from(0);
    for url in std::iter::once(req.url.to_owned()).chain(toggle_default_port(req.url)) {
        let expected = hmac(Alg::Sha1, key, &[&signed_input(&url)]);
        matched |= ct_matches(expected.as_deref(), provided.as_deref());
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(WebhookError::mismatch())
    }
}

fn verify_square(req: &Signed<'_>, key: &[u8]) -> Result<(), WebhookError> {
    let value = header(req, "x-square-hmacsha256-signature")?;
    let expected = hmac(Alg::Sha256, key, &[req.url.as_bytes(), req.body]);
    check(expected, [Encoding::Base64.decode(value)])
}

fn verify_mailgun(req: &Signed<'_>, key: &[u8], now_ms: i64) -> Result<(), WebhookError> {
    let missing = || {
        WebhookError::malformed_body("has no mailgun `timestamp`, `token` and `signature` fields")
    };
    // Webhooks post JSON with a `signature` object; legacy webhooks and routes post form fields.
    let [timestamp, token, signature] = if is_form(req) {
        let pairs = form_pairs(req.body);
        let field = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name.as_bytes())
                .map(|(_, v)| v.clone())
        };
        [field("timestamp"), field("token"), field("signature")]
    } else {
        let json: serde_json::Value = serde_json::from_slice(req.body).map_err(|_| missing())?;
        let field = |name: &str| match json.get("signature").and_then(|it| it.get(name)) {
            Some(serde_json::Value::String(s)) => Some(s.as_bytes().to_vec()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string().into_bytes()),
            _ => None,
        };
        [field("timestamp"), field("token"), field("signature")]
    };
    let (Some(timestamp), Some(token), Some(signature)) = (timestamp, token, signature) else {
        return Err(missing());
    };
    let seconds = std::str::from_utf8(&timestamp)
        .ok()
        .and_then(parse_unix_seconds)
        .ok_or_else(|| {
            WebhookError::malformed_body("has a mailgun `timestamp` that is not a unix timestamp")
        })?;
    let provided = std::str::from_utf8(&signature)
        .ok()
        .and_then(|it| Encoding::Hex.decode(it));
    check(hmac(Alg::Sha256, key, &[&timestamp, &token]), [provided])?;
    check_tolerance(seconds.saturating_mul(1000), now_ms, DEFAULT_TOLERANCE_SECS)
}

fn verify_linear(req: &Signed<'_>, key: &[u8], now_ms: i64) -> Result<(), WebhookError> {
    verify_body(
        req,
        key,
        "Linear-Signature",
        Alg::Sha256,
        Encoding::Hex,
        Prefix::None,
    )?;
    // The timestamp lives in the signed body, so it is trustworthy once the signature is.
    let millis = serde_json::from_slice::<serde_json::Value>(req.body)
        .ok()
        .and_then(|it| {
            it.get("webhookTimestamp")
                .and_then(serde_json::Value::as_i64)
        })
        .ok_or_else(|| WebhookError::malformed_body("has no numeric `webhookTimestamp`"))?;
    check_tolerance(millis, now_ms, LINEAR_TOLERANCE_SECS)
}

// === helpers ===

impl Encoding {
    fn decode(self, text: &str) -> Option<Vec<u8>> {
        let text = text.trim();
        match self {
            Encoding::Hex => decode_hex(text),
            Encoding::Base64 => BASE64.decode(text).ok(),
        }
    }
}

/// The value of header `name`, trimmed; `name` is also how errors spell it.
fn header<'r>(req: &Signed<'r>, name: &str) -> Result<&'r str, WebhookError> {
    let value = req
        .headers
        .get(name)
        .ok_or_else(|| WebhookError::missing_header(name))?;
    let value = value
        .to_str()
        .map_err(|_| WebhookError::malformed_header(name, "is not ascii text"))?;
    Ok(value.trim())
}

fn hmac(alg: Alg, key: &[u8], parts: &[&[u8]]) -> Option<Vec<u8>> {
    fn run<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Option<Vec<u8>> {
        let mut mac = <M as KeyInit>::new_from_slice(key).ok()?;
        for part in parts {
            mac.update(part);
        }
        Some(mac.finalize().into_bytes().to_vec())
    }
    match alg {
        Alg::Sha1 => run::<Hmac<Sha1>>(key, parts),
        Alg::Sha256 => run::<Hmac<Sha256>>(key, parts),
        Alg::Sha512 => run::<Hmac<Sha512>>(key, parts),
    }
}

/// Succeeds if any provided signature equals `expected`; every candidate is compared, so timing
/// does not reveal which one (if any) matched. Undecodable candidates (`None`) never match.
fn check(
    expected: Option<Vec<u8>>,
    provided: impl IntoIterator<Item = Option<Vec<u8>>>,
) -> Result<(), WebhookError> {
    let matched = provided.into_iter().fold(Choice::from(0), |acc, it| {
        acc | ct_matches(expected.as_deref(), it.as_deref())
    });
    if bool::from(matched) {
        Ok(())
    } else {
        Err(WebhookError::mismatch())
    }
}

fn ct_matches(expected: Option<&[u8]>, provided: Option<&[u8]>) -> Choice {
    match (expected, provided) {
        // INVARIANT: an empty MAC never authenticates, so a header like `sha256=` cannot match
        // a computation that failed and produced nothing.
        (Some(expected), Some(provided)) if !expected.is_empty() => expected.ct_eq(provided),
        _ => Choice::from(0),
    }
}

fn check_tolerance(signed_ms: i64, now_ms: i64, tolerance_secs: u64) -> Result<(), WebhookError> {
    if signed_ms.abs_diff(now_ms) > tolerance_secs.saturating_mul(1000) {
        Err(WebhookError::stale(tolerance_secs))
    } else {
        Ok(())
    }
}

fn parse_unix_seconds(text: &str) -> Option<i64> {
    let text = text.trim();
    // `i64::from_str` accepts a leading `+`; providers never send one, and the signed string must
    // be the digits the provider meant.
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn unix_millis(now: SystemTime) -> i64 {
    match now.duration_since(UNIX_EPOCH) {
        Ok(it) => i64::try_from(it.as_millis()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |it| -it),
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let pairs = text.as_bytes().chunks_exact(2);
    if !pairs.remainder().is_empty() {
        return None;
    }
    pairs
        .map(|pair| hex_byte(*pair.first()?, *pair.get(1)?))
        .collect()
}

fn hex_byte(hi: u8, lo: u8) -> Option<u8> {
    fn nibble(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    Some((nibble(hi)? << 4) | nibble(lo)?)
}

fn is_form(req: &Signed<'_>) -> bool {
    req.headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|it| it.to_str().ok())
        .and_then(|it| it.split(';').next())
        .is_some_and(|it| {
            it.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// Decodes an `application/x-www-form-urlencoded` body into name/value pairs, in order.
fn form_pairs(body: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    body.split(|&b| b == b'&')
        .filter(|it| !it.is_empty())
        .map(|pair| {
            let mut halves = pair.splitn(2, |&b| b == b'=');
            let name = halves.next().unwrap_or_default();
            let value = halves.next().unwrap_or_default();
            (percent_decode(name), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text;
    while let Some((&b, tail)) = rest.split_first() {
        rest = tail;
        match b {
            b'+' => out.push(b' '),
            b'%' => match rest {
                [hi, lo, tail @ ..] if hex_byte(*hi, *lo).is_some() => {
                    out.extend(hex_byte(*hi, *lo));
                    rest = tail;
                }
                // A stray `%` stays literal, as browsers and Twilio's libraries leave it.
                _ => out.push(b'%'),
            },
            _ => out.push(b),
        }
    }
    out
}

fn query_param<'u>(url: &'u str, name: &str) -> Option<&'u str> {
    let (_, query) = url.split_once('?')?;
    let query = query.split('#').next().unwrap_or(query);
    query
        .split('&')
        .find_map(|it| it.strip_prefix(name)?.strip_prefix('='))
}

/// `url` with its port removed if it has one, or with the scheme's default port added if not.
fn toggle_default_port(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "https" => "443",
        "http" => "80",
        _ => return None,
    };
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at_checked(authority_len)?;
    // A colon after the last `]` separates the port; inside brackets it belongs to an IPv6 host.
    let host_end = authority.rfind(']').map_or(0, |it| it + 1);
    let port_colon = authority
        .get(host_end..)?
        .rfind(':')
        .map(|it| it + host_end);
    match port_colon {
        Some(colon) => {
            let host = authority.get(..colon)?;
            Some(format!("{scheme}://{host}{tail}"))
        }
        None => Some(format!("{scheme}://{authority}:{default_port}{tail}")),
    }
}

#[cfg(test)]
mod tests;
