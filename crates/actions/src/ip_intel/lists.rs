//! Address lists the deployment names as categories (`ip_categories:`):
//! Tor exits, blocklists, a cloud provider's ranges. ngrok curates such
//! lists in its cloud; here each is a file in the formats those lists are
//! published in (Tor's exit list, FireHOL's `.netset`, Spamhaus DROP, a
//! cloud's plain ranges): one address or CIDR per line, anything after
//! `#` or `;` a comment, other text after the address ignored.
//!
//! An address on a list has the list's category and every category above
//! it (`com.cloudflare.ipv4` is also `com.cloudflare` and `com`), as ngrok's
//! categories are matched at any level.

use std::net::IpAddr;
use std::path::PathBuf;

/// One list: its category and its ranges, merged and sorted, as `u128`s
/// (IPv4 mapped into `::ffff:0:0/96`).
#[derive(Debug, Default)]
struct List {
    category: String,
    ranges: Vec<(u128, u128)>,
}

/// The lists of a deployment, read from their files.
#[derive(Debug, Default)]
pub(crate) struct Lists {
    lists: Vec<List>,
}

/// The address as a `u128`, IPv4 mapped into IPv6.
fn number(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The range of an address or CIDR, or `None` for text that is neither.
fn range(text: &str) -> Option<(u128, u128)> {
    let net = match text.parse::<ipnet::IpNet>() {
        Ok(net) => net,
        Err(_) => ipnet::IpNet::from(text.parse::<IpAddr>().ok()?),
    };
    let (first, last) = (number(net.network()), number(net.broadcast()));
    Some((first, last))
}

/// The ranges in `text`, a list file; an error names the first line that
/// holds something other than an address or CIDR.
fn parse(text: &str) -> Result<Vec<(u128, u128)>, String> {
    let mut ranges = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split(['#', ';']).next().unwrap_or("").trim();
        let Some(first) = line.split_whitespace().next() else {
            continue;
        };
        // Tor's exit list: `ExitAddress 1.2.3.4 2024-01-01 00:00:00`.
        let word = match first {
            "ExitAddress" => line.split_whitespace().nth(1).unwrap_or(""),
            "ExitNode" | "Published" | "LastStatus" => continue,
            _ => first,
        };
        ranges.push(
            range(word)
                .ok_or_else(|| format!("line {}: `{word}` is not an IP address or CIDR", i + 1))?,
        );
    }
    ranges.sort_unstable();
    let mut merged: Vec<(u128, u128)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match merged.last_mut() {
            Some(last) if start <= last.1.saturating_add(1) => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    Ok(merged)
}

impl Lists {
    /// Reads each `(category, file)`.
    pub(crate) fn read(files: &[(String, PathBuf)]) -> Result<Lists, String> {
        let mut lists = Vec::with_capacity(files.len());
        for (category, path) in files {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let ranges = parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            lists.push(List {
                category: category.clone(),
                ranges,
            });
        }
        Ok(Lists { lists })
    }

    /// Whether a list of `category` or under it is configured.
    pub(crate) fn has(&self, category: &str) -> bool {
        self.lists.iter().any(|l| within(&l.category, category))
    }

    /// The categories of `ip`, each with those above it, sorted.
    pub(crate) fn categories(&self, ip: IpAddr) -> Vec<String> {
        let n = number(ip);
        let mut out: Vec<String> = Vec::new();
        for list in &self.lists {
            let i = list.ranges.partition_point(|(start, _)| *start <= n);
            let hit = i > 0 && list.ranges.get(i - 1).is_some_and(|(_, end)| n <= *end);
            if !hit {
                continue;
            }
            let mut at = 0;
            while let Some(dot) = list.category[at..].find('.') {
                out.push(list.category[..at + dot].to_owned());
                at += dot + 1;
            }
            out.push(list.category.clone());
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// Whether `category` is `parent` or under it.
pub(crate) fn within(category: &str, parent: &str) -> bool {
    category == parent
        || category
            .strip_prefix(parent)
            .is_some_and(|rest| rest.starts_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lists(files: &[(&str, &str)]) -> Lists {
        let dir = std::env::temp_dir().join(format!("portcullis-lists-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let files: Vec<(String, PathBuf)> = files
            .iter()
            .enumerate()
            .map(|(i, (category, text))| {
                let path = dir.join(format!("{i}.txt"));
                std::fs::write(&path, text).expect("write");
                ((*category).to_owned(), path)
            })
            .collect();
        Lists::read(&files).expect("lists read")
    }

    #[test]
    fn an_address_has_its_lists_categories_at_every_level() {
        let l = lists(&[
            (
                "proxy.anonymous.tor",
                "ExitNode 0011\nPublished 2024-01-01\nExitAddress 185.220.101.1 2024-01-01 00:00:00\n",
            ),
            (
                "blocklist.org.spamhaus.drop.ipv4",
                "; Spamhaus DROP\n1.10.16.0/20 ; SBL256894\n",
            ),
            ("com.cloudflare.ipv6", "2606:4700::/32\n"),
            (
                "blocklist.firehol_org.level_1",
                "# firehol\n1.10.16.0/24\n10.0.0.0/8\n",
            ),
        ]);
        assert_eq!(
            l.categories("185.220.101.1".parse().unwrap()),
            ["proxy", "proxy.anonymous", "proxy.anonymous.tor"]
        );
        assert_eq!(
            l.categories("1.10.16.200".parse().unwrap()),
            [
                "blocklist",
                "blocklist.firehol_org",
                "blocklist.firehol_org.level_1",
                "blocklist.org",
                "blocklist.org.spamhaus",
                "blocklist.org.spamhaus.drop",
                "blocklist.org.spamhaus.drop.ipv4",
            ]
        );
        assert_eq!(
            l.categories("1.10.31.255".parse().unwrap())
                .last()
                .map(String::as_str),
            Some("blocklist.org.spamhaus.drop.ipv4")
        );
        assert!(l.categories("1.10.32.0".parse().unwrap()).is_empty());
        assert!(l.categories("185.220.101.2".parse().unwrap()).is_empty());
        assert_eq!(
            l.categories("2606:4700::6810:84e5".parse().unwrap()),
            ["com", "com.cloudflare", "com.cloudflare.ipv6"]
        );
        // An IPv4 address is not its IPv6-mapped twin's neighbour.
        assert!(l.categories("::1".parse().unwrap()).is_empty());
        assert!(l.has("blocklist") && l.has("proxy.anonymous") && !l.has("block"));
    }

    #[test]
    fn a_line_that_is_no_address_is_an_error_naming_it() {
        let e = parse("10.0.0.0/8\nnot-an-address\n").unwrap_err();
        assert!(e.contains("line 2") && e.contains("not-an-address"), "{e}");
        assert_eq!(
            parse("10.0.0.0/9\n10.128.0.0/9\n").unwrap().len(),
            1,
            "adjacent ranges merge"
        );
    }
}
