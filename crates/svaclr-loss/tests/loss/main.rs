//! Integration tests of svaclr-loss: parity with the PyTorch reference fixtures (both implementations), the
//! invariants of the losses (proptest), dispatch and fallback, errors, config and statistics.
//!
//! Fixtures: the folder named by `SVACLR_REFERENCE_DIR`, else `<workspace>/tests/fixtures`. New cases can be made
//! with `python scripts/reference/softinfonce_reference.py OUT --seed S` (needs torch) and checked with
//! `SVACLR_REFERENCE_DIR=OUT cargo test -p svaclr-loss --test loss parity`.

mod common;
mod config;
mod dispatch;
mod parity;
mod properties;
mod stats;
