//! Evaluator internals that the conformance suite cannot see.

use super::str_eq;

#[test]
fn str_eq_agrees_with_equality_at_every_length_and_position() {
    for len in 0..40u8 {
        let a: String = (0..len).map(|i| char::from(b'a' + i % 26)).collect();
        assert!(str_eq(&a, &a.clone()));
        for pos in 0..usize::from(len) {
            let b: String = a
                .chars()
                .enumerate()
                .map(|(i, c)| if i == pos { '#' } else { c })
                .collect();
            assert!(!str_eq(&a, &b), "len {len}, differing at {pos}");
        }
        assert!(!str_eq(&a, &format!("{a}x")));
    }
}
