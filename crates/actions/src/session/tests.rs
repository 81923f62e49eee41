use super::{Keys, random_token};

#[test]
fn a_sealed_value_opens_only_under_its_own_name() {
    let keys = Keys::new(&[[7; 32]]);
    let sealed = keys.seal("session", b"alice").expect("sealed");
    assert_eq!(
        keys.open("session", &sealed).as_deref(),
        Some(&b"alice"[..])
    );
    assert_eq!(keys.open("flow", &sealed), None, "swapped cookie");
    assert!(!sealed.contains("alice"), "sealed text hides the value");
}

#[test]
fn a_tampered_value_does_not_open() {
    let keys = Keys::new(&[[7; 32]]);
    let sealed = keys.seal("session", b"alice").expect("sealed");
    let mut bytes = sealed.into_bytes();
    let last = bytes.len() - 2;
    bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).expect("text");
    assert_eq!(keys.open("session", &tampered), None);
    assert_eq!(keys.open("session", "not a cookie"), None);
    assert_eq!(keys.open("session", ""), None);
}

#[test]
fn rotation_opens_old_sessions_and_seals_with_the_new_key() {
    let old = Keys::new(&[[1; 32]]);
    let sealed_old = old.seal("s", b"v").expect("sealed");
    let rotated = Keys::new(&[[2; 32], [1; 32]]);
    assert_eq!(rotated.open("s", &sealed_old).as_deref(), Some(&b"v"[..]));
    let sealed_new = rotated.seal("s", b"w").expect("sealed");
    assert_eq!(old.open("s", &sealed_new), None, "sealed with the new key");
    let retired = Keys::new(&[[2; 32]]);
    assert_eq!(retired.open("s", &sealed_old), None);
}

#[test]
fn random_tokens_differ() {
    assert_ne!(random_token(32), random_token(32));
    assert_eq!(random_token(32).len(), 43);
}
