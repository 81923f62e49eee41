use proptest::prelude::*;

use super::*;

fn canon(raw: &str) -> Result<String, PathError> {
    path(raw, &PathOptions::default()).map(|r| r.path.into_owned())
}

fn with(
    raw: &str,
    escaped_slashes: EscapedSlashes,
    merge_slashes: bool,
) -> Result<String, PathError> {
    let opts = PathOptions {
        merge_slashes,
        escaped_slashes,
    };
    path(raw, &opts).map(|r| r.path.into_owned())
}

#[test]
fn every_spelling_of_admin_is_admin() {
    for raw in [
        "/admin",
        "/%61dmin",
        "/%61%64%6D%69%6E",
        "//admin",
        "/./admin",
        "/x/../admin",
        "/x/%2e%2e/admin",
        "/x/.%2E/admin",
        "/x/%2E./admin",
        "/x/y/../../admin",
        "/../admin",
        "/../../admin",
        "/.//./admin",
        "///admin",
    ] {
        assert_eq!(canon(raw).as_deref(), Ok("/admin"), "{raw}");
    }
}

#[test]
fn rfc_3986_normalization() {
    // §6.2.2.1: hex in upper case; §6.2.2.2: unreserved decoded.
    assert_eq!(canon("/a%3fb").as_deref(), Ok("/a%3Fb"));
    assert_eq!(canon("/%41%62%7E").as_deref(), Ok("/Ab~"));
    assert_eq!(canon("/a%20b").as_deref(), Ok("/a%20b"));
    // §5.4.1's example of remove_dot_segments.
    assert_eq!(canon("/a/b/c/./../../g").as_deref(), Ok("/a/g"));
    assert_eq!(canon("/a/b/..").as_deref(), Ok("/a/"));
    assert_eq!(canon("/a/b/.").as_deref(), Ok("/a/b/"));
    assert_eq!(canon("/a/.").as_deref(), Ok("/a/"));
    assert_eq!(canon("/..").as_deref(), Ok("/"));
    assert_eq!(canon("/").as_deref(), Ok("/"));
    // Never decoded twice.
    assert_eq!(
        canon("/%252e%252e/admin").as_deref(),
        Ok("/%252e%252e/admin")
    );
    // Paths are case-sensitive.
    assert_eq!(canon("/ADMIN").as_deref(), Ok("/ADMIN"));
    // Not dot segments.
    assert_eq!(canon("/admin../secret").as_deref(), Ok("/admin../secret"));
    assert_eq!(canon("/.well-known/x").as_deref(), Ok("/.well-known/x"));
    assert_eq!(canon("/a/.../b").as_deref(), Ok("/a/.../b"));
    // An encoded `?` stays in the path.
    assert_eq!(canon("/admin%3F.png").as_deref(), Ok("/admin%3F.png"));
    // Parameters on a name are kept.
    assert_eq!(
        canon("/admin;jsessionid=1").as_deref(),
        Ok("/admin;jsessionid=1")
    );
}

#[test]
fn bytes_that_may_not_appear_in_a_path_are_encoded() {
    assert_eq!(canon("/a b").as_deref(), Ok("/a%20b"));
    assert_eq!(
        canon("/a\"<>^`{|}").as_deref(),
        Ok("/a%22%3C%3E%5E%60%7B%7C%7D")
    );
    assert_eq!(canon("/caf\u{e9}").as_deref(), Ok("/caf%C3%A9"));
    assert_eq!(canon("/caf%c3%a9").as_deref(), Ok("/caf%C3%A9"));
}

#[test]
fn paths_without_one_meaning_are_refused() {
    for (raw, err) in [
        ("/a%2Fb", PathError::EscapedSlash),
        ("/x%2F..%2Fadmin", PathError::EscapedSlash),
        ("/admin%2fpanel", PathError::EscapedSlash),
        ("/x\\..\\admin", PathError::EscapedSlash),
        ("/x%5C..%5Cadmin", PathError::EscapedSlash),
        ("/admin%00.png", PathError::Control),
        ("/a%01", PathError::Control),
        ("/a%7f", PathError::Control),
        ("/a\u{1}b", PathError::Control),
        ("/a%zz", PathError::BadEscape),
        ("/a%", PathError::BadEscape),
        ("/a%2", PathError::BadEscape),
        ("/%c0%ae%c0%ae/admin", PathError::InvalidUtf8),
        ("/%C0%AFadmin", PathError::InvalidUtf8),
        ("/%ff", PathError::InvalidUtf8),
        ("/%C0%AF/%2e%2e", PathError::InvalidUtf8),
        ("/x/..;/admin", PathError::DotParameters),
        ("/x/.;/admin", PathError::DotParameters),
        ("/x/..;x=1/admin", PathError::DotParameters),
        ("/x/%2e%2e;/admin", PathError::DotParameters),
        ("admin", PathError::NotAbsolute),
        ("", PathError::NotAbsolute),
    ] {
        assert_eq!(canon(raw), Err(err), "{raw:?}");
    }
}

