use super::*;

const FIREFOX: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:130.0) Gecko/20100101 Firefox/130.0";
const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";
const IPAD: &str = "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1";
const ANDROID_PHONE: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36";
const ANDROID_TABLET: &str = "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

#[test]
fn browsers_phones_tablets_and_bots_are_told_apart() {
    let a = parse(FIREFOX).expect("the regexes build");
    assert_eq!((a.name.as_str(), a.version.as_str()), ("Firefox", "130.0"));
    assert_eq!((a.os.as_str(), a.os_version.as_str()), ("Windows", "10"));
    assert!(a.is_desktop && !a.is_mobile && !a.is_tablet && !a.is_bot);

    let a = parse(IPHONE).unwrap();
    assert_eq!(
        (a.name.as_str(), a.os.as_str(), a.device.as_str()),
        ("Mobile Safari", "iOS", "iPhone")
    );
    assert_eq!(a.os_version, "17.4");
    assert!(a.is_mobile && !a.is_tablet && !a.is_desktop);

    let a = parse(IPAD).unwrap();
    assert!(a.is_tablet && !a.is_mobile, "{a:?}");
    let a = parse(ANDROID_PHONE).unwrap();
    assert!(a.is_mobile && !a.is_tablet, "{a:?}");
    let a = parse(ANDROID_TABLET).unwrap();
    assert!(a.is_tablet && !a.is_mobile, "{a:?}");

    let a = parse(GOOGLEBOT).unwrap();
    assert_eq!(a.name, "Googlebot");
    assert!(a.is_bot && !a.is_mobile && !a.is_desktop);
    assert_eq!(a.url, "http://www.google.com/bot.html");

    let a = parse("").unwrap();
    assert_eq!(
        (a.name.as_str(), a.os.as_str(), a.version.as_str()),
        ("Other", "Other", "")
    );
    assert!(!a.is_bot && !a.is_desktop);
}

/// The cases of uap-core's own test files (`tests/test_ua.yaml`,
/// `tests/test_os.yaml`), vendored with its regexes: the family and the
/// version parts as uap-core expects them.
#[test]
fn uap_core_test_cases_pass() {
    fn cases(file: &str) -> Vec<Vec<(String, Option<String>)>> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/uap-core")
            .join(file);
        let src = std::fs::read_to_string(&path).expect("a uap-core test file");
        let (Some(root), diags) = yaml::parse(&src) else {
            panic!("{file} does not parse");
        };
        assert!(diags.is_empty(), "{diags:?}");
        let NodeKind::Map(top) = &root.kind else {
            panic!("{file}: a map")
        };
        let NodeKind::Seq(items) = &top[0].1.kind else {
            panic!("{file}: test_cases")
        };
        items
            .iter()
            .map(|case| match &case.kind {
                NodeKind::Map(fields) => fields
                    .iter()
                    .filter_map(|(k, v)| {
                        let v = v.scalar()?;
                        let value = (!(v.style == yaml::Style::Plain && yaml::is_null(&v.value)))
                            .then(|| v.value.clone());
                        Some((k.scalar()?.value.clone(), value))
                    })
                    .collect(),
                _ => Vec::new(),
            })
            .collect()
    }
    let get = |case: &[(String, Option<String>)], key: &str| {
        case.iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.clone())
    };
    let mut failures = Vec::new();
    let mut total = 0;
    for (file, family, parts) in [
        (
            "test_ua.yaml",
            "family",
            ["major", "minor", "patch", "patch_minor"],
        ),
        (
            "test_os.yaml",
            "family",
            ["major", "minor", "patch", "patch_minor"],
        ),
    ] {
        for case in cases(file) {
            let Some(ua) = get(&case, "user_agent_string") else {
                continue;
            };
            total += 1;
            let a = parse(&ua).expect("the regexes build");
            let want_version = dotted(parts.iter().map(|p| {
                case.iter()
                    .find(|(k, _)| k == p)
                    .and_then(|(_, v)| v.as_deref())
            }));
            let (got_family, got_version) = if file == "test_ua.yaml" {
                (a.name, a.version)
            } else {
                (a.os, a.os_version)
            };
            let want_family = get(&case, family).unwrap_or_default();
            if got_family != want_family || got_version != want_version {
                failures.push(format!(
                    "{file}: {ua}: got {got_family} {got_version}, want {want_family} {want_version}"
                ));
            }
        }
    }
    assert!(total > 1800, "only {total} cases were read");
    assert!(
        failures.is_empty(),
        "{} of {total} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
