//! Tests of request variables.
