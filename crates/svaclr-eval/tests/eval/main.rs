//! svaclr-eval tests: retrieval metrics (hand-computed cases with ties, NumPy parity, properties), multi-view
//! averaging, configs, and end-to-end fine-tuning / linear probe / retrieval on a tiny SynthAV written at test time.
//!
//! The NumPy fixture `retrieval_numpy.json` is read from `$SVACLR_REFERENCE_DIR` when set, else from
//! `<workspace>/tests/fixtures`; regenerate it with `python scripts/reference/retrieval_reference.py tests/fixtures`.

mod common;
mod configs;
mod end_to_end;
mod metrics;