#[test]
fn escaped_slashes_follow_the_chosen_setting() {
    use EscapedSlashes::*;
    assert_eq!(with("/a%2fb", Keep, true).as_deref(), Ok("/a%2Fb"));
    assert_eq!(
        with("/x/..%2F..%2Fb", Keep, true).as_deref(),
        Ok("/x/..%2F..%2Fb")
    );
    assert_eq!(with("/a\\b", Keep, true).as_deref(), Ok("/a%5Cb"));
    assert_eq!(
        with("/a%2Fb", UnescapeAndForward, true).as_deref(),
        Ok("/a/b")
    );
    // A decoded slash is a separator, so it feeds dot-segment removal.
    assert_eq!(
        with("/x%2F..%2Fadmin", UnescapeAndForward, true).as_deref(),
        Ok("/admin")
    );
    assert_eq!(
        with("/x\\..\\admin", UnescapeAndForward, true).as_deref(),
        Ok("/admin")
    );
    let r = path(
        "/a%2Fb",
        &PathOptions {
            merge_slashes: true,
            escaped_slashes: UnescapeAndRedirect,
        },
    )
    .expect("canonical");
    assert_eq!((r.path.as_ref(), r.redirect), ("/a/b", true));
    let r = path(
        "/a/b",
        &PathOptions {
            merge_slashes: true,
            escaped_slashes: UnescapeAndRedirect,
        },
    )
    .expect("canonical");
    assert!(!r.redirect);
}

#[test]
fn repeated_slashes_can_be_kept() {
    assert_eq!(
        with("//a///b", EscapedSlashes::Reject, false).as_deref(),
        Ok("//a///b")
    );
    assert_eq!(
        with("/a//../b", EscapedSlashes::Reject, false).as_deref(),
        Ok("/a/b")
    );
    assert_eq!(
        with("/a//../b", EscapedSlashes::Reject, true).as_deref(),
        Ok("/b")
    );
    assert_eq!(
        with("/a//", EscapedSlashes::Reject, false).as_deref(),
        Ok("/a//")
    );
}

#[test]
fn canonical_paths_are_borrowed() {
    for raw in [
        "/",
        "/admin",
        "/api/v1/users/42",
        "/a%20b",
        "/.well-known/x",
        "/a;b=c",
        "/a/",
    ] {
        assert!(
            matches!(
                path(raw, &PathOptions::default()).map(|r| r.path),
                Ok(Cow::Borrowed(_))
            ),
            "{raw}"
        );
    }
}

/// Paths as an attacker writes them: separators, dots, escapes of both
/// cases (valid and not), backslashes, semicolons, controls, non-ASCII.
fn hostile_path() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("/".to_owned()),
        Just("//".to_owned()),
        Just(".".to_owned()),
        Just("..".to_owned()),
        Just("%2e".to_owned()),
        Just("%2E".to_owned()),
        Just("%2f".to_owned()),
        Just("%5C".to_owned()),
        Just("\\".to_owned()),
        Just(";".to_owned()),
        Just("%".to_owned()),
        Just("%00".to_owned()),
        Just("%c3%a9".to_owned()),
        Just("%C0%AF".to_owned()),
        Just("é".to_owned()),
        Just(" ".to_owned()),
        "[a-zA-Z0-9_~-]{1,3}",
        "%[0-9a-fA-F]{2}",
        "[\\x00-\\x7f]",
    ];
    prop::collection::vec(piece, 0..12).prop_map(|v| format!("/{}", v.concat()))
}

fn options() -> impl Strategy<Value = PathOptions> {
    (any::<bool>(), 0..4u8).prop_map(|(merge_slashes, e)| PathOptions {
        merge_slashes,
        escaped_slashes: match e {
            0 => EscapedSlashes::Reject,
            1 => EscapedSlashes::Keep,
            2 => EscapedSlashes::UnescapeAndRedirect,
            _ => EscapedSlashes::UnescapeAndForward,
        },
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn canonical_paths_are_fixed_points(raw in hostile_path(), opts in options()) {
        if let Ok(once) = path(&raw, &opts) {
            let again = path(&once.path, &opts).expect("a canonical path is accepted");
            prop_assert_eq!(again.path.as_ref(), once.path.as_ref());
            prop_assert!(!again.redirect);
            // The scan recognises the canonical form, except for non-ASCII
            // escapes, whose UTF-8 only the rewrite checks.
            let non_ascii = once.path.split('%').skip(1).any(|e| e.as_bytes()[0] >= b'8');
            prop_assert!(non_ascii || matches!(again.path, Cow::Borrowed(_)), "{:?} not recognised", once.path);
            let p = once.path.as_ref();
            prop_assert!(p.starts_with('/'));
            for seg in p.split('/').skip(1) {
                prop_assert!(seg != "." && seg != "..", "dot segment in {}", p);
            }
            if opts.merge_slashes {
                prop_assert!(!p.contains("//"), "{}", p);
            }
            prop_assert!(!p.contains('\\'));
            let reparsed = http::uri::PathAndQuery::try_from(p).expect("parses");
            prop_assert_eq!(reparsed.path(), p);
            prop_assert!(reparsed.query().is_none());
        }
    }

    #[test]
    fn the_scan_never_borrows_what_the_rewrite_would_change(raw in hostile_path(), opts in options()) {
        if is_canonical(raw.as_bytes(), &opts) {
            let (rewritten, redirect) = rewrite(raw.as_bytes(), &opts).expect("accepted");
            prop_assert_eq!(rewritten, raw);
            prop_assert!(!redirect);
        }
    }
}
