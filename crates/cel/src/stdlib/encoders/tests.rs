//! Tests of the encoders extension.

use crate::Value;
use crate::stdlib::testing::{check_err, eval};

#[track_caller]
fn check_string(src: &str, want: &str) {
    let got = eval(src);
    assert!(
        matches!(&got, Ok(Value::String(s)) if &**s == want),
        "{src}: got {got:?}, want {want:?}"
    );
}

#[track_caller]
fn check_bytes(src: &str, want: &[u8]) {
    let got = eval(src);
    assert!(
        matches!(&got, Ok(Value::Bytes(b)) if &**b == want),
        "{src}: got {got:?}, want {want:?}"
    );
}

#[test]
fn encode() {
    check_string("base64.encode(b'hello')", "aGVsbG8=");
    check_string("base64.encode(b'')", "");
    check_string("base64.encode(b'\\xff\\xfe')", "//4=");
    check_string("base64.encode(bytes('Hello World!'))", "SGVsbG8gV29ybGQh");
}

#[test]
fn decode() {
    check_bytes("base64.decode('aGVsbG8=')", b"hello");
    check_bytes("base64.decode('aGVsbG8')", b"hello");
    check_bytes("base64.decode('aGk=')", b"hi");
    check_bytes("base64.decode('aGk')", b"hi");
    check_bytes("base64.decode('')", b"");
    check_bytes("base64.decode('//4=')", &[0xff, 0xfe]);
    // Go ignores newlines and non-zero trailing bits.
    check_bytes("base64.decode('aGVs\\nbG8=')", b"hello");
    check_bytes("base64.decode('aGVsbG9=')", b"hello");
    check_bytes(
        "base64.decode(base64.encode(b'Hello World!'))",
        b"Hello World!",
    );
}

#[test]
fn decode_errors() {
    check_err("base64.decode('a')", "illegal base64 data");
    check_err("base64.decode('aGVsbG8=x')", "illegal base64 data");
    check_err("base64.decode('aGVsbA=')", "illegal base64 data");
    check_err("base64.decode('-_-_')", "illegal base64 data");
    check_err("base64.decode(dyn(b'aGk='))", "overload");
    check_err("base64.encode(dyn('hi'))", "overload");
}

#[test]
fn signatures() {
    assert!(matches!(eval("base64.decode(b'aGk=')"), Err(e) if e.starts_with("compile:")));
    assert!(matches!(eval("base64.encode('hi')"), Err(e) if e.starts_with("compile:")));
}
