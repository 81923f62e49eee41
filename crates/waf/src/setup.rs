//! The files a rule set is loaded from: the embedded CRS, and a main file
//! made from a [`Config`] that sets ModSecurity and the CRS up and
//! includes the CRS's files in their order.
//!
//! The settings are those of ModSecurity's recommended configuration and
//! the CRS's `crs-setup.conf.example`, with the paranoia level and the
//! thresholds from the config. Two rules of our own
//! ([`INBOUND_SCORE`], [`OUTBOUND_SCORE`]) log the anomaly scores just
//! before the CRS's blocking evaluations read them.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use crate::{Config, Rules};

include!(concat!(env!("OUT_DIR"), "/crs_files.rs"));

/// The id of the rule that logs the inbound scores per paranoia level.
pub(crate) const INBOUND_SCORE: u32 = 99_001;
/// The id of the rule that logs the inbound scores after the request's
/// head, where early blocking decides.
pub(crate) const INBOUND_HEAD_SCORE: u32 = 99_003;
/// The id of the rule that logs the outbound scores after the response's
/// head.
pub(crate) const OUTBOUND_HEAD_SCORE: u32 = 99_004;
/// The id of the rule that logs the outbound scores per paranoia level.
pub(crate) const OUTBOUND_SCORE: u32 = 99_002;

/// The largest body given to the rules, in bytes, as ModSecurity counts
/// it; the caller decides how much of a body it hands over.
const BODY_LIMIT: usize = 13 * 1024 * 1024;

/// Writes the CRS and the main file into `dir`; returns the main file.
pub(crate) fn write(dir: &Path, config: &Config) -> io::Result<PathBuf> {
    for (name, contents) in FILES {
        std::fs::write(dir.join(name), contents)?;
    }
    let main = dir.join("portcullis.conf");
    std::fs::write(&main, main_file(dir, config))?;
    Ok(main)
}

/// ModSecurity's recommended body processors: XML and JSON bodies are
/// parsed into `ARGS`, and a body that does not parse is refused.
const BODY_PROCESSORS: &str = r#"SecRule REQUEST_HEADERS:Content-Type "@rx (?:application(?:/soap\+|/)|text/)xml" "id:200000,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=XML"
SecRule REQUEST_HEADERS:Content-Type "@rx ^application/json" "id:200001,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON"
SecRule REQBODY_ERROR "!@eq 0" "id:200002,phase:2,t:none,log,deny,status:400,msg:'Failed to parse request body.',severity:2"
"#;

fn main_file(dir: &Path, config: &Config) -> String {
    let mut s = String::new();
    let engine = if config.blocking {
        "On"
    } else {
        "DetectionOnly"
    };
    // Body access is always on: libmodsecurity 3.0.9 skips phase 2 (most
    // of the CRS, the query string's rules too) and phase 4 when it is
    // off. A body not to be inspected is simply not handed over, and the
    // body processors that would complain of its absence are left out.
    // `writeln!` to a String cannot fail.
    let _ = writeln!(
        s,
        r#"SecRuleEngine {engine}
SecRequestBodyAccess On
SecRequestBodyLimit {BODY_LIMIT}
SecRequestBodyNoFilesLimit {BODY_LIMIT}
SecRequestBodyLimitAction ProcessPartial
SecResponseBodyAccess On
SecResponseBodyMimeType text/plain text/html text/xml application/json
SecResponseBodyLimit {BODY_LIMIT}
SecResponseBodyLimitAction ProcessPartial
SecArgumentSeparator &
SecCookieFormat 0
SecAuditEngine Off
SecDefaultAction "phase:1,log,auditlog,pass"
SecDefaultAction "phase:2,log,auditlog,pass"
SecDefaultAction "phase:3,log,auditlog,pass"
SecDefaultAction "phase:4,log,auditlog,pass"
SecDefaultAction "phase:5,log,auditlog,pass"
SecAction "id:900000,phase:1,pass,t:none,nolog,setvar:tx.blocking_paranoia_level={pl},setvar:tx.detection_paranoia_level={pl},setvar:tx.early_blocking=1"
SecAction "id:900110,phase:1,pass,t:none,nolog,setvar:tx.inbound_anomaly_score_threshold={inbound},setvar:tx.outbound_anomaly_score_threshold={outbound}"
SecAction "id:900990,phase:1,pass,t:none,nolog,setvar:tx.crs_setup_version=4280""#,
        pl = config.paranoia_level.clamp(1, 4),
        inbound = config.inbound_threshold,
        outbound = config.outbound_threshold,
    );
    if config.bodies {
        s.push_str(BODY_PROCESSORS);
    }
    s.push_str(&config.directives);
    s.push('\n');
    let mut names: Vec<&str> = FILES
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| n.ends_with(".conf"))
        .filter(|n| match config.rules {
            Rules::Request => n.starts_with("REQUEST-"),
            Rules::Response => n.starts_with("RESPONSE-") || n.starts_with("REQUEST-901-"),
            Rules::All => true,
        })
        .collect();
    names.sort_unstable();
    for name in names {
        if name.starts_with("REQUEST-949-") {
            let _ = writeln!(s, "{}", score_rule(INBOUND_HEAD_SCORE, 1, "inbound"));
            let _ = writeln!(s, "{}", score_rule(INBOUND_SCORE, 2, "inbound"));
        }
        if name.starts_with("RESPONSE-959-") {
            let _ = writeln!(s, "{}", score_rule(OUTBOUND_HEAD_SCORE, 3, "outbound"));
            let _ = writeln!(s, "{}", score_rule(OUTBOUND_SCORE, 4, "outbound"));
        }
        let _ = writeln!(s, "Include {}", dir.join(name).display());
    }
    s.push_str(FIXES);
    for id in &config.exclude {
        let _ = writeln!(s, "SecRuleRemoveById {id}");
    }
    s
}

/// Corrections for libmodsecurity 3.0.x, applied after the CRS loads.
///
/// - 922110: libmodsecurity before 3.0.10 keeps the line ending in the
///   values of `MULTIPART_PART_HEADERS`, so every part's `Content-Type`
///   (`image/png` of a browser's file upload) failed the rule's anchored
///   pattern and scored as an attack. Trimming the captured value first
///   restores the rule's meaning.
const FIXES: &str = "SecRuleUpdateActionById 922110 \"t:none,t:lowercase,t:trim\"\n";

/// A rule that logs the anomaly scores of each paranoia level.
fn score_rule(id: u32, phase: u8, way: &str) -> String {
    format!(
        "SecAction \"id:{id},phase:{phase},pass,t:none,log,msg:'anomaly scores',\
         logdata:'%{{tx.{way}_anomaly_score_pl1}} %{{tx.{way}_anomaly_score_pl2}} \
         %{{tx.{way}_anomaly_score_pl3}} %{{tx.{way}_anomaly_score_pl4}}'\""
    )
}
