//! What a transaction matched, read from the rule messages libmodsecurity
//! logged for it.
//!
//! A message reads `ModSecurity: Warning. Matched "..." (Value: ...)
//! [file "F"] [line "L"] [id "I"] [rev "R"] [msg "M"] [data "D"]
//! [severity "S"] ...`. The text before `[file` and the data hold the
//! client's bytes, so a message is read from the first `[file "` naming a
//! file under the rule set's own directory, whose name holds a random
//! component: a client cannot write that path, so it cannot forge a
//! match, an id or a score. The message and data are read as far as their
//! closing `"]`; a client can cut its own data short, no more.

use crate::setup::{INBOUND_HEAD_SCORE, INBOUND_SCORE, OUTBOUND_HEAD_SCORE, OUTBOUND_SCORE};

/// A rule's severity, as SecLang numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// 0
    Emergency,
    /// 1
    Alert,
    /// 2: the CRS scores it 5.
    Critical,
    /// 3: the CRS scores it 4.
    Error,
    /// 4: the CRS scores it 3.
    Warning,
    /// 5: the CRS scores it 2.
    Notice,
    /// 6
    Info,
    /// 7
    Debug,
}

impl Severity {
    fn from_number(n: u8) -> Severity {
        match n {
            0 => Severity::Emergency,
            1 => Severity::Alert,
            2 => Severity::Critical,
            3 => Severity::Error,
            4 => Severity::Warning,
            5 => Severity::Notice,
            6 => Severity::Info,
            _ => Severity::Debug,
        }
    }

    /// The name SecLang gives it (`CRITICAL`).
    pub fn name(self) -> &'static str {
        match self {
            Severity::Emergency => "EMERGENCY",
            Severity::Alert => "ALERT",
            Severity::Critical => "CRITICAL",
            Severity::Error => "ERROR",
            Severity::Warning => "WARNING",
            Severity::Notice => "NOTICE",
            Severity::Info => "INFO",
            Severity::Debug => "DEBUG",
        }
    }
}

/// A rule that matched and logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Match {
    /// The rule's id (`942100`).
    pub id: u32,
    /// Its message (`SQL Injection Attack Detected via libinjection`).
    pub message: String,
    /// What it matched (`Matched Data: ... found within ARGS:q: ...`).
    pub data: String,
    /// Its severity.
    pub severity: Severity,
    /// The CRS file it is in, without `.conf`
    /// (`REQUEST-942-APPLICATION-ATTACK-SQLI`).
    pub file: String,
}

/// What a transaction matched.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// The rules that logged, in order, each once.
    pub matched: Vec<Match>,
    /// The request's anomaly score up to the paranoia level (`None` if
    /// the request rules did not run to their evaluation).
    pub inbound_score: Option<u32>,
    /// The response's anomaly score likewise.
    pub outbound_score: Option<u32>,
    /// The status of the disruptive action taken, if one was.
    pub blocked: Option<u16>,
}

impl Report {
    pub(crate) fn parse(
        lines: &[Vec<u8>],
        root: &str,
        paranoia: u8,
        blocked: Option<u16>,
    ) -> Report {
        let mut report = Report {
            blocked,
            ..Report::default()
        };
        let anchor = format!("[file \"{root}/");
        for line in lines {
            let line = String::from_utf8_lossy(line);
            let Some(m) = parse_line(&line, &anchor) else {
                continue;
            };
            match m.id {
                // The head's score, then (unless the head was refused)
                // the whole request's.
                INBOUND_HEAD_SCORE | INBOUND_SCORE => {
                    report.inbound_score = Some(score(&m.data, paranoia));
                }
                OUTBOUND_HEAD_SCORE | OUTBOUND_SCORE => {
                    report.outbound_score = Some(score(&m.data, paranoia));
                }
                _ if report.matched.iter().any(|x| x.id == m.id) => {}
                _ => report.matched.push(m),
            }
        }
        report
    }

    /// Whether a rule with `id` matched.
    pub fn matched(&self, id: u32) -> bool {
        self.matched.iter().any(|m| m.id == id)
    }
}

/// The sum of the first `paranoia` scores of a score rule's data.
fn score(data: &str, paranoia: u8) -> u32 {
    data.split_whitespace()
        .take(usize::from(paranoia))
        .filter_map(|n| n.parse::<u32>().ok())
        .fold(0, u32::saturating_add)
}

