//! cel-go's encoders extension library (`ext.Encoders`): base64.
//!
//! - `base64.encode(bytes) -> string`: standard alphabet, padded.
//! - `base64.decode(string) -> bytes`: standard alphabet, padded or not, as
//!   cel-go (which retries unpadded decoding when padded decoding fails).
//!   Like Go's decoder, carriage returns and newlines are ignored and
//!   non-zero trailing bits are accepted.
//!
//! Not provided: `json.encode` (added to cel-go's encoders in version 1).

use std::sync::Arc;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};

use crate::env::{Env, Overload};
use crate::eval::EvalError;
use crate::stdlib::t;
use crate::value::{Bin, Value};

#[cfg(test)]
mod tests;

/// Go's `base64.StdEncoding` for decoding: padding required, trailing bits allowed.
const PADDED: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// Go's `base64.RawStdEncoding` for decoding: no padding, trailing bits allowed.
const UNPADDED: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone),
);

/// Registers the encoder functions.
pub(crate) fn register(env: &mut Env) {
    env.add_function(
        "base64.encode",
        Overload::global("base64_encode_bytes", vec![t::BY], t::S).unary(encode),
    );
    env.add_function(
        "base64.decode",
        Overload::global("base64_decode_string", vec![t::S], t::BY).unary(decode),
    );
}

/// `base64.encode(bytes)`.
fn encode(v: Value<'_>) -> Result<Value<'_>, EvalError> {
    match v {
        Value::Bytes(b) => Ok(Value::string(general_purpose::STANDARD.encode(&*b))),
        other => Err(EvalError::no_overload("base64.encode", &[other])),
    }
}

/// `base64.decode(string)`.
fn decode(v: Value<'_>) -> Result<Value<'_>, EvalError> {
    let Value::String(s) = &v else {
        return Err(EvalError::no_overload("base64.decode", &[v]));
    };
    Ok(Value::Bytes(Bin::Shared(Arc::from(decode_base64(s)?))))
}

/// Decodes base64 as Go's encoders do, which cel-go and ngrok use: padded
/// or not, line breaks ignored, non-zero trailing bits accepted. Shared with
/// ngrok's `string.decodeBase64()` so both decode alike.
pub fn decode_base64(s: &str) -> Result<Vec<u8>, EvalError> {
    let stripped;
    let text: &[u8] = if s.contains(['\r', '\n']) {
        stripped = s
            .bytes()
            .filter(|b| !matches!(b, b'\r' | b'\n'))
            .collect::<Vec<u8>>();
        &stripped
    } else {
        s.as_bytes()
    };
    PADDED
        .decode(text)
        .or_else(|_| UNPADDED.decode(text))
        .map_err(|e| EvalError::new(format!("illegal base64 data: {}", describe(&e))))
}

/// A decoding error in words, with the offending input offset where known.
fn describe(e: &base64::DecodeError) -> String {
    match e {
        base64::DecodeError::InvalidByte(at, byte) => {
            format!("invalid byte {:?} at input byte {at}", char::from(*byte))
        }
        base64::DecodeError::InvalidLength(len) => format!("invalid length {len}"),
        base64::DecodeError::InvalidLastSymbol(at, byte) => format!(
            "invalid last symbol {:?} at input byte {at}",
            char::from(*byte)
        ),
        base64::DecodeError::InvalidPadding => "invalid padding".to_string(),
    }
}
