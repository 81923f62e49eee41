use proptest::prelude::*;
use regex::Regex;

use super::*;

/// Patterns of the shape the literal search takes, and of shapes it must
/// leave to the regex.
const WORD_SETS: &[&str] = &[
    "(?i)(sqlmap|nikto|nmap|masscan|zgrab|gobuster|dirbuster|wpscan|nuclei)",
    "(?i)sqlmap",
    "(?i)(/\\.env|/\\.git|/wp-admin)",
    "(?i)bot|(?i:crawl)(?i:er)",
    "(?i)k8s-(prod|stage)",
    "(?i:s)(?-u:[kK])",
];

const NOT_WORD_SETS: &[&str] = &[
    // Case-sensitive letters: the regex crate searches literally already,
    // and folding would be wrong.
    "sqlmap|nikto",
    "(?i)sql(?-i)map",
    "(?i)sql.*map",
    "(?i)^/admin",
    "(?i)\\bbot\\b",
    "(?i)bots?",
    "(?i)[ab]c",
    "(?i)",
    "(?i)(|x)",
];

#[test]
fn word_sets_take_the_literal_search_and_others_do_not() {
    for src in WORD_SETS {
        let p = Pattern::new(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        assert!(p.has_word_search(), "{src} should be a word set");
    }
    for src in NOT_WORD_SETS {
        let p = Pattern::new(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        assert!(!p.has_word_search(), "{src} should go to the regex");
    }
}

#[test]
fn agrees_with_the_regex_on_chosen_haystacks() {
    let hays = [
        "",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15",
        "sqlmap/1.7.2#stable (https://sqlmap.org)",
        "Mozilla/5.0 SQLMAP",
        "NiKtO",
        "nmap scripting engine",
        // Unicode case folding: `ſ` is an `s` and the Kelvin sign a `k`
        // to a case-insensitive regex; these go to the regex.
        "\u{17f}qlmap",
        "\u{212a}8s-prod",
        "café sqlmap",
        "/.ENV",
        "/.Git/config",
        "/wp-admin/install.php",
        "GoogleBot",
        "the crawler",
        "crawl er",
        "K8S-Stage",
        "sK",
        "Sk",
    ];
    for src in WORD_SETS.iter().chain(NOT_WORD_SETS) {
        let p = Pattern::new(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        let re = Regex::new(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        for hay in hays {
            assert_eq!(p.is_match(hay), re.is_match(hay), "{src} on {hay:?}");
        }
    }
}

#[test]
fn a_word_across_a_chunk_boundary_is_found() {
    let p = Pattern::new("(?i)(sqlmap|nikto)").unwrap_or_else(|e| panic!("{e}"));
    assert!(p.has_word_search());
    for len in CHUNK - 8..CHUNK + 8 {
        for at in [len - 6, len.saturating_sub(CHUNK / 2)] {
            let mut hay = "x".repeat(len);
            hay.replace_range(at..at + 6, "SqlMap");
            assert!(p.is_match(&hay), "len {len}, word at {at}");
            hay.replace_range(at..at + 6, "SqlMa_");
            assert!(!p.is_match(&hay), "len {len}, broken word at {at}");
        }
    }
    // Several chunks on: a word straddling the third chunk's start.
    let mut hay = "y".repeat(3 * CHUNK);
    let third = 2 * (CHUNK - (6 - 1));
    hay.replace_range(third - 3..third + 3, "SQLMAP");
    assert!(p.is_match(&hay));
}

proptest! {
    /// Haystacks made of the words' letters in both cases, other ASCII
    /// and a few non-ASCII characters: the answer is the regex's.
    #[test]
    fn agrees_with_the_regex(
        src in prop::sample::select(WORD_SETS),
        hay in "[sqlmapnikoSQLMAPNIKO/.envgitENVGIT8k\\-ſ\u{212a}é ]{0,40}",
    ) {
        let p = Pattern::new(src).unwrap_or_else(|e| panic!("{e}"));
        let re = Regex::new(src).unwrap_or_else(|e| panic!("{e}"));
        prop_assert_eq!(p.is_match(&hay), re.is_match(&hay));
    }
}