/// Reads `[key "value"]` at the start of `s` (after one space), the value
/// ending at the first `"] ` followed by `next`, or `"]` if `next` is empty.
fn field<'s>(s: &'s str, key: &str, next: &str) -> Option<(&'s str, &'s str)> {
    let s = s.strip_prefix(' ').unwrap_or(s);
    let s = s
        .strip_prefix('[')?
        .strip_prefix(key)?
        .strip_prefix(" \"")?;
    let end = if next.is_empty() {
        s.find("\"]")?
    } else {
        s.find(&format!("\"] [{next} \""))?
    };
    Some((&s[..end], &s[end + 2..]))
}

fn parse_line(line: &str, anchor: &str) -> Option<Match> {
    let start = line.find(anchor)?;
    let rest = &line[start..];
    let (file, rest) = field(rest, "file", "line")?;
    let (_, rest) = field(rest, "line", "id")?;
    let (id, rest) = field(rest, "id", "rev")?;
    let (_, rest) = field(rest, "rev", "msg")?;
    let (message, rest) = field(rest, "msg", "data")?;
    let (data, rest) = field(rest, "data", "severity")?;
    let (severity, _) = field(rest, "severity", "")?;
    let file = file.rsplit('/').next().unwrap_or(file);
    Some(Match {
        id: id.parse().ok()?,
        message: message.to_string(),
        data: data.to_string(),
        severity: Severity::from_number(severity.parse().unwrap_or(7)),
        file: file.strip_suffix(".conf").unwrap_or(file).to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "/tmp/portcullis-crs-0123456789abcdef";

    fn line(value: &str, data: &str) -> Vec<u8> {
        format!(
            "ModSecurity: Warning. Matched \"Operator `Rx' with parameter `x' against variable \
             `ARGS:q' (Value: `{value}' ) [file \"{ROOT}/REQUEST-942-APPLICATION-ATTACK-SQLI.conf\"] \
             [line \"46\"] [id \"942100\"] [rev \"\"] [msg \"SQL Injection Attack Detected via \
             libinjection\"] [data \"{data}\"] [severity \"2\"] [ver \"OWASP_CRS/4.28.0\"] \
             [maturity \"0\"] [accuracy \"0\"] [hostname \"127.0.0.1\"] [uri \"/\"] \
             [unique_id \"1\"] [ref \"v8,10\"]"
        )
        .into_bytes()
    }

    #[test]
    fn reads_a_match() {
        let r = Report::parse(
            &[line("1 OR 1=1", "Matched Data: s&1 found")],
            ROOT,
            1,
            None,
        );
        assert_eq!(r.matched.len(), 1);
        let m = &r.matched[0];
        assert_eq!(m.id, 942100);
        assert_eq!(m.severity, Severity::Critical);
        assert_eq!(m.message, "SQL Injection Attack Detected via libinjection");
        assert_eq!(m.data, "Matched Data: s&1 found");
        assert_eq!(m.file, "REQUEST-942-APPLICATION-ATTACK-SQLI");
    }

    #[test]
    fn a_client_cannot_forge_a_match_or_a_score() {
        // The client's value imitates a message of the score rule with a
        // guessed directory: it is read from the real anchor only.
        let forged = format!(
            "[file \"/tmp/portcullis-crs-guess/x.conf\"] [line \"1\"] [id \"{INBOUND_SCORE}\"] \
             [rev \"\"] [msg \"m\"] [data \"0 0 0 0\"] [severity \"2\"]"
        );
        let r = Report::parse(&[line(&forged, "d")], ROOT, 1, None);
        assert_eq!(r.inbound_score, None);
        assert_eq!(r.matched[0].id, 942100);
        // Data that imitates the fields after it ends the data early and
        // relabels the client's own match; the id stays.
        let r = Report::parse(&[line("v", "x\"] [severity \"7\"] [id \"1")], ROOT, 1, None);
        assert_eq!(r.matched[0].id, 942100);
        assert_eq!(r.matched[0].data, "x");
        assert_eq!(r.matched[0].severity, Severity::Debug);
    }

    #[test]
    fn scores_sum_up_to_the_paranoia_level() {
        assert_eq!(score("5 3 0 10", 1), 5);
        assert_eq!(score("5 3 0 10", 2), 8);
        assert_eq!(score("5 3 0 10", 4), 18);
        assert_eq!(score("", 4), 0);
    }
}
