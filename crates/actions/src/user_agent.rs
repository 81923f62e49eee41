//! `req.user_agent.*`: the `User-Agent` header parsed with the ua-parser
//! project's regexes (uap-core 0.18, Apache-2.0, `data/uap-core`, kept as
//! published) through its maintained Rust port, the `ua-parser` crate.
//!
//! - `name` and `version` are the browser (or client) family and its
//!   version (`Firefox`, `130.0`); `os` and `os_version` likewise;
//!   `device` is uap's device family (`iPhone`, `Other`, `Spider`).
//! - `is_bot` is uap's verdict: a `Spider` device.
//! - `is_tablet`, `is_mobile` and `is_desktop` are not in uap's data; they
//!   follow the rules browsers document for themselves: an iPad or
//!   `Tablet`, or Android without `Mobile`, is a tablet (Google's rule for
//!   Android tablets); otherwise `Mobi` anywhere, or iOS or Android, is
//!   mobile (MDN's rule); otherwise a desktop operating system is a
//!   desktop. A bot is none of the three.
//! - `url` is the first `http://` or `https://` URL in the header (bots
//!   name their documentation page there); empty if none.
//!
//! The regexes compile once per process, on the first read (a few tenths
//! of a second), and each request parses its header at most once.

use std::sync::OnceLock;

use portcullis_policy::yaml::{self, Node, NodeKind};
use ua_parser::{Extractor, Regexes};

/// uap-core's regexes.
const REGEXES: &str = include_str!("../data/uap-core/regexes.yaml");

/// What a `User-Agent` header says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Agent {
    /// The browser or client (`Firefox`; `Other` when unknown).
    pub name: String,
    /// Its version (`130.0`), empty when unknown.
    pub version: String,
    /// The operating system (`Windows`, `iOS`; `Other` when unknown).
    pub os: String,
    /// Its version (`10`, `17.4`).
    pub os_version: String,
    /// The device family (`iPhone`, `Spider`, `Other`).
    pub device: String,
    /// A crawler or another bot.
    pub is_bot: bool,
    /// A phone.
    pub is_mobile: bool,
    /// A tablet.
    pub is_tablet: bool,
    /// A desktop or laptop.
    pub is_desktop: bool,
    /// The first URL in the header.
    pub url: String,
}

/// The compiled regexes; `None` if they could not be built (never with
/// the data shipped, which a test builds).
fn extractor() -> Option<&'static Extractor<'static>> {
    static EXTRACTOR: OnceLock<Option<Extractor<'static>>> = OnceLock::new();
    EXTRACTOR
        .get_or_init(|| {
            let (root, diags) = yaml::parse(REGEXES);
            if !diags.is_empty() {
                return None;
            }
            let json = to_json(&root?);
            let regexes: Regexes<'static> = serde_json::from_value(json).ok()?;
            Extractor::try_from(regexes).ok()
        })
        .as_ref()
}

/// A YAML tree as JSON, strings for scalars (an empty plain scalar is
/// null, as `regexes.yaml` leaves some replacements empty).
fn to_json(node: &Node) -> serde_json::Value {
    match &node.kind {
        NodeKind::Scalar(s) if s.style == yaml::Style::Plain && yaml::is_null(&s.value) => {
            serde_json::Value::Null
        }
        NodeKind::Scalar(s) => serde_json::Value::String(s.value.clone()),
        NodeKind::Seq(items) => serde_json::Value::Array(items.iter().map(to_json).collect()),
        NodeKind::Map(entries) => serde_json::Value::Object(
            entries
                .iter()
                .filter_map(|(k, v)| Some((k.scalar()?.value.clone(), to_json(v))))
                .collect(),
        ),
    }
}

/// `major.minor.patch...`, as far as the parts go.
fn dotted<'a>(parts: impl IntoIterator<Item = Option<&'a str>>) -> String {
    parts
        .into_iter()
        .map_while(|p| p.filter(|p| !p.is_empty()))
        .collect::<Vec<_>>()
        .join(".")
}

const DESKTOPS: &[&str] = &[
    "Windows",
    "Mac OS X",
    "macOS",
    "Linux",
    "Ubuntu",
    "Fedora",
    "Debian",
    "Chrome OS",
    "ChromeOS",
    "FreeBSD",
    "OpenBSD",
    "NetBSD",
    "Solaris",
];

/// Parses a `User-Agent` header; `None` if the regexes could not be built.
pub fn parse(header: &str) -> Option<Agent> {
    let (ua, os, device) = extractor()?.extract(header);
    let name = ua
        .as_ref()
        .map_or("Other".to_owned(), |u| u.family.to_string());
    let version = ua.as_ref().map_or(String::new(), |u| {
        dotted([u.major, u.minor, u.patch, u.patch_minor])
    });
    let os_name = os.as_ref().map_or("Other".to_owned(), |o| o.os.to_string());
    let os_version = os.as_ref().map_or(String::new(), |o| {
        dotted([
            o.major.as_deref(),
            o.minor.as_deref(),
            o.patch.as_deref(),
            o.patch_minor.as_deref(),
        ])
    });
    let device = device
        .as_ref()
        .map_or("Other".to_owned(), |d| d.device.to_string());
    let is_bot = device == "Spider";
    let android = os_name == "Android";
    let is_tablet = !is_bot
        && (device == "iPad"
            || header.contains("Tablet")
            || (android && !header.contains("Mobile")));
    let is_mobile =
        !is_bot && !is_tablet && (header.contains("Mobi") || android || os_name == "iOS");
    let is_desktop = !is_bot && !is_tablet && !is_mobile && DESKTOPS.contains(&os_name.as_str());
    let url = header
        .find("http://")
        .or_else(|| header.find("https://"))
        .map(|at| {
            let rest = &header[at..];
            let end = rest
                .find(|c: char| c.is_whitespace() || matches!(c, ')' | ';' | ',' | '"'))
                .unwrap_or(rest.len());
            rest[..end].to_owned()
        })
        .unwrap_or_default();
    Some(Agent {
        name,
        version,
        os: os_name,
        os_version,
        device,
        is_bot,
        is_mobile,
        is_tablet,
        is_desktop,
        url,
    })
}

#[cfg(test)]
mod tests;
